"""The database gone for a moment (PostgreSQL restarting, failing over, refusing connections; SQLite locked past
its busy timeout) is a 503 with a plain reason, not a 500 with a logged traceback: the client may retry, and the
server needs no restart — the engine's `pool_pre_ping` replaces dead connections on the next checkout once the
database is back (tests/deploy/test_faults_postgres.py restarts a real PostgreSQL under load).

Only connection-level errors are mapped (`OperationalError`, `InterfaceError`: the DBAPI's own classes for "the
database could not do this now", as opposed to `IntegrityError`/`DataError`, which are bugs or bad input and stay
500/4xx). The log gets one line with the error's class and first line, never the URL (it may carry a password).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.api.deps import json_response

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 2
DETAIL = "database unavailable; try again in a moment"


def _reason(exc: DBAPIError) -> str:
    text = str(exc.orig or exc).strip()
    return text.splitlines()[0] if text else type(exc.orig or exc).__name__


async def database_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBAPIError)
    route = request.scope.get("route")  # the route's template: no ids or names in the log
    log.warning("database unavailable on %s %s: %s: %s", request.method, getattr(route, "path", "(no route)"),
                type(exc.orig or exc).__name__, _reason(exc))
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", ""):
        return json_response({"detail": DETAIL}, 503, headers)
    return request.app.state.templates.TemplateResponse(request, "error.html", {"status": 503, "detail": DETAIL},
                                                        status_code=503, headers=headers)


def install(app: FastAPI) -> None:
    """Map connection-level database errors to 503 on `app` (one call in `create_app`)."""
    for exc_class in (OperationalError, InterfaceError):
        app.add_exception_handler(exc_class, database_unavailable)
