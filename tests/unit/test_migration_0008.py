"""0008 (queue sign-off, adjudication source) upgrades a database holding a queue with items and verdicts, and its
downgrade gives back 0007 with the same rows."""

from __future__ import annotations

from sqlalchemy import inspect, text

from app.db.migrate import downgrade, upgrade
from app.db.session import make_engine

NEW = {"signed_off_by", "signed_off_at", "source_queue_id"}


def _rows(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {"queues": [tuple(r) for r in conn.execute(text(
                    "SELECT id, name, readers_per_item, created_by FROM review_queues ORDER BY id"))],
                "reviews": [tuple(r) for r in conn.execute(text(
                    "SELECT id, item_id, queue_id, verdict FROM reviews ORDER BY id"))]}


def test_0008_keeps_queues_and_verdicts(database_url):
    downgrade(database_url, "0007")
    engine = make_engine(database_url)
    assert not NEW & {c["name"] for c in inspect(engine).get_columns("review_queues")}
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO datasets (id, name, kind, root, status, item_count, annotation_count, options, facet_counts, "
            "ingest_generation, problems, created_at, updated_at) VALUES (1, 'lesions', 'deeplesion', '/d', 'ready', "
            "1, 0, '{}', '{}', 1, '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO items (id, dataset_id, key, kind, split, label, location, meta, fingerprint, "
            "content_version, review_status, created_at) VALUES (1, 1, 'k1', 'key_slice', 'train', '3', "
            "'x.png', '{}', '', 1, 'accepted', CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO review_queues (id, name, dataset_id, filters, sort, readers_per_item, assignees, created_by, "
            "created_at) VALUES (1, 'q', 1, '{}', NULL, 2, '[]', 'rita', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO review_queue_items (queue_id, position, item_id) VALUES (1, 0, 1)"))
        conn.execute(text("INSERT INTO reviews (item_id, queue_id, reviewer, verdict, created_at) "
                          "VALUES (1, 1, 'rita', 'accept', CURRENT_TIMESTAMP)"))
    before = _rows(engine)
    upgrade(database_url, "0008")
    assert {c["name"] for c in inspect(engine).get_columns("review_queues")} >= NEW
    assert _rows(engine) == before
    with engine.begin() as conn:
        conn.execute(text("UPDATE review_queues SET signed_off_by = 'rita', signed_off_at = CURRENT_TIMESTAMP"))
        signed = conn.execute(text("SELECT signed_off_by, source_queue_id FROM review_queues")).one()
    assert tuple(signed) == ("rita", None)
    downgrade(database_url, "0007")
    assert not NEW & {c["name"] for c in inspect(engine).get_columns("review_queues")}
    assert _rows(engine) == before
    upgrade(database_url)
    assert _rows(engine) == before
    engine.dispose()
