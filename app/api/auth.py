"""Sign-in for scripts and the browser: `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/auth/me`.

A successful sign-in sets the signed session cookie (HttpOnly, SameSite=Lax, `Secure` over https, expiring with
MEDVIEW_SESSION_MAX_AGE_HOURS) and answers the user with the session's CSRF token in `X-CSRF-Token`, which
cookie-authenticated writes send back. Scripts may instead use `Authorization: Bearer <token>`
(`medview users token NAME`), which needs no cookie and no CSRF token.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.accounts import login
from app.accounts.login import NotAuthenticated, TooManyAttempts
from app.api.deps import SessionDep, json_response
from app.api.schemas.fields import RequestBody
from app.api.schemas.responses import errors
from app.api.security import (
    SESSION_COOKIE,
    Authenticator,
    Principal,
    RequireRole,
    client_address,
    current_principal,
    same_origin,
)
from app.db.models import User
from app.errors import Forbidden

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginRequest(RequestBody):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    username: str
    role: str


def set_session_cookie(response: Response, request: Request, auth: Authenticator, value: str) -> None:
    response.set_cookie(SESSION_COOKIE, value, max_age=int(auth.max_age), httponly=True, samesite="lax",
                        secure=auth.secure_cookies or request.url.scheme == "https", path="/")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


def sign_in(request: Request, session: SessionDep, username: str, password: str) -> login.SignedIn:
    """Throttle, check the password, record it (shared by the API and the sign-in page)."""
    if not same_origin(request):
        raise Forbidden("cross-site sign-in refused (Origin is not this site)")
    auth: Authenticator = request.app.state.auth
    return login.sign_in(session, auth.throttle, auth.secret, username, password, client_address(request))


@router.post("/login", response_model=UserOut, responses=errors(401, 403, 422, 429))
async def login_route(body: LoginRequest, request: Request, session: SessionDep) -> Response:
    try:
        signed = await run_in_threadpool(sign_in, request, session, body.username, body.password)
    except TooManyAttempts as exc:
        return json_response({"detail": exc.detail}, 429, headers={"Retry-After": str(exc.retry_after)})
    response = json_response(dict(login.summary(signed.user)), headers={"X-CSRF-Token": signed.csrf_token})
    set_session_cookie(response, request, request.app.state.auth, signed.session_value)
    return response


@router.post("/logout", status_code=204, responses=errors(401, 403))
def logout_route(request: Request, session: SessionDep,
                 principal: Principal = Depends(RequireRole("viewer"))) -> Response:  # noqa: B008
    login.sign_out(session, _user(session, principal), client_address(request))
    response = Response(status_code=204)
    clear_session_cookie(response)
    return response


@router.get("/me", response_model=UserOut, responses=errors(401))
async def me(request: Request) -> Response:
    principal = await current_principal(request)
    if principal is None:
        raise NotAuthenticated("not signed in")
    auth: Authenticator = request.app.state.auth
    headers = {"X-CSRF-Token": token} if (token := auth.csrf_for(request)) else None
    return json_response({"username": principal.username, "role": principal.role}, headers=headers)


def _user(session: SessionDep, principal: Principal) -> User | None:
    return session.get(User, principal.id)
