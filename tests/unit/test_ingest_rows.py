"""The ingest's row compaction (constant columns as SQL literals) and lazily built scan items."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine

from app.datasets.base import ItemRecord, LazyItems
from app.db.bulk import Rows, insert_rows

COLUMNS = ("a", "b", "c", "d", "e")


def _table(engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (a INTEGER, b TEXT, c TEXT, d REAL, e INTEGER)")


@pytest.mark.parametrize("strings_inline", [True, False])
def test_constant_columns_become_literals_and_values_round_trip(tmp_path, strings_inline):
    rows = [(1, "it's", f"k{i}", 0.5 * i, None) for i in range(5)]
    compact = Rows.of(COLUMNS, rows, strings_inline)
    assert compact.constants == ({"a": 1, "b": "it's", "e": None} if strings_inline else {"a": 1, "e": None})
    assert len(compact.rows[0]) == len(compact.columns) == 5 - len(compact.constants)
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    _table(engine)
    with engine.begin() as conn:
        insert_rows(conn, "t", compact.columns, compact.rows, compact.constants)
    with sqlite3.connect(tmp_path / "rows.db") as db:
        stored = db.execute("SELECT a, b, c, d, e FROM t ORDER BY c").fetchall()
    assert stored == rows


def test_a_single_row_or_varying_columns_are_left_alone():
    one = Rows.of(COLUMNS, [(1, "x", "y", 1.0, None)], True)
    assert one.constants == {} and one.columns == COLUMNS
    varying = Rows.of(("a", "b"), [(1, "x"), (2, "y")], True)
    assert varying.constants == {} and varying.rows == [(1, "x"), (2, "y")]
    # a float column is never folded (its literal would change the stored type), nor a mixed one
    floats = Rows.of(("a", "b"), [(1.5, "x"), (1.5, "y")], True)
    assert floats.constants == {}


def test_lazy_items_count_without_building_and_iterate_again():
    built: list[int] = []

    def part(start: int, n: int):
        def make():
            for i in range(start, start + n):
                built.append(i)
                yield ItemRecord(key=str(i), kind="patch", location="x", fingerprint=str(i))
        return make

    items = LazyItems()
    items.add(3, part(0, 3))
    items.add(2, part(3, 2))
    assert len(items) == 5 and built == []
    assert [r.key for r in items] == ["0", "1", "2", "3", "4"]
    assert [r.key for r in items] == ["0", "1", "2", "3", "4"]  # a second pass rebuilds the records
    assert items[4].key == "4"
