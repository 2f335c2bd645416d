"""The audit trail: who changed what, on which target, before and after, when and from where.

Any domain records here (accounts, model registration, jobs, later annotations and reviews), so this sits at
the top of `app` rather than inside one of them. `record` adds the event to the caller's session, so it is
committed in the same transaction as the change it describes: there is never a change without its event, nor
an event for a change that was rolled back. Append-only: this module offers no update or delete.

Secrets never reach a row: keys that name a secret (password, token hash, cookie, …) and values that look
like an argon2 hash or an API token are replaced by "[redacted]" before the event is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session
from typing_extensions import TypedDict  # pydantic documents these as the API's response schema (< 3.12)

from app.db.base import utcnow
from app.db.models import AuditEvent, User
from app.errors import InvalidInput

REDACTED = "[redacted]"
MAX_LIMIT = 1000
ANONYMOUS = "anonymous"
_SECRET_KEY_WORDS = ("password", "passwd", "secret", "token_hash", "plaintext", "cookie", "csrf",
                     "authorization", "api_key", "session_value")
_SECRET_KEYS = {"token", "hash", "key"}
_SECRET_VALUE = re.compile(r"^(\$argon2(id|i|d)\$|mv_[A-Za-z0-9_-]{20,})")


class AuditEventDict(TypedDict):
    id: int
    at: str  # ISO 8601, UTC
    actor: str
    actor_id: int | None
    action: str
    target_type: str | None
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    address: str | None


class AuditPage(TypedDict):
    events: list[AuditEventDict]  # newest first
    next_cursor: str | None  # pass back as `cursor` for the next (older) page; None on the last


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_KEYS or any(word in lowered for word in _SECRET_KEY_WORDS)


def redact(value: Any) -> Any:
    """`value` with every secret-looking key's value and every secret-looking string replaced (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if _is_secret_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str) and _SECRET_VALUE.match(value):
        return REDACTED
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class Identified(Protocol):
    """A user as the route layer knows it (app.api.security.Principal) or the ORM row: an id and a name."""

    @property
    def id(self) -> int: ...

    @property
    def username(self) -> str: ...


def record(session: Session, actor: User | Identified | str | None, action: str, target_type: str | None = None,
           target_id: str | int | None = None, before: Mapping[str, Any] | None = None,
           after: Mapping[str, Any] | None = None, address: str | None = None) -> AuditEvent:
    """Add one event to `session` (committed with the caller's change). `actor` is the signed-in user, a name
    for a non-user actor (e.g. "cli:alice" for the command line), or None for an anonymous request."""
    if actor is None or isinstance(actor, str):
        actor_id, actor_name = None, (actor or ANONYMOUS)
    else:
        actor_id, actor_name = actor.id, actor.username
    event = AuditEvent(
        at=utcnow(), actor_id=actor_id, actor_name=actor_name[:64], action=action,
        target_type=target_type, target_id=None if target_id is None else str(target_id)[:128],
        before=redact(before) if before is not None else None,
        after=redact(after) if after is not None else None,
        address=address[:64] if address else None,
    )
    session.add(event)
    return event


def as_dict(event: AuditEvent) -> AuditEventDict:
    return AuditEventDict(
        id=event.id, at=event.at.isoformat(), actor=event.actor_name, actor_id=event.actor_id, action=event.action,
        target_type=event.target_type, target_id=event.target_id, before=event.before, after=event.after,
        address=event.address)


def query(session: Session, *, actor: str | None = None, action: str | None = None,
          target_type: str | None = None, target_id: str | int | None = None, since: datetime | None = None,
          until: datetime | None = None, limit: int = 100, cursor: str | None = None) -> AuditPage:
    """Events newest first, filtered; `action` "user.*" matches every `user.` action. `since` is inclusive,
    `until` exclusive (naive UTC, as stored). Keyset-paged on the id, so a page costs the same at any depth."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    stmt = select(AuditEvent)
    if cursor is not None:
        if not cursor.isdigit():
            raise InvalidInput(f"cursor must be a value returned as next_cursor, not {cursor!r}")
        stmt = stmt.where(AuditEvent.id < int(cursor))
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor_name == actor)
    if action is not None:
        if action.endswith(".*"):
            stmt = stmt.where(AuditEvent.action.startswith(action[:-1], autoescape=True))
        else:
            stmt = stmt.where(AuditEvent.action == action)
    if target_type is not None:
        stmt = stmt.where(AuditEvent.target_type == target_type)
    if target_id is not None:
        stmt = stmt.where(AuditEvent.target_id == str(target_id))
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    rows = list(session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(events=[as_dict(r) for r in rows], next_cursor=str(rows[-1].id) if more else None)
