"""The writer's column-at-a-time item rows (app.datasets.columns.record_rows, Rows.of_columns) hold exactly what
one tuple per record held, and fold the same constant columns as Rows.of."""

from __future__ import annotations

import random

import pytest

from app.datasets.base import ItemRecord
from app.datasets.columns import ITEM_COLUMNS, record_rows
from app.db.bulk import Rows
from app.db.session import json_dumps

LINKS = ({"p1": 11, "p2": 12}, {"s1": 21}, {"x1": 31, "x2": 32})
NOW = "2026-12-04 17:00:00.000000"


def _expected(dataset_id: int, rec: ItemRecord) -> tuple:
    """One record's row as the writer built it before (one tuple per record)."""
    patients, studies, series = LINKS
    return (dataset_id, rec.key, rec.kind, rec.split, rec.label, rec.sex, rec.age, rec.width, rec.height, rec.depth,
            None if rec.spacing is None else json_dumps(rec.spacing),
            None if rec.window is None else json_dumps(rec.window), rec.location, rec.location_index,
            json_dumps(rec.meta), rec.fingerprint, patients.get(rec.patient) if rec.patient else None,
            studies.get(rec.study) if rec.study else None, series.get(rec.series) if rec.series else None,
            NOW, 1, "unreviewed")


def _full(rows: Rows) -> list[tuple]:
    """Rows with their constant columns put back, in ITEM_COLUMNS order."""
    out = []
    for row in rows.rows:
        values = dict(zip(rows.columns, row, strict=True)) | rows.constants
        out.append(tuple(values[c] for c in ITEM_COLUMNS))
    return out


def _records() -> list[ItemRecord]:
    return [
        ItemRecord(key="a", kind="key_slice", location="s/1.png", fingerprint="f1", split="train", label="3",
                   sex="F", age=41.5, width=512, height=512, depth=None, spacing=[0.7, 0.7, 5.0],
                   window=[-175.0, 275.0], location_index=7, meta={"é": [1, 2.5, None]}, patient="p1", study="s1",
                   series="x1"),
        ItemRecord(key="b", kind="key_slice", location="s/2.png", fingerprint="f2", split=None, label=None,
                   sex=None, age=None, width=512, height=512, spacing=None, window=None, meta={}, patient="p2",
                   study=None, series="x2"),
        ItemRecord(key="c'q", kind="key_slice", location="s/3.png", fingerprint="f3", split="test", sex="M",
                   width=256, height=512, patient="unknown", series=None),
    ]


@pytest.mark.parametrize("strings_inline", [True, False])
def test_record_rows_hold_what_one_tuple_per_record_held(strings_inline: bool) -> None:
    records = _records()
    rows = record_rows(9, records, LINKS, NOW, strings_inline)
    assert _full(rows) == [_expected(9, r) for r in records]
    assert rows.constants["dataset_id"] == 9 and rows.constants["depth"] is None
    assert ("kind" in rows.constants) is strings_inline  # strings are literals on SQLite only
    one = record_rows(9, records[:1], LINKS, NOW, strings_inline)
    assert one.constants == {} and one.rows == [_expected(9, records[0])]


@pytest.mark.parametrize("strings_inline", [True, False])
def test_of_columns_folds_the_columns_rows_of_folds(strings_inline: bool) -> None:
    rng = random.Random(13)
    pools = [[1], [1, 2], [None], [None, 3], ["x"], ["x", "y"], [1.5], [True, 1], [None, "x"]]
    for _ in range(200):
        n = rng.randint(0, 6)
        chosen = [rng.choice(pools) for _ in range(5)]
        tuples = [tuple(rng.choice(p) for p in chosen) for _ in range(n)]
        columns = ("a", "b", "c", "d", "e")
        lists = [[t[i] for t in tuples] for i in range(5)]
        by_rows, by_columns = Rows.of(columns, tuples, strings_inline), Rows.of_columns(columns, lists,
                                                                                      strings_inline)
        if n:
            assert (by_columns.columns, by_columns.rows, by_columns.constants) == \
                (by_rows.columns, by_rows.rows, by_rows.constants), tuples
