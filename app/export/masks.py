"""Every mask an export writes is read through `mask_array` — one place, so that user-edited masks plug in here.

Today it reads the dataset's own mask files (a 2-D PNG such as BIS5k's, a NIfTI label volume such as VerSe's),
through the item's `DatasetFiles` (confined to the data roots, size limits checked before decoding).

USER MASKS PLUG IN HERE: masks drawn or edited in the app are stored by the app under its data dir, and read by a
loader in `app/review/masks.py` (helper "masks", being integrated). When that loader exists, branch below on the
annotation's geometry (a stored user mask names its file differently from a dataset path) and return its array
in the same convention as the dataset branch: 2-D → (height, width) uint8 labels of the image; 3-D → uint8
labels on the item's canonical (RAS+) grid, as `DatasetAdapter.label_volume` returns them.
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


def is_volume_mask(annotation: Any) -> bool:
    rel = mask_path(annotation) or ""
    return rel.endswith((".nii", ".nii.gz"))


def mask_array(item: ItemRef, annotation: Any) -> np.ndarray:
    """The annotation's mask: 2-D (height, width) uint8 labels (BIS5k: 1 = foreground), or a 3-D uint8 label
    volume on the item's canonical grid. MaskUnavailable when it cannot be read."""
    rel = mask_path(annotation)
    if rel is None:
        raise MaskUnavailable(f"annotation {annotation.id} is not a mask with a file")
    # (user masks: see the module docstring — the loader from app/review/masks.py is called from here)
    try:
        path = item.file(rel)
        if is_volume_mask(annotation):
            return load_labels(path, item.access.limits).data
        foreground = read_mask(path, rel, item.access.limits)
    except (PixelError, PngError, NiftiError, OSError) as exc:
        raise MaskUnavailable(f"mask {rel}: {exc}") from None
    label = int(annotation.label) if (annotation.label or "").isdigit() else 1
    return np.where(foreground, np.uint8(label), np.uint8(0))
