"""Plain NIfTI folders (`nifti`): one volume per item, with its label map paired by name (app.datasets.nifti.layout).

Ingest reads headers and lists each label map's labels (`index.py`); rendering decodes a volume once into the
app's volume cache (canonical RAS+, int16; a float image × its `display_scale`, labels uint8) and cuts any plane
from it with app.datasets.volumes, as VerSe does. The overlay is the label map, one fixed colour per label value
(app.datasets.nifti.colours), so a label keeps its colour across items and datasets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.datasets.base import (
    ChartSpec,
    DatasetAdapter,
    Image2D,
    IngestError,
    ItemRecord,
    ItemRef,
    OverlayLayer,
    PixelError,
    ProgressFn,
    ScanResult,
    View,
    ViewerSpec,
    no_progress,
)
from app.datasets.nifti.colours import colour
from app.datasets.nifti.index import SPACING_BANDS, PairIndexer
from app.datasets.nifti.layout import find_pairs, looks_like_nifti
from app.datasets.roots import DatasetFiles, Limits
from app.datasets.verse.nifti import NiftiError, load_labels, to_hu_int16
from app.datasets.volumes import Volume, VolumeCache, canonical_shape, canonical_slices, volume_view
from app.imaging.volume import display_plane, to_canonical, voxel_spacing

log = logging.getLogger(__name__)
PALETTE_LABELS = 14  # labels every overlay palette names (two tiers of colours)

def load_image(path: Path, limits: Limits | None, scale: float = 1.0) -> Volume:
    """The whole image, canonical RAS+, int16 (values × `scale` first); the header's shape is checked against
    `limits` before any voxel is decoded. NiftiError says what is wrong."""
    import nibabel as nib

    try:
        img: Any = nib.load(str(path))
        shape = tuple(int(n) for n in img.shape)
    except Exception as exc:  # nibabel raises many kinds
        raise NiftiError(f"not a readable NIfTI file ({str(exc)[:200]})") from None
    problem = (limits or Limits()).volume_problem(shape[:3])
    if problem:
        raise NiftiError(f"the header says {problem}; not decoded")
    try:
        data = np.asanyarray(img.dataobj)
        data = data[..., 0] if data.ndim == 4 else data
        if scale != 1.0:
            data = data.astype(np.float32) * np.float32(scale)
        data = to_hu_int16(data)
    except Exception as exc:
        raise NiftiError(f"voxel data cannot be read ({str(exc)[:200]})") from None
    canonical, affine = to_canonical(data, img.affine)
    return Volume(canonical, affine, voxel_spacing(affine))


class NiftiAdapter(DatasetAdapter):
    kind = "nifti"
    export_formats = {"csv": "table", "nifti": "nifti-pairs"}  # docs/export.md
    facet_fields = ("split", "has_labels", "labels", "shape", "spacing_band", "channels")
    facet_order = {"spacing_band": [name for _, name in SPACING_BANDS], "has_labels": ["yes", "no"]}
    facet_labels = {"split": {"train": "training (Tr)", "val": "validation", "test": "test (Ts)"}}
    charts = (ChartSpec("crosstab", "Labels present, per split", rows="labels", cols="split"),)
    viewer = ViewerSpec(spacing_maps_planes=True)
    values_are_hu = True  # CT volumes (MR and others share the kind; their window is measured at ingest)
    has_volumes = True
    volume_only = True
    cache_images = False  # whole volumes are cached (app.datasets.volumes)
    editable_annotations = ("mask",)  # one plane of the label map at a time; the whole volume stored by the app
    mask_labels = {n: f"label {n}" for n in range(1, 256)}  # any value a uint8 label map holds (names: dataset.json)

    def detect(self, root: Path) -> bool:
        return looks_like_nifti(root)

    def scan(self, root: Path, progress: ProgressFn = no_progress, work_dir: Path | None = None,
             files: DatasetFiles | None = None) -> ScanResult:
        layout = find_pairs(root)
        problems = layout.problems
        if not layout.pairs:
            raise IngestError(f"{root}: no NIfTI volume found (expected .nii or .nii.gz files)", problems)
        indexer = PairIndexer(root, problems, layout.described, files)
        found: list[ItemRecord] = []
        for n, pair in enumerate(layout.pairs, 1):
            item = indexer.item(pair)
            progress("reading headers", n, len(layout.pairs))
            if item is not None:
                found.append(item)
        if not found:
            raise IngestError(f"{root}: none of the {len(layout.pairs)} NIfTI files is a readable volume", problems)
        layouts = sorted({pair.layout for pair in layout.pairs})
        described = layout.described
        options = {"layout": "+".join(layouts),
                   "dataset_json": described.path.relative_to(root).as_posix() if described.path else None,
                   "label_names": {str(k): v for k, v in sorted(described.labels.items())}}
        return ScanResult(items=found, problems=problems, options=options)

    # -- pixels -----------------------------------------------------------------------------
    _shape = staticmethod(canonical_shape)

    def slices(self, item: ItemRef, plane: str) -> Sequence[int]:
        return canonical_slices(item, plane)

    @staticmethod
    def _load(item: ItemRef, relative: str, labels: bool, volumes: VolumeCache) -> Volume:
        path = item.file(relative)
        limits = item.access.limits
        scale = float(item.meta.get("display_scale") or 1.0)
        loader = (lambda: load_labels(path, limits)) if labels else (lambda: load_image(path, limits, scale))
        try:
            return volumes.get(str(path), loader, "labels" if labels else f"x{scale:g}")
        except FileNotFoundError:
            raise PixelError(f"{relative}: file not found") from None
        except OSError as exc:
            raise PixelError(f"{relative}: cannot be read ({exc.strerror or exc})") from None
        except (NiftiError, MemoryError) as exc:
            raise PixelError(f"{relative}: {exc or 'not enough memory to decode the volume'}") from None

    def volume(self, item: ItemRef, volumes: VolumeCache) -> Volume:
        return self._load(item, item.location, False, volumes)

    def label_volume(self, item: ItemRef, annotations: Sequence[Any], volumes: VolumeCache) -> Volume | None:
        """The item's label map (its first mask annotation: the dataset's file or a user's stored version), or
        None when it is missing, unreadable or not on the image's grid (logged: the image still shows)."""
        for ann in annotations:
            geometry = (ann.geometry or {}) if ann.kind == "mask" else {}
            stored, relative = geometry.get("stored"), geometry.get("mask")
            if not isinstance(stored, str) and not isinstance(relative, str):
                continue
            try:
                if isinstance(stored, str):
                    if item.masks is None:
                        raise PixelError("no mask store to read user masks from")
                    vol = item.masks.read_volume(stored, volumes)
                else:
                    vol = self._load(item, str(relative), True, volumes)
            except PixelError as exc:
                log.warning("NIfTI label map not used: %s", exc)
                return None
            if vol.data.shape != self._shape(item):
                log.warning("NIfTI label map not used: shape %s, the image %s", vol.data.shape, self._shape(item))
                return None
            return vol
        return None

    def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
        return volume_view(self.volume(item, volumes), view, item.location)

    def overlay(self, item: ItemRef, annotations: Sequence[Any], view: View, image: Image2D,
                volumes: VolumeCache) -> OverlayLayer:
        layer = OverlayLayer()
        vol = self.label_volume(item, annotations, volumes)
        if vol is None:
            return layer
        index = image.slice if image.slice is not None else 0
        labels, _ = display_plane(vol.data, vol.spacing, view.plane, index, labels=True)
        if labels.shape == image.pixels.shape[:2]:
            layer.mask = labels
            present = {int(v) for v in np.flatnonzero(np.bincount(labels.ravel(), minlength=256)) if v}
            # the item's labels and the first PALETTE_LABELS too, so a brush stroke of a label absent from this
            # slice is drawn in its own colour at once
            known = set(item.meta.get("label_values") or ()) | set(range(1, PALETTE_LABELS + 1))
            layer.palette = {v: colour(v) for v in sorted(present | known)}
        return layer
