"""0006 (users, api_tokens, audit_events) upgrades a database that already holds datasets and items, and its
downgrade gives back 0005 with the same data."""

from __future__ import annotations

from sqlalchemy import inspect, text

from app.db.migrate import downgrade, upgrade
from app.db.session import make_engine

ACCOUNT_TABLES = {"users", "api_tokens", "audit_events"}


def _snapshot(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            "datasets": [tuple(r) for r in conn.execute(text("SELECT id, name, kind, item_count FROM datasets"))],
            "items": [tuple(r) for r in conn.execute(text("SELECT id, dataset_id, key, split, label FROM items "
                                                          "ORDER BY id"))],
            "annotations": [tuple(r) for r in conn.execute(text("SELECT id, item_id, kind, label FROM annotations"))],
        }


def test_0006_keeps_datasets_and_items(database_url):
    downgrade(database_url, "0005")
    engine = make_engine(database_url)
    assert not ACCOUNT_TABLES & set(inspect(engine).get_table_names())
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO datasets (id, name, kind, root, status, item_count, annotation_count, options, facet_counts, "
            "ingest_generation, problems, created_at, updated_at) VALUES (1, 'lesions', 'deeplesion', '/d', 'ready', "
            "2, 1, '{}', '{}', 1, '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        for n, split in ((1, "train"), (2, "test")):
            conn.execute(text(
                "INSERT INTO items (id, dataset_id, key, kind, split, label, location, meta, fingerprint, "
                "content_version, review_status, created_at) VALUES (:id, 1, :key, 'key_slice', :split, '3', "
                "'x.png', '{}', '', 1, 'unreviewed', CURRENT_TIMESTAMP)"), {"id": n, "key": f"k{n}", "split": split})
        conn.execute(text(
            "INSERT INTO annotations (id, item_id, dataset_id, kind, label, geometry, meta, source, version, "
            "created_at) VALUES (1, 1, 1, 'bbox', '3', '{\"box\": [1, 2, 3, 4]}', '{}', 'dataset', 1, "
            "CURRENT_TIMESTAMP)"))
    before = _snapshot(engine)
    assert len(before["items"]) == 2

    upgrade(database_url, "0006")
    assert set(inspect(engine).get_table_names()) >= ACCOUNT_TABLES
    assert _snapshot(engine) == before
    with engine.begin() as conn:  # the new tables take rows, and the role CHECK holds
        conn.execute(text(
            "INSERT INTO users (username, username_key, role, password_hash, disabled, session_epoch, created_at, "
            "updated_at, password_changed_at) VALUES ('Ann', 'ann', 'viewer', 'h', false, 0, CURRENT_TIMESTAMP, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))

    downgrade(database_url, "0005")
    assert not ACCOUNT_TABLES & set(inspect(engine).get_table_names())
    assert _snapshot(engine) == before
    upgrade(database_url)
    engine.dispose()


def test_role_and_name_checks_hold_in_the_database(database_url):
    import pytest
    from sqlalchemy.exc import IntegrityError

    engine = make_engine(database_url)
    insert = text(
        "INSERT INTO users (username, username_key, role, password_hash, disabled, session_epoch, created_at, "
        "updated_at, password_changed_at) VALUES (:u, :k, :r, 'h', false, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP)")
    for values in ({"u": "bob", "k": "bob", "r": "owner"},     # role outside the four
                   {"u": "Bob", "k": "Bob", "r": "viewer"}):   # key not the lower-cased name
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, values)
    with engine.begin() as conn:
        conn.execute(insert, {"u": "Bob", "k": "bob", "r": "viewer"})
    with pytest.raises(IntegrityError), engine.begin() as conn:  # "BOB" is "Bob"
        conn.execute(insert, {"u": "BOB", "k": "bob", "r": "admin"})
    engine.dispose()
