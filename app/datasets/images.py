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

from PIL import Image

from app.datasets.base import TooLarge
from app.datasets.roots import Limits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
