"""Dataset charts as data (GET /api/datasets/{id}/charts), drawn as SVG/canvas by static/js/charts.js.

Three shapes, all JSON-plain:
- `bars`: stacked bars `{categories: [...], series: [{name, values: [...]}]}` (label balance per split, per
  slide, class balance, vertebra counts);
- `histogram`: `{edges: [...], series: [{name, counts: [...]}]}` (lesion size in mm, age, mask area);
- `scatter`: columnar points `{x: [...], y: [...], group: [...], item: [...], groups: [...]}` (DeepLesion body
  map: DL_info's Normalized_lesion_location, stored in each RECIST annotation's meta, x against z, coloured
  by coarse lesion type; a point opens its key slice).
Counts come from the facet index (no GROUP BY over a million rows); per-item values (sizes, ages, areas,
locations) from one query each. Cached per dataset version, like the index.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.catalog.counts import FacetIndex, FacetIndexes, version_of
from app.catalog.sorting import numeric_expression, value_order
from app.datasets.base import ChartSpec, DatasetAdapter
from app.datasets.facets import COLUMN_FACETS
from app.datasets.registry import get_adapter
from app.db.models import Annotation, Dataset, Item


class ChartCache:
    """Built charts per dataset version, one cache per app (app.state.catalog)."""

    def __init__(self) -> None:
        self._charts: dict[int, tuple[tuple, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def get(self, ds: Dataset) -> list[dict[str, Any]] | None:
        with self._lock:
            hit = self._charts.get(ds.id)
        return hit[1] if hit and hit[0] == version_of(ds) and ds.status == "ready" else None

    def put(self, ds: Dataset, charts: list[dict[str, Any]]) -> None:
        if ds.status == "ready":
            with self._lock:
                self._charts[ds.id] = (version_of(ds), charts)

    def get_cached(self, dataset_id: int) -> list[dict[str, Any]] | None:
        """The charts built for a dataset, if any (whatever its version)."""
        with self._lock:
            hit = self._charts.get(dataset_id)
        return hit[1] if hit else None

    def forget(self) -> None:
        with self._lock:
            self._charts.clear()


def dataset_charts(session: Session, ds: Dataset, indexes: FacetIndexes, cache: ChartCache) -> list[dict[str, Any]]:
    """The charts the dataset's adapter declares (`charts`), built from the facet index and a query each."""
    hit = cache.get(ds)
    if hit is not None:
        return hit
    adapter = get_adapter(ds.kind)
    index = indexes.get(session, ds)
    charts = [c for spec in adapter.charts if (c := build_chart(session, ds, adapter, index, spec))]
    cache.put(ds, charts)
    return charts


def build_chart(session: Session, ds: Dataset, adapter: DatasetAdapter, index: FacetIndex | None,
                spec: ChartSpec) -> dict[str, Any] | None:
    """One declared chart, or None when there is nothing to draw (no values; a crosstab of a facet the index
    lacks, or before the dataset is ready and has an index)."""
    names = adapter.facet_labels
    if spec.kind == "lesion_map":
        return _lesion_map(session, ds, spec, names.get(spec.group or "", {}))
    if spec.kind == "lesion_sizes":
        return _lesion_sizes(session, ds, spec)
    if spec.kind == "histogram":
        return _histogram(session, ds, adapter, spec)
    if spec.kind == "counts":  # the counts stored at the end of an ingest
        return stacked({v: {"items": n} for v, n in ds.facet_counts.get(spec.rows or "", {}).items()},
                       spec.title, spec.rows or "", {})
    if spec.kind == "crosstab" and index is not None and spec.rows in index.fields and spec.cols in index.fields:
        assert spec.rows is not None and spec.cols is not None
        order = spec.order or tuple(adapter.facet_order.get(spec.rows, ()))
        return stacked(index.crosstab(spec.rows, spec.cols), spec.title, spec.rows,
                       names.get(spec.cols, {}) if spec.named_series else {}, order=order, limit=spec.limit)
    return None


def stacked(table: Mapping[str, Mapping[str, int]], title: str, axis: str, series_names: Mapping[str, str], *,
            order: Sequence[str] = (), limit: int | None = None) -> dict[str, Any] | None:
    """Stacked bars from {category: {series value: n}}: categories in `order`, else by value (largest first
    when `limit` cuts the list, saying how many were left out)."""
    table = {c: row for c, row in table.items() if c != "" or any(row.values())}
    if not table:
        return None
    cats = list(table)
    if limit and len(cats) > limit:
        cats = sorted(cats, key=lambda c: -sum(table[c].values()))[:limit]
    elif order:
        rank = {v: i for i, v in enumerate(order)}
        rest = value_order([c for c in cats if c not in rank], False)
        cats = sorted((c for c in cats if c in rank), key=rank.__getitem__) + rest
    else:
        cats = value_order(cats, False)
    series_keys = value_order({s for row in table.values() for s in row}, False)
    return {"kind": "bars", "title": title, "axis": axis or "", "categories": [c or "(none)" for c in cats],
            "series": [{"name": series_names.get(s, s) or "(none)", "key": s,
                        "values": [table[c].get(s, 0) for c in cats]} for s in series_keys],
            "omitted": max(0, len(table) - len(cats))}


def histogram(values: Sequence[float], edges: Sequence[float] | np.ndarray, title: str, unit: str,
              groups: Sequence[str] | None = None) -> dict[str, Any] | None:
    if not len(values):
        return None
    v = np.asarray(values, float)
    g = np.asarray(groups if groups is not None else [""] * len(v))
    series = [{"name": name or "all", "counts": np.histogram(v[g == name], edges)[0].tolist()}
              for name in value_order(set(g.tolist()), False)]
    return {"kind": "histogram", "title": title, "unit": unit, "edges": [float(e) for e in edges], "series": series,
            "n": int(v.size)}


def _recist_rows(session: Session, ds: Dataset) -> list[tuple[int, str | None, dict[str, Any]]]:
    rows = session.execute(select(Annotation.item_id, Annotation.label, Annotation.meta)
                           .where(Annotation.dataset_id == ds.id, Annotation.kind == "recist",
                                  Annotation.is_current()).order_by(Annotation.id)).all()
    return [(item_id, label, orjson.loads(meta) if isinstance(meta, str | bytes) else meta or {})
            for item_id, label, meta in rows]


def _lesion_map(session: Session, ds: Dataset, spec: ChartSpec, type_names: Mapping[str, str]
                ) -> dict[str, Any] | None:
    """DL_info's Normalized_lesion_location (kept in each RECIST annotation's meta), x against z, one colour per
    lesion type; a point opens its key slice."""
    rows = _recist_rows(session, ds)
    groups = value_order({label or "" for _, label, _ in rows}, False)
    group_of = {g: n for n, g in enumerate(groups)}
    xs, zs, gs, items = [], [], [], []
    for item_id, label, meta in rows:
        loc = meta.get("normalized_location")
        if loc and len(loc) == 3:
            xs.append(round(float(loc[0]), 4))
            zs.append(round(float(loc[2]), 4))
            gs.append(group_of[label or ""])
            items.append(item_id)
    if not xs:
        return None
    return {"kind": "scatter", "title": spec.title, "x_label": "normalised x (image left → right)",
            "y_label": "normalised z", "x": xs, "y": zs, "group": gs, "item": items,
            "groups": [type_names.get(g, g or "?") for g in groups], "n": len(xs)}


def _lesion_sizes(session: Session, ds: Dataset, spec: ChartSpec) -> dict[str, Any] | None:
    """RECIST long diameters in 5 mm bins up to the largest lesion (at least 20 mm)."""
    sizes = [float(meta["long_mm"]) for _, _, meta in _recist_rows(session, ds) if meta.get("long_mm")]
    top = max(20.0, float(np.ceil(max(sizes, default=0) / 10) * 10))
    return histogram(sizes, np.arange(0, top + 5, 5), spec.title, spec.unit)


def _histogram(session: Session, ds: Dataset, adapter: DatasetAdapter, spec: ChartSpec) -> dict[str, Any] | None:
    """A declared numeric field (`value`, one of the adapter's numeric sorts) per value of a column facet."""
    assert spec.value is not None and spec.group is not None
    value = numeric_expression(adapter.numeric_sorts[spec.value])
    rows = session.execute(select(value, COLUMN_FACETS[spec.group])
                           .where(Item.dataset_id == ds.id, value.is_not(None))).all()
    names = adapter.facet_labels.get(spec.group, {})
    start, stop, step = spec.bins
    return histogram([spec.scale * v for v, _ in rows], np.arange(start, stop, step), spec.title, spec.unit,
                     [names.get(g, g) if g else spec.missing for _, g in rows])
