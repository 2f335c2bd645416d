"""0009 (facet_changes, the partial index of current user annotations) upgrades a database that already holds
items, annotations and verdicts, keeps them, and computes the derived review facets from them (no backfill);
its downgrade gives back the previous revision with the same data."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from app.datasets.facets import derived_values
from app.db.migrate import alembic_config, downgrade, upgrade
from app.db.session import make_engine


def _snapshot(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT id, item_id FROM {t} ORDER BY id"))]
                for t in ("annotations", "reviews")}


def test_0009_from_its_previous_revision_with_data(database_url):
    previous = ScriptDirectory.from_config(alembic_config(database_url)).get_revision("0009").down_revision
    assert isinstance(previous, str)
    downgrade(database_url, previous)
    engine = make_engine(database_url)
    assert "facet_changes" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO datasets (id, name, kind, root, status, item_count, annotation_count, options, facet_counts, "
            "ingest_generation, problems, created_at, updated_at) VALUES (1, 'lesions', 'deeplesion', '/d', 'ready', "
            "2, 2, '{}', '{}', 1, '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        for n in (1, 2):
            conn.execute(text(
                "INSERT INTO items (id, dataset_id, key, kind, split, label, location, meta, fingerprint, "
                "content_version, review_status, created_at) VALUES (:id, 1, :key, 'key_slice', 'train', '3', "
                "'x.png', '{}', '', 1, 'accepted', CURRENT_TIMESTAMP)"), {"id": n, "key": f"k{n}"})
        conn.execute(text(
            "INSERT INTO annotations (id, item_id, dataset_id, kind, label, geometry, meta, source, version, "
            "created_at) VALUES (1, 1, 1, 'bbox', '3', '{}', '{}', 'dataset', 1, CURRENT_TIMESTAMP), "
            "(2, 1, 1, 'bbox', '3', '{}', '{}', 'user:ann', 2, CURRENT_TIMESTAMP)"))
        conn.execute(text("UPDATE annotations SET superseded_by = 2, lineage_id = 1 WHERE id = 1"))
        conn.execute(text("INSERT INTO reviews (item_id, reviewer, verdict, created_at) VALUES "
                          "(1, 'rex', 'accept', CURRENT_TIMESTAMP), (2, 'rex', 'accept', CURRENT_TIMESTAMP), "
                          "(2, 'rita', 'accept', CURRENT_TIMESTAMP)"))
    before = _snapshot(engine)

    upgrade(database_url, "0009")
    assert "facet_changes" in inspect(engine).get_table_names()
    assert "ix_annotations_user_current" in {i["name"] for i in inspect(engine).get_indexes("annotations")}
    assert _snapshot(engine) == before
    with engine.begin() as conn:
        assert derived_values(conn, 1) == {"reviewer": {1: ("rex",), 2: ("rex", "rita")}, "edited": {1: ("yes",)}}
        conn.execute(text("INSERT INTO facet_changes (dataset_id, item_id, created_at) "
                          "VALUES (1, 1, CURRENT_TIMESTAMP)"))

    downgrade(database_url, previous)
    assert "facet_changes" not in inspect(engine).get_table_names()
    assert "ix_annotations_user_current" not in {i["name"] for i in inspect(engine).get_indexes("annotations")}
    assert _snapshot(engine) == before
    upgrade(database_url)
    assert _snapshot(engine) == before
    engine.dispose()
