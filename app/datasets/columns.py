"""Items given as columns instead of one `ItemRecord` each, for the ingest driver's hot path (unit: ingest).

Why: PCam's 327,680 patches are uniform — same kind, size, file per split, no annotation or tag rows — and the
ingest driver spent more of its time building and taking apart one record per patch than SQLite spent storing
them (bench/pcam.py). An adapter whose items are like that hands `LazyItems.add_columns` an `ItemColumns`: one
list per varying field (made with numpy / C-level `map`, no Python loop per item) and one value for the
constant ones; the driver slices it into batches and binds the lists as rows with a single `zip`. A re-ingest
still compares every key's fingerprint; a changed item becomes an ordinary `ItemRecord` (rare) on the usual path.
Facets must be column facets (split, label) and there are no annotations: that is what makes a column block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.datasets.base import ItemRecord
from app.db.bulk import Rows

# ItemRecord fields a block may carry, per item (a list) or for all items (one value). `meta` is JSON text.
FIELDS = ("key", "kind", "location", "fingerprint", "split", "label", "width", "height", "depth", "location_index",
          "meta", "series")


@dataclass
class ItemColumns:
    """`count` items: `values[f]` is a list of one value per item, `constants[f]` one value for every item; each
    field of FIELDS is in exactly one of them (`key` and `fingerprint` always vary)."""

    count: int
    values: dict[str, list[Any]]
    constants: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [f for f in FIELDS if f not in self.values and f not in self.constants]
        if missing or any(len(v) != self.count for v in self.values.values()):
            raise ValueError(f"ItemColumns: fields {missing} missing, or a column's length is not {self.count}")

    @property
    def keys(self) -> list[str]:
        return self.values["key"]

    def column(self, name: str) -> list[Any]:
        """One value per item, whether the field varies or not."""
        found = self.values.get(name)
        return found if found is not None else [self.constants[name]] * self.count

    def slice(self, start: int, stop: int) -> ItemColumns:
        return ItemColumns(max(0, min(stop, self.count) - start), {f: v[start:stop] for f, v in self.values.items()},
                           self.constants)

    def take(self, positions: Sequence[int]) -> ItemColumns:
        return ItemColumns(len(positions), {f: [v[i] for i in positions] for f, v in self.values.items()},
                           self.constants)

    def record(self, i: int) -> ItemRecord:
        """Item `i` as an ordinary record (a changed item on re-ingest; tests)."""
        get = {f: (v[i] if (v := self.values.get(f)) is not None else self.constants[f]) for f in FIELDS}
        split, label = get["split"], get["label"]
        facets = {name: [value] for name, value in (("split", split), ("label", label)) if value is not None}
        meta = orjson.loads(get.pop("meta"))
        return ItemRecord(meta=meta, facets=facets, **get)

    def records(self) -> Iterator[ItemRecord]:
        for i in range(self.count):
            yield self.record(i)


def batches(columns: ItemColumns, size: int) -> Iterator[ItemColumns]:
    for start in range(0, columns.count, size):
        yield columns.slice(start, start + size)


def sort_out(block: ItemColumns, existing: Mapping[str, tuple[int, str]], seen: set[str]
             ) -> tuple[ItemColumns, list[tuple[int, ItemRecord]], int]:
    """A re-ingest's block split into (new items, changed ones as (item id, record), how many are unchanged)."""
    keys, fps = block.keys, block.values["fingerprint"]
    seen.update(keys)
    olds = list(map(existing.get, keys))
    new = [i for i, old in enumerate(olds) if old is None]
    changed = [(old[0], block.record(i)) for i, (old, fp) in enumerate(zip(olds, fps, strict=True))
               if old is not None and old[1] != fp]
    return block.take(new) if len(new) < block.count else block, changed, block.count - len(new) - len(changed)


def item_rows(block: ItemColumns, order: Sequence[str], fixed: Mapping[str, Any],
              series_ids: Callable[[str], int | None], strings_inline: bool
              ) -> tuple[tuple[str, ...], list[tuple], dict[str, Any]]:
    """(varying columns, rows, constant columns) for `insert_rows` into `items`, in the table's column `order`:
    `fixed` gives the table columns no block field fills (dataset id, timestamps, review state…); the block's
    `series` external ids become `series_id` through `series_ids`. Only NULL, integers and (when
    `strings_inline`: SQLite) strings become literals, as in `Rows.of`; other constants are bound per row."""
    varying: list[str] = []
    lists: list[list[Any]] = []
    constants: dict[str, Any] = {}
    for column in order:
        name = "series" if column == "series_id" else column
        if column in fixed:
            constants[column] = fixed[column]
        elif name in block.values:
            varying.append(column)
            values = block.values[name]
            lists.append(list(map(series_ids, values)) if name == "series" else values)
        elif name in block.constants:
            value = block.constants[name]
            constants[column] = series_ids(value) if name == "series" and value is not None else value
        else:
            constants[column] = None
    for column in [c for c, v in constants.items()
                   if not (v is None or type(v) is int or (strings_inline and type(v) is str))]:
        varying.append(column)
        lists.append([constants.pop(column)] * block.count)
    return tuple(varying), list(zip(*lists, strict=True)), constants


ITEM_COLUMNS = ("dataset_id", "key", "kind", "split", "label", "sex", "age", "width", "height", "depth", "spacing",
                "window", "location", "location_index", "meta", "fingerprint", "patient_id", "study_id", "series_id",
                "created_at", "content_version", "review_status")


def record_rows(dataset_id: int, records: list[ItemRecord], links: tuple[dict[str, int], ...], now: str,
                strings_inline: bool) -> Rows:
    """The `items` rows of records (the ingest driver's other path), in ITEM_COLUMNS order, built one column at a
    time (a comprehension each; JSON serialised as app.db.session.json_dumps does) rather than one 22-value tuple
    per record through a function call and a transpose to find the constant columns (issue 13: DeepLesion's
    writer)."""
    patients, studies, series = links
    n = len(records)

    def json_or_none(values: Iterable[Any]) -> list[str | None]:
        return [None if v is None else orjson.dumps(v).decode() for v in values]

    lists: list[list[Any]] = [
        [dataset_id] * n, [r.key for r in records], [r.kind for r in records], [r.split for r in records],
        [r.label for r in records], [r.sex for r in records], [r.age for r in records],
        [r.width for r in records], [r.height for r in records], [r.depth for r in records],
        json_or_none(r.spacing for r in records), json_or_none(r.window for r in records),
        [r.location for r in records], [r.location_index for r in records],
        [orjson.dumps(r.meta).decode() for r in records], [r.fingerprint for r in records],
        [patients.get(v) if (v := r.patient) else None for r in records],
        [studies.get(v) if (v := r.study) else None for r in records],
        [series.get(v) if (v := r.series) else None for r in records],
        [now] * n, [1] * n, ["unreviewed"] * n,
    ]
    return Rows.of_columns(ITEM_COLUMNS, lists, strings_inline)


__all__ = ["FIELDS", "ITEM_COLUMNS", "ItemColumns", "batches", "item_rows", "record_rows", "sort_out"]
