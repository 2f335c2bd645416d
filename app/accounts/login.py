"""Sign-in, sign-out and "who is this request": the few calls the route layer makes, in one place.

`sign_in` puts the throttle, `authenticate` and the signed cookie in the right order (refuse early when
throttled; count failures; one message for an unknown name and a wrong password). `request_user` resolves a
bearer token or a session cookie to an enabled user. `require_role` turns "no user" into 401 and "too low a
role" into 403. The 401 and 429 errors are AppErrors, so app.main's one handler renders them.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, TypedDict

from sqlalchemy.orm import Session

from app import audit
from app.accounts.roles import Role, at_least
from app.accounts.sessions import csrf_token, make_session_value, session_user
from app.accounts.throttle import LoginThrottle
from app.accounts.tokens import token_user
from app.accounts.users import authenticate
from app.db.models import User
from app.errors import AppError, Forbidden

LOGIN_FAILED = "wrong username or password"
log = logging.getLogger(__name__)


class NotAuthenticated(AppError):
    status_code = 401


class TooManyAttempts(AppError):
    """429; the route sends `Retry-After: retry_after`."""

    status_code = 429

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


class SignedIn(NamedTuple):
    user: User
    session_value: str  # the cookie's value
    csrf_token: str  # for the page (meta tag) and the JSON answer's header


class UserSummary(TypedDict):
    username: str
    role: str


def summary(user: User) -> UserSummary:
    """What `POST /api/auth/login` and `GET /api/auth/me` answer."""
    return UserSummary(username=user.username, role=user.role)


def sign_in(session: Session, throttle: LoginThrottle, secret: str, username: str, password: str,
            address: str | None = None) -> SignedIn:
    """A signed session for a right name and password; NotAuthenticated (one message for every failure) or
    TooManyAttempts (checked before the password, so a locked-out guess costs no argon2 time)."""
    wait = throttle.retry_after(username, address)
    if wait is not None:
        log.warning("sign-in refused (throttled %d s) for %r from %s", wait, username[:64], address)
        raise TooManyAttempts(wait)
    user = authenticate(session, username, password, address=address)
    if user is None:
        throttle.failure(username, address)
        log.warning("failed sign-in for %r from %s", username[:64], address)
        raise NotAuthenticated(LOGIN_FAILED)
    throttle.success(username)
    value = make_session_value(secret, user)
    return SignedIn(user, value, csrf_token(secret, value))


def sign_out(session: Session, user: User | None, address: str | None = None) -> None:
    """Record the sign-out (the route deletes the cookie). Other sessions of the user stay signed in; see
    users.revoke_sessions to end them all."""
    if user is not None:
        audit.record(session, user, "auth.logout", "user", user.username, address=address)
        session.commit()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def request_user(session: Session, secret: str, *, authorization: str | None = None, cookie: str | None = None,
                 max_age: float) -> User | None:
    """The enabled user behind a request: its bearer token if it sends one (a bad token is not rescued by a
    cookie), else its session cookie; None when neither signs anyone in."""
    token = bearer_token(authorization)
    if token is not None:
        return token_user(session, token)
    return session_user(session, secret, cookie, max_age)


def require_role(user: User | None, needed: str | Role) -> User:
    """`user` when it may act as `needed`; NotAuthenticated without a user, Forbidden for too low a role."""
    if user is None:
        raise NotAuthenticated("sign in first")
    if not at_least(user.role, needed):
        raise Forbidden(f"this needs the {Role(needed).value} role; {user.username} is {user.role}")
    return user
