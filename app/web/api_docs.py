"""The interactive API page (`/docs`, Swagger UI) and its schema (`/openapi.json`), served offline.

FastAPI's own `/docs` loads its scripts from a CDN and starts Swagger UI with an inline script, which the
app's Content-Security-Policy (script-src 'self') refuses. `create_app` turns FastAPI's pages off
(`docs_url=None, redoc_url=None, openapi_url=None`) and includes this router instead, behind the same sign-in as
every other page: the vendored `swagger-ui-dist` (static/vendor/swagger-ui, version and licence in its README)
started by static/js/swagger-init.js, which reads the schema URL from the page. ReDoc is not served. The
validator badge (which would call an online validator) is off.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(include_in_schema=False)

SWAGGER_DIR = "/static/vendor/swagger-ui"
OPENAPI_URL = "/openapi.json"


@router.get(OPENAPI_URL, name="openapi_schema")
def openapi_schema(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", name="api_docs")
def api_docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    title = f"{request.app.title} API"
    return HTMLResponse(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{root}{SWAGGER_DIR}/swagger-ui.css">
<link rel="icon" type="image/png" href="{root}{SWAGGER_DIR}/favicon-32x32.png"></head>
<body><div id="swagger-ui" data-openapi-url="{root}{OPENAPI_URL}"></div>
<script src="{root}{SWAGGER_DIR}/swagger-ui-bundle.js"></script>
<script src="{root}/static/js/swagger-init.js"></script></body></html>""")
