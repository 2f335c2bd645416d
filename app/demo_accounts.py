"""Accounts for `medview demo`: one user of each role, and a one-click sign-in link for the admin.

Passwords are random and printed once, when the account is made (only their argon2id hash is stored); every
run prints a fresh sign-in link (app.accounts.links, valid 24 h), so a new user is in with one click.
"""

from __future__ import annotations

import secrets

from sqlalchemy import create_engine

from app.accounts import users
from app.accounts.links import make_link_token
from app.accounts.roles import ROLES
from app.accounts.secret import load_or_create_secret
from app.config import Settings
from app.db.session import make_session_factory

DEMO_PREFIX = "demo-"


def ensure_demo_accounts(settings: Settings) -> tuple[list[str], str]:
    """(lines to print about the accounts, the admin's sign-in link token)."""
    engine = create_engine(settings.database_url)
    lines = []
    try:
        with make_session_factory(engine)() as session:
            for role in ROLES:
                name = f"{DEMO_PREFIX}{role.value}"
                if users.find_user(session, name) is None:
                    password = secrets.token_urlsafe(12)
                    users.add_user(session, name, role.value, password, actor="cli:demo")
                    lines.append(f"  {name:<16} {role.value:<10} password {password}  (shown once)")
                else:
                    lines.append(f"  {name:<16} {role.value:<10} (exists; `medview users password {name}` resets it)")
            admin = users.get_user(session, f"{DEMO_PREFIX}admin")
            token = make_link_token(load_or_create_secret(settings.data_dir, settings.secret_key or None), admin)
    finally:
        engine.dispose()
    return lines, token
