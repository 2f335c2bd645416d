"""In-memory orders of a dataset's numeric sorts (DeepLesion `age` and `lesion_size`, DICOM `age`, BIS5k
`mask_area`), so a sorted grid page is an array look-up instead of a sort of every item per page.

Measured with bench/load.py on the 32,120-item DeepLesion set (SQLite): a first page sorted by `lesion_size`
(a number in the item's JSON meta, no SQL index) cost ~95 ms of CPU and by `-age` ~25 ms, against ~5 ms by id;
a quarter of the grid requests of that mix were sorted, which made sorted pages most of the grid's CPU.
These values change only with a re-ingest (the adapter writes them), so each order is built once per dataset
version (`app.catalog.counts.version_of`, the facet index's key) from the very SQL expression the SQL path sorts
by, and pages taken from it are the SQL path's pages (tests/api compare them). Metric sorts (`metric:…`) change
with every prediction run and stay in SQL.

Memory: two arrays (value, id) per numeric sort used, ~16 bytes per item with a value, plus the original
values (as the SQL path returns them, for `sort_value` and the cursor).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.catalog import sorting
from app.catalog.counts import version_of
from app.db.models import Dataset, Item


@dataclass(frozen=True)
class NumericOrder:
    """The items with a value by (value, id) ascending; those without one by id."""

    version: tuple
    values: np.ndarray  # float64, ascending
    ids: np.ndarray  # int64, ascending within equal values
    originals: list[Any]  # the values as SQL returned them (int or float), same order
    missing: np.ndarray  # ids without a value, ascending

    def segment(self, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(values, ids, positions into `originals`) of the valued items whose id is in `keep` (all: None)."""
        if keep is None:
            return self.values, self.ids, list(range(self.ids.size))
        mask = np.isin(self.ids, keep, assume_unique=True)
        where = np.flatnonzero(mask)
        return self.values[where], self.ids[where], where.tolist()

    def page(self, keep: np.ndarray | None, after: tuple[Any, int] | None, limit: int, descending: bool
             ) -> list[tuple[int, Any]]:
        """Up to `limit` (id, value) rows after the cursor's (value, id), as sorting.sql_page orders them."""
        values, ids, where = self.segment(keep)
        if after is None:
            start = 0 if not descending else ids.size
        else:
            value, last = float(after[0]), int(after[1])
            lo = int(np.searchsorted(values, value, "left"))
            hi = int(np.searchsorted(values, value, "right"))
            start = lo + int(np.searchsorted(ids[lo:hi], last, "left" if descending else "right"))
        picked = range(start, min(start + limit, ids.size)) if not descending else range(start - 1,
                                                                                         max(start - limit, 0) - 1, -1)
        return [(int(ids[k]), self.originals[where[k]]) for k in picked]

    def row_at(self, keep: np.ndarray | None, n: int, descending: bool) -> tuple[int, Any] | None:
        """The (id, value) at position n of the valued segment, or None past its end."""
        _, ids, where = self.segment(keep)
        if n >= ids.size:
            return None
        k = ids.size - 1 - n if descending else n
        return int(ids[k]), self.originals[where[k]]

    def size(self, keep: np.ndarray | None) -> int:
        return self.segment(keep)[1].size


class NumericOrders:
    """The numeric orders of one app's datasets (kept on `app.state.catalog` beside the facet indexes)."""

    def __init__(self) -> None:
        self._orders: dict[tuple[int, str], NumericOrder | None] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, ds: Dataset, sort: sorting.Sort) -> NumericOrder | None:
        """The order of a numeric sort of a ready dataset (built on first use per version); None for other sorts,
        a dataset still indexing, or values that are not all numbers (the SQL path then orders them)."""
        if ds.status != "ready" or sort.metric or sort.is_column or sort.name in ("id", "key"):
            return None
        version = version_of(ds)
        key = (ds.id, sort.name)
        order = self._orders.get(key)
        if key in self._orders and (order is None or order.version == version):
            return order
        with self._lock:  # one build per version: requests arriving meanwhile wait for it, then use it
            if key in self._orders and ((order := self._orders[key]) is None or order.version == version):
                return order
            order = build_order(session, ds, sort, version)
            self._orders[key] = order
        return order

    def forget(self) -> None:
        self._orders.clear()


def build_order(session: Session, ds: Dataset, sort: sorting.Sort, version: tuple) -> NumericOrder | None:
    expr = sorting.sort_expression(sort, ds.kind)
    rows = session.execute(select(Item.id, expr).where(Item.dataset_id == ds.id)).all()
    valued = [(v, i) for i, v in rows if v is not None]
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v, _ in valued):
        return None
    valued.sort(key=lambda r: (r[0], r[1]))
    missing = np.array(sorted(i for i, v in rows if v is None), np.int64)
    return NumericOrder(version, np.array([float(v) for v, _ in valued], np.float64),
                        np.array([i for _, i in valued], np.int64), [v for v, _ in valued], missing)


def order_segments(order: NumericOrder, keep: Callable[[], np.ndarray | None]
                   ) -> list[tuple[str, Any, None, Any]]:
    """keyset_page's segments from an order: "v" (valued, by value) then "n" (missing, by id); `keep` gives the
    filtered ids (None: all)."""
    def missing() -> np.ndarray:
        wanted = keep()
        return order.missing if wanted is None else order.missing[np.isin(order.missing, wanted)]

    return [("v", None, None, (order, keep)), ("n", None, None, missing)]
