"""The sign-in page and sign-out for the browser (the JSON twins are in app.api.auth).

`POST /login` is a plain form post (no script needed): a right name and password set the session cookie and
redirect to `next` (a path on this site only); a wrong one shows the page again with one message for an unknown
name and a wrong password alike, 429 when throttled. `POST /logout` needs the session's CSRF token field.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import exists, select

from app import audit
from app.accounts import login
from app.accounts.links import link_user
from app.accounts.login import NotAuthenticated, TooManyAttempts
from app.accounts.sessions import make_session_value
from app.api.auth import clear_session_cookie, set_session_cookie, sign_in
from app.api.deps import SessionDep
from app.api.security import Principal, RequireRole, client_address, current_principal
from app.db.models import User

router = APIRouter(include_in_schema=False)


def safe_next(value: str | None) -> str:
    """Only a path of this site (no scheme, no host, no `//evil`), else the start page."""
    if not value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _page(request: Request, session: SessionDep, status: int = 200, **context: object) -> Response:
    first_run = not session.scalar(select(exists().where(User.id.is_not(None))))
    context = {"next": "/", "username": "", "error": None, "first_run": first_run, "show_signin": False,
               **context}
    return request.app.state.templates.TemplateResponse(request, "login.html", context, status_code=status)


@router.get("/login", name="login_page")
async def login_page(request: Request, session: SessionDep, next: str | None = None) -> Response:  # noqa: A002
    if await current_principal(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return await run_in_threadpool(_page, request, session, next=safe_next(next))


@router.post("/login", name="login_submit")
def login_submit(request: Request, session: SessionDep, username: Annotated[str, Form(max_length=64)],
                 password: Annotated[str, Form(max_length=1024)],
                 next: Annotated[str, Form(max_length=2048)] = "/") -> Response:  # noqa: A002 - the form's name
    try:
        signed = sign_in(request, session, username, password)
    except NotAuthenticated as exc:
        return _page(request, session, 401, next=safe_next(next), username=username, error=exc.detail)
    except TooManyAttempts as exc:
        response = _page(request, session, 429, next=safe_next(next), username=username, error=exc.detail)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, request, request.app.state.auth, signed.session_value)
    return response


@router.get("/login/link", name="login_link")
def login_link(request: Request, session: SessionDep, t: str = "") -> Response:
    """A one-click sign-in link (printed by `medview demo`): a valid one signs in and opens the start page."""
    auth = request.app.state.auth
    user = link_user(session, auth.secret, t)
    if user is None:
        return _page(request, session, 401, error="this sign-in link is invalid or has expired; sign in below")
    audit.record(session, user, "auth.login", "user", user.username, after={"via": "link"},
                 address=client_address(request))
    session.commit()
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, request, auth, make_session_value(auth.secret, user))
    return response


@router.post("/logout", name="logout_submit")
def logout_submit(request: Request, session: SessionDep,
                  principal: Annotated[Principal, Depends(RequireRole("viewer"))]) -> Response:
    login.sign_out(session, session.get(User, principal.id), client_address(request))
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response)
    return response
