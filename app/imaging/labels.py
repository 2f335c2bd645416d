"""Label images (0 = background, 1… = classes or vertebra numbers) as lossless PNG for the browser.

Ground-truth and predicted masks travel in one format so the viewer can colour them, outline them and
compare them pixel by pixel (difference view): a greyscale PNG whose value is the label, 8-bit when every
label fits, else 16-bit. The image has the same size as `/raw` of the same plane and slice.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_label_png(labels: np.ndarray) -> bytes:
    """(H, W) non-negative integer labels → PNG bytes (mode L, or I;16 above 255)."""
    array = np.asarray(labels)
    if array.ndim != 2:
        raise ValueError(f"a label image is 2-D, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise ValueError("labels must lie in 0…65535")
    wide = array.size and array.max() > 255
    image = Image.fromarray(np.ascontiguousarray(array.astype(np.uint16 if wide else np.uint8)))  # I;16 or L
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_label_png(data: bytes) -> np.ndarray:
    """The inverse of `encode_label_png` (used by tests and by stored predicted masks)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image).astype(np.uint16 if image.mode.startswith("I") else np.uint8)
