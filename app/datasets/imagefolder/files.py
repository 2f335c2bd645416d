"""Image files of a folder dataset: which names are images, the class-folder walk, header reads, decoding.

Ingest reads headers only: Pillow's `Image.open` parses a JPEG up to its SOF marker (a PNG up to its
first IDAT) without decoding pixels, ~25 µs per 250×250 JPEG here, so 50,000 images take about a
second. EXIF orientation is applied to the recorded size (a portrait photo stored sideways is indexed
with the size it is shown at) and to the decoded pixels. A JPEG / PNG cut short is caught from its last bytes
(`images.truncation`: no end marker), and a float image (32-bit TIFF) is decoded to refuse NaN / infinite values,
so neither is indexed to fail (or show garbage) later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageOps, UnidentifiedImageError

from app.datasets.images import nonfinite, open_image, truncation
from app.datasets.roots import Limits

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
# Top-level folder names that mean "split", when every top folder with images has one of them.
SPLIT_FOLDERS = frozenset({"train", "training", "val", "valid", "validation", "dev", "test", "testing"})
EXIF_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # orientations that swap width and height


class ImageFileError(Exception):
    """An image file that cannot be used; the message says why."""


def natural_key(text: str) -> tuple:
    """`LYT_2` before `LYT_10`; compares digit runs as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text))


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def walk_images(directory: Path) -> Iterator[str]:
    """Image files under `directory` (any depth, hidden files and folders skipped), as POSIX paths
    relative to it, in natural order."""
    for current, dirs, files in os.walk(directory):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
        rel_dir = os.path.relpath(current, directory)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for name in sorted(files, key=natural_key):
            if is_image_name(name):
                yield prefix + name


def has_images(directory: Path, budget: int = 5000) -> bool:
    """Whether an image lies under `directory`, looking at no more than `budget` entries (for detection)."""
    seen = 0
    for _current, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(is_image_name(n) for n in files):
            return True
        seen += len(files) + len(dirs)
        if seen > budget:
            return False
    return False


@dataclass(frozen=True)
class ImageHeader:
    width: int  # as displayed (after EXIF orientation)
    height: int
    format: str
    mode: str
    orientation: int = 1


def image_header(path: Path, rel: str = "", limits: Limits | None = None) -> ImageHeader:
    """Size, format and mode from the file's header (no pixel decoding); raises ImageFileError, or TooLarge
    (naming `rel`) when the header declares more than `limits` allow."""
    try:
        with open_image(path, rel or path.name, limits or Limits()) as im:
            width, height = im.size
            orientation = 1
            if "exif" in im.info:  # already parsed with the header; PNG's eXIf after IDAT is not looked for
                orientation = int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
            fmt, mode = im.format or "?", im.mode
            # a float image (32-bit TIFF) is decoded here: rare, and NaN / infinite values would show as garbage
            bad = nonfinite(np.asarray(im)) if mode == "F" else None
        cut = truncation(path, fmt)
    except FileNotFoundError:
        raise ImageFileError("file not found") from None
    except UnidentifiedImageError:
        raise ImageFileError("not a readable image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, TypeError) as exc:
        raise ImageFileError(f"unreadable image header ({exc})") from None
    if cut or bad:
        raise ImageFileError(str(cut or bad).replace("float image", f"float {fmt}"))
    if orientation in _TRANSPOSED:
        width, height = height, width
    return ImageHeader(width, height, fmt, mode, orientation)


def _grey_to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit / 32-bit / float grey scaled to its own min–max (a 12-bit image shifted by 8 would be black); a
    float image with NaN or infinite values is refused (its min–max would make every pixel garbage)."""
    if bad := nonfinite(values):
        raise ImageFileError(f"{bad}; not shown")
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.repeat(np.clip(scaled + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def read_rgb(path: Path, rel: str = "", limits: Limits | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB with EXIF orientation applied (grey, palette, CMYK converted; alpha dropped); the size is
    checked against `limits` from the header before decoding (TooLarge naming `rel`)."""
    try:
        with open_image(path, rel or path.name, limits or Limits()) as opened:
            im = ImageOps.exif_transpose(opened)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return _grey_to_uint8(np.asarray(im))
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise ImageFileError("file not found") from None
    except UnidentifiedImageError:
        raise ImageFileError("not a readable image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, TypeError) as exc:
        raise ImageFileError(f"image could not be decoded ({exc})") from None
