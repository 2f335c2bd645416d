"""Opening 2-D image files with their size checked from the header before anything is decoded.

Pillow's `Image.open` parses only the header (a PNG up to its first IDAT, a JPEG up to its SOF marker), so the
declared width × height is known for the price of a few hundred bytes; `open_image` refuses a file over
MEDVIEW_MAX_IMAGE_PIXELS right there (`TooLarge`, naming the file relative to its dataset), before any caller
decodes it — with Pillow, or with OpenCV (whose own guard only starts at 2³⁰ pixels). Pillow's process-wide
guard (`DecompressionBombError`, raised inside `Image.open` for more than twice `Image.MAX_IMAGE_PIXELS`, and
its warning above it) is answered with the same message, the size read from the PNG header when it is one.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from app.datasets.base import TooLarge
from app.datasets.roots import Limits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TAIL_BYTES = 4096  # what the end-of-file check reads: a marker may be followed by a little padding
JPEG_EOI = b"\xff\xd9"  # cannot occur inside entropy-coded data (0xFF is stuffed as FF 00 there)


def truncation(path: Path, fmt: str) -> str | None:
    """Why a JPEG or PNG ends early (None when it ends with its end marker), from its last bytes only: the
    header parse at ingest cannot see a cut-off file, and decoding every image to find out would cost ~100×
    more. JPEG: the end-of-image marker FF D9; PNG: the IEND chunk (trailing zero padding is tolerated)."""
    if fmt not in ("JPEG", "MPO", "PNG"):
        return None
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - TAIL_BYTES))
        tail = fh.read().rstrip(b"\x00")
    if fmt == "PNG":
        return None if b"IEND" in tail[-64:] else "truncated PNG: ends before its IEND chunk"
    return None if JPEG_EOI in tail else "truncated JPEG: ends before its end-of-image marker (FF D9)"


def nonfinite(values: np.ndarray) -> str | None:
    """Why a float image cannot be shown (NaN / infinite values), or None: windowing them gives garbage."""
    if values.dtype.kind != "f":
        return None
    nan = int(np.isnan(values).sum())
    inf = int(np.isinf(values).sum())
    if not nan and not inf:
        return None
    what = " and ".join(f"{name} values ({n} of {values.size} pixels)" for n, name in ((nan, "NaN"), (inf, "infinite"))
                        if n)
    return f"float image has {what}"


def png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first 24 bytes of a PNG, or None when they are not a PNG's."""
    if len(head) >= 24 and head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    return None


def _bomb_size(path: Path, exc: Exception) -> str:
    try:
        with open(path, "rb") as fh:
            size = png_size(fh.read(24))
    except OSError:
        size = None
    if size is not None:
        return f"{size[0]}×{size[1]}"
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return found.group(1) if found else "its declared size in"


def open_image(path: Path, rel: str, limits: Limits) -> Image.Image:
    """`Image.open(path)` (header parsed, nothing decoded), or TooLarge when its size is over the limit. The
    caller closes the image (use it in a `with`). Other errors are Pillow's own (callers turn them into their
    format's message)."""
    try:
        im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge(rel, f"{_bomb_size(path, exc)} pixels exceeds MEDVIEW_MAX_IMAGE_PIXELS "
                            f"({limits.image_pixels}); not decoded") from None
    try:
        limits.check_image(rel, *im.size)
    except TooLarge:
        im.close()
        raise
    return im
