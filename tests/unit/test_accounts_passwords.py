"""Passwords: argon2id hashes, verify, rehash of hashes made with older parameters, the length policy."""

from __future__ import annotations

import pytest
from pwdlib.hashers.argon2 import Argon2Hasher

from app.accounts import passwords
from app.errors import InvalidInput


def test_hash_is_argon2id_and_verifies():
    stored = passwords.hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert passwords.verify_password("correct horse", stored) == (True, None)
    assert passwords.verify_password("correct hors", stored) == (False, None)
    assert passwords.hash_password("correct horse") != stored  # salted


def test_old_parameters_are_rehashed_on_a_right_password():
    old = Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1).hash("correct horse")
    ok, new_hash = passwords.verify_password("correct horse", old)
    assert ok and new_hash is not None and new_hash.startswith("$argon2id$") and new_hash != old
    assert passwords.verify_password("wrong password", old) == (False, None)


@pytest.mark.parametrize("stored", ["", "plain-text", "$2b$12$notbcryptreally"])
def test_a_hash_we_did_not_make_never_matches(stored):
    assert passwords.verify_password("plain-text", stored) == (False, None)


@pytest.mark.parametrize(("password", "message"), [
    ("", "password must not be empty"),
    ("          ", "password must not be empty or only spaces"),
    ("short", "password must be at least 8 characters long (got 5)"),
    ("x" * 1025, "password must be at most 1024 characters"),
])
def test_policy_messages_name_the_field(password, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        passwords.hash_password(password)


def test_dummy_verify_runs_a_real_argon2_verify(monkeypatch):
    calls = []
    real = passwords._hasher()
    monkeypatch.setattr(real, "verify", lambda pw, h: calls.append(h) or False)
    passwords.dummy_verify()
    assert calls and calls[0].startswith("$argon2id$")
