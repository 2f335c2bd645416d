"""Decoding a stack's pixels into a canonical int16 volume (only when it is first viewed).

Values go through the modality LUT (RescaleSlope/Intercept, or per-frame Pixel Value Transformation in
enhanced multi-frame files) into the modality's units (HU for CT) and are kept as int16: exact when the
values are integral (CT, MR), rounded otherwise. Every failure is a PixelError naming the file and why
(a transfer syntax no installed decoder handles names the syntax and what would decode it).

Files are opened through the dataset's `DatasetFiles` (a link outside the data roots is refused, never read);
a file's Rows × Columns × frames, and a stack's total, are checked against MEDVIEW_MAX_IMAGE_PIXELS and
MEDVIEW_MAX_VOLUME_VOXELS before anything is decoded or allocated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID

from app.datasets.base import PixelError, TooLarge
from app.datasets.roots import DatasetFiles, Limits
from app.datasets.volumes import Volume
from app.imaging.volume import to_canonical, voxel_spacing

INT16_MIN, INT16_MAX = -32768, 32767


def syntax_text(uid: str) -> str:
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def _files(root: Path | DatasetFiles) -> DatasetFiles:
    return root if isinstance(root, DatasetFiles) else DatasetFiles.confined_to(root)


def read_dataset(root: Path | DatasetFiles, rel: str) -> Any:
    """The whole file (pixel data undecoded), opened by its checked real path (OutsideRoots otherwise)."""
    path = _files(root).path(rel)
    try:
        return pydicom.dcmread(path)
    except FileNotFoundError:
        raise PixelError(f"{rel}: file is missing (moved or deleted since ingest)") from None
    except OSError as exc:
        raise PixelError(f"{rel}: cannot be read ({exc.strerror or exc})") from None
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as exc:
        raise PixelError(f"{rel}: not a readable DICOM file ({type(exc).__name__}: {exc})") from None


def decode(ds: Any, rel: str, limits: Limits | None = None) -> np.ndarray:
    """The stored pixel values (frames × rows × cols for multi-frame files), once the header's size passes
    `limits` (TooLarge otherwise: nothing is decoded)."""
    uid = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
    if "PixelData" not in ds:
        raise PixelError(f"{rel}: has no pixel data")
    limits = limits or Limits()
    try:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError) as exc:
        raise PixelError(f"{rel}: image size elements are not numbers ({exc})") from None
    limits.check_image(rel, cols, rows)
    limits.check_volume(rel, (cols, rows, frames))
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise PixelError(f"{rel}: transfer syntax {syntax_text(uid)} cannot be decoded: no pixel data decoder "
                         "exists for it") from None
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        raise PixelError(f"{rel}: transfer syntax {syntax_text(uid)} cannot be decoded here (needs {needs})")
    try:
        return ds.pixel_array
    except Exception as exc:  # decoder plugins raise many types (RuntimeError, ValueError, OSError…)
        raise PixelError(f"{rel}: pixel data could not be decoded ({syntax_text(uid)}): {exc}") from None


def _frame_rescale(ds: Any, frames: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-frame (slope, intercept) of an enhanced multi-frame file, or None when it has none."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")

    def pvt(group: Any) -> Any:
        seq = group.get("PixelValueTransformationSequence") if group is not None else None
        return seq[0] if seq else None

    common = pvt(shared[0]) if shared else None
    slopes, intercepts = np.ones(frames), np.zeros(frames)
    found = False
    for f in range(frames):
        item = (pvt(per_frame[f]) if per_frame and f < len(per_frame) else None) or common
        if item is not None and "RescaleSlope" in item:
            slopes[f], intercepts[f] = float(item.RescaleSlope), float(item.get("RescaleIntercept", 0))
            found = True
    return (slopes, intercepts) if found else None


def to_int16(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """(int16 array, whether any value had to be rounded or clipped)."""
    if values.dtype.kind in "iu" and values.min(initial=0) >= INT16_MIN and values.max(initial=0) <= INT16_MAX:
        return values.astype(np.int16), False
    rounded = np.rint(values)
    changed = bool(np.any(rounded != values)) or bool(rounded.min() < INT16_MIN or rounded.max() > INT16_MAX)
    return np.clip(rounded, INT16_MIN, INT16_MAX).astype(np.int16), changed


def _slice_values(files: DatasetFiles, rel: str, shape: tuple[int, int]) -> np.ndarray:
    ds = read_dataset(files, rel)
    stored = decode(ds, rel, files.limits)
    if stored.shape != shape:
        raise PixelError(f"{rel}: image is {stored.shape[1]}×{stored.shape[0]}, the index says "
                         f"{shape[1]}×{shape[0]} (the file changed since ingest: re-ingest the dataset)")
    return to_int16(apply_modality_lut(stored, ds))[0]


def _frames_values(files: DatasetFiles, rel: str, order: Sequence[int], shape: tuple[int, int]) -> np.ndarray:
    ds = read_dataset(files, rel)
    stored = decode(ds, rel, files.limits)
    if stored.ndim == 2:
        stored = stored[np.newaxis]
    if stored.shape[1:] != shape or max(order) >= stored.shape[0]:
        raise PixelError(f"{rel}: holds {stored.shape[0]} frames of {stored.shape[2]}×{stored.shape[1]}, the index "
                         f"says {len(order)} of {shape[1]}×{shape[0]} (re-ingest the dataset)")
    rescale = _frame_rescale(ds, stored.shape[0])
    out = np.empty((len(order), *shape), np.int16)
    for k, f in enumerate(order):
        values = stored[f] * rescale[0][f] + rescale[1][f] if rescale else apply_modality_lut(stored[f], ds)
        out[k] = to_int16(values)[0]
    return out


def load_stack(root: Path | DatasetFiles, files: Sequence[str], frames: Sequence[int] | None,
               shape: tuple[int, int]) -> np.ndarray:
    """Slices in stack order as int16 (slices × rows × cols); the stack's size is checked before allocating."""
    access = _files(root)
    depth = len(frames) if frames is not None else len(files)
    problem = access.limits.volume_problem((shape[1], shape[0], depth))
    if problem:
        raise TooLarge(files[0], f"the series is {problem}; not decoded")
    if frames is not None:
        return _frames_values(access, files[0], frames, shape)
    out = np.empty((len(files), *shape), np.int16)
    for k, rel in enumerate(files):  # one by one: decoders hold the GIL (threads measured no faster)
        out[k] = _slice_values(access, rel, shape)
    return out


def load_volume(root: Path | DatasetFiles, files: Sequence[str], frames: Sequence[int] | None, shape: tuple[int, int],
                affine: np.ndarray) -> Volume:
    """The stack as a canonical RAS+ volume: voxel (column, row, slice) mapped by `affine`, then reoriented."""
    stack = load_stack(root, files, frames, shape)
    data, canonical = to_canonical(stack.transpose(2, 1, 0), affine)
    return Volume(np.ascontiguousarray(data), canonical, voxel_spacing(canonical))
