"""The interactive API page (`/docs`, Swagger UI) served from static/vendor/swagger-ui/, so it works offline.

FastAPI's own `/docs` and `/redoc` load their scripts and styles from a CDN. `create_app` turns them off
(`docs_url=None, redoc_url=None`) and includes this router instead: the same Swagger UI page over the app's
`/openapi.json`, with every asset a local `/static` file (the vendored `swagger-ui-dist`, its version and
licence in static/vendor/swagger-ui/README.md). ReDoc is not served: one page over the same schema is enough,
and it would mean vendoring a second bundle. The validator badge (which would call an online validator) is off.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

SWAGGER_DIR = "/static/vendor/swagger-ui"
SWAGGER_PARAMETERS = {"validatorUrl": None}


@router.get("/docs", name="api_docs")
def api_docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    app = request.app
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} API",
        swagger_js_url=f"{root}{SWAGGER_DIR}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{SWAGGER_DIR}/swagger-ui.css",
        swagger_favicon_url=f"{root}{SWAGGER_DIR}/favicon-32x32.png",
        oauth2_redirect_url=None, swagger_ui_parameters=SWAGGER_PARAMETERS)
