"""Volumes in the canonical RAS+ frame and their display planes (API.md, "Planes and slices").

Canonical index order: i → patient's right (R), j → anterior (A), k → superior (S), as nibabel's
closest canonical. Display follows radiological convention: axial and coronal put the patient's
right on the image's left; axial has anterior at the top; sagittal has anterior on the left;
coronal and sagittal have superior at the top. Pixels are made square in mm by resampling the
coarser axis (labels with nearest neighbour, never interpolated).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # the canonical axis each plane's slice index counts


def to_canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(array, affine) reordered/flipped to the closest RAS+ orientation (no resampling), like
    nibabel.as_closest_canonical but for a bare array (e.g. a DICOM series)."""
    # imported here: nibabel (and the pydicom it pulls in) costs ~0.3 s of every command's start-up, and only
    # volumes need it (a DeepLesion or PCam export, say, never does)
    from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

    transform = ornt_transform(io_orientation(affine), axcodes2ornt(("R", "A", "S")))
    return apply_orientation(data, transform), affine @ inv_ornt_aff(transform, data.shape)


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """mm per voxel along each array axis (column norms of the affine's 3×3 part)."""
    norms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    return float(norms[0]), float(norms[1]), float(norms[2])


def plane_count(shape: Sequence[int], plane: str) -> int:
    return int(shape[PLANE_AXIS[plane]])


def extract_plane(vol: np.ndarray, plane: str, index: int) -> np.ndarray:
    """One canonical slice as a display-oriented 2-D view (no copy when possible)."""
    if plane == "axial":
        return vol[::-1, ::-1, index].T  # rows: anterior→posterior, cols: patient right→left
    if plane == "coronal":
        return vol[::-1, index, ::-1].T  # rows: superior→inferior, cols: patient right→left
    if plane == "sagittal":
        return vol[index, ::-1, ::-1].T  # rows: superior→inferior, cols: anterior→posterior
    raise ValueError(f"unknown plane {plane!r}")


def plane_pixel_mm(spacing: Sequence[float], plane: str) -> tuple[float, float]:
    """(row height, column width) in mm of the display view of `plane`."""
    si, sj, sk = spacing
    return {"axial": (sj, si), "coronal": (sk, si), "sagittal": (sk, sj)}[plane]


def square_pixels(view: np.ndarray, row_mm: float, col_mm: float, labels: bool = False) -> tuple[np.ndarray, float]:
    """Resample so rows and columns are both `min(row_mm, col_mm)` mm: the true physical aspect."""
    import cv2  # here, not at module level: commands that never draw skip its ~0.1 s import
    pixel = min(row_mm, col_mm)
    height = max(1, round(view.shape[0] * row_mm / pixel))
    width = max(1, round(view.shape[1] * col_mm / pixel))
    if (height, width) == view.shape[:2]:
        return np.ascontiguousarray(view), pixel
    interpolation = cv2.INTER_NEAREST if labels else cv2.INTER_LINEAR
    src = np.ascontiguousarray(view)
    if labels and src.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
        src = src.astype(np.uint16)
    return cv2.resize(src, (width, height), interpolation=interpolation), pixel


def display_plane(vol: np.ndarray, spacing: Sequence[float], plane: str, index: int,
                  labels: bool = False) -> tuple[np.ndarray, float]:
    """extract_plane + square_pixels: the 2-D image the renderer shows, and its mm per pixel."""
    row_mm, col_mm = plane_pixel_mm(spacing, plane)
    return square_pixels(extract_plane(vol, plane, index), row_mm, col_mm, labels)


def voxel_to_display(ijk: Sequence[float], shape: Sequence[int], spacing: Sequence[float],
                     plane: str) -> tuple[float, float, float]:
    """Canonical voxel coordinates → (x, y) in the display_plane image of `plane`, and the slice
    coordinate along the plane's normal (for deciding which slice a point lies on)."""
    i, j, k = (float(v) for v in ijk)
    n_i, n_j, n_k = shape[:3]
    row_mm, col_mm = plane_pixel_mm(spacing, plane)
    pixel = min(row_mm, col_mm)
    if plane == "axial":
        col, row, depth = n_i - 1 - i, n_j - 1 - j, k
    elif plane == "coronal":
        col, row, depth = n_i - 1 - i, n_k - 1 - k, j
    elif plane == "sagittal":
        col, row, depth = n_j - 1 - j, n_k - 1 - k, i
    else:
        raise ValueError(f"unknown plane {plane!r}")
    # pixel centres: index c covers [c - 0.5, c + 0.5] in source pixels → scaled into resampled pixels
    x = (col + 0.5) * col_mm / pixel - 0.5
    y = (row + 0.5) * row_mm / pixel - 0.5
    return x, y, depth
