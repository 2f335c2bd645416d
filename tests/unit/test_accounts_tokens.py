"""API tokens: shown once, stored as a hash, refused when revoked or when the user is disabled."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app import audit
from app.accounts import tokens, users
from app.db.models import ApiToken
from app.errors import InvalidInput, NotFound
from tests.accounts_helpers import db_fixture, fast_hashing_fixture  # noqa: F401

PW = "correct horse battery"


def test_create_and_use(db):
    ann = users.add_user(db, "ann", "reviewer", PW)
    plaintext, row = tokens.create_token(db, ann, "nightly export")
    assert re.fullmatch(r"mv_[A-Za-z0-9_-]{43}", plaintext)
    assert row.token_hash == tokens.hash_token(plaintext) and plaintext not in row.token_hash
    assert (row.prefix, row.name, row.user_id) == (plaintext[:8], "nightly export", ann.id)
    assert tokens.token_user(db, plaintext) is ann
    other, _ = tokens.create_token(db, ann, "")
    assert other != plaintext and tokens.token_user(db, other) is ann
    assert [t.name for t in tokens.list_tokens(db, ann)] == ["token", "nightly export"]
    event = audit.query(db, action="token.create")["events"][-1]
    assert event["after"] == {"user": "ann", "name": "nightly export", "prefix": plaintext[:8]}
    assert event["actor"] == "ann"


@pytest.mark.parametrize("sent", ["", "mv_", "mv_nope", "Bearer x", "x" * 500, "mv_" + "A" * 43])
def test_unknown_tokens(db, sent):
    users.add_user(db, "ann", "viewer", PW)
    assert tokens.token_user(db, sent) is None


def test_revoked_and_disabled_are_refused(db):
    users.add_user(db, "root", "admin", PW)
    ann = users.add_user(db, "ann", "viewer", PW)
    first, row = tokens.create_token(db, ann, "a")
    second, _ = tokens.create_token(db, ann, "b")
    tokens.revoke_token(db, row.id, actor="cli:test")
    tokens.revoke_token(db, row.id)  # idempotent: one event
    assert tokens.token_user(db, first) is None
    assert tokens.token_user(db, second) is ann
    users.disable(db, "ann")
    assert tokens.token_user(db, second) is None
    users.enable(db, "ann")
    assert tokens.token_user(db, second) is ann
    revokes = audit.query(db, action="token.revoke")["events"]
    assert len(revokes) == 1 and revokes[0]["target_id"] == str(row.id) and revokes[0]["actor"] == "cli:test"
    with pytest.raises(NotFound, match="no API token with id 999"):
        tokens.revoke_token(db, 999)


def test_no_token_for_a_disabled_user_and_names_are_bounded(db):
    users.add_user(db, "root", "admin", PW)
    ann = users.add_user(db, "ann", "viewer", PW)
    with pytest.raises(InvalidInput, match="token name must be at most 100"):
        tokens.create_token(db, ann, "x" * 101)
    users.disable(db, "ann")
    with pytest.raises(InvalidInput, match="is disabled"):
        tokens.create_token(db, ann, "x")


def test_last_used_is_written_at_most_once_a_minute(db, monkeypatch):
    ann = users.add_user(db, "ann", "viewer", PW)
    plaintext, row = tokens.create_token(db, ann, "a")
    start = row.created_at
    now = [start]
    monkeypatch.setattr(tokens, "utcnow", lambda: now[0])
    commits = []
    real_commit = db.commit
    monkeypatch.setattr(db, "commit", lambda: (commits.append(1), real_commit()))
    tokens.token_user(db, plaintext)
    assert row.last_used_at == start and len(commits) == 1
    now[0] = start + timedelta(seconds=59)
    tokens.token_user(db, plaintext)
    assert row.last_used_at == start and len(commits) == 1  # no write within the minute
    now[0] = start + timedelta(seconds=61)
    tokens.token_user(db, plaintext)
    assert row.last_used_at == start + timedelta(seconds=61) and len(commits) == 2
    db.expire_all()
    assert db.get(ApiToken, row.id).last_used_at == start + timedelta(seconds=61)
