"""The user service: add, list, change role, disable/enable, change password, authenticate.

Each change and its audit event are committed together (app.audit). Names are case-insensitive ("Alice"
signs in as "alice" too) and kept as first typed for display. The last enabled admin cannot be demoted or
disabled, so an installation can always be administered without editing the database.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit
from app.accounts.passwords import check_policy, dummy_verify, hash_password, verify_password
from app.accounts.roles import Role, parse_role
from app.audit import Identified
from app.db.base import utcnow
from app.db.models import User
from app.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
Actor = User | Identified | str | None


def check_username(name: str) -> str:
    """The name, stripped, if it is 1–64 ASCII letters, digits or . _ @ - starting with a letter or digit."""
    name = (name or "").strip()
    if not USERNAME_PATTERN.fullmatch(name):
        raise InvalidInput("username must be 1-64 characters: ASCII letters, digits, '.', '_', '@' or '-', "
                           f"starting with a letter or digit (got {name!r})")
    return name


def username_key(name: str) -> str:
    return name.strip().lower()


def find_user(session: Session, name: str) -> User | None:
    """The user called `name` (any case), or None."""
    return session.scalar(select(User).where(User.username_key == username_key(name)))


def get_user(session: Session, name: str) -> User:
    user = find_user(session, name)
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username_key)))


def add_user(session: Session, name: str, role: str, password: str, *, actor: Actor = None,
             address: str | None = None) -> User:
    """A new enabled user; Conflict when the name (in any case) is taken."""
    name = check_username(name)
    parsed = parse_role(role)
    check_policy(password)
    if find_user(session, name) is not None:
        raise Conflict(f"username {name!r} is already taken")
    password_hash = hash_password(password)
    now = utcnow()
    user = User(username=name, username_key=username_key(name), role=parsed.value, password_hash=password_hash,
                disabled=False, session_epoch=0, created_at=now, updated_at=now, password_changed_at=now)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # added by someone else since find_user
        session.rollback()
        raise Conflict(f"username {name!r} is already taken") from None
    audit.record(session, actor, "user.add", "user", user.username, after={"username": name, "role": parsed.value},
                 address=address)
    session.commit()
    log.info("user %s added with role %s", name, parsed.value)
    return user


def _enabled_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User).where(
        User.role == Role.admin.value, User.disabled.is_(False))) or 0


def _keep_an_admin(session: Session, user: User, what: str) -> None:
    if user.role == Role.admin.value and not user.disabled and _enabled_admins(session) <= 1:
        raise Conflict(f"cannot {what} {user.username!r}: it is the last enabled admin; make another admin first")


def set_role(session: Session, name: str, role: str, *, actor: Actor = None, address: str | None = None) -> User:
    user = get_user(session, name)
    parsed = parse_role(role)
    if user.role == parsed.value:
        return user
    if parsed is not Role.admin:
        _keep_an_admin(session, user, f"make {parsed.value}")
    before = {"role": user.role}
    user.role = parsed.value
    audit.record(session, actor, "user.role", "user", user.username, before=before, after={"role": parsed.value},
                 address=address)
    session.commit()
    return user


def disable(session: Session, name: str, *, actor: Actor = None, address: str | None = None) -> User:
    """Refuse the user's logins, tokens and existing sessions from now on (the session epoch moves)."""
    user = get_user(session, name)
    if user.disabled:
        return user
    _keep_an_admin(session, user, "disable")
    user.disabled = True
    user.session_epoch += 1
    audit.record(session, actor, "user.disable", "user", user.username, before={"disabled": False},
                 after={"disabled": True}, address=address)
    session.commit()
    return user


def enable(session: Session, name: str, *, actor: Actor = None, address: str | None = None) -> User:
    user = get_user(session, name)
    if not user.disabled:
        return user
    user.disabled = False
    audit.record(session, actor, "user.enable", "user", user.username, before={"disabled": True},
                 after={"disabled": False}, address=address)
    session.commit()
    return user


def set_password(session: Session, name: str, password: str, *, actor: Actor = None,
                 address: str | None = None) -> User:
    """A new password; every session signed before it stops working (the session epoch moves)."""
    user = get_user(session, name)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.session_epoch += 1
    audit.record(session, actor, "user.password", "user", user.username,
                 after={"password_changed_at": user.password_changed_at}, address=address)
    session.commit()
    return user


def revoke_sessions(session: Session, name: str, *, actor: Actor = None, address: str | None = None) -> User:
    """Sign the user out everywhere: cookies signed before now stop working (API tokens are revoked apart)."""
    user = get_user(session, name)
    user.session_epoch += 1
    audit.record(session, actor, "user.sessions_revoked", "user", user.username, address=address)
    session.commit()
    return user


def authenticate(session: Session, name: str, password: str, *, address: str | None = None) -> User | None:
    """The enabled user whose name and password these are, or None — the same answer, in about the same time,
    for an unknown name, a wrong password and a disabled user. Writes auth.login or auth.login_failed, and
    replaces a hash made with older argon2 parameters."""
    user = find_user(session, name) if USERNAME_PATTERN.fullmatch((name or "").strip()) else None
    if user is None:
        dummy_verify()
        audit.record(session, None, "auth.login_failed", "user", None, after={"reason": "unknown user"},
                     address=address)
        session.commit()
        return None
    verified = verify_password(password or "", user.password_hash)
    if not verified.ok or user.disabled:
        reason = "disabled" if verified.ok else "wrong password"
        audit.record(session, None, "auth.login_failed", "user", user.username, after={"reason": reason},
                     address=address)
        session.commit()
        return None
    if verified.new_hash is not None:
        user.password_hash = verified.new_hash
    audit.record(session, user, "auth.login", "user", user.username, address=address)
    session.commit()
    return user
