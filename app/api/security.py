"""Who is asking, and may they: the one authentication path of every page and API route.

A request is signed in by an `Authorization: Bearer <token>` header (scripts) or the signed session cookie
(the browser). `Authenticator.identify` resolves either to a `Principal` — id, name and role read from the
database, never from the cookie — and keeps the answer for `CACHE_SECONDS`, so the grid's many small requests
cost a dictionary lookup, not a query each (PERFORMANCE: a sign-in check must not slow the grid). A change made
through this process (role, disable, sign-out everywhere, token revoked) drops the cached answers at once;
another process (a second uvicorn worker, the CLI) is seen within `CACHE_SECONDS`.

Dependencies (app.api.deps exposes them as aliases):
- `require_reader`: on every router but health, sign-in and static files: 401 without a user unless
  MEDVIEW_PUBLIC_READ opens reads;
- `RequireRole("reviewer")`: on every state-changing route: 401 / 403, and for cookie-authenticated requests the
  CSRF token (header `X-CSRF-Token` or form field `csrf_token`) and a same-origin check.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from app.accounts.login import NotAuthenticated, bearer_token, request_user
from app.accounts.roles import Role, at_least
from app.accounts.sessions import csrf_ok, csrf_token
from app.accounts.throttle import LoginThrottle
from app.errors import Forbidden

SESSION_COOKIE = "medview_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
CACHE_SECONDS = 2.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The signed-in user of one request, detached from any database session."""

    id: int
    username: str
    role: str
    via: str  # "cookie" | "token"


class Authenticator:
    """Resolves credentials to principals through a short-lived cache; holds the signing secret and the login
    throttle of this app."""

    def __init__(self, session_factory: sessionmaker[Session], secret: str, max_age_seconds: float,
                 public_read: bool, throttle: LoginThrottle, secure_cookies: bool = False):
        self.session_factory = session_factory
        self.secret = secret
        self.max_age = max_age_seconds
        self.public_read = public_read
        self.throttle = throttle
        self.secure_cookies = secure_cookies
        self._cache: dict[tuple[str, str], tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def cached(self, key: tuple[str, str]) -> tuple[bool, Principal | None]:
        with self._lock:
            hit = self._cache.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def identify(self, key: tuple[str, str]) -> Principal | None:
        """The principal of a credential (`("token", text)` or `("cookie", value)`), from the database."""
        kind, credential = key
        with self.session_factory() as session:
            if kind == "token":
                user = request_user(session, self.secret, authorization=f"Bearer {credential}",
                                    max_age=self.max_age)
            else:
                user = request_user(session, self.secret, cookie=credential, max_age=self.max_age)
            principal = None if user is None else Principal(user.id, user.username, user.role, kind)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + CACHE_SECONDS, principal)
        return principal

    def forget(self) -> None:
        """Drop every cached answer: called after any change to users, roles or tokens in this process."""
        with self._lock:
            self._cache.clear()

    def csrf_for(self, request: Request) -> str | None:
        """The CSRF token of this request's session cookie (None without one): for pages and forms."""
        value = request.cookies.get(SESSION_COOKIE)
        return csrf_token(self.secret, value) if value else None


def credential_of(request: Request) -> tuple[str, str] | None:
    token = bearer_token(request.headers.get("authorization"))
    if token is not None:
        return ("token", token)
    cookie = request.cookies.get(SESSION_COOKIE)
    return ("cookie", cookie) if cookie else None


async def current_principal(request: Request) -> Principal | None:
    """The request's principal (None when no credential signs anyone in), once per request."""
    known: Principal | None | bool = getattr(request.state, "principal", False)  # False: not resolved yet
    if known is not False:
        return known  # type: ignore[return-value]
    auth: Authenticator = request.app.state.auth
    key = credential_of(request)
    principal = None
    if key is not None:
        found, principal = auth.cached(key)
        if not found:
            principal = await run_in_threadpool(auth.identify, key)
        if principal is None and key[0] == "token":
            raise NotAuthenticated("the API token is unknown, revoked or its user is disabled")
    request.state.principal = principal
    return principal


async def require_reader(request: Request) -> Principal | None:
    """Reads need a signed-in user, unless MEDVIEW_PUBLIC_READ opens them to anyone."""
    principal = await current_principal(request)
    if principal is None and not request.app.state.auth.public_read:
        raise NotAuthenticated("sign in first (or send Authorization: Bearer <token>)")
    return principal


def same_origin(request: Request) -> bool:
    """A browser's Origin (or Referer) names this host; requests without either (scripts) pass."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    rest = origin.split("://", 1)[-1]
    return hmac.compare_digest(rest.split("/", 1)[0].lower(), host.lower())


async def check_csrf(request: Request, principal: Principal) -> None:
    """Cookie-authenticated unsafe requests must come from our own pages: same origin and the session's token."""
    if principal.via != "cookie" or request.method in SAFE_METHODS:
        return
    if not same_origin(request):
        raise Forbidden("cross-site request refused (Origin is not this site)")
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        field = form.get(CSRF_FIELD)
        token = field if isinstance(field, str) else None
    auth: Authenticator = request.app.state.auth
    if not csrf_ok(auth.secret, request.cookies.get(SESSION_COOKIE), token):
        raise Forbidden("missing or wrong CSRF token (reload the page and try again)")


class RequireRole:
    """Dependency: the signed-in principal when its role is at least `role` (401 without one, 403 below it)."""

    def __init__(self, role: str):
        self.role = Role(role)

    async def __call__(self, request: Request) -> Principal:
        principal = await current_principal(request)
        if principal is None:
            raise NotAuthenticated("sign in first (or send Authorization: Bearer <token>)")
        if not at_least(principal.role, self.role):
            raise Forbidden(f"this needs the {self.role.value} role; {principal.username} is {principal.role}")
        await check_csrf(request, principal)
        return principal

    def __repr__(self) -> str:
        return f"RequireRole({self.role.value!r})"


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None

