"""The user service: add, list, set role, disable/enable, password, authenticate — each audited."""

from __future__ import annotations

import pytest

from app import audit
from app.accounts import users
from app.db.models import User
from app.errors import Conflict, InvalidInput, NotFound
from tests.accounts_helpers import db_fixture, fast_hashing_fixture  # noqa: F401

PW = "correct horse battery"


def actions(db) -> list[str]:
    return [e["action"] for e in reversed(audit.query(db, limit=1000)["events"])]


def test_add_and_list(db):
    ann = users.add_user(db, "Ann", "annotator", PW, actor="cli:test")
    users.add_user(db, "bob", "VIEWER", PW)
    assert (ann.username, ann.username_key, ann.role, ann.disabled) == ("Ann", "ann", "annotator", False)
    assert ann.password_hash.startswith("$argon2id$")
    assert [u.username for u in users.list_users(db)] == ["Ann", "bob"]
    assert users.get_user(db, "ANN").id == ann.id
    event = audit.query(db, action="user.add", actor="cli:test")["events"][0]
    assert (event["target_type"], event["target_id"], event["after"]) == ("user", "Ann",
                                                                         {"username": "Ann", "role": "annotator"})


def test_names_are_case_insensitive_unique(db):
    users.add_user(db, "Ann", "viewer", PW)
    with pytest.raises(Conflict, match="username 'ANN' is already taken"):
        users.add_user(db, "ANN", "viewer", PW)
    assert len(users.list_users(db)) == 1


@pytest.mark.parametrize(("name", "role", "password", "message"), [
    ("", "viewer", PW, "username must be 1-64 characters"),
    ("has space", "viewer", PW, "username must be"),
    ("-dash", "viewer", PW, "username must be"),
    ("é", "viewer", PW, "username must be"),
    ("x" * 65, "viewer", PW, "username must be"),
    ("ann", "root", PW, "role must be one of"),
    ("ann", "viewer", "short", "password must be at least 8"),
    ("ann", "viewer", "        ", "password must not be empty"),
])
def test_bad_input_names_the_field(db, name, role, password, message):
    with pytest.raises(InvalidInput, match=message):
        users.add_user(db, name, role, password)
    assert users.list_users(db) == []


def test_unknown_user(db):
    for call in (lambda: users.set_role(db, "ghost", "admin"), lambda: users.disable(db, "ghost"),
                 lambda: users.set_password(db, "ghost", PW)):
        with pytest.raises(NotFound, match="no user named 'ghost'"):
            call()


def test_set_role_disable_enable_are_audited(db):
    users.add_user(db, "root", "admin", PW)
    users.add_user(db, "ann", "viewer", PW)
    users.set_role(db, "ann", "reviewer", actor="cli:test")
    users.set_role(db, "ann", "reviewer")  # no change, no event
    users.disable(db, "ann")
    users.disable(db, "ann")
    users.enable(db, "ann")
    assert actions(db) == ["user.add", "user.add", "user.role", "user.disable", "user.enable"]
    role = audit.query(db, action="user.role")["events"][0]
    assert (role["before"], role["after"], role["actor"]) == ({"role": "viewer"}, {"role": "reviewer"}, "cli:test")
    assert users.get_user(db, "ann").role == "reviewer"


def test_the_last_admin_stays(db):
    users.add_user(db, "root", "admin", PW)
    with pytest.raises(Conflict, match="last enabled admin"):
        users.set_role(db, "root", "viewer")
    with pytest.raises(Conflict, match="last enabled admin"):
        users.disable(db, "root")
    users.add_user(db, "second", "admin", PW)
    users.disable(db, "root")
    assert users.get_user(db, "root").disabled


def test_authenticate(db):
    ann = users.add_user(db, "Ann", "viewer", PW)
    assert users.authenticate(db, "ann", PW, address="192.0.2.1") is ann
    assert users.authenticate(db, "ann", PW + "x") is None
    assert users.authenticate(db, "nobody", PW) is None
    assert users.authenticate(db, "bad name!", PW) is None
    assert users.authenticate(db, "ann", "") is None
    users.add_user(db, "root", "admin", PW)
    users.disable(db, "ann")
    assert users.authenticate(db, "ann", PW) is None  # right password, disabled user
    failed = audit.query(db, action="auth.login_failed")["events"]
    assert [e["after"]["reason"] for e in reversed(failed)] == [
        "wrong password", "unknown user", "unknown user", "wrong password", "disabled"]
    assert all(e["actor"] == "anonymous" for e in failed)
    login = audit.query(db, action="auth.login")["events"][0]
    assert (login["actor"], login["address"]) == ("Ann", "192.0.2.1")


def test_unknown_name_spends_a_dummy_verify(db, monkeypatch):
    calls = []
    monkeypatch.setattr(users, "dummy_verify", lambda: calls.append(1))
    assert users.authenticate(db, "nobody", PW) is None
    assert calls == [1]


def test_login_rehashes_an_old_hash(db):
    from pwdlib.hashers.argon2 import Argon2Hasher

    ann = users.add_user(db, "ann", "viewer", PW)
    ann.password_hash = Argon2Hasher(time_cost=2, memory_cost=2048, parallelism=1).hash(PW)
    db.commit()
    old = ann.password_hash
    assert users.authenticate(db, "ann", PW) is ann
    db.expire_all()
    assert db.get(User, ann.id).password_hash not in (old, "")
    assert users.authenticate(db, "ann", PW) is not None


def test_password_change_moves_the_session_epoch(db):
    ann = users.add_user(db, "ann", "viewer", PW)
    before = (ann.session_epoch, ann.password_changed_at)
    users.set_password(db, "ann", "another good one")
    assert ann.session_epoch == before[0] + 1 and ann.password_changed_at >= before[1]
    assert users.authenticate(db, "ann", PW) is None
    assert users.authenticate(db, "ann", "another good one") is ann
    users.revoke_sessions(db, "ann")
    assert ann.session_epoch == before[0] + 2
    assert "user.password" in actions(db) and "user.sessions_revoked" in actions(db)
