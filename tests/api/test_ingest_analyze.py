"""On PostgreSQL an ingest leaves fresh planner statistics behind (ANALYZE): without them the planner took the
new tables for empty and bench/load.py saw a filtered, sorted grid page run for over a minute."""

from __future__ import annotations

import pytest
from sqlalchemy import text


def test_ingest_analyzes_what_it_wrote_on_postgresql(engine, ingested):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite plans without statistics well enough; ANALYZE is a PostgreSQL step here")
    with engine.connect() as conn:
        analyzed = dict(conn.execute(text(
            "SELECT relname, last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL FROM pg_stat_user_tables "
            "WHERE relname IN ('items', 'item_facets', 'annotations')")).all())
    assert analyzed == {"items": True, "item_facets": True, "annotations": True}
