"""The schema changes only through Alembic: upgrade from empty, downgrade, models == migrations,
and every upgrade step keeps the data written at the previous head."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from app.db.base import Base
from app.db.migrate import alembic_config, downgrade, upgrade
from app.db.session import make_engine


def test_upgrade_from_empty_matches_models(database_url):
    engine = make_engine(database_url)
    downgrade(database_url, "base")  # the fixture's database is already migrated: start from empty
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(database_url)
    tables = set(inspect(engine).get_table_names())
    assert {"datasets", "items", "annotations", "item_facets", "patients", "studies", "series", "jobs"} <= tables
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    engine.dispose()


def test_each_step_keeps_existing_data(database_url):
    """Upgrade revision by revision with a dataset row written at each previous head."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    revisions = list(reversed(list(script.walk_revisions())))
    downgrade(database_url, "base")
    engine = make_engine(database_url)
    for n, rev in enumerate(revisions):
        upgrade(database_url, rev.revision)
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO datasets (name, kind, root, status, item_count, annotation_count, options, "
                "facet_counts, ingest_generation, problems, created_at, updated_at) VALUES "
                "(:n, 'deeplesion', :r, 'ready', 1, 0, '{}', '{}', 1, '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {"n": f"ds{n}", "r": f"/data/{n}"})
        with engine.connect() as conn:
            names = {r[0] for r in conn.execute(text("SELECT name FROM datasets"))}
        assert names == {f"ds{i}" for i in range(n + 1)}
    engine.dispose()


def test_0002_moves_column_facets_onto_items(database_url):
    """0002 drops facet rows that duplicate item columns, keeps the others, and downgrade restores them."""
    downgrade(database_url, "base")
    upgrade(database_url, "0001")
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO datasets (id, name, kind, root, status, item_count, annotation_count, options, facet_counts, "
            "ingest_generation, problems, created_at, updated_at) VALUES (1, 'd', 'deeplesion', '/d', 'ready', 1, 0, "
            "'{}', '{}', 1, '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO items (id, dataset_id, key, kind, split, label, sex, location, meta, fingerprint, "
            "content_version, review_status, created_at) VALUES (1, 1, 'k', 'key_slice', 'train', '4', 'F', 'x', "
            "'{}', '', 1, 'unreviewed', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO item_facets (item_id, field, value, dataset_id) VALUES "
                          "(1, 'split', 'train', 1), (1, 'sex', 'F', 1), (1, 'lesion_type', '4', 1)"))
    upgrade(database_url, "0002")

    def facets() -> set[tuple[str, str]]:
        with engine.connect() as conn:
            return {tuple(r) for r in conn.execute(text("SELECT field, value FROM item_facets"))}

    assert facets() == {("lesion_type", "4")}
    indexes = {i["name"] for i in inspect(engine).get_indexes("items")}
    assert {"ix_items_split", "ix_items_label", "ix_items_sex"} <= indexes
    downgrade(database_url, "0001")
    assert facets() == {("lesion_type", "4"), ("split", "train"), ("label", "4"), ("sex", "F")}
    engine.dispose()
