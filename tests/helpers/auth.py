"""Signed-in test clients: users inserted straight into the test's database (with a cheap argon2id hash made
once per session) and API tokens from the real token service, so the suite exercises the real sign-in path
(`Authorization: Bearer …`, or the signed session cookie in the browser) without a CPU-second per hash."""

from __future__ import annotations

from functools import cache
from typing import Any

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.accounts import tokens
from app.accounts.secret import load_or_create_secret
from app.accounts.sessions import make_session_value
from app.config import Settings
from app.db.base import utcnow
from app.db.models import User

PASSWORD = "correct horse battery"


@cache
def cheap_hash() -> str:
    return PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),)).hash(PASSWORD)


def ensure_user(settings: Settings, name: str, role: str) -> int:
    """The id of user `name` with `role` (created with password PASSWORD when missing)."""
    engine = create_engine(settings.database_url)
    try:
        with Session(engine) as session:
            user = session.scalar(select(User).where(User.username_key == name.lower()))
            if user is None:
                now = utcnow()
                user = User(username=name, username_key=name.lower(), role=role, password_hash=cheap_hash(),
                            disabled=False, session_epoch=0, created_at=now, updated_at=now,
                            password_changed_at=now)
                session.add(user)
                session.commit()
            return user.id
    finally:
        engine.dispose()


def api_token(settings: Settings, name: str = "tester", role: str = "admin") -> str:
    """A fresh API token of user `name` (created with `role` when missing)."""
    ensure_user(settings, name, role)
    engine = create_engine(settings.database_url)
    try:
        with Session(engine) as session:
            user = session.scalar(select(User).where(User.username_key == name.lower()))
            assert user is not None
            plaintext, _ = tokens.create_token(session, user, "tests")
            return plaintext
    finally:
        engine.dispose()


def session_cookie(settings: Settings, name: str = "tester", role: str = "admin") -> str:
    """The signed session cookie value of user `name`, as the app (same data dir, same secret) would set it."""
    user_id = ensure_user(settings, name, role)
    engine = create_engine(settings.database_url)
    try:
        with Session(engine) as session:
            user = session.get(User, user_id)
            assert user is not None
            return make_session_value(load_or_create_secret(settings.data_dir, settings.secret_key or None), user)
    finally:
        engine.dispose()


def signed_in(client: Any, settings: Settings, name: str = "tester", role: str = "admin") -> Any:
    """`client` (a TestClient, not yet entered) sending a fresh API token of `name`."""
    client.headers["Authorization"] = f"Bearer {api_token(settings, name, role)}"
    return client
