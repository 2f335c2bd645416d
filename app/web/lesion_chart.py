"""The patient page's lesion-size chart: each track's long diameter (mm) over the patient's studies, as the
geometry of one small server-drawn SVG (no script): a polyline and dots per track, x = study in order (its
age when known), y = mm from 0 to the largest measurement."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

WIDTH, HEIGHT = 520, 190
LEFT, RIGHT, TOP, BOTTOM = 44, 70, 12, 34
COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")


def _nice_step(top: float) -> float:
    raw = top / 4
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def track_charts(studies: Sequence[Mapping[str, Any]], tracks: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """{width, height, frame, x_ticks, y_ticks, lines: [{number, colour, points, dots}]}, or None when no track
    has a measurement."""
    values = [m["long_mm"] for t in tracks for m in t["by_study"].values() if m.get("long_mm") is not None]
    if not values or not studies:
        return None
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = _nice_step(max(max(values), 1.0))
    top = step * math.ceil(max(values) / step)
    n = len(studies)

    def x_of(i: int) -> float:
        return round(LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2), 1)

    def y_of(mm: float) -> float:
        return round(TOP + plot_h * (1 - mm / top), 1)

    position = {s["study"]: i for i, s in enumerate(studies)}
    lines = []
    for k, track in enumerate(tracks):
        dots = [{"x": x_of(position[study]), "y": y_of(m["long_mm"]), "study": study, "mm": m["long_mm"]}
                for study, m in sorted(track["by_study"].items(), key=lambda sm: position.get(sm[0], 0))
                if m.get("long_mm") is not None and study in position]
        if dots:
            lines.append({"number": track["number"], "colour": COLOURS[k % len(COLOURS)],
                          "points": " ".join(f"{d['x']},{d['y']}" for d in dots), "dots": dots,
                          "end": dots[-1]})
    ticks = [round(v * step, 6) for v in range(int(round(top / step)) + 1)]
    return {"width": WIDTH, "height": HEIGHT, "frame": {"x": LEFT, "y": TOP, "w": plot_w, "h": plot_h},
            "x_ticks": [{"x": x_of(i), "label": f"#{s['order'] if s.get('order') is not None else i + 1}"
                         + (f" · {s['age']:g} y" if s.get("age") is not None else "")}
                        for i, s in enumerate(studies)],
            "y_ticks": [{"y": y_of(v), "label": f"{v:g}"} for v in ticks], "lines": lines}
