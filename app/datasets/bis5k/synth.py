"""Synthetic BIS5k in the published layout: H&E-like tiles with binary masks of their glands.

`formal_train/images/bis_he_id<N>.png` + `formal_train/masks/bis_he_id<N>.png`, and
`formal_test/{images,masks}/bis_val_id<N>.png`: RGB images of a few sizes, masks 8-bit 0/255.

A tile is fibrous pink stroma (eosin) with scattered elongated stromal nuclei (haematoxylin purple);
each gland is an irregular epithelial ring of pale purple cytoplasm around a near-white lumen, with
a row of basal nuclei. The mask is the union of the glands' outer outlines, so the only near-white
pixels of a tile lie inside its mask. Pure generator: no database, no HTTP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

SIZES = ((512, 512), (640, 480), (768, 512))  # width, height
STROMA = np.array((232, 160, 190), np.float32)
STROMA_DARK = np.array((205, 118, 160), np.float32)
CYTOPLASM = np.array((212, 146, 196), np.float32)
LUMEN = np.array((248, 240, 246), np.float32)
NUCLEUS = np.array((88, 52, 136), np.float32)
NUCLEUS_DARK = np.array((62, 36, 108), np.float32)
TRAIN_NAME, TEST_NAME = "bis_he_id{}.png", "bis_val_id{}.png"


@dataclass
class SynthImage:
    image: str  # path relative to the root
    mask: str
    split: str
    width: int
    height: int
    foreground: int  # mask pixels > 0


@dataclass
class GeneratedBis5k:
    root: Path
    images: list[SynthImage] = field(default_factory=list)


def _line_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return k / k.sum()


def _stroma(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Pink stroma whose fibres run in one direction per tile, with some patchy darker collagen."""
    fibres = cv2.filter2D(rng.standard_normal((h, w)).astype(np.float32), -1,
                          _line_kernel(21, float(rng.uniform(0, math.pi))))
    patches = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 18)
    t = np.clip(0.4 + 1.6 * fibres + 6.0 * patches, 0, 1)[..., None]
    return STROMA * (1 - t) + STROMA_DARK * t


def _outline(rng: np.random.Generator, cx: float, cy: float, r: float, scale: float = 1.0,
             wobble: list[tuple[float, float, int]] | None = None) -> np.ndarray:
    theta = np.linspace(0, 2 * math.pi, 72, endpoint=False)
    radius = np.full_like(theta, r * scale)
    for amp, phase, k in wobble or []:
        radius *= 1 + amp * np.cos(k * theta + phase)
    return np.stack([cx + radius * np.cos(theta), cy + radius * np.sin(theta)], 1).round().astype(np.int32)


def _ellipse(img: np.ndarray, x: float, y: float, a: float, b: float, angle: float, colour: np.ndarray) -> None:
    cv2.ellipse(img, (round(x), round(y)), (max(1, round(a)), max(1, round(b))), angle, 0, 360,
                tuple(float(c) for c in colour), -1, cv2.LINE_AA)


def _gland(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, cx: float, cy: float, r: float) -> None:
    wobble = [(float(rng.uniform(0.03, 0.12)), float(rng.uniform(0, 2 * math.pi)), k) for k in (2, 3, 5)]
    outer = _outline(rng, cx, cy, r, 1.0, wobble)
    lumen = _outline(rng, cx, cy, r, float(rng.uniform(0.45, 0.65)), wobble)
    cv2.fillPoly(mask, [outer], 255)
    cv2.fillPoly(img, [outer], tuple(float(c) for c in CYTOPLASM), cv2.LINE_AA)
    cv2.fillPoly(img, [lumen], tuple(float(c) for c in LUMEN), cv2.LINE_AA)
    # basal nuclei: a row of radially oriented ellipses just inside the outer outline
    count = max(8, int(2 * math.pi * r / 9))
    for i in range(count):
        t = 2 * math.pi * (i + rng.uniform(-0.2, 0.2)) / count
        p = outer[int(t / (2 * math.pi) * len(outer)) % len(outer)]
        inward = 0.8 - 0.1 * rng.uniform()
        x, y = cx + (p[0] - cx) * inward, cy + (p[1] - cy) * inward
        colour = NUCLEUS_DARK if rng.uniform() < 0.4 else NUCLEUS
        _ellipse(img, x, y, rng.uniform(3.5, 5.5), rng.uniform(2.2, 3.2), math.degrees(t), colour)


def _tumour(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, cx: float, cy: float, r: float) -> None:
    """A solid tumour nest: crowded, pleomorphic nuclei in darker cytoplasm, with a few cribriform lumens."""
    wobble = [(float(rng.uniform(0.05, 0.15)), float(rng.uniform(0, 2 * math.pi)), k) for k in (2, 3, 4, 7)]
    outer = _outline(rng, cx, cy, r, 1.0, wobble)
    region = np.zeros_like(mask)
    cv2.fillPoly(region, [outer], 255)
    mask |= region
    cv2.fillPoly(img, [outer], tuple(float(c) for c in CYTOPLASM * 0.94), cv2.LINE_AA)
    w = mask.shape[1]
    inside = np.flatnonzero(region.ravel())
    for idx in rng.choice(inside, size=min(len(inside), len(inside) // 160), replace=False):
        y, x = divmod(int(idx), w)
        colour = NUCLEUS_DARK if rng.uniform() < 0.5 else NUCLEUS
        _ellipse(img, x, y, rng.uniform(3.5, 7), rng.uniform(3, 5), rng.uniform(0, 180), colour)
    for idx in rng.choice(inside, size=min(len(inside), int(rng.integers(3, 8))), replace=False):
        y, x = divmod(int(idx), w)
        _ellipse(img, x, y, rng.uniform(8, 15), rng.uniform(7, 12), rng.uniform(0, 180), CYTOPLASM)
        _ellipse(img, x, y, rng.uniform(5, 8), rng.uniform(4, 7), rng.uniform(0, 180), LUMEN)


def render_tile(rng: np.random.Generator, width: int, height: int, glands: int,
                tumour: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, uint8 0/255 mask) of one tile with about `glands` glands and, when `tumour` > 0,
    a tumour nest of that radius (as a fraction of the tile's longer side) around the centre."""
    img = _stroma(rng, height, width)
    for _ in range(int(width * height / 2200)):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        _ellipse(img, x, y, rng.uniform(3, 6), rng.uniform(1.2, 2.2), rng.uniform(0, 180), NUCLEUS_DARK)
    mask = np.zeros((height, width), np.uint8)
    placed: list[tuple[float, float, float]] = []
    if tumour > 0:
        r = tumour * max(width, height)
        cx, cy = width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6)
        _tumour(rng, img, mask, cx, cy, r)
        placed.append((cx, cy, r))
    for _ in range(glands * 30):
        if len(placed) >= glands:
            break
        r = float(rng.uniform(22, 34) if glands > 6 else rng.uniform(35, 72))
        cx, cy = rng.uniform(r, width - r), rng.uniform(r, height - r)
        if all(math.hypot(cx - x, cy - y) > r + q + 6 for x, y, q in placed):
            placed.append((cx, cy, r))
            _gland(rng, img, mask, cx, cy, r)
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    img += rng.normal(0, 3.0, img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), mask


def _write(root: Path, rel_image: str, rel_mask: str, image: np.ndarray, mask: np.ndarray) -> None:
    for rel in (rel_image, rel_mask):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(root / rel_image), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {root / rel_image}")
    if not cv2.imwrite(str(root / rel_mask), mask):
        raise OSError(f"could not write {root / rel_mask}")


def generate_bis5k(root: Path, *, n_train: int = 12, n_test: int = 6, seed: int = 0) -> GeneratedBis5k:
    """Write `n_train` + `n_test` image/mask pairs; glands and tumour nests vary so that every mask-area band
    (empty to over a half) occurs within any six consecutive tiles."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    out = GeneratedBis5k(root)
    plan = [("formal_train", "train", TRAIN_NAME, i) for i in range(1, n_train + 1)]
    plan += [("formal_test", "test", TEST_NAME, i) for i in range(1, n_test + 1)]
    for n, (folder, split, pattern, number) in enumerate(plan):
        width, height = SIZES[n % len(SIZES)]
        glands, tumour = ((1, 0.0), (5, 0.0), (10, 0.0), (2, 0.32), (0, 0.0), (0, 0.4))[n % 6]
        image, mask = render_tile(rng, width, height, glands, tumour)
        name = pattern.format(number)
        rel_image, rel_mask = f"{folder}/images/{name}", f"{folder}/masks/{name}"
        _write(root, rel_image, rel_mask, image, mask)
        out.images.append(SynthImage(rel_image, rel_mask, split, width, height, int(np.count_nonzero(mask))))
    return out


def demo_sample(root: Path) -> GeneratedBis5k:
    """The `medview demo` sample: 16 training and 8 test tiles."""
    return generate_bis5k(root, n_train=16, n_test=8, seed=5)
