"""A synthetic CT series of a sphere, optionally gantry-tilted and unevenly spaced, whose every voxel value is
known in patient mm: what the straightening tests measure against.

The sphere's values fall linearly with distance from its surface (+1000 HU 10 mm inside, −1000 HU 10 mm
outside, 0 HU on it), so linear interpolation between slices is exact along any line through the centre and
the 0 HU crossing is the surface: a diameter measured in any plane should be the true one to a fraction of a
pixel. Slices are placed the way a tilted scanner writes them (ImagePositionPatient moves along the table,
ImageOrientationPatient's column cosine tilted like the real Philips phantom's: [0, cos t, −sin t]).
Also here: running dcm2niix (the reference converter) and comparing a volume with its output.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

RAMP_MM = 10.0
GAPS = [4.0, 1.08, 7.0] * 6  # the GE head series of issue 14: gaps of 4, 1.08 and 7 mm along the normal


def sphere_hu(points_lps: np.ndarray, centre: Sequence[float], radius: float) -> np.ndarray:
    """The sphere's HU at patient points (…, 3), LPS mm."""
    dist = np.linalg.norm(points_lps - np.asarray(centre, float), axis=-1)
    return np.clip(1000.0 * (radius - dist) / RAMP_MM, -1000.0, 1000.0)


def write_sphere_series(root: Path, gaps: Sequence[float], *, tilt_deg: float = 0.0, size: int = 128,
                        px: float = 1.0, radius: float = 20.0, seed: str = "sphere") -> dict:
    """Slices whose distances along the slice normal are `gaps` (mm), a sphere of `radius` mm centred in the
    middle of the range; returns what was written (positions, orientation, centre)."""
    root.mkdir(parents=True, exist_ok=True)
    t = math.radians(tilt_deg)
    row_cos, col_cos = np.array([1.0, 0.0, 0.0]), np.array([0.0, math.cos(t), -math.sin(t)])
    normal = np.cross(row_cos, col_cos)  # (0, sin t, cos t): points superior
    table = np.concatenate([[0.0], np.cumsum(np.asarray(gaps, float) / normal[2])])  # IPP moves along z only
    half = (size - 1) / 2 * px
    first = np.array([-half, -half * math.cos(t), 0.0])
    ipps = [first + np.array([0.0, 0.0, z]) for z in table]
    middle_along = float(table[-1] * normal[2]) / 2
    centre = first + half * row_cos + half * col_cos + middle_along * normal
    series_uid, study_uid = generate_uid(entropy_srcs=[seed, "series"]), generate_uid(entropy_srcs=[seed, "study"])
    u, v = np.meshgrid(np.arange(size) * px, np.arange(size) * px)  # columns, rows
    for n, ipp in enumerate(ipps):
        points = ipp + u[..., None] * row_cos + v[..., None] * col_cos
        hu = np.rint(sphere_hu(points, centre, radius)).astype(np.int32)
        ds = Dataset()
        ds.PatientName, ds.PatientID, ds.Modality = "Phantom^Sphere", f"SPHERE-{seed}", "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID, ds.SOPClassUID = generate_uid(entropy_srcs=[seed, str(n)]), CTImageStorage
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = f"SPHERE TILT {tilt_deg:g}", 1, n + 1
        ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[seed, "frame"])
        ds.ImagePositionPatient = [round(float(x), 6) for x in ipp]
        ds.ImageOrientationPatient = [*row_cos.tolist(), *[round(float(x), 8) for x in col_cos]]
        ds.PixelSpacing, ds.SliceThickness, ds.GantryDetectorTilt = [px, px], 1.0, -tilt_deg
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.PixelData = (hu + 1024).astype(np.uint16).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.save_as(root / f"IM{n:04d}", enforce_file_format=True)
    return {"series_uid": series_uid, "ipps": ipps, "iop": (*row_cos, *col_cos), "centre": centre,
            "radius": radius, "normal": normal}


def diameter_mm(view: np.ndarray, pixel_mm: float) -> tuple[float, float]:
    """(largest vertical, largest horizontal) extent of the 0 HU surface in a 2-D view, mm, with the crossing
    found between pixels by linear interpolation."""
    def longest(lines: np.ndarray) -> float:
        best = 0.0
        for line in lines.astype(float):
            inside = np.flatnonzero(line > 0)
            if len(inside) == 0 or inside[0] == 0 or inside[-1] == len(line) - 1:
                continue
            a, b = inside[0], inside[-1]
            low = a - line[a] / (line[a] - line[a - 1])  # where the value crosses 0 before a
            high = b + line[b] / (line[b] - line[b + 1])
            best = max(best, high - low)
        return best * pixel_mm
    return longest(view.T), longest(view)


def dcm2niix(source: Path, out: Path) -> dict[str, Path]:
    """dcm2niix (PyPI `dcm2niix`, installed beside this Python) run on a folder: its NIfTI files by suffix."""
    exe = shutil.which("dcm2niix", path=str(Path(sys.executable).parent)) or shutil.which("dcm2niix")
    assert exe, "dcm2niix is not installed (pip install dcm2niix: the [test] extra)"
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([exe, "-z", "y", "-f", "%s", "-o", str(out), str(source)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    files = {p.name.split(".")[0].partition("_")[2] or "plain": p for p in out.glob("*.nii.gz")}
    return {name.removesuffix("_1"): path for name, path in files.items()}


def assert_matches(vol: Any, ref: Any) -> None:
    """Same grid (origin within 0.1 mm, axes within 0.1°, same spacing) and the same values."""
    assert vol.data.shape == ref.shape
    assert np.abs(vol.affine[:3, 3] - ref.affine[:3, 3]).max() < 0.1
    for axis in range(3):
        a, b = vol.affine[:3, axis], ref.affine[:3, axis]
        assert np.linalg.norm(a) == pytest.approx(np.linalg.norm(b), abs=1e-3)
        cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        assert np.degrees(np.arccos(min(1.0, cos))) < 0.1
    theirs = np.asarray(ref.dataobj, dtype=float)
    mine = vol.data.astype(float)
    assert np.corrcoef(mine.ravel(), theirs.ravel())[0, 1] > 0.999
    assert np.abs(mine - theirs).mean() < 1.0
