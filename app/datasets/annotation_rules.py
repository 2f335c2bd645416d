"""What a user-made annotation must look like, per annotation kind (API.md, "Annotation geometry"): the default of
`DatasetAdapter.validate_annotation` and `DatasetAdapter.derived_meta`. Pure functions on plain data; each
problem is one sentence naming the field (`geometry.long[1]`, `label`) so a 400 tells the user what to fix.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AnnotationTarget:
    """What the rules know of the item an annotation is drawn on: its size in pixels (depth 1 for 2-D) and its
    voxel spacing in mm (x, y, z), when known."""

    width: int | None
    height: int | None
    depth: int | None = 1
    spacing: tuple[float, ...] | None = None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _point(value: Any, at: str, dims: int = 2) -> tuple[list[float] | None, list[str]]:
    if not isinstance(value, list | tuple) or len(value) != dims or not all(_number(v) for v in value):
        return None, [f"{at}: expected a point of {dims} numbers, got {value!r}"[:200]]
    return [float(v) for v in value], []


def _inside(p: Sequence[float], target: AnnotationTarget, at: str) -> list[str]:
    sizes = [target.width, target.height, target.depth][:len(p)]
    for value, size, axis in zip(p, sizes, "xyz", strict=False):
        if size is not None and not -0.5 <= value <= size - 0.5:
            shape = "×".join(str(s) for s in sizes)
            return [f"{at}: {axis}={value:g} lies outside the {shape} image"]
    return []


def _segment(value: Any, at: str, target: AnnotationTarget) -> tuple[list[list[float]] | None, list[str]]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None, [f"{at}: expected 2 points [[x, y], [x, y]]"]
    points, problems = [], []
    for n, raw in enumerate(value):
        p, bad = _point(raw, f"{at}[{n}]")
        problems += bad or _inside(p or [], target, f"{at}[{n}]")
        if p is not None:
            points.append(p)
    if not problems and points[0] == points[1]:
        problems.append(f"{at}: the two points are the same")
    return (points if not problems else None), problems


def _cross(o: Sequence[float], a: Sequence[float], b: Sequence[float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def segments_intersect(p: Sequence[Sequence[float]], q: Sequence[Sequence[float]]) -> bool:
    """Whether segment p crosses (or touches) segment q."""
    d1, d2 = _cross(q[0], q[1], p[0]), _cross(q[0], q[1], p[1])
    d3, d4 = _cross(p[0], p[1], q[0]), _cross(p[0], p[1], q[1])
    if ((d1 > 0) != (d2 > 0) or d1 == 0 or d2 == 0) and ((d3 > 0) != (d4 > 0) or d3 == 0 or d4 == 0):
        def on(a: Sequence[float], b: Sequence[float], c: Sequence[float], d: float) -> bool:
            return d != 0 or (min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1]))
        return all((on(q[0], q[1], p[0], d1), on(q[0], q[1], p[1], d2), on(p[0], p[1], q[0], d3),
                    on(p[0], p[1], q[1], d4))) or (d1 * d2 < 0 and d3 * d4 < 0)
    return False


def _length(segment: Sequence[Sequence[float]]) -> float:
    return math.dist(segment[0], segment[1])


def _bbox(value: Any, at: str, target: AnnotationTarget) -> list[str]:
    if not isinstance(value, list | tuple) or len(value) != 4 or not all(_number(v) for v in value):
        return [f"{at}: expected [x1, y1, x2, y2], got {value!r}"[:200]]
    x1, y1, x2, y2 = (float(v) for v in value)
    if x2 <= x1 or y2 <= y1:
        return [f"{at}: x2 must exceed x1 and y2 exceed y1 (got {[x1, y1, x2, y2]})"]
    return _inside([x1, y1], target, at) or _inside([x2, y2], target, at)


def check(kind: str, geometry: Mapping[str, Any], label: str | None, target: AnnotationTarget,
          classes: Collection[str]) -> list[str]:
    """Problems of one annotation of `kind` (empty: valid). `classes` are the label values the dataset knows
    (empty: any label)."""
    problems: list[str] = []
    if label is not None and classes and label not in classes:
        shown = ", ".join(sorted(classes)[:30])
        problems.append(f"label: {label!r} is not one of this dataset's classes ({shown})")
    if kind == "bbox":
        problems += _bbox(geometry.get("bbox"), "geometry.bbox", target)
    elif kind == "recist":
        long, bad_long = _segment(geometry.get("long"), "geometry.long", target)
        short, bad_short = _segment(geometry.get("short"), "geometry.short", target)
        problems += bad_long + bad_short
        if long and short:
            if _length(short) > _length(long):
                problems.append("geometry.short: the short axis is longer than the long axis")
            if not segments_intersect(long, short):
                problems.append("geometry.short: the short axis does not cross the long axis")
        if "bbox" in geometry:
            problems += _bbox(geometry["bbox"], "geometry.bbox", target)
    elif kind == "line":
        problems += _segment(geometry.get("line"), "geometry.line", target)[1]
    elif kind == "centroid":
        p, bad = _point(geometry.get("point"), "geometry.point", 3)
        problems += bad or _inside(p or [], target, "geometry.point")
    elif kind == "label":
        if label is None:
            problems.append("label: a label annotation needs a label")
        if geometry:
            problems.append("geometry: a label annotation has no geometry ({})")
    return problems


def derived_meta(kind: str, geometry: Mapping[str, Any], meta: Mapping[str, Any],
                 target: AnnotationTarget) -> dict[str, Any]:
    """`meta` with the measurements recomputed from the geometry: RECIST `long_px`/`short_px`, and `long_mm`/
    `short_mm` from the in-plane pixel spacing (dropped when the spacing is unknown, never left stale); a
    `line`'s `length_px` / `length_mm` the same way. A RECIST's `bbox` is the box around its four points."""
    out = dict(meta)
    spacing = target.spacing[0] if target.spacing else None
    if kind == "line":
        out["length_px"] = round(_length(geometry["line"]), 2)
        if spacing:
            out["length_mm"] = round(out["length_px"] * spacing, 2)
        else:
            out.pop("length_mm", None)
    if kind == "recist":
        long, short = geometry["long"], geometry["short"]
        out["long_px"], out["short_px"] = round(_length(long), 2), round(_length(short), 2)
        for axis in ("long", "short"):
            if spacing:
                out[f"{axis}_mm"] = round(out[f"{axis}_px"] * spacing, 2)
            else:
                out.pop(f"{axis}_mm", None)
    return out


def recist_box(geometry: Mapping[str, Any]) -> list[float]:
    points = [*geometry["long"], *geometry["short"]]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [min(xs), min(ys), max(xs), max(ys)]
