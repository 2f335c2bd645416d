"""0007 (versioned annotations, comments, review queues, verdicts) upgrades a database that already holds
datasets, items, annotations and users, and its downgrade gives back 0006 with the same data."""

from __future__ import annotations

from sqlalchemy import inspect, text

from app.db.migrate import downgrade, upgrade
from app.db.session import make_engine

REVIEW_TABLES = {"comments", "review_queues", "review_queue_items", "reviews"}
NEW_COLUMNS = {"lineage_id", "retired_at", "retired_by"}


def _snapshot(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            "items": [tuple(r) for r in conn.execute(text("SELECT id, dataset_id, key, review_status FROM items "
                                                          "ORDER BY id"))],
            "annotations": [tuple(r) for r in conn.execute(text(
                "SELECT id, item_id, kind, label, source, version, superseded_by FROM annotations ORDER BY id"))],
            "users": [tuple(r) for r in conn.execute(text("SELECT id, username, role FROM users ORDER BY id"))],
        }


def test_0007_keeps_annotations_and_users(database_url):
    downgrade(database_url, "0006")
    engine = make_engine(database_url)
    assert not REVIEW_TABLES & set(inspect(engine).get_table_names())
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO datasets (id, name, kind, root, status, item_count, annotation_count, options, facet_counts, "
            "ingest_generation, problems, created_at, updated_at) VALUES (1, 'lesions', 'deeplesion', '/d', 'ready', "
            "1, 2, '{}', '{}', 1, '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO items (id, dataset_id, key, kind, split, label, location, meta, fingerprint, "
            "content_version, review_status, created_at) VALUES (1, 1, 'k1', 'key_slice', 'train', '3', "
            "'x.png', '{}', '', 1, 'unreviewed', CURRENT_TIMESTAMP)"))
        for n in (1, 2):
            conn.execute(text(
                "INSERT INTO annotations (id, item_id, dataset_id, kind, label, geometry, meta, source, version, "
                "created_at) VALUES (:id, 1, 1, 'bbox', '3', '{\"box\": [1, 2, 3, 4]}', '{}', 'dataset', :v, "
                "CURRENT_TIMESTAMP)"), {"id": n, "v": n})
        conn.execute(text("UPDATE annotations SET superseded_by = 2 WHERE id = 1"))
        conn.execute(text(
            "INSERT INTO users (id, username, username_key, role, password_hash, disabled, session_epoch, "
            "created_at, updated_at, password_changed_at) VALUES (7, 'Ann', 'ann', 'reviewer', 'h', false, 0, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    before = _snapshot(engine)

    upgrade(database_url, "0007")
    assert set(inspect(engine).get_table_names()) >= REVIEW_TABLES
    assert {c["name"] for c in inspect(engine).get_columns("annotations")} >= NEW_COLUMNS
    assert _snapshot(engine) == before
    with engine.begin() as conn:  # the new tables take rows that point at the old ones
        conn.execute(text("INSERT INTO comments (item_id, annotation_id, author_id, author, text, created_at) "
                          "VALUES (1, 2, 7, 'Ann', 'too small', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO reviews (item_id, annotation_id, reviewer_id, reviewer, verdict, created_at) "
                          "VALUES (1, 2, 7, 'Ann', 'accept', CURRENT_TIMESTAMP)"))
        conn.execute(text("UPDATE annotations SET retired_at = CURRENT_TIMESTAMP, retired_by = 'Ann' WHERE id = 2"))

    downgrade(database_url, "0006")
    assert not REVIEW_TABLES & set(inspect(engine).get_table_names())
    assert not NEW_COLUMNS & {c["name"] for c in inspect(engine).get_columns("annotations")}
    assert _snapshot(engine) == before
    upgrade(database_url)
    assert _snapshot(engine) == before
    engine.dispose()
