"""One-click sign-in links (`/login/link?t=…`) for `medview demo`: a signed, expiring claim of one user.

Signed with the app's secret under a salt of its own (so a link is not a session cookie and vice versa), it
carries the user's session epoch: disabling the user or "sign out everywhere" kills outstanding links too.
"""

from __future__ import annotations

import hashlib

from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from app.db.models import User

LINK_SALT = "medview.sign-in-link"
LINK_MAX_AGE = 24 * 3600  # seconds


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=LINK_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def make_link_token(secret: str, user: User) -> str:
    return _serializer(secret).dumps({"u": user.id, "e": user.session_epoch})


def link_user(session: Session, secret: str, token: str, max_age: int = LINK_MAX_AGE) -> User | None:
    """The enabled user of a valid, unexpired link with the user's current epoch; None otherwise."""
    if not token or len(token) > 1024:
        return None
    try:
        data = _serializer(secret).loads(token, max_age=max_age)
    except BadData:
        return None
    if not isinstance(data, dict) or type(data.get("u")) is not int or type(data.get("e")) is not int:
        return None
    user = session.get(User, data["u"])
    if user is None or user.disabled or user.session_epoch != data["e"]:
        return None
    return user
