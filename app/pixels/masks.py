"""The label arrays of mask annotations, for editing and agreement: `MaskPixels` over the app's `PixelStore`.

The review layer (app.review.masks) reaches it through the request's database session (`session.info["masks"]`,
wired in `create_app`), so a service that only has a session can turn an uploaded plane into a whole new volume,
read any version's labels and compare two readers' masks. The labels are read exactly as the overlays and `/mask`
draw them (the adapter's `overlay` for 2-D images, `label_volume` for volumes), so an edit starts from what the
user saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.datasets.base import PixelError, View
from app.datasets.registry import get_adapter
from app.datasets.stored_masks import MaskStore
from app.datasets.volumes import Volume
from app.errors import InvalidInput
from app.imaging.overlay import Label
from app.imaging.volume import display_plane, plane_count
from app.pixels.store import PixelStore, PixelUnavailable
from app.pixels.targets import AnnotationView, ItemTarget


def _view(geometry: Mapping[str, Any]) -> AnnotationView:
    return AnnotationView(0, 1, "mask", None, None, dict(geometry), {})


class MaskPixels:
    def __init__(self, pixels: PixelStore, store: MaskStore):
        self.pixels = pixels
        self.store = store

    def _target(self, session: Session, item_id: int) -> ItemTarget:
        return self.pixels.target(session, item_id, False)

    def is_volume(self, session: Session, item_id: int) -> bool:
        target = self._target(session, item_id)
        return get_adapter(target.kind).has_volumes and target.ref.depth > 1

    def image_labels(self, session: Session, item_id: int, geometry: Mapping[str, Any] | None) -> np.ndarray:
        """A 2-D item's labels (H×W, the image's size) of a mask annotation with `geometry`; zeros for None.
        PixelUnavailable (404) naming why when the mask cannot be read."""
        target = self._target(session, item_id)
        image = self.pixels.image(target, View())
        height, width = image.pixels.shape[:2]
        if geometry is None:
            return np.zeros((height, width), np.uint8)
        layer = get_adapter(target.kind).overlay(target.ref, [_view(geometry)], View(), image, self.pixels.volumes)
        if layer.mask is None:
            reasons = [shape.text for shape in layer.shapes if isinstance(shape, Label)]
            raise PixelUnavailable("; ".join(reasons) or f"item {item_id}: the mask cannot be read")
        return np.asarray(layer.mask)

    def grid(self, session: Session, item_id: int) -> Volume:
        """The item's CT volume (its grid: shape, affine, spacing)."""
        return self.pixels.volume(self._target(session, item_id))

    def volume_labels(self, session: Session, item_id: int, geometry: Mapping[str, Any] | None) -> Volume:
        """A volume item's canonical label volume of a mask annotation with `geometry` (zeros on the CT's grid for
        None); PixelUnavailable when it cannot be read or lies on another grid."""
        target = self._target(session, item_id)
        ct = self.pixels.volume(target)
        if geometry is None:
            return Volume(np.zeros(ct.data.shape, np.uint8), ct.affine, ct.spacing)
        try:
            vol = get_adapter(target.kind).label_volume(target.ref, [_view(geometry)], self.pixels.volumes)
        except PixelError as exc:
            raise PixelUnavailable(str(exc)) from None
        if vol is None or vol.data.shape != ct.data.shape:
            raise PixelUnavailable(f"item {item_id}: the mask cannot be read or is not on the CT's grid")
        return vol

    def labels(self, session: Session, item_id: int, geometry: Mapping[str, Any] | None) -> np.ndarray:
        """2-D labels for an image, the canonical 3-D labels for a volume."""
        if self.is_volume(session, item_id):
            return self.volume_labels(session, item_id, geometry).data
        return self.image_labels(session, item_id, geometry)

    def plane_labels(self, session: Session, item_id: int, geometry: Mapping[str, Any] | None,
                     plane: str | None, slice_number: int | None) -> np.ndarray:
        """The label image of one view, as `/mask` shows it: the image for a 2-D item, else one display plane
        (default: the middle slice) of the volume."""
        if not self.is_volume(session, item_id):
            if plane not in (None, "axial") or slice_number is not None:
                raise InvalidInput("plane/slice: this item is a 2-D image")
            return self.image_labels(session, item_id, geometry)
        vol = self.volume_labels(session, item_id, geometry)
        plane = plane or "axial"
        count = plane_count(vol.data.shape, plane)
        index = count // 2 if slice_number is None else slice_number
        if not 0 <= index < count:
            raise InvalidInput(f"slice: {index} is outside the {plane} range 0–{count - 1}")
        return display_plane(vol.data, vol.spacing, plane, index, labels=True)[0]

