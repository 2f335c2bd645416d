"""VerSe adapter: one CT volume per subject (+ session) as an item, its vertebra mask and centroids.

Ingest reads NIfTI headers and the centroid JSON (`index.py`); rendering decodes a volume once into
the per-process volume cache (canonical RAS+, CT int16 HU, mask uint8) and cuts any plane from it.
A release with derivatives but no CT (masks and centroids only) is indexed as label-only items: the image is the
mask's silhouette on black, the mask drawn over it in its colours, the centroids named as usual.
Overlays: the vertebra mask in a fixed per-vertebra palette (`labels.PALETTE`) and each vertebra's
name at its centroid. A name is drawn when the centroid lies within ±CENTROID_SLAB_MM of the shown
slice, or when that vertebra's mask is visible in the slice (so a sagittal view of a scoliotic spine
still names every vertebra it cuts); it sits beside the body, anterior in sagittal and axial views
and to the patient's left in coronal ones, so it never hides the centroid's own pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.datasets.base import (
    AnnotationTarget,
    ChartSpec,
    DatasetAdapter,
    Image2D,
    IngestError,
    ItemRecord,
    ItemRef,
    OverlayLayer,
    PatientRecord,
    PixelError,
    ProgressFn,
    ScanResult,
    StudyRecord,
    View,
    ViewerSpec,
    Wording,
    no_progress,
)
from app.datasets.declarations import CENTROIDS_OFF, LOWEST_DICE_3D
from app.datasets.roots import DatasetFiles
from app.datasets.verse import labels as vl
from app.datasets.verse.index import CaseIndexer
from app.datasets.verse.layout import find_cases, looks_like_verse
from app.datasets.verse.nifti import NiftiError, load_ct, load_labels
from app.datasets.verse.patient import PATIENT_PAGE
from app.datasets.volumes import Volume, VolumeCache, canonical_shape, canonical_slices, volume_view
from app.imaging.overlay import Label
from app.imaging.volume import PLANE_AXIS, display_plane, voxel_to_display

log = logging.getLogger(__name__)

CENTROID_SLAB_MM = 2.0
LABEL_ONLY_HU = 1050  # a derivatives-only item's vertebrae: white in the bone window, under the mask's colours
LABEL_GAP_MM = 22.0  # from the centroid to the name: about a vertebral body's half width
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class VerseAdapter(DatasetAdapter):
    kind = "verse"
    export_formats = {"csv": "table", "coco": "coco", "nifti": "verse-masks"}  # docs/export.md
    facet_fields = ("split", "region", "vertebra", "vertebra_count", "ground_truth")
    editable_annotations = ("centroid", "mask")
    queue_suggestions = (LOWEST_DICE_3D, CENTROIDS_OFF)
    mask_labels = dict(vl.NAMES)  # vertebra numbers 1–28 and their names
    cache_images = False  # whole volumes are cached (app.datasets.volumes)
    facet_order = {"vertebra": [vl.NAMES[label] for label in vl.SPINE_ORDER]}  # anatomical, not alphabetical
    charts = (ChartSpec("crosstab", "Vertebrae with ground truth, per split", rows="vertebra", cols="split",
                        named_series=False),)
    wording = Wording(patient="subject", study="session")
    patient_page = PATIENT_PAGE  # the subject's sessions and CT volumes (patient.py)
    viewer = ViewerSpec(spacing_maps_planes=True, centroid_slab_mm=CENTROID_SLAB_MM, label_gap_mm=LABEL_GAP_MM)
    values_are_hu = True
    has_volumes = True
    volume_only = True
    filter_fields = ("patient",)
    facet_labels = {
        "split": {"train": "training", "val": "validation", "test": "test"},
        "ground_truth": {"mask": "vertebra mask", "centroids": "centroids", "none": "none"},
    }

    def detect(self, root: Path) -> bool:
        return looks_like_verse(root)

    def validate_annotation(self, kind: str, geometry: Mapping[str, Any], label: str | None,
                            item: AnnotationTarget, classes: Collection[str]) -> list[str]:
        """A centroid's label is a vertebra number (1–28, as in the dataset's centroid JSON)."""
        numbers = [str(n) for n in vl.NAMES]
        problems = super().validate_annotation(kind, geometry, label, item, numbers)
        if kind == "centroid" and label is None:
            problems.append("label: a centroid needs its vertebra number (1–28)")
        return problems

    def scan(self, root: Path, progress: ProgressFn = no_progress, work_dir: Path | None = None,
             files: DatasetFiles | None = None) -> ScanResult:
        cases, problems = find_cases(root)
        if not cases:
            raise IngestError(f"{root}: no CT volume found (expected rawdata/sub-*/…_ct.nii.gz or *_ct.nii.gz)",
                              problems)
        indexer = CaseIndexer(root, problems, files)
        found: list[ItemRecord] = []
        result = ScanResult(items=found, problems=problems)
        patients: dict[str, PatientRecord] = {}
        studies: dict[str, StudyRecord] = {}
        for n, case in enumerate(cases, 1):
            item = indexer.item(case)
            progress("reading headers", n, len(cases))
            if item is None:
                continue
            found.append(item)
            patients.setdefault(case.subject, PatientRecord(case.subject))
            if item.study:
                studies.setdefault(item.study, StudyRecord(item.study, case.subject))
        if not found:
            raise IngestError(f"{root}: none of the {len(cases)} CT files is a readable NIfTI volume", problems)
        result.patients, result.studies = list(patients.values()), list(studies.values())
        layout = "bids" if any("rawdata/" in i.location for i in found) else "flat"
        result.options = {"layout": "derivatives only" if cases[0].label_only else layout}
        return result

    # -- pixels -----------------------------------------------------------------------------
    _shape = staticmethod(canonical_shape)

    def slices(self, item: ItemRef, plane: str) -> Sequence[int]:
        return canonical_slices(item, plane)

    @staticmethod
    def _load(item: ItemRef, relative: str, labels: bool, volumes: VolumeCache) -> Volume:
        """The CT (`labels=False`) or a vertebra mask file of the subject, canonical, through the cache; its real
        path checked (OutsideRoots) and its header shape against MEDVIEW_MAX_VOLUME_VOXELS before decoding."""
        path = item.file(relative)
        limits = item.access.limits
        loader = (lambda: load_labels(path, limits)) if labels else (lambda: load_ct(path, limits))
        try:
            return volumes.get(str(path), loader, "labels" if labels else "")
        except FileNotFoundError:
            raise PixelError(f"{relative}: file not found") from None
        except OSError as exc:
            raise PixelError(f"{relative}: cannot be read ({exc.strerror or exc})") from None
        except (NiftiError, MemoryError) as exc:
            raise PixelError(f"{relative}: {exc or 'not enough memory to decode the volume'}") from None

    def volume(self, item: ItemRef, volumes: VolumeCache) -> Volume:
        """The CT; for a derivatives-only item (no CT, `meta.label_only`) its vertebra mask as a silhouette on a
        black background (LABEL_ONLY_HU inside a vertebra, −1000 HU elsewhere) that the mask's colours cover."""
        if not item.meta.get("label_only"):
            return self._load(item, item.location, False, volumes)
        path = item.file(item.location)

        def silhouette() -> Volume:
            labels = self._load(item, item.location, True, volumes)
            data = np.where(labels.data > 0, np.int16(LABEL_ONLY_HU), np.int16(-1000))
            return Volume(data, labels.affine, labels.spacing)

        try:
            return volumes.get(str(path), silhouette, "silhouette")
        except OSError as exc:
            raise PixelError(f"{item.location}: cannot be read ({exc.strerror or exc})") from None

    def label_volume(self, item: ItemRef, annotations: Sequence[Any], volumes: VolumeCache) -> Volume | None:
        """The subject's vertebra mask (the first mask annotation), or None when it is missing, unreadable or
        not on the CT's grid (logged: the CT still shows)."""
        for ann in annotations:
            geometry = (ann.geometry or {}) if ann.kind == "mask" else {}
            stored, relative = geometry.get("stored"), geometry.get("mask")
            if isinstance(stored, str):
                relative = f"stored mask {stored}"
            if not isinstance(relative, str):
                continue
            try:
                if isinstance(stored, str):
                    if item.masks is None:
                        raise PixelError("no mask store to read user masks from")
                    vol = item.masks.read_volume(stored, volumes)  # a user's version (app data dir)
                else:
                    vol = self._load(item, relative, True, volumes)
            except PixelError as exc:
                log.warning("VerSe mask not used: %s", exc)
                return None
            if vol.data.shape != self._shape(item):
                log.warning("VerSe mask not used: %s has shape %s, the CT %s", relative, vol.data.shape,
                            self._shape(item))
                return None
            return vol
        return None

    def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
        return volume_view(self.volume(item, volumes), view, item.location)

    def overlay(self, item: ItemRef, annotations: Sequence[Any], view: View, image: Image2D,
                volumes: VolumeCache) -> OverlayLayer:
        layer = OverlayLayer(palette=vl.PALETTE)
        index = image.slice if image.slice is not None else 0
        visible: set[int] = set()
        vol = self.label_volume(item, annotations, volumes)
        if vol is not None:
            labels, _ = display_plane(vol.data, vol.spacing, view.plane, index, labels=True)
            if labels.shape == image.pixels.shape[:2]:
                layer.mask = labels
                visible = {int(v) for v in np.flatnonzero(np.bincount(labels.ravel(), minlength=256)) if v}
        layer.shapes = self._names(item, annotations, view.plane, index, image, visible)
        return layer

    def _names(self, item: ItemRef, annotations: Sequence[Any], plane: str, index: int, image: Image2D,
               visible: set[int]) -> list[Label]:
        spacing = item.spacing or (1.0, 1.0, 1.0)
        normal_mm = spacing[PLANE_AXIS[plane]]
        slab = max(CENTROID_SLAB_MM, normal_mm / 2)
        height, width = image.pixels.shape[:2]
        pixel_mm = image.pixel_mm or min(spacing)
        font_scale = 0.45 if min(height, width) < 300 else 0.6  # as overlay.draw_shapes at native size
        gap = LABEL_GAP_MM / pixel_mm
        shapes = []
        for ann in annotations:
            if ann.kind != "centroid" or not ann.geometry.get("point"):
                continue
            label = int(ann.label) if str(ann.label).isdigit() else 0
            x, y, depth = voxel_to_display(ann.geometry["point"], self._shape(item), spacing, plane)
            if abs(depth - index) * normal_mm > slab and label not in visible:
                continue
            text = (ann.meta or {}).get("name") or vl.name(label)
            (tw, th), _ = cv2.getTextSize(text, _FONT, font_scale, 1)
            if plane == "sagittal":  # anterior = image left
                tx, ty = x - gap - tw, y + th / 2
            elif plane == "axial":  # anterior = image top
                tx, ty = x - tw / 2, y - gap
            else:  # coronal: to the patient's left (image right)
                tx, ty = x + gap, y + th / 2
            tx = min(max(2.0, tx), width - tw - 2.0)
            ty = min(max(th + 2.0, ty), height - 3.0)
            shapes.append(Label(tx, ty, text, vl.TEXT_COLOURS.get(label, (255, 240, 80))))
        return shapes
