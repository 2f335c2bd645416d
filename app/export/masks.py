"""Every mask an export writes is read through `mask_array` — one place for the dataset's files and the users' edits.

It reads the dataset's own mask files (a 2-D PNG such as BIS5k's, a NIfTI label volume such as VerSe's) through
the item's `DatasetFiles` (confined to the data roots, size limits checked before decoding), and the masks users
drew or edited (geometry `{"stored": "<sha>.png|npz"}`) from the app's mask store on the same `ItemRef`
(`ItemRef.masks`, app.datasets.stored_masks), both in one convention: 2-D → (height, width) labels of the image;
3-D → labels on the item's canonical (RAS+) grid, as `DatasetAdapter.label_volume` returns them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.datasets.base import ItemRef, PixelError
from app.datasets.bis5k.files import PngError, read_mask
from app.datasets.verse.nifti import NiftiError, load_labels


class MaskUnavailable(Exception):
    """A mask annotation whose pixels cannot be read; the message says which and why."""


def mask_path(annotation: Any) -> str | None:
    """The file a mask annotation names (relative to the dataset root), or None."""
    value = (annotation.geometry or {}).get("mask") if annotation.kind == "mask" else None
    return value if isinstance(value, str) else None


def stored_name(annotation: Any) -> str | None:
    """The app's stored mask a user's mask version names (`geometry.stored`), or None."""
    value = (annotation.geometry or {}).get("stored") if annotation.kind == "mask" else None
    return value if isinstance(value, str) else None


def is_volume_mask(annotation: Any) -> bool:
    stored = stored_name(annotation)
    if stored is not None:
        return stored.endswith(".npz")
    rel = mask_path(annotation) or ""
    return rel.endswith((".nii", ".nii.gz"))


def mask_array(item: ItemRef, annotation: Any) -> np.ndarray:
    """The annotation's mask: 2-D (height, width) uint8 labels (BIS5k: 1 = foreground), or a 3-D uint8 label
    volume on the item's canonical grid. MaskUnavailable when it cannot be read."""
    stored = stored_name(annotation)
    if stored is not None:
        if item.masks is None:
            raise MaskUnavailable(f"annotation {annotation.id}: no mask store to read the user's mask from")
        try:
            if stored.endswith(".npz"):
                return item.masks.read_volume(stored).data
            return item.masks.read_image(stored)
        except PixelError as exc:
            raise MaskUnavailable(str(exc)) from None
    rel = mask_path(annotation)
    if rel is None:
        raise MaskUnavailable(f"annotation {annotation.id} is not a mask with a file")
    try:
        path = item.file(rel)
        if is_volume_mask(annotation):
            return load_labels(path, item.access.limits).data
        foreground = read_mask(path, rel, item.access.limits)
    except (PixelError, PngError, NiftiError, OSError) as exc:
        raise MaskUnavailable(f"mask {rel}: {exc}") from None
    label = int(annotation.label) if (annotation.label or "").isdigit() else 1
    return np.where(foreground, np.uint8(label), np.uint8(0))
