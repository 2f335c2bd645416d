"""create_app(settings): the only place routers, database, caches and templates are wired."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__
from app.api import datasets as api_datasets
from app.api import health as api_health
from app.api import items as api_items
from app.api import jobs as api_jobs
from app.api import models as api_models
from app.api import predictions as api_predictions
from app.api.deps import json_response
from app.catalog.state import Catalog
from app.config import Settings
from app.db.migrate import is_current
from app.db.session import make_engine, make_session_factory
from app.errors import AppError
from app.inference.queue import make_queue
from app.inference.registry import RuntimeCache
from app.pixels import PixelStore
from app.render.service import Renderer
from app.web import api_docs, item_page, model_pages, pages

log = logging.getLogger("medview")
PROJECT_DIR = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


class DatabaseNotReady(RuntimeError):
    """The database is missing migrations; the message says which command fixes it."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        if not is_current(engine):
            engine.dispose()
            raise DatabaseNotReady(f"database {settings.database_url} is not at the newest schema; "
                                   "run `medview db upgrade`")
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.pixels = PixelStore.from_settings(settings)
        app.state.renderer = Renderer(app.state.pixels, settings.render_cache_mb * MB)
        app.state.runtimes = RuntimeCache()
        # On-demand predictions run here, so a request can stop waiting while the prediction goes on.
        app.state.predict_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="predict")
        app.state.queue = make_queue(settings, app.state.session_factory, app.state.runtimes, app.state.pixels)
        app.state.catalog = Catalog()
        threading.Thread(target=app.state.catalog.indexes.warm, args=(app.state.session_factory,),
                         name="warm-facets", daemon=True).start()
        yield
        app.state.queue.close()
        app.state.predict_executor.shutdown(wait=False, cancel_futures=True)
        app.state.runtimes.clear()
        app.state.pixels.clear()
        engine.dispose()

    app = FastAPI(title="MedView", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.templates = Jinja2Templates(directory=str(PROJECT_DIR / "templates"))
    app.mount("/static", StaticFiles(directory=str(PROJECT_DIR / "static")), name="static")
    app.include_router(api_predictions.router)
    for router in (api_health.router, api_datasets.router, api_items.router, api_models.router, api_jobs.router,
                   pages.router, item_page.router, model_pages.router, api_docs.router):
        app.include_router(router)
    _install_error_handlers(app)
    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def _error(request: Request, status: int, detail: str) -> Response:
    if _wants_json(request):
        return json_response({"detail": detail}, status)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": status, "detail": detail}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        return _error(request, exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return _error(request, 422, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return _error(request, 500, "internal error (logged on the server)")
