"""API tokens for scripts (`Authorization: Bearer mv_…`): created for a user, shown once, stored as a hash.

A token is `mv_` + 32 random bytes (URL-safe base64): with 256 bits of entropy a plain SHA-256 is enough to
store it — a slow password hash defends guessable secrets, and no one guesses these — and it lets a request
find its token with one indexed lookup. The `mv_` prefix makes leaked tokens easy to recognise (secret
scanners, logs). `last_used_at` is written at most once a minute per token, not on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.audit import Identified
from app.db.base import utcnow
from app.db.models import ApiToken, User
from app.errors import InvalidInput, NotFound

TOKEN_PREFIX = "mv_"
PREFIX_SHOWN = 8  # characters of the token kept in clear to identify it ("mv_AbCdE")
LAST_USED_EVERY = timedelta(minutes=1)
MAX_TOKEN_LENGTH = 100
Actor = User | Identified | str | None


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_token_text() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(session: Session, user: User, name: str = "", *, actor: Actor = None,
                 address: str | None = None) -> tuple[str, ApiToken]:
    """A new token for `user`: (the plaintext, to show once and never again, the stored row)."""
    label = (name or "").strip() or "token"
    if len(label) > 100:
        raise InvalidInput(f"token name must be at most 100 characters (got {len(label)})")
    if user.disabled:
        raise InvalidInput(f"user {user.username!r} is disabled; enable it before creating a token")
    plaintext = new_token_text()
    token = ApiToken(user_id=user.id, name=label, token_hash=hash_token(plaintext), prefix=plaintext[:PREFIX_SHOWN],
                     created_at=utcnow())
    session.add(token)
    session.flush()
    audit.record(session, actor if actor is not None else user, "token.create", "token", token.id,
                 after={"user": user.username, "name": label, "prefix": token.prefix}, address=address)
    session.commit()
    return plaintext, token


def token_user(session: Session, plaintext: str) -> User | None:
    """The enabled user a live token belongs to, or None (unknown, revoked, or its user disabled)."""
    if not plaintext or not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > MAX_TOKEN_LENGTH:
        return None
    digest = hash_token(plaintext)
    row = session.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                          .where(ApiToken.token_hash == digest)).first()
    if row is None:
        return None
    token, user = row
    # the lookup was by the hash already; compare again in constant time so no early-exit path is left
    if not hmac.compare_digest(token.token_hash, digest) or token.revoked_at is not None or user.disabled:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        token.last_used_at = now
        session.commit()
    return user


def list_tokens(session: Session, user: User | None = None) -> list[ApiToken]:
    """Tokens (of `user`, or everyone's), newest first; revoked ones included, marked by `revoked_at`."""
    stmt = select(ApiToken).order_by(ApiToken.id.desc())
    if user is not None:
        stmt = stmt.where(ApiToken.user_id == user.id)
    return list(session.scalars(stmt))


def revoke_token(session: Session, token_id: int, *, actor: Actor = None, address: str | None = None) -> ApiToken:
    """Revoke a token by id (idempotent); the next request that sends it is refused."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no API token with id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        owner = session.get(User, token.user_id)
        audit.record(session, actor, "token.revoke", "token", token.id,
                     before={"revoked": False}, after={"revoked": True, "user": owner.username if owner else None,
                                                       "name": token.name, "prefix": token.prefix},
                     address=address)
        session.commit()
    return token
