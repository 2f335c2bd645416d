"""Synthetic PatchCamelyon in the published layout (h5 x/y per split, meta CSV, optionally `.h5.gz`).

Patches are H&E-like: colours from the Beer–Lambert stain model (Ruifrok & Johnston's haematoxylin and
eosin optical-density vectors), a mottled eosin stroma, small dense lymphocyte nuclei everywhere, and —
in tumor patches — crowded, larger, irregular dark nuclei filling the centre 32×32 region, so the label
is visible. Some normal patches carry tumor cells near the border only (`tumor_patch` True,
`center_tumor_patch` False), as in the real meta.
"""

from __future__ import annotations

import csv
import gzip
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

PATCH = 96
PREFIX = "camelyonpatch_level_2_split"
SPLITS = ("train", "valid", "test")
META_HEADER = ["", "coord_y", "coord_x", "tumor_patch", "center_tumor_patch", "wsi"]
_HEMATOXYLIN = np.array([0.65, 0.70, 0.29], np.float32)
_EOSIN = np.array([0.07, 0.99, 0.11], np.float32)
_RESIDUAL = np.array([0.27, 0.57, 0.78], np.float32)


@dataclass
class GeneratedPCam:
    root: Path
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # split → uint8 labels (N,)
    meta: dict[str, list[list[str]]] = field(default_factory=dict)  # split → CSV rows as written
    files: list[Path] = field(default_factory=list)


def file_name(split: str, role: str, gz: bool = False) -> str:
    ext = "csv" if role == "meta" else "h5.gz" if gz else "h5"
    return f"{PREFIX}_{split}_{role}.{ext}"


def _nuclei(canvas: np.ndarray, rng: np.random.Generator, n: int, box: tuple[int, int, int, int],
            axes: tuple[float, float], density: tuple[float, float], irregular: bool) -> None:
    x0, y0, x1, y1 = box
    for _ in range(n):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        a = rng.uniform(*axes)
        b = a * (rng.uniform(0.6, 0.95) if irregular else rng.uniform(0.85, 1.0))
        cv2.ellipse(canvas, (int(cx * 16), int(cy * 16)), (int(a * 16), int(b * 16)), float(rng.uniform(0, 180)),
                    0, 360, float(rng.uniform(*density)), -1, cv2.LINE_AA, 4)


def make_patch(rng: np.random.Generator, tumor_centre: bool, tumor_edge: bool = False) -> np.ndarray:
    """One 96×96×3 uint8 H&E-like patch."""
    low = cv2.resize(rng.random((7, 7), np.float32), (PATCH, PATCH), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.standard_normal((PATCH, PATCH)).astype(np.float32), (0, 0), 1.3)
    eosin = np.clip(0.2 + 0.35 * low + 0.08 * fine, 0.05, 1.0)
    hema = np.zeros((PATCH, PATCH), np.float32)
    _nuclei(hema, rng, int(rng.integers(18, 34)), (0, 0, PATCH, PATCH), (1.6, 2.6), (1.0, 1.5), False)
    if tumor_centre:
        _nuclei(hema, rng, int(rng.integers(14, 20)), (30, 30, 66, 66), (3.2, 5.2), (1.3, 1.9), True)
        if rng.random() < 0.5:  # tumor often spreads past the centre region
            _nuclei(hema, rng, int(rng.integers(4, 12)), (14, 14, 82, 82), (3.0, 4.8), (1.2, 1.7), True)
    if tumor_edge:
        side = int(rng.integers(4))
        edge = [(0, 0, PATCH, 16), (0, 80, PATCH, PATCH), (0, 0, 16, PATCH), (80, 0, PATCH, PATCH)][side]
        _nuclei(hema, rng, int(rng.integers(5, 10)), edge, (3.0, 4.6), (1.2, 1.8), True)
    hema = cv2.GaussianBlur(hema, (0, 0), 0.7) * (0.9 + 0.15 * fine) + 0.1 + 0.05 * low
    od = hema[..., None] * _HEMATOXYLIN + eosin[..., None] * _EOSIN + 0.04 * _RESIDUAL
    rgb = 255.0 * np.exp(-od) + rng.normal(0, 2.0, (PATCH, PATCH, 3)).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _write_x(path: Path, patches: np.ndarray, chunks, compression: str | None) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=patches, chunks=chunks, compression=compression)


def _write_y(path: Path, labels: np.ndarray) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("y", data=labels.reshape(-1, 1, 1, 1).astype(np.uint8))


def write_meta(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(META_HEADER)
        w.writerows(rows)


def gzip_file(path: Path, *, remove: bool = True, level: int = 6) -> Path:
    """`path` → `path.gz` (streamed), removing the original unless told to keep it."""
    target = path.with_name(path.name + ".gz")
    with open(path, "rb") as src, gzip.open(target, "wb", compresslevel=level) as dst:
        shutil.copyfileobj(src, dst, 4 << 20)
    if remove:
        path.unlink()
    return target


def _slide_names(split: str, n_slides: int) -> list[str]:
    source = "test" if split == "test" else "train"
    return [f"camelyon16_{source}_{'tumor' if k % 2 else 'normal'}_{k + 1:03d}" for k in range(n_slides)]


def _meta_rows(split: str, labels: np.ndarray, edge: np.ndarray, rng: np.random.Generator,
               n_slides: int) -> list[list[str]]:
    slides = _slide_names(split, n_slides)
    rows = []
    for i, (y, e) in enumerate(zip(labels.tolist(), edge.tolist(), strict=True)):
        tumor_slides = slides[1::2] or slides
        wsi = tumor_slides[int(rng.integers(len(tumor_slides)))] if (y or e) else \
            slides[int(rng.integers(len(slides)))]
        rows.append([str(i), str(int(rng.integers(0, 200_000))), str(int(rng.integers(0, 100_000))),
                     str(bool(y or e)), str(bool(y)), wsi])
    return rows


def generate_pcam(root: Path, *, n_per_split: tuple[int, ...] = (64, 16, 16), seed: int = 0, gz: bool = False,
                  x_chunks: tuple[int, ...] | bool | None = None, x_compression: str | None = None,
                  n_slides: int = 4, splits: tuple[str, ...] = SPLITS) -> GeneratedPCam:
    """Write `n_per_split[k]` patches for each of `splits` under root in the published layout."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = GeneratedPCam(root)
    for split, n in zip(splits, n_per_split, strict=True):
        labels = (rng.random(n) < 0.5).astype(np.uint8)
        edge = (labels == 0) & (rng.random(n) < 0.15)
        patches = np.stack([make_patch(rng, bool(y), bool(e)) for y, e in zip(labels, edge, strict=True)]) \
            if n else np.zeros((0, PATCH, PATCH, 3), np.uint8)
        x_path, y_path = root / file_name(split, "x"), root / file_name(split, "y")
        _write_x(x_path, patches, x_chunks, x_compression)
        _write_y(y_path, labels)
        rows = _meta_rows(split, labels, edge, rng, n_slides)
        write_meta(root / file_name(split, "meta"), rows)
        out.labels[split], out.meta[split] = labels, rows
        out.files += [gzip_file(x_path), gzip_file(y_path)] if gz else [x_path, y_path]
        out.files.append(root / file_name(split, "meta"))
    return out


def demo_sample(root: Path) -> GeneratedPCam:
    """`medview demo`: 384 patches over train/valid/test from six slides, uncompressed .h5."""
    return generate_pcam(root, n_per_split=(256, 64, 64), seed=7, n_slides=6, x_chunks=(1, PATCH, PATCH, 3))


def make_large_pcam(root: Path, n_train: int = 262_144, n_valid: int = 32_768, n_test: int = 32_768, *,
                    seed: int = 0, filled: tuple[str, ...] = ("valid", "test"), pool: int = 256,
                    n_slides: int = 270) -> dict[str, int]:
    """Full-size splits quickly. Splits not in `filled` get an `x` of black patches in gzip-compressed chunks
    (~200 bytes a patch; ~1 s per 20,000 patches): every chunk is written, because ingest refuses a dataset whose
    declared patches the file does not hold (unwritten chunks read as zeros: phantom patches). `filled` splits
    are tiled from `pool` generated patches. y holds random labels; meta CSVs are written as published."""
    import h5py

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tiles = np.stack([make_patch(rng, bool(k % 2)) for k in range(pool)])
    counts = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        labels = (rng.random(n) < 0.5).astype(np.uint8)
        with h5py.File(root / file_name(split, "x"), "w") as f:
            if split in filled:
                ds = f.create_dataset("x", shape=(n, PATCH, PATCH, 3), dtype=np.uint8, chunks=(1, PATCH, PATCH, 3))
                order = np.arange(n) % pool
                tile_of = np.where(labels == 1, order | 1, order & ~1)  # odd pool patches are tumor
                for start in range(0, n, 4096):
                    ds[start:start + 4096] = tiles[tile_of[start:start + 4096]]
            else:
                ds = f.create_dataset("x", shape=(n, PATCH, PATCH, 3), dtype=np.uint8, chunks=(1, PATCH, PATCH, 3),
                                      compression="gzip", compression_opts=1)
                black = np.zeros((min(n, 1024), PATCH, PATCH, 3), np.uint8)
                for start in range(0, n, 1024):
                    ds[start:start + 1024] = black[:min(1024, n - start)]
        _write_y(root / file_name(split, "y"), labels)
        slides = np.array(_slide_names(split, n_slides))
        wsi = slides[rng.integers(0, n_slides, n)]
        ys, xs = rng.integers(0, 200_000, n), rng.integers(0, 100_000, n)
        flags = np.where(labels == 1, "True", "False")
        with (root / file_name(split, "meta")).open("w") as fh:
            fh.write(",".join(META_HEADER) + "\n")
            fh.writelines(f"{i},{a},{b},{t},{t},{w}\n"
                          for i, a, b, t, w in zip(range(n), ys.tolist(), xs.tolist(), flags.tolist(),
                                                   wsi.tolist(), strict=True))
        counts[split] = n
    return counts
