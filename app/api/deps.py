"""Dependency aliases shared by API and web routes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.catalog.state import Catalog
from app.config import Settings
from app.inference.queue import JobQueue
from app.inference.registry import RuntimeCache
from app.pixels import PixelStore
from app.render.service import Renderer

log = logging.getLogger(__name__)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A Session per request, made without a thread hop (creating one opens no connection: that happens in
    the route, on its worker thread). A session still holding a connection at the end is closed on a worker
    thread too (returning it to the pool may talk to the database server); routes that close it early, before
    their CPU work (render, raw, sheet), skip that hop.

    That close takes its thread from its own limiter (`app.state.session_closers`, made in the lifespan), never
    from the routes' threadpool: under load every route thread could be waiting for a pooled connection while
    the connections sat in finished requests queued behind them for a thread to close them — multi-second stalls
    under bench/load.py, and a deadlock until the pool's timeout with a smaller threadpool."""
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        if session.in_transaction():
            await anyio.to_thread.run_sync(_close, session, limiter=request.app.state.session_closers)
        else:
            _close(session)


def _close(session: Session) -> None:
    """Close the request's session; a database gone meanwhile (its rollback fails) must not break the answer
    already sent, nor the connection it came on: the dead connection is dropped from the pool instead."""
    try:
        session.close()
    except SQLAlchemyError as exc:
        log.warning("closing a session: database unavailable (%s); its connection is discarded", type(exc).__name__)
        with contextlib.suppress(SQLAlchemyError):
            session.invalidate()


# The getters below only read app.state: `async def` keeps FastAPI from sending each one through the
# threadpool (a thread hop per dependency per request was ~1 ms of a contact sheet's 6 ms, measured).
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_renderer(request: Request) -> Renderer:
    return request.app.state.renderer


async def get_pixels(request: Request) -> PixelStore:
    return request.app.state.pixels


async def get_runtimes(request: Request) -> RuntimeCache:
    return request.app.state.runtimes


async def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue


async def get_predict_executor(request: Request) -> ThreadPoolExecutor:
    return request.app.state.predict_executor


async def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RendererDep = Annotated[Renderer, Depends(get_renderer)]
RuntimesDep = Annotated[RuntimeCache, Depends(get_runtimes)]
PixelsDep = Annotated[PixelStore, Depends(get_pixels)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
PredictExecutorDep = Annotated[ThreadPoolExecutor, Depends(get_predict_executor)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]


def json_response(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """orjson-encoded response (PERFORMANCE.md: 100× cheaper than FastAPI's default encoder)."""
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json", headers=headers)
