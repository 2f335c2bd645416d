"""Helpers for tests of accounts: a database session and cheap argon2 parameters.

`fast_hashing` swaps the argon2id parameters for the smallest ones (still argon2id, still salted) so that
tests which sign many users in do not spend a CPU-second per hash on a shared machine; the production
parameters are tested in tests/unit/test_accounts_passwords.py. Import the fixtures into a test module:
`from tests.accounts_helpers import db_fixture, fast_hashing_fixture  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.orm import Session

from app.accounts import passwords


@pytest.fixture(name="fast_hashing")
def fast_hashing_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    monkeypatch.setattr(passwords, "_hasher", lambda: cheap)
    monkeypatch.setattr(passwords, "_dummy_hash", lambda: cheap.hash("dummy-password"))


@pytest.fixture(name="db")
def db_fixture(engine, fast_hashing) -> Iterator[Session]:
    from app.db.session import make_session_factory

    with make_session_factory(engine)() as session:
        yield session
