"""Mask annotations: uploaded label PNGs become stored masks; any version's labels; Dice between two masks.

Upload (`POST /api/items/{id}/annotations`, `PUT /api/annotations/{id}` with kind `mask`): the geometry carries
`{"png": "<base64 label PNG>"}` — for a volume also `"plane"` and `"slice"`. `prepare` decodes and checks it
(base64, a greyscale PNG, the header's size within MEDVIEW_MAX_IMAGE_PIXELS before decoding, the image's or the
plane's size, label values the dataset knows: `DatasetAdapter.mask_labels`, a 0/255 PNG meaning 0/1 for a
binary dataset) and builds the new mask: the image itself for a 2-D item; for a volume, the current 3-D mask
(the edited version's, or empty for a new annotation) with that one plane replaced (`paste_plane`, in the
viewer's display orientation), so the stored 3-D mask stays whole. `stored(prepared)` writes it to the app's mask
store around the row's transaction and removes the file again when the row is not written. Every problem is an
`InvalidInput` (400) naming the field.

The pixel side (`app.pixels.masks.MaskPixels`) is reached through the session: `session.info["masks"]`, set by
`create_app` on its session factory.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session

from app.datasets.base import PLANES
from app.datasets.registry import get_adapter
from app.datasets.stored_masks import MaskStore, Written, paste_plane, plane_slices, shown_plane
from app.datasets.volumes import Volume
from app.db.lookup import get_or_404
from app.db.models import Annotation, Dataset, Item
from app.errors import InvalidInput

GREY_MODES = ("1", "L", "I;16", "I;16B", "I;16L", "I")


class MaskSource(Protocol):
    """What this module needs of the pixel layer (implemented by app.pixels.masks.MaskPixels)."""

    store: MaskStore

    def is_volume(self, session: Session, item_id: int) -> bool: ...

    def labels(self, session: Session, item_id: int, geometry: Mapping[str, Any] | None) -> np.ndarray: ...

    def image_labels(self, session: Session, item_id: int, geometry: Mapping[str, Any] | None) -> np.ndarray: ...

    def volume_labels(self, session: Session, item_id: int, geometry: Mapping[str, Any] | None) -> Volume: ...

    def plane_labels(self, session: Session, item_id: int, geometry: Mapping[str, Any] | None,
                     plane: str | None, slice_number: int | None) -> np.ndarray: ...


def source_of(session: Session) -> MaskSource:
    source = session.info.get("masks")
    if source is None:
        raise InvalidInput("geometry.png: mask uploads are not available here (no mask store)")
    return source


@dataclass
class PreparedMask:
    """A checked upload: the encoded mask to store, the geometry that references it and measured meta."""

    data: bytes
    suffix: str  # ".png" (2-D) or ".npz" (3-D)
    geometry: dict[str, Any]  # {"stored": "<sha256><suffix>"} (+ "plane", "slice" of a volume edit)
    meta: dict[str, Any]
    written: Written | None = None


def is_upload(kind: str, geometry: Mapping[str, Any] | None) -> bool:
    return kind == "mask" and isinstance(geometry, Mapping) and "png" in geometry


def decode_png(text: Any, limit_pixels: int) -> np.ndarray:
    """The base64 label PNG of `geometry.png` as an integer array; InvalidInput naming the field otherwise."""
    if not isinstance(text, str) or not text:
        raise InvalidInput("geometry.png: a base64-encoded label PNG (string) is required")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("geometry.png: not valid base64") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise InvalidInput(f"geometry.png: not a PNG ({image.format} data)")
            width, height = image.size
            if width * height > limit_pixels:
                raise InvalidInput(f"geometry.png: {width}×{height} pixels is too large "
                                   f"(MEDVIEW_MAX_IMAGE_PIXELS {limit_pixels})")
            if image.mode not in GREY_MODES:
                raise InvalidInput(f"geometry.png: a label PNG is greyscale (8- or 16-bit), not mode {image.mode}")
            image.load()
            array = np.asarray(image)
    except InvalidInput:
        raise
    except Image.DecompressionBombError:
        raise InvalidInput(f"geometry.png: too large (over MEDVIEW_MAX_IMAGE_PIXELS {limit_pixels})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InvalidInput("geometry.png: not a readable PNG image") from None
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return array.astype(np.uint16 if array.dtype.itemsize > 1 else np.uint8)


def checked_labels(array: np.ndarray, allowed: Sequence[int]) -> np.ndarray:
    """Map a binary dataset's 0/255 PNG to 0/1 and check every value is background or a known label."""
    found = np.unique(array)
    known = {0, *allowed}
    if tuple(allowed) == (1,) and set(found.tolist()) <= {0, 255}:
        return (array > 0).astype(np.uint8)
    unknown = sorted(set(found.tolist()) - known)
    if unknown:
        shown = ", ".join(str(v) for v in unknown[:8]) + (" …" if len(unknown) > 8 else "")
        span = f"{min(allowed)}–{max(allowed)}" if allowed else "none"
        raise InvalidInput(f"geometry.png: label values {shown} are not labels of this dataset (0 and {span})")
    return array.astype(np.uint16 if array.size and int(array.max()) > 255 else np.uint8)


def prepare(session: Session, item: Item, kind: str, geometry: Mapping[str, Any],
            base: Annotation | None) -> PreparedMask | None:
    """The upload in `geometry` checked and turned into the labels to store (None when it is no upload).
    `base` is the annotation version being edited (None for a new annotation): a volume's plane replaces one
    plane of its 3-D mask."""
    if not is_upload(kind, geometry):
        return None
    unknown = sorted(set(geometry) - {"png", "plane", "slice"})
    if unknown:
        raise InvalidInput(f"geometry.{unknown[0]}: not a field of a mask upload (png, plane, slice)")
    ds = get_or_404(session, Dataset, item.dataset_id, "dataset")
    adapter = get_adapter(ds.kind)
    if "mask" not in adapter.editable_annotations:
        raise InvalidInput(f"kind: {ds.kind} items do not take 'mask' annotations")
    source = source_of(session)
    labels = checked_labels(decode_png(geometry.get("png"), source.store.limits.image_pixels),
                            sorted(adapter.mask_labels))
    base_geometry = _stored_geometry(base)
    if not source.is_volume(session, item.id):
        if geometry.get("plane") is not None or geometry.get("slice") is not None:
            raise InvalidInput("geometry.plane: this item is a 2-D image; upload the whole mask without plane/slice")
        want = (item.height or 0, item.width or 0)
        if labels.shape != want:
            raise InvalidInput(f"geometry.png: the mask is {labels.shape[1]}×{labels.shape[0]} but the image is "
                               f"{want[1]}×{want[0]}")
        data = MaskStore.encode_image(labels)
        pixels = int(np.count_nonzero(labels))
        return PreparedMask(data, ".png", {"stored": MaskStore.name_for(data, ".png")},
                            {"pixels": pixels, "area": round(pixels / max(1, labels.size), 6)})
    plane = geometry.get("plane")
    if plane not in PLANES:
        raise InvalidInput(f"geometry.plane: one of {', '.join(PLANES)} is required for a volume")
    current = source.volume_labels(session, item.id, base_geometry)
    count = plane_slices(current, plane)
    index = geometry.get("slice")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise InvalidInput(f"geometry.slice: an integer in 0–{count - 1} (the {plane} slices) is required")
    shown = shown_plane(current, plane, index)
    if labels.shape != shown.shape:
        raise InvalidInput(f"geometry.png: the plane is {labels.shape[1]}×{labels.shape[0]} but the {plane} "
                           f"plane shows {shown.shape[1]}×{shown.shape[0]}")
    data_in = current.data.astype(np.uint16) if labels.dtype == np.uint16 else current.data
    whole = paste_plane(data_in, current.spacing, plane, index, labels)
    data = MaskStore.encode_volume(whole, current.affine, current.spacing)
    return PreparedMask(data, ".npz", {"stored": MaskStore.name_for(data, ".npz"), "plane": plane, "slice": index},
                        {"voxels": int(np.count_nonzero(whole))})


def _stored_geometry(base: Annotation | None) -> dict[str, Any] | None:
    """The label source of the version being edited (its `stored` or dataset `mask` file), or None."""
    if base is None or base.kind != "mask":
        return None
    geometry = base.geometry or {}
    keep: dict[str, Any] = {k: geometry[k] for k in ("stored", "mask") if k in geometry}
    return keep or None


@contextmanager
def stored(session: Session, prepared: PreparedMask | None) -> Iterator[None]:
    """Write the prepared mask to the store for the duration of the row's write (its name, the SHA-256 of its
    bytes, is already in the geometry); when that write fails the file is removed again (if this call made it)."""
    if prepared is None:
        yield
        return
    store = source_of(session).store
    prepared.written = store.put(prepared.data, prepared.suffix)
    try:
        yield
    except BaseException:
        store.discard(prepared.written)
        raise


# -- reading and comparing -------------------------------------------------------------------------------------

def annotation_labels(session: Session, annotation_id: int) -> np.ndarray:
    """The label array of any mask annotation version (current or not): H×W for a 2-D item, the canonical 3-D
    volume for a volume item. InvalidInput when the annotation is not a mask; PixelUnavailable (404) when its
    file cannot be read."""
    row = get_or_404(session, Annotation, annotation_id, "annotation")
    if row.kind != "mask":
        raise InvalidInput(f"annotation {annotation_id} is a {row.kind}, not a mask")
    return source_of(session).labels(session, row.item_id, _stored_geometry(row))


def annotation_plane(session: Session, annotation_id: int, plane: str | None, slice_number: int | None) -> np.ndarray:
    """The label image of one view of a mask annotation version (the image, or one display plane of a volume)."""
    row = get_or_404(session, Annotation, annotation_id, "annotation")
    if row.kind != "mask":
        raise InvalidInput(f"annotation {annotation_id} is a {row.kind}, not a mask")
    return source_of(session).plane_labels(session, row.item_id, _stored_geometry(row), plane, slice_number)


def dice(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Dice between two label arrays of one shape: `overall` over the foreground (label > 0 in each) and
    `per_label` {label: Dice} for every label present in either; two empty masks (or an absent label) agree
    (1.0). ValueError when the shapes differ."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"masks of different shapes: {a.shape} and {b.shape}")
    fa, fb = a > 0, b > 0
    overall = _dice_counts(int(np.count_nonzero(fa & fb)), int(np.count_nonzero(fa)), int(np.count_nonzero(fb)))
    size = int(max(a.max(initial=0), b.max(initial=0))) + 1
    flat_a, flat_b = a.ravel().astype(np.int64), b.ravel().astype(np.int64)
    count_a = np.bincount(flat_a, minlength=size)
    count_b = np.bincount(flat_b, minlength=size)
    same = flat_a[flat_a == flat_b]
    both = np.bincount(same, minlength=size)
    per_label = {int(label): _dice_counts(int(both[label]), int(count_a[label]), int(count_b[label]))
                 for label in range(1, size) if count_a[label] or count_b[label]}
    return {"overall": overall, "per_label": per_label}


def _dice_counts(both: int, in_a: int, in_b: int) -> float:
    return 1.0 if in_a + in_b == 0 else 2.0 * both / (in_a + in_b)


def annotation_dice(session: Session, first_id: int, second_id: int) -> dict[str, Any]:
    """Dice between two mask annotation versions of the same item (e.g. two readers' masks)."""
    return dice(annotation_labels(session, first_id), annotation_labels(session, second_id))
