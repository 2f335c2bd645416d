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
