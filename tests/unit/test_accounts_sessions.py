"""Signed session values: tampering, expiry, another secret, a disabled user or a new password → None; CSRF."""

from __future__ import annotations

from app.accounts import sessions, users
from app.accounts.sessions import SessionClaim, csrf_ok, csrf_token, make_session_value, read_session_value
from tests.accounts_helpers import db_fixture, fast_hashing_fixture  # noqa: F401

SECRET = "k3Jx9-Qv0Lr2ZpW8yT6mN4bC1dF7hG5s"
PW = "correct horse battery"
HOUR = 3600.0


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_round_trip_and_tamper(db):
    ann = users.add_user(db, "ann", "viewer", PW)
    value = make_session_value(SECRET, ann)
    assert read_session_value(SECRET, value, 12 * HOUR) == SessionClaim(ann.id, 0)
    assert sessions.session_user(db, SECRET, value, 12 * HOUR) is ann
    payload, _, signature = value.rpartition(".")
    middle = len(signature) // 2  # not the last character: its low bits are base64 padding and may not count
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1:]
    for bad in (payload + "." + flipped, value + "x", "x" + value, value.replace(".", "", 1), "", None,
                "not.a.cookie", "a" * 5000):
        assert read_session_value(SECRET, bad, 12 * HOUR) is None
    assert read_session_value(SECRET + "other", value, 12 * HOUR) is None


def test_expiry_with_an_injected_clock(db):
    ann = users.add_user(db, "ann", "viewer", PW)
    clock = Clock()
    value = make_session_value(SECRET, ann, clock=clock)
    clock.now += 12 * HOUR - 5
    assert read_session_value(SECRET, value, 12 * HOUR, clock=clock) == SessionClaim(ann.id, 0)
    clock.now += 10
    assert read_session_value(SECRET, value, 12 * HOUR, clock=clock) is None
    assert sessions.session_user(db, SECRET, value, 12 * HOUR, clock=clock) is None


def test_disable_and_password_change_end_sessions_at_once(db):
    users.add_user(db, "root", "admin", PW)
    ann = users.add_user(db, "ann", "viewer", PW)
    old = make_session_value(SECRET, ann)
    users.set_password(db, "ann", "a new password!")
    assert sessions.session_user(db, SECRET, old, 12 * HOUR) is None
    fresh = make_session_value(SECRET, ann)
    assert sessions.session_user(db, SECRET, fresh, 12 * HOUR) is ann
    users.disable(db, "ann")
    assert sessions.session_user(db, SECRET, fresh, 12 * HOUR) is None
    users.enable(db, "ann")  # enabling again does not bring back cookies signed before the disable
    assert sessions.session_user(db, SECRET, fresh, 12 * HOUR) is None
    assert sessions.session_user(db, SECRET, make_session_value(SECRET, ann), 12 * HOUR) is ann


def test_role_is_read_from_the_database(db):
    users.add_user(db, "root", "admin", PW)
    ann = users.add_user(db, "ann", "viewer", PW)
    value = make_session_value(SECRET, ann)
    users.set_role(db, "ann", "reviewer")
    assert sessions.session_user(db, SECRET, value, 12 * HOUR).role == "reviewer"


def test_a_claim_for_a_missing_user_is_nobody(db):
    users.add_user(db, "ann", "viewer", PW)

    class Ghost:
        id, session_epoch = 999, 0

    assert sessions.session_user(db, SECRET, make_session_value(SECRET, Ghost()), 12 * HOUR) is None


def test_csrf_token_is_tied_to_the_session_and_the_secret():
    a = "session-value-a"
    token = csrf_token(SECRET, a)
    assert csrf_ok(SECRET, a, token)
    assert csrf_token(SECRET, a) == token  # derivable again, nothing stored
    assert not csrf_ok(SECRET, "session-value-b", token)
    assert not csrf_ok(SECRET + "x", a, token)
    assert not csrf_ok(SECRET, a, token[:-1])
    assert not csrf_ok(SECRET, a, None) and not csrf_ok(SECRET, None, token) and not csrf_ok(SECRET, a, "")
    assert a not in token
