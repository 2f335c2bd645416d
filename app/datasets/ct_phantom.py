"""A synthetic CT body phantom for demo data and tests (no database, no HTTP).

Anatomy is defined in mm on one nominal body (z in mm, pelvis ≈ 0 … lung apex ≈ 640) and drawn at any
pixel spacing in the radiological convention: image left = the patient's right, image top = anterior.
Shared by the sample generators of every CT dataset kind.
"""

from __future__ import annotations

import math
from collections import namedtuple

import cv2
import numpy as np

# One filled (or, with thick > 0, outlined) ellipse in body mm: x → image right, y → posterior, angle in
# degrees; draw=False marks a lesion host region that is not painted.
Op = namedtuple("Op", "cx cy ax ay hu angle thick start end draw", defaults=(0.0, 0.0, 0.0, 360.0, True))


def _prof(z: float, z0: float, z1: float, power: float = 0.5) -> float:
    """0 outside [z0, z1], rising to 1 mid-way: an organ's in-plane extent along z (ellipsoid for 0.5)."""
    t = (2 * z - z0 - z1) / (z1 - z0)
    return max(0.0, 1 - t * t) ** power


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# bowel loops: x, y, radius, first z, z length, phase, lumen kind
_LOOPS = [tuple(float(v) for v in row) for row in np.random.default_rng(20180720).uniform(
    [-75, -72, 9, 30, 50, 0, 0], [80, 18, 16, 200, 110, 6.28, 3], size=(13, 7))]
_LOOP_LUMEN = (-900.0, 12.0, 170.0)  # gas, fluid, oral contrast
_RIBS = (-8, 14, 40, 62, 118, 140, 166, 188, 212, 236, 304, 328)  # degrees: 0 image right, 90 posterior


def anatomy(z: float) -> tuple[list[Op], dict[str, Op]]:
    """Drawing list (in order) and named lesion hosts of the phantom body at height z (mm)."""
    ops: list[Op] = []
    hosts: dict[str, Op] = {}

    def add(*args: float, name: str | None = None, **kw: float) -> None:
        op = Op(*args, **kw)
        if op.ax > 0.3 and op.ay > 0.3:
            ops.append(op)
            if name:
                hosts[name] = op

    w, h = 162 + 8 * math.sin(z / 70), 112 + 6 * math.cos(z / 55)
    for pad in (0, 10):  # CT table
        add(0, h - 70, w + 40 + pad, 92 + pad, 250, start=14, end=166, thick=1.6)
    add(0, 0, w, h, -100)  # subcutaneous fat
    add(0, 2, w - 24, h - 16, 45)  # abdominal / chest wall muscle
    add(0, 2, w - 32, h - 24, -90)  # visceral / mediastinal fat
    for side in (-1, 1):
        add(side * (w - 12), 0, 7, 32, -100, draw=False, name=f"flank_{side}")
        add(side * 30, h - 50, 22, 24, 50)  # paraspinal muscles
        if z < 110:
            add(side * 82, h - 55, 36 * _prof(z, -90, 110, 0.3), 28, 50)  # gluteal muscles
        if z < 210:
            add(side * 36, h - 100, 11 + 10 * (1 - z / 210), 14, 50)  # psoas
    for x0, y0, r, z0, length, phase, kind in _LOOPS:  # bowel
        p = _prof(z, z0, z0 + length, 0.3)
        x, y = x0 + 10 * math.sin(z / 35 + phase), y0 + 8 * math.cos(z / 45 + phase)
        add(x, y, r * p, r * p * 0.85, 40, angle=phase * 30)
        add(x, y, (r - 3) * p, (r - 3) * p * 0.85, _LOOP_LUMEN[int(kind)], angle=phase * 30)
    for side, x0, top in ((-1, 95, 250), (1, 100, 290)):  # ascending / descending colon
        p = _prof(z, 90, top, 0.2)
        add(side * x0, 5, 19 * p, 17 * p, 40)
        add(side * x0, 5, 15 * p, 13 * p, -900)
    if z < 85:
        p = _prof(z, -10, 85)
        add(0, -35, 50 * p, 38 * p, 8)  # bladder
        for side in (-1, 1):
            add(side * 60, -5, 20, 28, -90, draw=False, name=f"pelvic_{side}")
    if z < 130:
        for side in (-1, 1):
            p = _prof(z, -40, 130, 0.4)
            add(side * (92 - 0.15 * z), h - 78, 13 * p, 50 * p, 680, angle=side * 25)  # iliac wings
            add(side * (92 - 0.15 * z), h - 78, 9 * p, 45 * p, 220, angle=side * 25)
    lungs = [(side, _prof(z, base, 640, 0.5)) for side, base in ((-1, 300), (1, 318))]
    for side, p in lungs:  # the liver dome and spleen cover the lung bases
        add(side * 78, 46 - 40 * p, 54 * p, 84 * p, -850, angle=side * 6, name=f"lung_{side}")
        for i in range(9):  # pulmonary vessels
            a = i * 0.7 + side + z / 90
            add(side * 78 + 34 * p * math.cos(a) * (0.3 + 0.07 * i), 46 - 40 * p + 60 * p * math.sin(a) * (
                0.3 + 0.07 * i), 2.5 * p, 2.2 * p, 40)
    p = _prof(z, 352, 480)
    add(18, -36, 58 * p, 44 * p, 45, angle=-25)  # heart
    add(22, -36, 45 * p, 33 * p, 140, angle=-25)  # blood pool
    add(0, -22, 24, 50, -90, draw=False, name="mediastinum")
    p = _prof(z, 470, 545)
    add(12, -48, 15 * p, 15 * p, 150)  # ascending aorta / arch
    liver = _prof(z, 195, 380, 0.45)
    add(-62, -6, 68 * liver, 82 * liver, 62, angle=10, name="liver")
    left = _prof(z, 255, 372, 0.5)
    add(-6, -50, 46 * left, 26 * left, 62, angle=-15)  # left lobe
    add(-46, -28, 13 * _prof(z, 215, 265), 17 * _prof(z, 215, 265), 10)  # gallbladder
    p = _prof(z, 230, 340)
    add(88, 30, 26 * p, 48 * p, 50, angle=-35)  # spleen
    p = _prof(z, 240, 345)
    add(45, -40, 42 * p, 32 * p, 20, angle=20)  # stomach
    add(45, -56, 28 * p, 12 * p, -950, angle=20, start=180, end=360)
    add(15, -6, 55 * _prof(z, 215, 268), 11 * _prof(z, 215, 268), 45, angle=-20)  # pancreas
    for side, z0 in ((-1, 118), (1, 134)):  # kidneys: enhancing cortex, renal sinus fat
        p = _prof(z, z0, z0 + 116)
        add(side * 70, h - 88, 30 * p, 42 * p, 160, angle=-side * 20, name=f"kidney_{side}")
        add(side * 56, h - 88, 10 * p, 18 * p, -40, angle=-side * 20)
    add(-0.5, h - 140, 38, 14, -90, draw=False, name="retroperitoneum")
    add(-23, h - 118, 12 * _prof(z, 140, 370, 0.2), 10 * _prof(z, 140, 370, 0.2), 110)  # IVC
    t = _sig((z - 300) / 25)
    add(8 + 16 * t, h - 122 + 14 * t, 11 + 2 * t, 11 + 2 * t, 150)  # aorta
    if z > 230:  # ribs, sloping: their cross-sections move with z
        for i, deg in enumerate(_RIBS):
            if z < 330 and 200 < deg < 340:
                continue
            a = math.radians(deg + 5 * math.sin(z / 22 + i))
            add((w - 28) * math.cos(a), 2 + (h - 20) * math.sin(a), 3.5, 7.5, 700, angle=deg + 90)
    if z > 380:
        add(0, -(h - 13), 15, 6, 520)  # sternum
    if z > 480:
        add(0, h - 135, 10, 8, 30)
        add(0, h - 135, 8, 6, -1000)  # trachea
    add(0, h - 60, 13, 12, 650, thick=3)  # neural arch
    add(0, h - 60, 9, 8, 20)  # spinal canal
    add(0, h - 40, 4, 14, 650)  # spinous process
    for side in (-1, 1):
        add(side * 22, h - 64, 12, 4, 600, angle=side * 10)  # transverse processes
    add(0, h - 88, 20, 17, 750)  # vertebral body cortex
    add(0, h - 88, 16.5, 13.5, 220, name="vertebra")
    return ops, hosts




def _draw(canvas: np.ndarray, ops: list[Op], sp: float, ox: float, oy: float) -> None:
    for o in ops:
        if not o.draw:
            continue
        center = (round((ox + o.cx / sp) * 16), round((oy + o.cy / sp) * 16))
        axes = (max(1, round(o.ax / sp * 16)), max(1, round(o.ay / sp * 16)))
        thick = -1 if o.thick <= 0 else max(1, round(o.thick / sp))
        cv2.ellipse(canvas, center, axes, o.angle, o.start, o.end, float(o.hu), thick, cv2.LINE_8, 4)


def ellipse_mask(shape: tuple[int, int], cx: float, cy: float, a: float, b: float,
                 theta: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """Exact sub-pixel mask of a rotated ellipse (pixel centres at integer coordinates): (window, mask)."""
    r = max(a, b) + 1.0
    h, w = shape
    y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 2)
    x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 2)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dx, dy = xx - cx, yy - cy
    c, s = math.cos(theta), math.sin(theta)
    u, v = dx * c + dy * s, -dx * s + dy * c
    return (slice(y0, y1), slice(x0, x1)), (u / max(a, 1e-6)) ** 2 + (v / max(b, 1e-6)) ** 2 <= 1.0


def _canvas(z_mm: float, size: int, spacing_mm: float,
            offset_mm: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    canvas = np.full((size, size), -1000.0, np.float32)
    ox = size / 2 + offset_mm[0] / spacing_mm
    oy = size * 0.47 + offset_mm[1] / spacing_mm
    _draw(canvas, anatomy(z_mm)[0], spacing_mm, ox, oy)
    return canvas


def _finish(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add ~10 HU of noise (8 white + 6 blotchy: white noise blurred at σ 1.5 px has std ≈ 0.19)."""
    shape = canvas.shape
    texture = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), 1.5)
    canvas += texture * np.float32(6.0 / 0.19)
    canvas += rng.standard_normal(shape, dtype=np.float32) * np.float32(8.0)
    return np.clip(canvas, -1024, 3071).astype(np.int16)


def ct_phantom_slice(z_mm: float, size: int = 512, spacing_mm: float = 0.8,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """A plausible axial CT slice (int16 HU) at height z_mm (≈0 pelvis … 640 lung apex); ~10 HU noise."""
    if rng is None:
        rng = np.random.default_rng(int(abs(z_mm) * 1000) % 2**32)
    return _finish(_canvas(z_mm, size, spacing_mm), rng)
