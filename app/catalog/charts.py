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

from app.catalog.counts import FacetIndex, cache_slot, facet_index, version_of
from app.catalog.sorting import value_order
from app.datasets.registry import get_adapter
from app.db.models import Annotation, Dataset, Item

MAX_BARS = 40  # per-slide bars: the largest slides
_CACHE: dict[tuple[str, int], tuple[tuple, list[dict[str, Any]]]] = {}
_LOCK = threading.Lock()


def dataset_charts(session: Session, ds: Dataset) -> list[dict[str, Any]]:
    version, slot = version_of(ds), cache_slot(session, ds)
    with _LOCK:
        hit = _CACHE.get(slot)
    if hit and hit[0] == version and ds.status == "ready":
        return hit[1]
    index = facet_index(session, ds)
    charts = [c for c in _build(session, ds, index) if c]
    if ds.status == "ready":
        with _LOCK:
            _CACHE[slot] = (version, charts)
    return charts


def _build(session: Session, ds: Dataset, index: FacetIndex | None) -> list[dict[str, Any] | None]:
    adapter = get_adapter(ds.kind)
    names = adapter.facet_labels
    out: list[dict[str, Any] | None] = []
    if ds.kind == "deeplesion":
        out += _deeplesion(session, ds, names.get("lesion_type", {}), names.get("sex", {}))
    if index is None:
        return out
    fields = index.fields
    if "split" in fields and "label" in fields:
        out.append(stacked(index.crosstab("split", "label"), "Label balance per split", "split",
                           names.get("label", {}), order=("train", "valid", "val", "test")))
    if ds.kind == "pcam" and "slide" in fields:
        out.append(stacked(index.crosstab("slide", "label"), "Label balance per slide (largest slides)", "slide",
                           names.get("label", {}), limit=MAX_BARS))
    if ds.kind == "bis5k":
        out.append(_mask_areas(session, ds))
    if ds.kind == "verse" and "vertebra" in fields:
        out.append(stacked(index.crosstab("vertebra", "split"), "Vertebrae with ground truth, per split",
                           "vertebra", {}, order=getattr(adapter, "facet_order", {}).get("vertebra", ())))
    if ds.kind in ("dicom",):
        for name in fields[:3]:
            out.append(stacked({v: {"items": n} for v, n in ds.facet_counts.get(name, {}).items()},
                               f"Items per {name.replace('_', ' ')}", name, {}))
    return out


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


def histogram(values: Sequence[float], edges: Sequence[float], title: str, unit: str,
              groups: Sequence[str] | None = None) -> dict[str, Any] | None:
    if not len(values):
        return None
    v = np.asarray(values, float)
    g = np.asarray(groups if groups is not None else [""] * len(v))
    series = [{"name": name or "all", "counts": np.histogram(v[g == name], edges)[0].tolist()}
              for name in value_order(set(g.tolist()), False)]
    return {"kind": "histogram", "title": title, "unit": unit, "edges": [float(e) for e in edges], "series": series,
            "n": int(v.size)}


def _deeplesion(session: Session, ds: Dataset, type_names: Mapping[str, str],
                sex_names: Mapping[str, str]) -> list[dict[str, Any] | None]:
    rows = session.execute(select(Annotation.item_id, Annotation.label, Annotation.meta)
                           .where(Annotation.dataset_id == ds.id, Annotation.kind == "recist",
                                  Annotation.superseded_by.is_(None)).order_by(Annotation.id)).all()
    groups = value_order({label or "" for _, label, _ in rows}, False)
    group_of = {g: n for n, g in enumerate(groups)}
    xs, zs, gs, items, sizes = [], [], [], [], []
    for item_id, label, meta in rows:
        meta = orjson.loads(meta) if isinstance(meta, str | bytes) else meta or {}
        loc = meta.get("normalized_location")
        if loc and len(loc) == 3:
            xs.append(round(float(loc[0]), 4))
            zs.append(round(float(loc[2]), 4))
            gs.append(group_of[label or ""])
            items.append(item_id)
        if meta.get("long_mm"):
            sizes.append(float(meta["long_mm"]))
    scatter = {"kind": "scatter", "title": "Lesion locations (normalised x against z, by lesion type)",
               "x_label": "normalised x (image left → right)", "y_label": "normalised z", "x": xs, "y": zs,
               "group": gs, "item": items, "groups": [type_names.get(g, g or "?") for g in groups],
               "n": len(xs)} if xs else None
    top = max(20.0, float(np.ceil(max(sizes, default=0) / 10) * 10))
    sizes_chart = histogram(sizes, np.arange(0, top + 5, 5), "Lesion size (RECIST long diameter)", "mm")
    people = session.execute(select(Item.age, Item.sex).where(Item.dataset_id == ds.id, Item.age.is_not(None))).all()
    ages = histogram([a for a, _ in people], np.arange(0, 105, 5), "Age at the study, per key slice", "years",
                     [sex_names.get(s, s) if s else "unknown" for _, s in people])
    return [scatter, sizes_chart, ages]


def _mask_areas(session: Session, ds: Dataset) -> dict[str, Any] | None:
    area = Item.meta["mask_area"].as_float()
    rows = session.execute(select(area, Item.split).where(Item.dataset_id == ds.id, area.is_not(None))).all()
    return histogram([100 * a for a, _ in rows], np.arange(0, 105, 5), "Mask area (share of the image)", "%",
                     [s or "none" for _, s in rows])


def forget() -> None:
    with _LOCK:
        _CACHE.clear()
