"""What `dicom-seg` and `dicom-sr` share: a DICOM series item's source instances (read through the item's confined
files API, pixel data left unread) and the geometry between the app's frames and theirs.

The item's `meta` holds its files in stack order (`files`; or one multi-frame file with `frames`, the stack's
frame order) and `affine`, which maps a source voxel (column, row, stack index) to patient RAS mm. The app works
on the canonical (RAS+) grid of that stack (`app.imaging.volume.to_canonical`) and draws 2-D annotations in the
display orientation of a plane of it (`app.imaging.volume.display_plane`); this module maps both back: a
canonical label volume to each source instance's rows × columns, and a display point to (column, row, stack
index) of the source — which names the instance (or frame) and its pixel position.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid

from app.datasets.base import ItemRef, PixelError
from app.imaging.volume import plane_pixel_mm, voxel_spacing

RAS = axcodes2ornt(("R", "A", "S"))
UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")
ON_SLICE = 1e-3  # a point this close to a whole stack index lies on that instance


class NotASeries(Exception):
    """The item cannot be mapped back to its source instances (the message says why)."""


def safe_name(key: str) -> str:
    """A series key (a SeriesInstanceUID, or `<uid>#2`, or a stand-in with a folder) as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._") or "series"


@dataclass
class SourceSeries:
    """One series item's source instances and geometry."""

    ref: ItemRef
    datasets: list[Any]  # pydicom datasets in stack order (one for a multi-frame file), without pixel data
    frames: list[int] | None  # stack index → 0-based frame of the multi-frame file, or None
    affine: np.ndarray  # source voxel (column, row, stack index) → patient RAS mm
    source_shape: tuple[int, int, int]  # (columns, rows, stack length)

    @property
    def transform(self) -> np.ndarray:
        return ornt_transform(io_orientation(self.affine), RAS)

    @property
    def canonical_to_source(self) -> np.ndarray:
        """Canonical voxel (i, j, k) → source voxel (column, row, stack index)."""
        return inv_ornt_aff(self.transform, self.source_shape)

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        out = [0, 0, 0]
        for axis, (target, _flip) in enumerate(io_orientation(self.affine)):
            out[int(target)] = int(self.source_shape[axis])
        return out[0], out[1], out[2]

    @property
    def canonical_spacing(self) -> tuple[float, float, float]:
        return voxel_spacing(self.affine @ self.canonical_to_source)

    def source_labels(self, canonical: np.ndarray) -> np.ndarray:
        """A canonical label volume as the source's stack: (stack index, rows, columns)."""
        if tuple(canonical.shape) != self.canonical_shape:
            raise NotASeries(f"the mask is {canonical.shape}, the series {self.canonical_shape}")
        by_source = apply_orientation(canonical, ornt_transform(RAS, io_orientation(self.affine)))
        return np.ascontiguousarray(np.transpose(by_source, (2, 1, 0)))

    def display_to_source(self, point: Sequence[float], plane: str, index: int) -> np.ndarray:
        """A point (x, y) drawn on slice `index` of `plane` (display pixels, as `/raw` shows it) → source voxel
        (column, row, stack index), continuous (the inverse of `app.imaging.volume.voxel_to_display`)."""
        n_i, n_j, n_k = self.canonical_shape
        row_mm, col_mm = plane_pixel_mm(self.canonical_spacing, plane)
        pixel = min(row_mm, col_mm)
        col = (float(point[0]) + 0.5) * pixel / col_mm - 0.5
        row = (float(point[1]) + 0.5) * pixel / row_mm - 0.5
        ijk: tuple[float, float, float]
        if plane == "axial":
            ijk = (n_i - 1 - col, n_j - 1 - row, index)
        elif plane == "coronal":
            ijk = (n_i - 1 - col, index, n_k - 1 - row)
        elif plane == "sagittal":
            ijk = (index, n_j - 1 - col, n_k - 1 - row)
        else:
            raise NotASeries(f"unknown plane {plane!r}")
        return (self.canonical_to_source @ np.array([*ijk, 1.0]))[:3]

    def patient_lps(self, source_voxel: Sequence[float] | np.ndarray) -> np.ndarray:
        """Source voxel → patient LPS mm (DICOM's frame)."""
        x, y, z = (self.affine @ np.array([*source_voxel[:3], 1.0]))[:3]
        return np.array([-x, -y, z])

    def instance_of(self, stack_index: int) -> tuple[Any, int | None]:
        """The dataset holding stack index `stack_index` and its 1-based frame number (None: single-frame)."""
        if self.frames is not None:
            return self.datasets[0], self.frames[stack_index] + 1
        return self.datasets[stack_index], None


def _completed(ds: Any, ref: ItemRef, rel: str) -> Any:
    """Anonymisers sometimes blank the instance's own UIDs (the real TotalSegmentator sample has empty
    SOPClassUID, SOPInstanceUID and StudyInstanceUID): the SOP class and instance are taken from the file meta
    (what the file says it holds), a blank study or series UID from the item (its ingest stand-in turned into a
    stable UID), so the exported object references the instances as a PACS that stored these files knows them."""
    meta = getattr(ds, "file_meta", None)
    for own, stored in (("SOPClassUID", "MediaStorageSOPClassUID"), ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
        if not str(ds.get(own) or "") and meta is not None and str(meta.get(stored) or ""):
            setattr(ds, own, meta.get(stored))
    known_uids = (("StudyInstanceUID", ref.meta.get("study_uid")), ("SeriesInstanceUID", ref.meta.get("series_uid")))
    for own, known in known_uids:
        if not str(ds.get(own) or ""):
            value = str(known or "")
            if not UID_PATTERN.fullmatch(value):
                value = generate_uid(entropy_srcs=["medview", own, value or rel])
            setattr(ds, own, value)
    if not str(ds.get("SOPInstanceUID") or ""):
        raise NotASeries(f"{rel}: has no SOPInstanceUID (nor one in its file meta) to reference")
    return ds


def read_source(ref: ItemRef) -> SourceSeries:
    """The item's source instances (headers only, read through `ref.file`: confined to the data roots)."""
    if "affine" not in ref.meta:
        raise NotASeries(f"item {ref.id} has no patient geometry")
    if ref.meta.get("regrid"):  # app.datasets.dicom.regrid: its voxels are not any instance's pixels
        raise NotASeries(f"item {ref.id} is shown resampled into a straight grid ({ref.meta.get('geometry')}); "
                         "its annotations cannot be placed on the acquired instances (export it as nifti)")
    folder = ref.meta.get("folder") or ""
    names = ref.meta.get("files") or [ref.location]
    datasets = []
    for name in names:
        rel = f"{folder}/{name}" if folder else name
        try:
            datasets.append(_completed(pydicom.dcmread(ref.file(rel), stop_before_pixels=True), ref, rel))
        except PixelError as exc:
            raise NotASeries(str(exc)) from None
        except (OSError, InvalidDicomError, EOFError, ValueError) as exc:
            raise NotASeries(f"{rel}: cannot be read ({exc})") from None
    frames = ref.meta.get("frames")
    depth = len(frames) if frames is not None else len(datasets)
    return SourceSeries(ref, datasets, list(frames) if frames is not None else None,
                        np.asarray(ref.meta["affine"], dtype=float), (int(ref.width), int(ref.height), depth))
