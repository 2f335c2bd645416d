"""Measurements an export recomputes from an edited RECIST, the way DeepLesion's DL_info.csv defines them:
`Lesion_diameters_Pixel_` are the lengths of the long and short axes (pixels), `Bounding_boxes` the extent of the
four end points widened by 5 pixels on each side (true of every row of the published file: checked against the
real sample in the tests)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

BOX_MARGIN = 5.0


def recist_points(geometry: Mapping[str, Any]) -> list[list[float]]:
    """long[0], long[1], short[0], short[1] as [x, y]."""
    return [[float(v) for v in p] for p in (*geometry["long"], *geometry["short"])]


def diameters(geometry: Mapping[str, Any]) -> tuple[float, float]:
    long_a, long_b, short_a, short_b = recist_points(geometry)
    return math.dist(long_a, long_b), math.dist(short_a, short_b)


def recist_box(geometry: Mapping[str, Any], margin: float = BOX_MARGIN) -> list[float]:
    points = recist_points(geometry)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin]


def quad(geometry: Mapping[str, Any]) -> list[float]:
    """The quadrilateral through the four end points in drawing order (long a, short a, long b, short b), flat
    [x, y, …]: the RECIST's outline as a COCO polygon."""
    long_a, long_b, short_a, short_b = recist_points(geometry)
    return [v for p in (long_a, short_a, long_b, short_b) for v in p]


def polygon_area(flat: Sequence[float]) -> float:
    xs, ys = flat[0::2], flat[1::2]
    n = len(xs)
    return abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))) / 2
