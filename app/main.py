"""create_app(settings): the only place routers, database, caches and templates are wired."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__, ingest_jobs
from app.accounts.login import NotAuthenticated
from app.accounts.secret import load_or_create_secret
from app.accounts.throttle import LoginThrottle
from app.api import admin as api_admin
from app.api import auth as api_auth
from app.api import datasets as api_datasets
from app.api import embedding_map as api_embedding_map
from app.api import exports as api_exports
from app.api import fewshot as api_fewshot
from app.api import health as api_health
from app.api import items as api_items
from app.api import jobs as api_jobs
from app.api import masks as api_masks
from app.api import models as api_models
from app.api import predictions as api_predictions
from app.api import review as api_review
from app.api import similar as api_similar
from app.api.deps import json_response
from app.api.middleware import BodyLimit, NulRefusal, SecurityHeaders, TrustedHosts
from app.api.schemas.responses import allowed_methods, install_common_errors
from app.api.security import Authenticator, require_reader
from app.catalog.state import Catalog
from app.config import Settings
from app.db.migrate import is_current
from app.db.session import make_engine, make_session_factory, safe_url, unavailable_errors
from app.errors import AppError
from app.export import jobs as export_jobs
from app.heap import return_large_blocks
from app.inference.queue import make_queue
from app.inference.registry import RuntimeCache
from app.pixels import PixelStore
from app.pixels.masks import MaskPixels
from app.render.service import Renderer
from app.web import (
    admin_pages,
    api_docs,
    auth_pages,
    export_pages,
    fewshot_pages,
    followup_page,
    item_page,
    map_page,
    model_pages,
    pages,
    review_pages,
)
from app.web.assets import IMMUTABLE, REVALIDATE, AssetFiles, content_version

log = logging.getLogger("medview")
PROJECT_DIR = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


# MedView exports no OpenTelemetry data: FastAPI's built-in telemetry (newer releases) otherwise asks for the
# tracer, meter and logger providers on every request (~4% of the server's CPU under bench/load.py)
_NO_TELEMETRY: dict[str, Any] = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                                 if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


class DatabaseNotReady(RuntimeError):
    """The database is missing migrations; the message says which command fixes it."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return_large_blocks()  # per worker process: freed large buffers go back to the OS (app.heap)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        if not is_current(engine):
            engine.dispose()
            raise DatabaseNotReady(f"database {safe_url(settings.database_url)} is not at the newest schema; "
                                   "run `medview db upgrade`")
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.session_closers = anyio.CapacityLimiter(8)  # threads that only close sessions (app.api.deps)
        app.state.pixels = PixelStore.from_settings(settings)
        if app.state.pixels.masks is not None:  # mask uploads and reads in app.review.masks reach pixels this way
            app.state.session_factory.configure(info={"masks": MaskPixels(app.state.pixels, app.state.pixels.masks)})
        app.state.renderer = Renderer(app.state.pixels, settings.render_cache_mb * MB)
        app.state.runtimes = RuntimeCache()
        # On-demand predictions run here, so a request can stop waiting while the prediction goes on.
        app.state.predict_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="predict")
        export_jobs.register()  # export jobs run on the same workers as predict jobs
        ingest_jobs.register()  # and ingest jobs (POST /api/datasets)
        app.state.queue = make_queue(settings, app.state.session_factory, app.state.runtimes, app.state.pixels)
        app.state.catalog = Catalog()
        app.state.auth = Authenticator(
            app.state.session_factory, load_or_create_secret(settings.data_dir, settings.secret_key or None),
            settings.session_max_age_hours * 3600, settings.public_read,
            LoginThrottle(settings.login_max_failures, 4 * settings.login_max_failures))
        stop_warming = threading.Event()
        warming = threading.Thread(target=app.state.catalog.indexes.warm, args=(app.state.session_factory,),
                                   kwargs={"stop": stop_warming}, name="warm-facets", daemon=True)
        warming.start()
        yield
        stop_warming.set()
        warming.join(timeout=30)  # its session back in the pool before the engine is disposed
        app.state.queue.close()
        app.state.predict_executor.shutdown(wait=False, cancel_futures=True)
        app.state.runtimes.clear()
        app.state.pixels.clear()
        engine.dispose()

    app = FastAPI(title="MedView", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None, **_NO_TELEMETRY)
    app.state.settings = settings
    app.state.templates = Jinja2Templates(directory=str(PROJECT_DIR / "templates"),
                                          context_processors=[_signed_in_context])
    app.state.templates.env.globals["mask_brush"] = api_masks.brush_config  # the item page's brush panel
    static_dir = PROJECT_DIR / "static"  # app/web/assets.py: versioned URLs, cached for good; the plain path too
    app.mount(f"/static/{content_version(static_dir)}", AssetFiles(directory=static_dir, cache_control=IMMUTABLE),
              name="static")
    app.mount("/static", AssetFiles(directory=static_dir, cache_control=REVALIDATE, drop_versions=True),
              name="static-files")
    # Open to anyone: health, signing in, static files. Everything else needs a reader (MEDVIEW_PUBLIC_READ
    # opens reads); every write route also names the role it needs (RequireRole), checked by a test.
    for router in (api_health.router, api_auth.router, auth_pages.router):
        app.include_router(router)
    readers = [Depends(require_reader)]
    for router in (api_predictions.router, api_datasets.router, api_items.router, api_models.router,
                   api_jobs.router, api_admin.router, api_review.router, pages.router, item_page.router,
                   model_pages.router, admin_pages.router, api_docs.router, review_pages.router,
                   api_masks.router, api_exports.router, export_pages.router, api_similar.router,
                   api_fewshot.router, fewshot_pages.router, api_embedding_map.router, map_page.router,
                   followup_page.router):
        app.include_router(router, dependencies=readers)
    app.add_middleware(NulRefusal)  # before any route or database sees a path or query value
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_kb * 1024,
                       upload_bytes=settings.max_model_upload_mb * MB, upload_paths=("/api/models",))
    app.add_middleware(SecurityHeaders)
    app.add_middleware(TrustedHosts, allowed=[h.strip() for h in settings.allowed_hosts.split(",") if h.strip()])
    _install_error_handlers(app, settings)
    install_common_errors(app)  # 401/403/422/503… in /openapi.json, from what each route depends on
    return app


def _signed_in_context(request: Request) -> dict[str, Any]:
    """Every page's header: who is signed in, and the CSRF token its forms and scripts send back."""
    auth = getattr(request.app.state, "auth", None)
    return {"principal": getattr(request.state, "principal", None),
            "csrf_token": auth.csrf_for(request) if auth is not None else None}




def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def _error(request: Request, status: int, detail: str, extra: dict | None = None,
           headers: dict[str, str] | None = None) -> Response:
    if _wants_json(request):
        return json_response({**(extra or {}), "detail": detail}, status, headers=headers)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": status, "detail": detail}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI, settings: Settings) -> None:
    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        if isinstance(exc, NotAuthenticated) and not _wants_json(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        return _error(request, exc.status_code, exc.detail, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return _error(request, 422, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405 and (allow := allowed_methods(request.app.openapi(), request.url.path)):
            headers = {**(headers or {}), "Allow": allow}  # every method of the path, not the first route's
        return _error(request, exc.status_code, str(exc.detail), headers=headers)

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        """503 while the database cannot be reached (restarting, network); the pool's pre-ping replaces the dead
        connections, so the next request after it is back succeeds. One line in the log, no stack trace."""
        route = request.scope.get("route")
        log.warning("database unavailable on %s %s: %s", request.method, getattr(route, "path", "(no route)"),
                    type(exc).__name__)
        return _error(request, 503, "database unavailable (it may be restarting); try again shortly",
                      headers={"Retry-After": "5"})

    for error_class in unavailable_errors(settings.database_url):
        app.add_exception_handler(error_class, database_unavailable)

    @app.exception_handler(DataError)
    async def database_refused_value(request: Request, exc: DataError) -> Response:
        """The database refused a value (PostgreSQL: an integer out of range, text it cannot store): bad input
        that got past the edge's checks, a 400 rather than a 500. The driver's one-line reason, no SQL."""
        reason = str(getattr(exc, "orig", "") or "").splitlines()[0][:120] if getattr(exc, "orig", None) else ""
        log.warning("database refused a value on %s %s: %s", request.method,
                    getattr(request.scope.get("route"), "path", "(no route)"), reason)
        return _error(request, 400, f"a value in the request is out of range for the database ({reason or 'refused'})")

    @app.exception_handler(OverflowError)
    async def sqlite_integer_overflow(request: Request, exc: OverflowError) -> Response:
        """SQLite's driver refuses to bind an integer beyond 64 bits (before the database sees it): as above."""
        if "SQLite INTEGER" not in str(exc):
            return await unexpected(request, exc)
        log.warning("database refused a value on %s %s: %s", request.method,
                    getattr(request.scope.get("route"), "path", "(no route)"), exc)
        return _error(request, 400, "a value in the request is out of range for the database (integer too large)")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        route = request.scope.get("route")  # the route's template: no ids or patient names in the log
        log.exception("unhandled error on %s %s", request.method, getattr(route, "path", "(no route)"))
        return _error(request, 500, "internal error (logged on the server)")
