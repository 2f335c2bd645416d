"""DICOM adapter: folders of DICOM files (any names, found by content) indexed as series.

Ingest reads headers only (headers.py), groups and orders slices into stacks (series.py) and turns each
stack into an item (records.py). Rendering decodes the stack once into a canonical volume kept in the
shared volume cache (pixels.py, app.datasets.volumes) and cuts display planes from it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from nibabel.orientations import io_orientation
from pydicom.pixels import get_decoder

from app.datasets.base import (
    ChartSpec,
    DatasetAdapter,
    Image2D,
    IngestError,
    ItemRef,
    NumericSort,
    OverlayLayer,
    PixelError,
    Problem,
    ProgressFn,
    ScanResult,
    View,
    no_progress,
)
from app.datasets.dicom import pixels, regrid
from app.datasets.dicom.headers import Header, NonImage, looks_like_dicom, read_header, walk_files
from app.datasets.dicom.patient import MODALITIES, PATIENT_PAGE
from app.datasets.dicom.records import build_records
from app.datasets.dicom.series import Stack, build_stacks
from app.datasets.roots import DatasetFiles
from app.datasets.volumes import Volume, VolumeCache, volume_view
from app.imaging.volume import PLANE_AXIS, display_plane, to_canonical, voxel_spacing

log = logging.getLogger(__name__)

DETECT_FILES = 300  # files looked at by detect()
MAX_FILE_PROBLEMS = 20  # files of one series named one by one in the problems
MASK_PALETTE = {1: (230, 25, 75), 2: (60, 180, 75)}  # lesion, organ (dicom-seg recommends the same colours)


def undecodable_reason(uid: str) -> str | None:
    """Why pixels in this transfer syntax cannot be decoded on this installation (None when they can)."""
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return f"transfer syntax {pixels.syntax_text(uid)} cannot be decoded: no pixel data decoder exists for it"
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        return f"transfer syntax {pixels.syntax_text(uid)} cannot be decoded here (needs {needs})"
    return None


class DicomAdapter(DatasetAdapter):
    kind = "dicom"
    export_formats = {"csv": "table", "nifti": "volume-nifti", "dicom-seg": "dicom-seg",  # docs/export.md
                      "dicom-sr": "dicom-sr"}
    facet_fields = ("modality", "body_part", "plane", "sex", "age")
    patient_page = PATIENT_PAGE  # studies by date and description, with their series (patient.py)
    editable_annotations = ("recist", "bbox", "line", "mask")
    mask_labels = {1: "lesion", 2: "organ"}  # what a user's mask may hold; `dicom-seg` names its segments so
    numeric_sorts = {"age": NumericSort(column="age")}
    charts = tuple(ChartSpec("counts", f"Items per {name.replace('_', ' ')}", rows=name)
                   for name in ("modality", "body_part", "plane"))
    values_are_hu = True  # CT series (MR and others carry no HU, but share the kind)
    has_volumes = True  # a series of slices is a volume; a single image stays 2-D
    filter_fields = ("patient", "study", "manufacturer")
    facet_labels = {
        "sex": {"M": "male", "F": "female", "O": "other"},
        "modality": MODALITIES,
        "plane": {"axial": "axial", "coronal": "coronal", "sagittal": "sagittal", "oblique": "oblique",
                  "unknown": "no patient orientation"},
    }

    def detect(self, root: Path) -> bool:
        for n, (rel, _entry) in enumerate(walk_files(root)):
            if n >= DETECT_FILES:
                return False
            if looks_like_dicom(root / rel):
                return True
        return False

    def scan(self, root: Path, progress: ProgressFn = no_progress, work_dir: Path | None = None,
             files: DatasetFiles | None = None) -> ScanResult:
        access = files or DatasetFiles.confined_to(root)
        found_files = list(walk_files(root))
        total = len(found_files)
        headers: list[Header] = []
        problems: list[Problem] = []
        skipped: Counter[str] = Counter()
        examples: dict[str, NonImage] = {}
        for n, (rel, entry) in enumerate(found_files, 1):
            found = read_header(access, rel, entry)  # links outside the data roots and oversized files: Unreadable
            if isinstance(found, Header):
                headers.append(found)
            elif isinstance(found, NonImage):
                skipped[found.modality] += 1
                examples.setdefault(found.modality, found)
            else:
                problems.append(Problem(found.rel, found.reason))
            if n % 250 == 0 or n == total:
                progress("reading DICOM headers", n, total)
        for modality, count in sorted(skipped.items()):
            ex = examples[modality]
            problems.append(Problem(ex.rel, f"{count} non-image object(s) skipped: modality {modality} "
                                            f"({ex.sop_class}), e.g. this file"))
        if not headers:
            reason = f"{root}: no DICOM image files found among {total} file(s)"
            if skipped:
                reason += f" ({sum(skipped.values())} non-image DICOM objects)"
            raise IngestError(reason, problems)
        stacks, grouping = build_stacks(headers)
        problems += grouping
        stacks = self._within_limits(stacks, access, problems)
        undecodable = self._check_syntaxes(stacks, problems)
        if not stacks:
            raise IngestError(f"{root}: {len(headers)} DICOM image file(s) but no usable series", problems)
        items, patients, studies, series = build_records(stacks, undecodable)
        progress("grouping series", len(stacks), len(stacks))
        return ScanResult(items=items, problems=problems, patients=patients, studies=studies, series=series,
                          options={"files": total, "image_files": len(headers),
                                   "non_image_objects": dict(sorted(skipped.items()))})

    @staticmethod
    def _within_limits(stacks: list[Stack], files: DatasetFiles, problems: list[Problem]) -> list[Stack]:
        """Stacks whose columns × rows × slices fit MEDVIEW_MAX_VOLUME_VOXELS; the others are reported, skipped."""
        kept = []
        for stack in stacks:
            h = stack.headers[0]
            too_large = files.limits.volume_problem(stack.shape)  # as shown: a straightened grid may be larger
            if too_large:
                problems.append(Problem(h.rel, f"series {stack.key} is {too_large}; not indexed", item=stack.key))
            else:
                kept.append(stack)
        return kept

    @staticmethod
    def _check_syntaxes(stacks: list[Stack], problems: list[Problem]) -> dict[str, str]:
        """Stacks whose transfer syntax this installation cannot decode: indexed, and reported now."""
        out: dict[str, str] = {}
        for stack in stacks:
            bad = [(h, reason) for h in stack.headers if (reason := undecodable_reason(h.transfer_syntax))]
            if bad:
                out[stack.key] = bad[0][1]
            for h, reason in bad[:MAX_FILE_PROBLEMS]:  # every such file named (a whole series: the first ones)
                problems.append(Problem(h.rel, f"{reason}; the series is indexed but this file cannot be shown",
                                        item=stack.key))
            if len(bad) > MAX_FILE_PROBLEMS:
                problems.append(Problem(bad[0][0].rel, f"{len(bad) - MAX_FILE_PROBLEMS} more files of this series "
                                                       "have an undecodable transfer syntax", item=stack.key))
        return out

    # -- pixels -----------------------------------------------------------------------------
    @staticmethod
    def _files(item: ItemRef) -> list[str]:
        folder = item.meta.get("folder") or ""
        return [f"{folder}/{name}" if folder else name for name in item.meta.get("files") or [item.location]]

    def volume(self, item: ItemRef, volumes: VolumeCache) -> Volume:
        files = self._files(item)
        affine = np.asarray(item.meta["affine"], dtype=float)
        frames = item.meta.get("frames")
        shape = (item.height, item.width)
        variant = f"{item.meta.get('series_uid')}/{item.meta.get('source')}"
        first = item.file(files[0])  # OutsideRoots before the cache even stats it
        spec = item.meta.get("regrid")  # tilted / unevenly spaced: resampled into its straight grid
        try:
            return volumes.get(str(first), lambda: regrid.load_straight(item.access, files, frames, shape, spec)
                               if spec else pixels.load_volume(item.access, files, frames, shape, affine), variant)
        except FileNotFoundError:
            raise PixelError(f"{files[0]}: file is missing (moved or deleted since ingest)") from None
        except OSError as exc:
            raise PixelError(f"{files[0]}: cannot be read ({exc.strerror or exc})") from None

    def slices(self, item: ItemRef, plane: str) -> Sequence[int]:
        if plane not in PLANE_AXIS:
            raise ValueError(f"unknown plane {plane!r}")
        shape = item.meta.get("canonical_shape") or [item.width, item.height, item.depth]
        return range(int(shape[PLANE_AXIS[plane]]))

    def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
        single = self._acquired_slice(item, view)
        if single is not None:
            return single
        return volume_view(self.volume(item, volumes), view)

    def _acquired_slice(self, item: ItemRef, view: View) -> Image2D | None:
        """A view in the plane the slices were acquired in needs one file, not the whole series: decode just
        that file and orient it like the volume would be (same affine, so the same reorientation). This keeps
        thumbnails and slice scrolling cheap however long (or compressed) the series is."""
        if item.meta.get("frames") is not None or "affine" not in item.meta or item.meta.get("regrid"):
            return None
        affine = np.asarray(item.meta["affine"], dtype=float)
        target, flip = io_orientation(affine)[2]
        if int(target) != PLANE_AXIS[view.plane]:
            return None
        files = self._files(item)
        count = len(files)
        index = count // 2 if view.slice is None else view.slice
        if not 0 <= index < count:
            raise PixelError(f"slice {index} is outside the {view.plane} range 0–{count - 1}")
        position = count - 1 - index if flip < 0 else index
        stack = pixels.load_stack(item.access, [files[position]], None, (item.height, item.width))
        data, canonical = to_canonical(stack.transpose(2, 1, 0), affine)
        image, pixel_mm = display_plane(data, voxel_spacing(canonical), view.plane, 0)
        return Image2D(image, index, pixel_mm)

    def label_volume(self, item: ItemRef, annotations: Sequence[Any], volumes: VolumeCache) -> Volume | None:
        """A user's mask (the first mask annotation with a stored 3-D label volume, app.datasets.stored_masks),
        or None when there is none, it cannot be read or is not on the series' grid (logged)."""
        for ann in annotations:
            stored = (ann.geometry or {}).get("stored") if ann.kind == "mask" else None
            if not isinstance(stored, str) or not stored.endswith(".npz"):
                continue
            if item.masks is None:
                raise PixelError("no mask store to read user masks from")
            vol = item.masks.read_volume(stored, volumes)
            shape = tuple(int(v) for v in item.meta.get("canonical_shape") or ())
            if vol.data.shape != shape:
                log.warning("DICOM mask not used: stored mask %s has shape %s, the series %s", stored,
                            vol.data.shape, shape)
                return None
            return vol
        return None

    def overlay(self, item: ItemRef, annotations: Sequence[Any], view: View, image: Image2D,
                volumes: VolumeCache) -> OverlayLayer:
        """Plain DICOM series carry no ground truth; a user's mask is drawn: the view's plane of a volume's
        stored label volume (`label_volume`), or a single image's stored 2-D label PNG of its size."""
        if not any(a.kind == "mask" for a in annotations):
            return OverlayLayer()
        if item.depth > 1:
            vol = self.label_volume(item, annotations, volumes)
            if vol is not None:
                index = image.slice if image.slice is not None else 0
                labels, _ = display_plane(vol.data, vol.spacing, view.plane, index, labels=True)
                if labels.shape == image.pixels.shape[:2]:
                    return OverlayLayer(mask=labels, palette=MASK_PALETTE)
            return OverlayLayer()
        for ann in annotations:
            stored = (ann.geometry or {}).get("stored") if ann.kind == "mask" else None
            if isinstance(stored, str) and stored.endswith(".png") and item.masks is not None:
                mask = item.masks.read_image(stored)
                if mask.shape == image.pixels.shape[:2]:
                    return OverlayLayer(mask=mask, palette=MASK_PALETTE)
        return OverlayLayer()
