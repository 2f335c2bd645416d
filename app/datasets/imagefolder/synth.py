"""Synthetic image-folder datasets: bone-marrow-like single-cell JPEGs in the sparsam layouts.

`layout="csv"` mimics the sparsam bone-marrow split files exactly: images at
`BM_cytomorphology_data/<CLASS>/<bucket>/<CLASS>_<NNNNN>.jpg` (a `0001-1000`-style bucket folder for the
classes that have more than 1,000 images in the real dataset, none for the rare ones), and
`splits/{labeled_train,test,unlabeled_train}.csv` written as pandas writes them (`,image,label` with an
unnamed index column; the unlabeled file `,image`). `layout="folders"` puts the same images under
`<CLASS>/…` (or `<split>/<CLASS>/…` with `split_folders=True`).

Each image is one cell on a pale smear: cytoplasm and nucleus drawn in a style per class (a small dense
round nucleus for lymphocytes, segmented lobes for neutrophils, orange granules for eosinophils, …), so
classes differ visibly. Pure generator: no database, no HTTP.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

DATA_DIR = "BM_cytomorphology_data"
SPLIT_FILES = ("labeled_train", "test", "unlabeled_train")
# The 21 classes of sparsam's bone_marrow/test.csv, with the highest image number each has there.
BM_CLASS_SIZES = {
    "ABE": 7, "ART": 19630, "BAS": 437, "BLA": 11973, "EBO": 27395, "EOS": 5883, "FGC": 46, "HAC": 409,
    "KSC": 42, "LYI": 63, "LYT": 26242, "MMZ": 3055, "MON": 4040, "MYB": 6557, "NGB": 9968, "NGS": 29424,
    "NIF": 3538, "OTH": 294, "PEB": 2740, "PLM": 7629, "PMO": 11994,
}
# class → (cell radius, nucleus shape, nucleus radius, nucleus RGB, cytoplasm RGB, granule RGB | None, granules)
_STYLE: dict[str, tuple[float, str, float, tuple, tuple, tuple | None, int]] = {
    "ABE": (0.36, "bilobed", 0.15, (95, 45, 120), (235, 170, 150), (120, 40, 90), 60),
    "ART": (0.30, "smudge", 0.22, (150, 110, 170), (220, 190, 210), None, 0),
    "BAS": (0.30, "lobed", 0.13, (80, 40, 110), (200, 170, 210), (60, 20, 90), 80),
    "BLA": (0.38, "round", 0.30, (125, 80, 165), (150, 170, 215), None, 0),
    "EBO": (0.26, "round", 0.14, (55, 25, 80), (190, 160, 200), None, 0),
    "EOS": (0.36, "bilobed", 0.14, (95, 45, 120), (240, 180, 150), (235, 110, 60), 90),
    "FGC": (0.38, "round", 0.27, (120, 75, 160), (170, 170, 215), (200, 40, 60), 12),
    "HAC": (0.34, "round", 0.18, (110, 70, 150), (185, 190, 220), None, 0),
    "KSC": (0.20, "smudge", 0.30, (170, 130, 190), (230, 210, 225), None, 0),
    "LYI": (0.30, "round", 0.22, (90, 50, 140), (165, 180, 220), None, 0),
    "LYT": (0.24, "round", 0.18, (70, 35, 115), (160, 175, 220), None, 0),
    "MMZ": (0.36, "kidney", 0.17, (110, 60, 145), (235, 200, 205), (200, 150, 190), 40),
    "MON": (0.42, "kidney", 0.22, (130, 90, 165), (190, 185, 215), None, 0),
    "MYB": (0.38, "round", 0.18, (105, 60, 145), (230, 190, 205), (190, 120, 180), 50),
    "NGB": (0.36, "band", 0.17, (100, 50, 135), (235, 205, 215), (210, 170, 200), 40),
    "NGS": (0.36, "lobed", 0.13, (95, 45, 130), (235, 205, 215), (210, 170, 200), 40),
    "NIF": (0.32, "smudge", 0.18, (140, 100, 165), (215, 195, 215), None, 0),
    "OTH": (0.40, "bilobed", 0.20, (120, 70, 150), (200, 200, 220), None, 0),
    "PEB": (0.40, "round", 0.27, (100, 55, 145), (90, 110, 190), None, 0),
    "PLM": (0.36, "eccentric", 0.16, (80, 40, 120), (100, 110, 185), None, 0),
    "PMO": (0.42, "round", 0.22, (115, 70, 155), (220, 180, 210), (150, 40, 110), 70),
}
BACKGROUND = np.array((236, 226, 232), np.float32)
RED_CELL = (226, 170, 180)


@dataclass
class SynthImage:
    rel: str  # path relative to the root
    label: str
    split: str | None  # the split file's stem (csv layout) or split folder


@dataclass
class GeneratedImageFolder:
    root: Path
    layout: str
    images: list[SynthImage] = field(default_factory=list)
    split_files: dict[str, str] = field(default_factory=dict)  # split → CSV path relative to the root


def bm_relative_path(cls: str, number: int) -> str:
    """`LYT/16001-17000/LYT_16826.jpg` as in the real dataset (bucket folders only for classes over 1,000)."""
    name = f"{cls}_{number:05d}.jpg"
    if BM_CLASS_SIZES.get(cls, 0) <= 1000:
        return f"{cls}/{name}"
    start = (number - 1) // 1000 * 1000 + 1
    end = min(start + 999, BM_CLASS_SIZES[cls])
    return f"{cls}/{start:04d}-{end:04d}/{name}"


def _c(colour: tuple | np.ndarray) -> tuple[float, float, float]:
    r, g, b = (float(v) for v in colour)
    return r, g, b


def _nucleus(img: np.ndarray, rng: np.random.Generator, kind: str, c: float, r: float, colour: tuple,
             cytoplasm: tuple) -> None:
    col = _c(colour)
    turn = rng.uniform(0, 2 * math.pi)
    if kind in ("round", "eccentric"):
        dx = 0.45 * c * 0.5 if kind == "eccentric" else rng.uniform(-0.05, 0.05) * c
        cv2.ellipse(img, (round(c + dx), round(c)), (round(r), round(r * rng.uniform(0.85, 1.0))),
                    math.degrees(turn), 0, 360, col, -1, cv2.LINE_AA)
    elif kind in ("lobed", "bilobed"):
        lobes = 2 if kind == "bilobed" else int(rng.integers(3, 5))
        points = [(c + 1.25 * r * math.cos(turn + i * 2.1 / max(lobes - 1, 1) * 1.4),
                   c + 1.25 * r * math.sin(turn + i * 2.1 / max(lobes - 1, 1) * 1.4)) for i in range(lobes)]
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            cv2.line(img, (round(x0), round(y0)), (round(x1), round(y1)), col, max(2, round(r * 0.35)), cv2.LINE_AA)
        for x, y in points:
            cv2.circle(img, (round(x), round(y)), round(r * 0.8), col, -1, cv2.LINE_AA)
    elif kind == "band":
        cv2.ellipse(img, (round(c), round(c)), (round(1.4 * r), round(1.4 * r)), math.degrees(turn), 20, 250, col,
                    max(3, round(0.7 * r)), cv2.LINE_AA)
    elif kind == "kidney":
        cv2.ellipse(img, (round(c), round(c)), (round(1.3 * r), round(r)), math.degrees(turn), 0, 360, col, -1,
                    cv2.LINE_AA)
        notch = (round(c + 1.1 * r * math.cos(turn + math.pi / 2)), round(c + 1.1 * r * math.sin(turn + math.pi / 2)))
        cv2.circle(img, notch, round(0.55 * r), _c(cytoplasm), -1, cv2.LINE_AA)
    else:  # smudge: irregular, washed-out nuclear material
        for _ in range(6):
            off = rng.normal(0, 0.4 * r, 2)
            cv2.circle(img, (round(c + off[0]), round(c + off[1])), round(r * rng.uniform(0.5, 0.9)), col, -1,
                       cv2.LINE_AA)


def render_cell(cls: str, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """One RGB uint8 cell image in the style of class `cls`."""
    cell_r, kind, nuc_r, nuc_col, cyto_col, gran_col, granules = _STYLE.get(cls, _STYLE["OTH"])
    img: np.ndarray = np.empty((size, size, 3), np.float32)
    img[:] = BACKGROUND
    for _ in range(int(rng.integers(2, 6))):  # neighbouring red cells, pale in the middle
        x, y, rr = rng.uniform(0, size), rng.uniform(0, size), size * rng.uniform(0.12, 0.16)
        cv2.circle(img, (round(x), round(y)), round(rr), RED_CELL, -1, cv2.LINE_AA)
        cv2.circle(img, (round(x), round(y)), round(rr * 0.45), _c(BACKGROUND * 0.98), -1, cv2.LINE_AA)
    c = size / 2
    r = cell_r * size * rng.uniform(0.92, 1.08)
    cv2.ellipse(img, (round(c), round(c)), (round(r), round(r * rng.uniform(0.88, 1.0))), rng.uniform(0, 180), 0, 360,
                _c(cyto_col), -1, cv2.LINE_AA)
    if kind == "eccentric":  # plasma cell: pale perinuclear halo
        cv2.circle(img, (round(c - 0.15 * r), round(c)), round(0.35 * r), _c(np.add(cyto_col, 60).clip(0, 255)), -1)
    _nucleus(img, rng, kind, c, nuc_r * size, nuc_col, cyto_col)
    if gran_col is not None:  # the styles without a granule colour have no granules
        granule = _c(gran_col)
        for _ in range(granules):
            a, d = rng.uniform(0, 2 * math.pi), r * math.sqrt(rng.uniform(0.05, 0.9))
            cv2.circle(img, (round(c + d * math.cos(a)), round(c + d * math.sin(a))), 1, granule, -1, cv2.LINE_AA)
    if cls == "HAC":  # hairy projections
        for a in np.linspace(0, 2 * math.pi, 18, endpoint=False):
            p0 = (round(c + r * math.cos(a)), round(c + r * math.sin(a)))
            p1 = (round(c + 1.25 * r * math.cos(a + 0.1)), round(c + 1.25 * r * math.sin(a + 0.1)))
            cv2.line(img, p0, p1, _c(cyto_col), 1, cv2.LINE_AA)
    blur = 2.2 if cls in ("NIF", "KSC") else 0.8
    img = cv2.GaussianBlur(img, (0, 0), blur) + rng.normal(0, 2.5, img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _save_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise OSError(f"could not write {path}")


def write_split_csv(path: Path, rows: list[tuple[str, str | None]], labeled: bool) -> None:
    """A split file exactly as pandas' `DataFrame.to_csv` writes it (index column with an empty name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["", "image", "label"] if labeled else ["", "image"])
        for i, (image, label) in enumerate(rows):
            writer.writerow([i, image, label] if labeled else [i, image])


def generate_imagefolder(root: Path, *, layout: str = "csv", per_class: int = 4, classes: list[str] | None = None,
                         seed: int = 0, split_folders: bool = False, size: int = 128) -> GeneratedImageFolder:
    """Write `per_class` cell images of every class (default: the 21 bone-marrow classes) in `layout`.

    The i-th image of a class goes to labeled_train, test, unlabeled_train, labeled_train, … in turn
    (the csv layout's split files; with `split_folders`, train/test folders, unlabeled ones to train)."""
    if layout not in ("csv", "folders"):
        raise ValueError(f"layout must be 'csv' or 'folders', not {layout!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    out = GeneratedImageFolder(root, layout)
    rows: dict[str, list[tuple[str, str | None]]] = {name: [] for name in SPLIT_FILES}
    for cls in classes or list(BM_CLASS_SIZES):
        top = BM_CLASS_SIZES.get(cls, 1000)
        numbers = rng.choice(np.arange(1, top + 1), size=min(per_class, top), replace=False)
        for i, number in enumerate(sorted(int(n) for n in numbers)):
            split_file = SPLIT_FILES[i % len(SPLIT_FILES)]
            rel = bm_relative_path(cls, number)
            split: str | None
            if layout == "csv":
                split = split_file
                rel = f"{DATA_DIR}/{rel}"
                rows[split_file].append((rel, cls))
            elif split_folders:
                split = "test" if split_file == "test" else "train"
                rel = f"{split}/{rel}"
            else:
                split = None
            _save_jpeg(root / rel, render_cell(cls, rng, size))
            out.images.append(SynthImage(rel, cls, split))
    if layout == "csv":
        for name, listed in rows.items():
            order = rng.permutation(len(listed))  # the real split files are not sorted
            rel = f"splits/{name}.csv"
            write_split_csv(root / rel, [listed[i] for i in order], labeled=not name.startswith("unlabeled"))
            out.split_files[name] = rel
    return out


def demo_sample(root: Path) -> GeneratedImageFolder:
    """The `medview demo` sample: 6 cells of each of the 21 bone-marrow classes with sparsam split files."""
    return generate_imagefolder(root, layout="csv", per_class=6, seed=11)
