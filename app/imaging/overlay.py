"""Vector annotations drawn onto an RGB image with OpenCV (anti-aliased, sub-pixel positions).

Shapes are given in the item's native pixel coordinates; `scale` maps them onto a resized image.
Axes are 2 px saturated strokes and boxes 1 px, with no halo, so they never hide the lesion they
measure; only text gets a dark outline to stay readable on bright bone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

Color = tuple[int, int, int]

LONG_AXIS: Color = (255, 70, 70)  # red
SHORT_AXIS: Color = (60, 200, 255)  # light blue
BOX: Color = (90, 235, 90)  # green
TEXT: Color = (255, 240, 80)  # yellow
HALO: Color = (0, 0, 0)
_SHIFT = 4  # fixed-point bits for sub-pixel drawing
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Line:
    p0: tuple[float, float]
    p1: tuple[float, float]
    color: Color


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float
    color: Color


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    color: Color = TEXT


Shape = Line | Box | Label


def recist_shapes(geometry: dict, number: int | None = None) -> list[Shape]:
    """RECIST geometry (API.md) → box, long axis, short axis and the lesion number."""
    shapes: list[Shape] = []
    bbox = geometry.get("bbox")
    if bbox:
        x1, y1, x2, y2 = (float(v) for v in bbox)
        shapes.append(Box(x1, y1, x2, y2, BOX))
    for key, color in (("long", LONG_AXIS), ("short", SHORT_AXIS)):
        pts = geometry.get(key)
        if pts and len(pts) == 2:
            shapes.append(Line(tuple(pts[0]), tuple(pts[1]), color))
    if number is not None and bbox:
        shapes.append(Label(float(bbox[0]), float(bbox[1]) - 4, str(number)))
    return shapes


def _fx(v: float, scale: float) -> int:
    return int(round(v * scale * _ONE))


def draw_shapes(rgb: np.ndarray, shapes: Iterable[Shape], scale: float = 1.0) -> np.ndarray:
    """Draw in place on an HxWx3 uint8 image and return it."""
    import cv2  # here, not at module level: commands that never draw skip its ~0.1 s import
    short_side = min(rgb.shape[:2])
    thick = 1 if short_side < 300 else 2
    for shape in shapes:
        if isinstance(shape, Line):
            a = (_fx(shape.p0[0], scale), _fx(shape.p0[1], scale))
            b = (_fx(shape.p1[0], scale), _fx(shape.p1[1], scale))
            cv2.line(rgb, a, b, shape.color, thick, cv2.LINE_AA, _SHIFT)
        elif isinstance(shape, Box):
            a = (_fx(shape.x1, scale), _fx(shape.y1, scale))
            b = (_fx(shape.x2, scale), _fx(shape.y2, scale))
            cv2.rectangle(rgb, a, b, shape.color, 1, cv2.LINE_AA, _SHIFT)
        elif isinstance(shape, Label):
            _draw_text(rgb, shape, scale, short_side)
    return rgb


def _draw_text(rgb: np.ndarray, label: Label, scale: float, short_side: int) -> None:
    import cv2  # here, not at module level: commands that never draw skip its ~0.1 s import
    font_scale = 0.45 if short_side < 300 else 0.6
    org = (int(round(label.x * scale)), max(12, int(round(label.y * scale))))
    # the outline is the same 1-px text at the 8 neighbouring offsets: a thick stroke spaces glyphs
    # differently from the thin text drawn on top and garbles long labels
    for dx, dy in ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)):
        cv2.putText(rgb, label.text, (org[0] + dx, org[1] + dy), cv2.FONT_HERSHEY_SIMPLEX, font_scale, HALO, 1,
                    cv2.LINE_AA)
    cv2.putText(rgb, label.text, org, cv2.FONT_HERSHEY_SIMPLEX, font_scale, label.color, 1, cv2.LINE_AA)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    import cv2  # here, not at module level: commands that never draw skip its ~0.1 s import
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)


def shapes_bounds(shapes: Sequence[Shape]) -> tuple[float, float, float, float] | None:
    """Bounding box of all line/box shapes (for tests and cropping)."""
    xs: list[float] = []
    ys: list[float] = []
    for s in shapes:
        if isinstance(s, Line):
            xs += [s.p0[0], s.p1[0]]
            ys += [s.p0[1], s.p1[1]]
        elif isinstance(s, Box):
            xs += [s.x1, s.x2]
            ys += [s.y1, s.y2]
    if not xs:
        return None
    return min(xs), min(ys), max(xs), max(ys)


MASK_DEFAULT: Color = (255, 200, 0)  # amber: visible on grey CT and on pink/purple H&E alike


def resize_labels(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of a label image (labels must never be interpolated)."""
    import cv2  # here, not at module level: commands that never draw skip its ~0.1 s import
    if mask.shape[1] == width and mask.shape[0] == height:
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)


def blend_mask(rgb: np.ndarray, mask: np.ndarray, palette: dict[int, Color] | None, opacity: float,
               mode: str = "fill") -> np.ndarray:
    """Colour each labelled region in place: alpha-blended fill, or a 1-2 px contour of full colour."""
    import cv2  # here, not at module level: commands that never draw skip its ~0.1 s import
    labels = [int(v) for v in np.unique(mask) if v != 0]
    for label in labels:
        colour = np.array((palette or {}).get(label, MASK_DEFAULT), np.float32)
        region = mask == label
        if mode == "contour":
            region8 = region.astype(np.uint8)
            edge = region8 - cv2.erode(region8, np.ones((3, 3), np.uint8))
            rgb[edge.astype(bool)] = colour.astype(np.uint8)
        else:
            px = rgb[region].astype(np.float32)
            rgb[region] = (px * (1.0 - opacity) + colour * opacity + 0.5).astype(np.uint8)
    return rgb
