"""The route layer's calls: sign_in (throttle → authenticate → signed cookie), request_user, require_role."""

from __future__ import annotations

import pytest

from app import audit
from app.accounts import login, tokens, users
from app.accounts.sessions import csrf_ok, make_session_value, session_user
from app.accounts.throttle import LoginThrottle
from app.errors import Forbidden
from tests.accounts_helpers import db_fixture, fast_hashing_fixture  # noqa: F401

SECRET = "k3Jx9-Qv0Lr2ZpW8yT6mN4bC1dF7hG5s"
PW = "correct horse battery"
DAY = 86400.0


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sign_in_gives_a_session_and_its_csrf_token(db):
    ann = users.add_user(db, "Ann", "annotator", PW)
    signed = login.sign_in(db, LoginThrottle(), SECRET, "ann", PW, address="192.0.2.1")
    assert signed.user is ann
    assert session_user(db, SECRET, signed.session_value, DAY) is ann
    assert csrf_ok(SECRET, signed.session_value, signed.csrf_token)
    assert login.summary(ann) == {"username": "Ann", "role": "annotator"}


def test_one_message_for_unknown_name_and_wrong_password(db):
    users.add_user(db, "ann", "viewer", PW)
    messages = []
    for name, password in (("ann", "not the password"), ("nobody", PW)):
        with pytest.raises(login.NotAuthenticated) as caught:
            login.sign_in(db, LoginThrottle(), SECRET, name, password)
        messages.append((caught.value.status_code, caught.value.detail))
    assert messages == [(401, "wrong username or password")] * 2


def test_throttle_refuses_before_checking_the_password(db, monkeypatch):
    users.add_user(db, "ann", "viewer", PW)
    clock = Clock()
    throttle = LoginThrottle(max_per_user=3, window_seconds=900, clock=clock)
    for _ in range(3):
        with pytest.raises(login.NotAuthenticated):
            login.sign_in(db, throttle, SECRET, "ann", "not the password", address="192.0.2.1")
    checked = []
    monkeypatch.setattr(login, "authenticate", lambda *a, **k: checked.append(1))
    with pytest.raises(login.TooManyAttempts) as caught:
        login.sign_in(db, throttle, SECRET, "ann", PW, address="192.0.2.5")
    assert (caught.value.status_code, caught.value.retry_after) == (429, 900)
    assert "try again in 900 s" in caught.value.detail and checked == []
    monkeypatch.undo()
    clock.now = 901
    assert login.sign_in(db, throttle, SECRET, "ann", PW).user.username == "ann"
    assert throttle.retry_after("ann") is None  # success forgave the name


def test_request_user_bearer_then_cookie(db):
    ann = users.add_user(db, "ann", "viewer", PW)
    bob = users.add_user(db, "bob", "reviewer", PW)
    plaintext, _ = tokens.create_token(db, bob, "script")
    cookie = make_session_value(SECRET, ann)
    assert login.request_user(db, SECRET, cookie=cookie, max_age=DAY) is ann
    assert login.request_user(db, SECRET, authorization=f"Bearer {plaintext}", max_age=DAY) is bob
    assert login.request_user(db, SECRET, authorization=f"bearer  {plaintext} ", cookie=cookie, max_age=DAY) is bob
    # a bad token is not rescued by a cookie, and other schemes are not tokens
    assert login.request_user(db, SECRET, authorization="Bearer mv_wrong", cookie=cookie, max_age=DAY) is None
    assert login.request_user(db, SECRET, authorization=f"Basic {plaintext}", max_age=DAY) is None
    assert login.request_user(db, SECRET, max_age=DAY) is None


def test_require_role(db):
    ann = users.add_user(db, "ann", "annotator", PW)
    assert login.require_role(ann, "viewer") is ann
    assert login.require_role(ann, "annotator") is ann
    with pytest.raises(Forbidden, match="needs the reviewer role; ann is annotator"):
        login.require_role(ann, "reviewer")
    with pytest.raises(login.NotAuthenticated) as caught:
        login.require_role(None, "viewer")
    assert caught.value.status_code == 401


def test_sign_out_is_audited(db):
    ann = users.add_user(db, "ann", "viewer", PW)
    login.sign_out(db, ann, address="192.0.2.3")
    login.sign_out(db, None)
    events = audit.query(db, action="auth.logout")["events"]
    assert [(e["actor"], e["address"]) for e in events] == [("ann", "192.0.2.3")]
