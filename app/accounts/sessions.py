"""Signed session cookie values and the CSRF token tied to them.

The cookie value is `{"u": user id, "e": session epoch}` signed with the app's secret (itsdangerous,
HMAC-SHA256, with its issue time): nothing is stored server-side, and it cannot be forged or extended
without the secret. The epoch makes server-side revocation possible anyway: disabling a user, changing a
password or "sign out everywhere" moves `users.session_epoch`, and `session_user` then refuses every cookie
signed with the old one — so a stateless cookie still dies at once. Roles are read from the database on each
request, never from the cookie, so a role change takes effect immediately too.

CSRF: forms and unsafe API calls made with the cookie send `csrf_token(secret, cookie value)` (a header or a
hidden field); it is an HMAC of the session value under a key derived for this purpose, so it changes at
every sign-in, needs no storage and cannot be computed by another site. Compare with `csrf_ok` (constant time).
Bearer-token requests carry no ambient credentials and need no CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from app.db.models import User

SESSION_SALT = "medview.session"
CSRF_SALT = b"medview.csrf"
MAX_VALUE_LENGTH = 4096
Clock = Callable[[], float]


class SessionClaim(NamedTuple):
    user_id: int
    epoch: int


class _ClockedSigner(TimestampSigner):
    """itsdangerous' timestamp signer with an injectable clock, so tests of expiry wait on no real time."""

    def __init__(self, *args: Any, clock: Clock = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


def _serializer(secret: str, clock: Clock) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SESSION_SALT, signer=_ClockedSigner,
                                  signer_kwargs={"clock": clock, "digest_method": hashlib.sha256})


def make_session_value(secret: str, user: User, *, clock: Clock = time.time) -> str:
    """The cookie value that signs `user` in (until max_age passes or the user's epoch moves)."""
    return _serializer(secret, clock).dumps({"u": user.id, "e": user.session_epoch})


def read_session_value(secret: str, value: str | None, max_age: float, *,
                       clock: Clock = time.time) -> SessionClaim | None:
    """The claim in a cookie value whose signature is good and that is younger than `max_age` seconds; None for
    anything else (tampered, expired, signed with another secret, malformed). Checks no database: see
    `session_user` for the epoch and the disabled flag."""
    if not value or len(value) > MAX_VALUE_LENGTH:
        return None
    try:
        data = _serializer(secret, clock).loads(value, max_age=math.ceil(max_age))
    except BadData:  # BadSignature, SignatureExpired, BadPayload, BadTimeSignature
        return None
    if not isinstance(data, dict):
        return None
    user_id, epoch = data.get("u"), data.get("e")
    if type(user_id) is not int or type(epoch) is not int:
        return None
    return SessionClaim(user_id, epoch)


def session_user(session: Session, secret: str, value: str | None, max_age: float, *,
                 clock: Clock = time.time) -> User | None:
    """The signed-in user of a cookie value: a valid claim, for an enabled user, with the user's current epoch."""
    claim = read_session_value(secret, value, max_age, clock=clock)
    if claim is None:
        return None
    user = session.get(User, claim.user_id)
    if user is None or user.disabled or user.session_epoch != claim.epoch:
        return None
    return user


def _csrf_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), CSRF_SALT, hashlib.sha256).digest()


def csrf_token(secret: str, session_value: str) -> str:
    """The CSRF token of one session (see the module docstring)."""
    mac = hmac.new(_csrf_key(secret), session_value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def csrf_ok(secret: str, session_value: str | None, token: str | None) -> bool:
    """True when `token` is this session's CSRF token (constant-time compare); False when either is missing."""
    if not session_value or not token:
        return False
    return hmac.compare_digest(csrf_token(secret, session_value).encode(), token.encode())
