"""Password hashing: argon2id through pwdlib, with a length policy and a dummy verify for unknown users.

argon2id is memory-hard (OWASP's first choice); pwdlib's defaults follow argon2-cffi's RFC 9106 "low memory"
profile. `verify_password` also tells when a stored hash was made with older parameters, so a login can
store a fresh one. `dummy_verify` spends the same time as a real verify, so a login for a name that does not
exist takes as long as a wrong password and timing does not reveal which names exist.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.errors import InvalidInput

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; a bound stops a megabyte "password" from costing a request


class Verified(NamedTuple):
    ok: bool
    new_hash: str | None  # set when the password is right and the stored hash should be replaced


@lru_cache(maxsize=1)
def _hasher() -> PasswordHash:
    return PasswordHash((Argon2Hasher(),))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash("medview-dummy-password-for-timing")


def check_policy(password: str) -> None:
    """Refuse a password that is too short, too long or only whitespace, with a message naming the field."""
    if not password or not password.strip():
        raise InvalidInput("password must not be empty or only spaces")
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_LENGTH} characters long (got {len(password)})")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"password must be at most {MAX_LENGTH} characters long")


def hash_password(password: str) -> str:
    """The argon2id hash (`$argon2id$v=19$m=…`) of a password that meets the policy."""
    check_policy(password)
    return _hasher().hash(password)


def verify_password(password: str, stored_hash: str) -> Verified:
    """Whether `password` matches; `new_hash` when it does and the stored hash used older parameters.
    A hash this module did not make (empty, corrupt) never matches."""
    if len(password) > MAX_LENGTH:
        dummy_verify()
        return Verified(False, None)
    try:
        ok, new_hash = _hasher().verify_and_update(password, stored_hash)
    except Exception:  # pwdlib.exceptions.UnknownHashError and friends: treat as a wrong password
        dummy_verify()
        return Verified(False, None)
    return Verified(ok, new_hash)


def dummy_verify() -> None:
    """Spend one argon2 verify on nothing (see the module docstring)."""
    _hasher().verify("not-the-password", _dummy_hash())
