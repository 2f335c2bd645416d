"""Synthetic DeepLesion in the real on-disk layout: a CT phantom, DL_info.csv + Images_png/, zip packing.

Pure generator (no database, no HTTP) used by `medview demo` and the tests. Anatomy is defined in mm on
one nominal body (z in mm, pelvis ≈ 0 … lung apex ≈ 640) and drawn at each study's pixel spacing, in the
radiological convention: image left = the patient's right, image top = anterior.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import zipfile
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.datasets.ct_phantom import _canvas, _finish, anatomy, ct_phantom_slice, ellipse_mask
from app.datasets.deeplesion.table import COLUMNS

HU_OFFSET = 32768
NOMINAL_SPACING = 0.8


@dataclass
class GeneratedSample:
    """What `generate_deeplesion` wrote (rows are the CSV rows as written, all strings)."""

    root: Path
    csv_path: Path
    rows: list[dict[str, str]]
    key_slices: set[str]
    lesion_count: int
    patient_count: int
    study_count: int


def fmt(value: float) -> str:
    """A number as in the official DL_info.csv: up to 6 significant digits, no trailing zeros."""
    text = f"{value:.6g}"
    return "0" if text == "-0" else text


def fmt_list(values: tuple[float, ...] | list[float]) -> str:
    return ", ".join(fmt(v) for v in values)


# A lesion on the nominal body: type code, centre (mm), z (mm), diameters (mm), angle (rad), HU.
Lesion = namedtuple("Lesion", "kind cx cy z long short angle hu")
# The same in one study's pixels: centre, semi-axes, angle (rad), HU.
_PxLesion = namedtuple("_PxLesion", "cx cy a b theta hu")


# type → host name(s), z range mm, long diameter range mm, lesion HU
_HOSTS: dict[int, tuple[tuple[str, ...], tuple[float, float], tuple[float, float], float]] = {
    4: (("liver",), (240, 330), (14, 34), 10.0),
    5: (("lung_-1", "lung_1"), (395, 540), (7, 22), 30.0),
    6: (("kidney_-1", "kidney_1"), (168, 205), (10, 22), 6.0),
    1: (("vertebra",), (170, 430), (9, 16), 40.0),
    7: (("flank_-1", "flank_1"), (120, 300), (16, 34), 35.0),
    3: (("mediastinum",), (500, 540), (10, 22), 40.0),
    2: (("retroperitoneum",), (150, 215), (10, 22), 40.0),
    8: (("pelvic_-1", "pelvic_1"), (35, 80), (14, 30), 40.0),
}


def place_lesion(kind: int, rng: np.random.Generator, *, partner: Lesion | None = None,
                 max_growth: float = 1.0) -> Lesion:
    """A lesion of this type inside its host organ (checked on the rendered phantom, at max_growth size)."""
    names, (z0, z1), (d0, d1), hu = _HOSTS[kind]
    size = 512
    sp = NOMINAL_SPACING
    long = float(rng.uniform(d0, d1))
    for attempt in range(400):
        if attempt % 40 == 0:
            z = partner.z if partner else float(rng.uniform(z0, z1))
            canvas = _canvas(z, size, sp)
            hosts = anatomy(z)[1]
            long = long * 0.85 if attempt else long
        host = hosts[str(rng.choice(names))]
        ratio = float(rng.uniform(0.55, 0.9))
        short = min(long * ratio, 12.0 / max_growth) if kind == 7 else long * ratio
        angle = math.radians(90 + rng.uniform(-15, 15)) if kind == 7 else float(rng.uniform(0, math.pi))
        r, phi = math.sqrt(rng.random()) * 0.8, rng.uniform(0, 2 * math.pi)
        ha = math.radians(host.angle)
        u, v = host.ax * r * math.cos(phi), host.ay * r * math.sin(phi)
        cx = host.cx + u * math.cos(ha) - v * math.sin(ha)
        cy = host.cy + u * math.sin(ha) + v * math.cos(ha)
        gap = (long + partner.long) * max_growth / 2 + 4 if partner else 0.0
        if partner and math.hypot(cx - partner.cx, cy - partner.cy) < gap:
            continue
        a, b = long * max_growth / 2 / sp * 1.3, short * max_growth / 2 / sp * 1.3  # with a margin of host
        window, mask = ellipse_mask(canvas.shape, size / 2 + cx / sp, size * 0.47 + cy / sp, a, b, angle)
        values = canvas[window][mask]
        if values.size and np.mean(np.abs(values - host.hu) <= 30) >= 0.93:
            return Lesion(kind, cx, cy, z, long, short, angle, hu)
    raise RuntimeError(f"could not place a type-{kind} lesion")  # pragma: no cover - anatomy bug


def recist_fields(cx: float, cy: float, a: float, b: float, theta: float) -> tuple[str, str, str]:
    """CSV text of an ellipse's RECIST axes (long = major axis endpoints, short = minor), its bounding box
    (min/max of the 8 coordinates ± 5 px, as in the official file) and the two axis lengths, in pixels."""
    c, s = math.cos(theta), math.sin(theta)
    coords = [float(fmt(v)) for v in (cx + a * c, cy + a * s, cx - a * c, cy - a * s,
                                      cx - b * s, cy + b * c, cx + b * s, cy - b * c)]
    xs, ys = coords[0::2], coords[1::2]
    bbox = [min(xs) - 5, min(ys) - 5, max(xs) + 5, max(ys) + 5]
    return fmt_list(coords), fmt_list(bbox), fmt_list([math.dist(coords[0:2], coords[2:4]),
                                                        math.dist(coords[4:6], coords[6:8])])


def _render(z_mm: float, size: int, spacing_mm: float, offset_mm: tuple[float, float],
            lesions: list[_PxLesion], rng: np.random.Generator) -> np.ndarray:
    canvas = _canvas(z_mm, size, spacing_mm, offset_mm)
    for les in lesions:
        window, mask = ellipse_mask(canvas.shape, les.cx, les.cy, les.a, les.b, les.theta)
        canvas[window][mask] = les.hu
    return _finish(canvas, rng)


# -- the sample's plan ------------------------------------------------------------------------------
# type codes: 1 bone, 2 abdomen, 3 mediastinum, 4 liver, 5 lung, 6 kidney, 7 soft tissue, 8 pelvis.
# study = list of series; series = (z spacing mm, [(lesion key, type, growth, flags)]);
# flag "same" = on the previous lesion's key slice (two lesions, one File_name), "noisy" = Possibly_noisy.
_PLAN: list[dict] = [
    {"split": 2, "sex": "F", "age": 61, "studies": [
        [(5, [("A", 4, 1.0, ""), ("K", 6, 1.0, "")])],
        [(5, [("A", 4, 1.35, ""), ("B", 4, 1.0, "same")])],
        [(2, [("A", 4, 1.8, ""), ("B", 4, 1.25, "same")])]]},
    {"split": 3, "sex": "M", "age": 67, "studies": [
        [(5, [("L", 5, 1.0, "")])],
        [(1, [("L", 5, 1.5, ""), ("M", 3, 1.0, "")])]], "windows": {1: "-160, 240"}},
    {"split": 2, "sex": "M", "age": 48, "studies": [
        [(5, [("O", 1, 1.0, ""), ("S", 7, 1.0, "noisy")])]], "windows": {0: "-182.5, 322.5"}},
    {"split": 1, "sex": "F", "age": 54, "age_float": True, "studies": [
        [(5, [("A", 4, 1.0, ""), ("N", 2, 1.0, "")])],
        [(5, [("A", 4, 0.75, "")])]]},
    {"split": 3, "sex": "F", "age": 72, "studies": [
        [(5, [("K", 6, 1.0, ""), ("P", 8, 1.0, "")]), (1, [("K", 6, 1.0, "")])]]},
    {"split": 1, "sex": "M", "age": 39, "studies": [
        [(5, [("L", 5, 1.0, ""), ("A", 4, 1.0, "noisy")])]]},
]


def _random_plan(rng: np.random.Generator) -> dict:
    """1–3 studies of 1–3 random lesions each, followed with random growth."""
    kinds = rng.choice([4, 5, 5, 2, 3, 6, 7, 1, 8], size=int(rng.integers(1, 4)))
    first = [(str(i), int(kind), 1.0, "") for i, kind in enumerate(kinds)]
    studies = [[(int(rng.choice([5, 5, 2, 1])), first)]]
    for _ in range(int(rng.integers(0, 3))):
        grown = [(key, t, round(float(rng.uniform(0.7, 1.6)), 2), "") for key, t, _, _ in first]
        studies.append([(int(rng.choice([5, 5, 2, 1])), grown)])
    return {"split": int(rng.choice([1, 1, 1, 2, 3])), "sex": str(rng.choice(["M", "F"])),
            "age": int(rng.integers(22, 86)), "studies": studies}


def _write_png(path: Path, hu: np.ndarray) -> None:
    if not cv2.imwrite(str(path), (hu.astype(np.int32) + HU_OFFSET).astype(np.uint16)):
        raise OSError(f"cannot write {path}")


def _run(numbers: set[int], key: int) -> tuple[int, int]:
    lo = hi = key
    while lo - 1 in numbers:
        lo -= 1
    while hi + 1 in numbers:
        hi += 1
    return lo, hi


def generate_deeplesion(root: Path, *, patients: int = 6, seed: int = 0, neighbours: int = 3,
                        image_size: int = 512) -> GeneratedSample:
    """Write a small DeepLesion tree (DL_info.csv + Images_png/PPPPPP_SS_SS/NNN.png, 16-bit) under root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    plans = [_PLAN[i] if i < len(_PLAN) else _random_plan(rng) for i in range(patients)]
    indices = sorted(int(i) for i in rng.choice(np.arange(1, 4428), size=patients, replace=False))
    images = root / "Images_png"
    images.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    study_count = 0
    for index, plan in zip(indices, plans, strict=True):
        lesions: dict[str, Lesion] = {}
        growth: dict[str, float] = {}
        for study in plan["studies"]:
            for _, specs in study:
                for key, _, g, _ in specs:
                    growth[key] = max(g, growth.get(key, 1.0))
        for study_no, study in enumerate(plan["studies"], 1):
            study_count += 1
            age = plan["age"] + (study_no - 1) // 2
            fov = float(rng.choice([380, 400, 420, 440, 460, 480]))
            spacing = fov / image_size
            offset = (float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6)))
            window = plan.get("windows", {}).get(study_no - 1, "-175, 275")
            for series_no, (dz, specs) in enumerate(study, 1):
                rows += _series(images, rng, index, study_no, series_no, dz, specs, lesions, plan=plan,
                                age=age, spacing=spacing, offset=offset, window=window,
                                neighbours=neighbours, size=image_size, growth_max=growth)
    csv_path = root / "DL_info.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return GeneratedSample(root=root, csv_path=csv_path, rows=rows, key_slices={r["File_name"] for r in rows},
                           lesion_count=len(rows), patient_count=patients, study_count=study_count)


def _series(images: Path, rng: np.random.Generator, patient: int, study: int, series: int, dz: float,
            specs: list, lesions: dict[str, Lesion], *, plan: dict, age: int, spacing: float,
            offset: tuple[float, float], window: str, neighbours: int, size: int,
            growth_max: dict[str, float]) -> list[dict[str, str]]:
    """Place this series' lesions, write its key ± neighbour slices, return its CSV rows."""
    placed: list[tuple[Lesion, float, str, int]] = []  # lesion, growth, flags, key slice
    thin = dz < 5
    z_top = 640.0 + float(rng.uniform(0, 40))
    for key, kind, growth, flags in specs:
        if key not in lesions:
            partner = placed[-1][0] if "same" in flags and placed else None
            lesions[key] = place_lesion(kind, rng, partner=partner, max_growth=growth_max[key])
        placed.append((lesions[key], growth, flags, 0))
    if thin:  # thin-slice series cover a shorter range, starting closer to the lesions
        z_top = max(les.z for les, _, _, _ in placed) + float(rng.uniform(60, 180))
    placed = [(les, g, f, round((z_top - les.z) / dz) + 1) for les, g, f, _ in placed]
    numbers = sorted({n for *_, k in placed for n in range(max(1, k - neighbours), k + neighbours + 1)})
    folder = images / f"{patient:06d}_{study:02d}_{series:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    ox, oy = size / 2 + offset[0] / spacing, size * 0.47 + offset[1] / spacing
    px = [_PxLesion(ox + les.cx / spacing, oy + les.cy / spacing, les.long * g / 2 / spacing,
                    les.short * g / 2 / spacing, les.angle, les.hu) for les, g, _, _ in placed]
    for n in numbers:
        z = z_top - (n - 1) * dz
        drawn = []
        for (_, _, _, k), p in zip(placed, px, strict=True):
            s = 1.0 - abs(n - k) / (neighbours + 1)  # tapers to nothing just beyond the written neighbours
            if s > 0:
                drawn.append(p._replace(a=p.a * s, b=p.b * s))
        _write_png(folder / f"{n:03d}.png", _render(z, size, spacing, offset, drawn, rng))
    available = set(numbers)
    rows = []
    for (les, _, flags, k), p in zip(placed, px, strict=True):
        rows.append(_row(patient, study, series, k, les, p, flags, plan, age=age, spacing=spacing, dz=dz,
                         window=window, slice_range=_run(available, k), size=size))
    return rows


def _row(patient: int, study: int, series: int, key: int, les: Lesion, p: _PxLesion, flags: str, plan: dict,
         *, age: int, spacing: float, dz: float, window: str, slice_range: tuple[int, int],
         size: int) -> dict[str, str]:
    coords, bbox, diameters = recist_fields(p.cx, p.cy, p.a, p.b, p.theta)
    z_norm = min(1.0, max(0.0, 0.1 + 0.8 * (1 - les.z / 640)))
    location = (les.cx / 330 + 0.5, les.cy / 230 + 0.5, z_norm)
    split = plan["split"]
    return {
        "File_name": f"{patient:06d}_{study:02d}_{series:02d}_{key:03d}.png",
        "Patient_index": str(patient), "Study_index": str(study), "Series_ID": str(series),
        "Key_slice_index": str(key),
        "Measurement_coordinates": coords, "Bounding_boxes": bbox, "Lesion_diameters_Pixel_": diameters,
        "Normalized_lesion_location": fmt_list([min(1.0, max(0.0, v)) for v in location]),
        # as in the official file: only the val/test lesions carry a coarse type, train rows are -1
        "Coarse_lesion_type": str(les.kind if split != 1 else -1),
        "Possibly_noisy": "1" if "noisy" in flags else "0",
        "Slice_range": f"{slice_range[0]}, {slice_range[1]}",
        "Spacing_mm_px_": fmt_list([spacing, spacing, dz]),
        "Image_size": f"{size}, {size}",
        "DICOM_windows": "-1500, 500" if les.kind == 5 else window,
        "Patient_gender": plan["sex"],
        "Patient_age": f"{age}.0" if plan.get("age_float") else str(age),
        "Train_Val_Test": str(split),
    }


def pack_zips(root: Path, per_zip: int = 3) -> list[Path]:
    """Move Images_png/<series>/ folders into Images_png_01.zip, _02, … (the published layout)."""
    root = Path(root)
    images = root / "Images_png"
    folders = sorted(p for p in images.iterdir() if p.is_dir()) if images.is_dir() else []
    zips: list[Path] = []
    for n, start in enumerate(range(0, len(folders), max(1, per_zip)), 1):
        target = root / f"Images_png_{n:02d}.zip"
        partial = target.with_suffix(".zip.part")
        chunk = folders[start:start + per_zip]
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as zf:
            for folder in chunk:
                zf.writestr(zipfile.ZipInfo(f"Images_png/{folder.name}/"), b"")
                for png in sorted(folder.iterdir()):
                    zf.write(png, f"Images_png/{folder.name}/{png.name}")
        os.replace(partial, target)
        for folder in chunk:
            shutil.rmtree(folder)
        zips.append(target)
    if images.is_dir() and not any(images.iterdir()):
        images.rmdir()
    return zips


__all__ = [
    "GeneratedSample", "ct_phantom_slice", "generate_deeplesion", "pack_zips",
]


def demo_sample(root: Path) -> GeneratedSample:
    """The sample `medview demo` shows: 8 patients, follow-up studies, every lesion type."""
    return generate_deeplesion(root, patients=8, seed=7)
