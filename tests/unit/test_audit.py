"""The audit trail: recorded with the change (same transaction), queried newest first with filters and a
cursor, and never holding a secret."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import audit
from app.accounts import login, tokens, users
from app.accounts.throttle import LoginThrottle
from app.db.base import utcnow
from app.db.models import AuditEvent
from app.errors import InvalidInput
from tests.accounts_helpers import db_fixture, fast_hashing_fixture  # noqa: F401

PW = "correct horse battery"
SECRET = "k3Jx9-Qv0Lr2ZpW8yT6mN4bC1dF7hG5s"


def test_record_and_query_filters(db):
    ann = users.add_user(db, "ann", "admin", PW)
    audit.record(db, ann, "model.add", "model", 7, after={"name": "unet"}, address="192.0.2.1")
    audit.record(db, "worker", "job.start", "job", 3)
    audit.record(db, ann, "job.cancel", "job", 3, before={"status": "running"}, after={"status": "cancelled"})
    db.commit()
    everything = audit.query(db)["events"]
    assert [e["action"] for e in everything] == ["job.cancel", "job.start", "model.add", "user.add"]
    assert everything[0] == {
        "id": everything[0]["id"], "at": everything[0]["at"], "actor": "ann", "actor_id": ann.id,
        "action": "job.cancel", "target_type": "job", "target_id": "3", "before": {"status": "running"},
        "after": {"status": "cancelled"}, "address": None}
    assert [e["action"] for e in audit.query(db, actor="ann")["events"]] == ["job.cancel", "model.add"]
    assert [e["action"] for e in audit.query(db, action="job.*")["events"]] == ["job.cancel", "job.start"]
    assert [e["action"] for e in audit.query(db, target_type="job", target_id=3)["events"]] == [
        "job.cancel", "job.start"]
    assert audit.query(db, action="job")["events"] == []
    now = utcnow()
    assert len(audit.query(db, since=now - timedelta(minutes=5))["events"]) == 4
    assert audit.query(db, since=now + timedelta(minutes=5))["events"] == []
    assert audit.query(db, until=now - timedelta(minutes=5))["events"] == []
    assert audit.query(db, action="model.add")["events"][0]["address"] == "192.0.2.1"


def test_cursor_pages_through_everything_once(db):
    for n in range(7):
        audit.record(db, "cli:test", "job.start", "job", n)
    db.commit()
    seen, cursor = [], None
    while True:
        page = audit.query(db, limit=3, cursor=cursor)
        seen += [e["target_id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(n) for n in reversed(range(7))]
    with pytest.raises(InvalidInput, match="limit must be between 1 and 1000"):
        audit.query(db, limit=0)
    with pytest.raises(InvalidInput, match="cursor must be"):
        audit.query(db, cursor="1; DROP TABLE users")


def test_an_event_is_rolled_back_with_its_change(db):
    audit.record(db, "cli:test", "model.add", "model", 1)
    db.rollback()
    assert audit.query(db)["events"] == []


def test_actor_name_outlives_a_rename(db):
    ann = users.add_user(db, "ann", "viewer", PW)
    ann.username, ann.username_key = "anna", "anna"
    db.commit()
    event = audit.query(db, action="user.add")["events"][0]
    assert event["target_id"] == "ann"
    users.authenticate(db, "anna", PW)
    assert audit.query(db, action="auth.login")["events"][0]["actor"] == "anna"


def test_secret_keys_and_values_are_redacted(db):
    argon = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
    token = "mv_" + "Q" * 43
    audit.record(db, None, "user.add", "user", "x",
                 before={"password": "hunter22", "nested": {"token_hash": "ab", "ok": [token, "fine"]}},
                 after={"Authorization": "Bearer x", "note": argon, "role": "viewer", "token": "t"})
    db.commit()
    event = audit.query(db)["events"][0]
    assert event["before"] == {"password": "[redacted]", "nested": {"token_hash": "[redacted]",
                                                                    "ok": ["[redacted]", "fine"]}}
    assert event["after"] == {"Authorization": "[redacted]", "note": "[redacted]", "role": "viewer",
                              "token": "[redacted]"}
    assert event["actor"] == "anonymous"


def test_no_secret_in_any_event_of_a_full_session(db):
    """Every service action, then a scan of every audit row for the passwords and tokens used."""
    throttle = LoginThrottle(max_per_user=50)
    secrets_used = [PW, "second password!", "wrong password!"]
    root = users.add_user(db, "root", "admin", PW, address="192.0.2.9")
    users.add_user(db, "ann", "viewer", PW, actor=root)
    users.set_role(db, "ann", "annotator", actor=root)
    users.set_password(db, "ann", "second password!", actor=root)
    with pytest.raises(login.NotAuthenticated):
        login.sign_in(db, throttle, SECRET, "ann", "wrong password!")
    signed = login.sign_in(db, throttle, SECRET, "ann", "second password!", address="192.0.2.2")
    plaintext, row = tokens.create_token(db, signed.user, "ci")
    secrets_used += [plaintext, signed.session_value, signed.csrf_token]
    tokens.token_user(db, plaintext)
    tokens.revoke_token(db, row.id, actor=root)
    users.disable(db, "ann", actor=root)
    users.enable(db, "ann", actor=root)
    login.sign_out(db, signed.user)
    rows = db.scalars(select(AuditEvent)).all()
    assert {r.action for r in rows} >= {"user.add", "user.role", "user.password", "auth.login_failed", "auth.login",
                                        "token.create", "token.revoke", "user.disable", "user.enable", "auth.logout"}
    dumped = json.dumps([[r.actor_name, r.action, r.target_id, r.before, r.after, r.address] for r in rows])
    for secret in secrets_used:
        assert secret not in dumped
    assert "$argon2" not in dumped
