"""A full-size synthetic DeepLesion tree for the ingest benchmark.

DL_info.csv has the official table's counts (32,735 lesion rows on 32,120 key slices, 10,594 studies of
4,427 patients) with realistic field values, and every slice of every row's Slice_range exists as a
file: ~928k hard links to a handful of copies of one real PNG, so the tree costs almost no disk.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.datasets.deeplesion.synth import fmt, fmt_list, recist_fields
from app.datasets.deeplesion.table import COLUMNS

FULL_COUNTS = {"rows": 32_735, "key_slices": 32_120, "patients": 4_427, "studies": 10_594, "files": 928_020}
LINK_DIR = ".link_sources"
LINKS_PER_SOURCE = 60_000  # ext4 allows at most 65,000 hard links to one inode
MARKER = ".complete"
_WINDOWS = (("-175, 275", 0.85), ("-160, 240", 0.1), ("-182.5, 322.5", 0.03), ("-177.5, 307.5", 0.02))
_TYPES = ((1, 0.04), (2, 0.2), (3, 0.18), (4, 0.13), (5, 0.25), (6, 0.05), (7, 0.07), (8, 0.08))


def _spread(total: int, bins: int, rng: np.random.Generator, shape: float, cap: int) -> np.ndarray:
    """`bins` counts ≥ 1 summing to `total` (skewed by a gamma(shape) weight per bin), none above cap."""
    counts = np.ones(bins, np.int64)
    weights = rng.gamma(shape, size=bins)
    extra = total - bins
    while extra > 0:
        counts += rng.multinomial(extra, weights / weights.sum())
        over = np.maximum(counts - cap, 0)
        counts -= over
        extra = int(over.sum())
        weights[counts >= cap] = 0.0
    return counts


def _fit_total(lengths: np.ndarray, minimum: np.ndarray, target: int, rng: np.random.Generator) -> None:
    """Nudge group lengths (in place, never below minimum) so they sum to target."""
    diff = target - int(lengths.sum())
    if diff > 0:
        np.add.at(lengths, rng.integers(0, len(lengths), diff), 1)
    while diff < 0:
        slack = np.maximum(lengths - minimum, 0)
        if not slack.any():
            return
        take = np.minimum(rng.multinomial(-diff, slack / slack.sum()), slack)
        lengths -= take
        diff += int(take.sum())


def _layout(n: dict[str, int], rng: np.random.Generator) -> list[dict]:
    """Series with their slice ranges and key slices: [{patient, study, series, dz, groups}]."""
    per_patient = _spread(n["studies"], n["patients"], rng, 0.5, 40)
    patient_ids = np.sort(rng.choice(np.arange(1, 4428), n["patients"], replace=False))
    series: list[dict[str, Any]] = []
    for pid, studies in zip(patient_ids, per_patient, strict=True):
        for study in range(1, int(studies) + 1):
            for sid in range(1, 3 if rng.random() < 0.06 else 2):
                series.append({"patient": int(pid), "study": study, "series": sid,
                               "dz": int(rng.choice([5, 2, 1], p=[0.55, 0.15, 0.3]))})
    keys = _spread(n["key_slices"], len(series), rng, 1.0, 8)
    groups: list[tuple[int, int]] = []  # (series index, keys in the group)
    for i, (s, nk) in enumerate(zip(series, keys, strict=True)):
        shared = s["dz"] == 5 and nk > 1 and rng.random() < 0.12
        groups += [(i, int(nk))] if shared else [(i, 1)] * int(nk)
    nks = np.array([g[1] for g in groups])
    dzs = np.array([series[g[0]]["dz"] for g in groups])
    count = len(groups)  # slices per range: 5 mm ≈ key ± 6 (+5 per extra key sharing it), 2 mm ~32, 1 mm ~62
    thick = 13 + 5 * (nks - 1) + np.where(nks > 1, rng.integers(0, 8, count), 0)
    thin = np.where(dzs == 2, rng.integers(25, 40, count), rng.integers(45, 80, count))
    lengths = np.where(dzs == 5, thick, thin)
    _fit_total(lengths, nks + 4, n["files"], rng)
    for s in series:
        s["groups"] = []
    for (i, nk), length in zip(groups, lengths.tolist(), strict=True):
        series[i]["groups"].append((nk, length))
    for s in series:
        thin_slices = s["dz"] < 5
        cursor = int(rng.integers(1, 120 if thin_slices else 20))
        total = sum(length for _, length in s["groups"])
        spare = max(0, 999 - total - cursor)
        placed = []
        for nk, length in s["groups"]:
            first, last = cursor, cursor + length - 1
            if nk == 1:
                jitter = int(rng.integers(-2, 3)) if length > 8 else 0
                key_list = [min(last, max(first, first + (length - 1) // 2 + jitter))]
            else:
                inner = rng.choice(np.arange(1, length - 1), nk, replace=False)
                key_list = sorted(first + int(k) for k in inner)
            placed.append((first, last, key_list))
            gap = int(rng.integers(0, 40 if thin_slices else 25))
            gap = min(gap, spare)
            spare -= gap
            cursor = last + 1 + gap
        s["groups"] = placed
    return series


def _rows(series: list[dict], n: dict[str, int], rng: np.random.Generator,
          image_size: str) -> list[list[str]]:
    """The CSV rows (lists of strings in COLUMNS order), one per lesion, grouped by series."""
    patients = sorted({s["patient"] for s in series})
    splits = rng.choice([1, 2, 3], len(patients), p=[0.7, 0.15, 0.15]).tolist()
    split = dict(zip(patients, splits, strict=True))
    sex = dict(zip(patients, rng.choice(["M", "F"], len(patients), p=[0.52, 0.48]).tolist(), strict=True))
    base_age = dict(zip(patients, rng.integers(18, 88, len(patients)).tolist(), strict=True))
    float_age = {p for p in patients if rng.random() < 0.03}
    window_names, window_p = [name for name, _ in _WINDOWS], [p for _, p in _WINDOWS]
    type_codes, type_p = [code for code, _ in _TYPES], [p for _, p in _TYPES]
    study_info: dict[tuple[int, int], tuple[str, str]] = {}
    keys = [(s, first, last, k) for s in series for first, last, ks in s["groups"] for k in ks]
    extra = set(rng.choice(len(keys), min(len(keys), n["rows"] - len(keys)), replace=False).tolist())
    out: list[list[str]] = []
    for i, (s, first, last, key) in enumerate(keys):
        pid, study = s["patient"], s["study"]
        if (pid, study) not in study_info:
            fov = int(rng.integers(300, 500))
            study_info[pid, study] = (fmt(fov / 512), str(rng.choice(window_names, p=window_p)))
        spacing, window = study_info[pid, study]
        age = base_age[pid] + (study - 1) // 2
        z_norm = float(rng.uniform(0.1, 0.9))
        for _ in range(2 if i in extra else 1):
            kind = -1 if split[pid] == 1 else int(rng.choice(type_codes, p=type_p))
            long_px = float(np.clip(rng.lognormal(np.log(20), 0.5), 3, 250))
            short_px = long_px * float(rng.uniform(0.45, 0.95))
            cx, cy = float(rng.uniform(110, 400)), float(rng.uniform(150, 370))
            theta = float(rng.uniform(0, np.pi))
            coords, bbox, diameters = recist_fields(cx, cy, long_px / 2, short_px / 2, theta)
            location = fmt_list([(cx - 60) / 392, (cy - 100) / 320, z_norm])
            out.append([
                f"{pid:06d}_{study:02d}_{s['series']:02d}_{key:03d}.png",
                str(pid), str(study), str(s["series"]), str(key), coords, bbox, diameters, location,
                str(kind), "1" if rng.random() < 0.015 else "0",
                f"{first}, {last}", f"{spacing}, {spacing}, {s['dz']}", image_size,
                "-1500, 500" if kind == 5 else window, sex[pid],
                f"{age}.0" if pid in float_age else str(age), str(split[pid]),
            ])
    return out


class _Linker:
    """Hard-links slices to copies of the source PNG, starting a new copy before the inode's link limit."""

    def __init__(self, root: Path, source: Path):
        self.dir = root / LINK_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.source = source
        self.copies = 0
        self.used = LINKS_PER_SOURCE

    def _new_copy(self) -> None:
        self.current = str(self.dir / f"{self.copies:03d}.png")
        shutil.copyfile(self.source, self.current)
        self.copies += 1
        self.used = 0

    def link(self, target: str) -> None:
        if self.used >= LINKS_PER_SOURCE:
            self._new_copy()
        try:
            os.link(self.current, target)
        except OSError as exc:
            if exc.errno != errno.EMLINK:
                raise
            self._new_copy()
            os.link(self.current, target)
        self.used += 1


def generate_full_size_tree(root: Path, source_png: Path, *, seed: int = 0, scale: float = 1.0) -> dict:
    """Write (once) the full-size tree under root; every count is multiplied by scale. Returns the counts."""
    root, source_png = Path(root), Path(source_png)
    params = {"seed": seed, "scale": scale, "source": str(source_png.resolve())}
    marker, csv_path = root / MARKER, root / "DL_info.csv"
    if marker.is_file() and csv_path.is_file():
        try:
            done = json.loads(marker.read_text())
        except ValueError:
            done = {}
        if done.get("params") == params:
            return {**done["counts"], "root": str(root), "seconds": 0.0, "reused": True}
    if not source_png.is_file():
        raise FileNotFoundError(f"source PNG {source_png} does not exist")
    started = time.perf_counter()
    marker.unlink(missing_ok=True)
    csv_path.unlink(missing_ok=True)
    for stale in (root / "Images_png", root / LINK_DIR):
        shutil.rmtree(stale, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = {name: max(1, round(full * scale)) for name, full in FULL_COUNTS.items()}
    n["studies"] = max(n["studies"], n["patients"])
    n["key_slices"] = max(n["key_slices"], n["studies"])
    n["rows"] = max(n["rows"], n["key_slices"])
    n["files"] = max(n["files"], 8 * n["key_slices"])
    series = _layout(n, rng)
    with source_png.open("rb") as fh:  # Image_size as in the PNG header, so the tree is consistent
        width, height = struct.unpack(">II", fh.read(24)[16:24])
    rows = _rows(series, n, rng, f"{width}, {height}")
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    images = root / "Images_png"
    images.mkdir()
    linker = _Linker(root, source_png)
    files = 0
    for s in series:
        folder = images / f"{s['patient']:06d}_{s['study']:02d}_{s['series']:02d}"
        folder.mkdir()
        prefix = str(folder) + os.sep
        for first, last, _ in s["groups"]:
            for number in range(first, last + 1):
                linker.link(f"{prefix}{number:03d}.png")
            files += last - first + 1
    counts = {
        "rows": len(rows), "key_slices": len({r[0] for r in rows}),
        "patients": len({s["patient"] for s in series}),
        "studies": len({(s["patient"], s["study"]) for s in series}), "series": len(series), "files": files,
        "link_sources": linker.copies,
    }
    marker.write_text(json.dumps({"params": params, "counts": counts}) + "\n")
    return {**counts, "root": str(root), "seconds": round(time.perf_counter() - started, 2), "reused": False}
