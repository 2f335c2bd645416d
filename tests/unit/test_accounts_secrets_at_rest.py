"""No plaintext password or token reaches the database file or the logs, even with SQL statement logging on.

Runs on a real SQLite file (the bytes on disk are what an attacker with a backup would read), with the
production argon2 parameters, and scans the file, its WAL and every captured log record."""

from __future__ import annotations

import logging
import shutil

import pytest

from app.accounts import login, tokens, users
from app.accounts.throttle import LoginThrottle
from app.db.session import make_engine, make_session_factory

SECRET = "k3Jx9-Qv0Lr2ZpW8yT6mN4bC1dF7hG5s"


def test_database_file_and_logs_hold_no_plaintext(tmp_path, sqlite_template, caplog):
    path = tmp_path / "accounts.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    passwords = ["Plain-Password-One-7", "Plain-Password-Two-8", "Wrong-Guess-Password-9"]
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # statements and their parameters
    try:
        with make_session_factory(engine)() as db:
            users.add_user(db, "root", "admin", passwords[0])
            users.add_user(db, "ann", "viewer", passwords[0])
            users.set_password(db, "ann", passwords[1])
            with pytest.raises(login.NotAuthenticated):
                login.sign_in(db, LoginThrottle(), SECRET, "ann", passwords[2])
            signed = login.sign_in(db, LoginThrottle(), SECRET, "ann", passwords[1])
            issued = [tokens.create_token(db, signed.user, f"t{n}")[0] for n in range(3)]
            assert tokens.token_user(db, issued[0]) is signed.user
            tokens.revoke_token(db, 1)
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
        engine.dispose()
    assert "INSERT INTO users" in caplog.text  # the scan below did see the SQL traffic
    files = sorted(tmp_path.glob("accounts.db*"))
    blob = b"".join(f.read_bytes() for f in files)
    assert b"$argon2id$" in blob  # the hashes are there…
    for secret in passwords + issued:
        assert secret.encode() not in blob, f"{secret!r} found in {[f.name for f in files]}"
        assert secret not in caplog.text
    for token in issued:  # …and no token minus its visible prefix either
        assert token[8:].encode() not in blob
