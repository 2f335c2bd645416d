"""Where DeepLesion slices live (loose `Images_png/` folders or the published `Images_png_NN.zip`s)
and how to check and read them without extracting anything.

Ingest only lists folders and zip directories and reads each key slice's PNG header (and, for
loose files, its last 12 bytes for the IEND chunk): no pixel is decoded, so the full 928k-file
tree indexes in seconds.
"""

from __future__ import annotations

import os
import struct
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.datasets.base import PixelError, Problem

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND = b"IEND\xaeB`\x82"
ZIP_SEPARATOR = "::"
IMAGES_DIR = "Images_png"


@dataclass
class SliceIndex:
    """Every slice file found: series folder → {slice number: location relative to the root}."""

    series: dict[str, dict[int, str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    zips: list[str] = field(default_factory=list)

    def add(self, series_dir: str, file_name: str, location: str) -> None:
        stem, dot, ext = file_name.partition(".")
        if ext.lower() != "png" or not stem.isdigit():
            return
        self.series.setdefault(series_dir, {})[int(stem)] = location


def list_slices(root: Path) -> SliceIndex:
    """List loose slices under root/Images_png and members of root/Images_png*.zip."""
    index = SliceIndex()
    images = root / IMAGES_DIR
    if images.is_dir():
        with os.scandir(images) as series_dirs:
            for entry in series_dirs:
                if not entry.is_dir():
                    continue
                with os.scandir(entry.path) as files:
                    for f in files:
                        index.add(entry.name, f.name, f"{IMAGES_DIR}/{entry.name}/{f.name}")
    for zpath in sorted(root.glob("Images_png*.zip")):
        _list_zip(root, zpath, index)
    return index


def _list_zip(root: Path, zpath: Path, index: SliceIndex) -> None:
    rel = zpath.relative_to(root).as_posix()
    try:
        with zipfile.ZipFile(zpath) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        index.problems.append(Problem(rel, f"not a readable zip file ({exc}); its slices are skipped"))
        return
    index.zips.append(rel)
    for name in names:
        parts = name.split("/")
        if len(parts) >= 2 and not name.endswith("/"):
            index.add(parts[-2], parts[-1], f"{rel}{ZIP_SEPARATOR}{name}")


def check_png_header(head: bytes) -> tuple[int, int, str | None]:
    """(width, height, problem) for the first 33 bytes of a file expected to be a 16-bit grey PNG."""
    if len(head) < 33 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return 0, 0, "not a PNG file" if len(head) >= 8 else "file is empty or truncated (not a PNG)"
    width, height, depth, color = struct.unpack(">IIBB", head[16:26])
    if color != 0:
        kinds = {2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
        return width, height, f"expected a 16-bit greyscale PNG, found {kinds.get(color, color)} colour type"
    if depth != 16:
        return width, height, f"expected a 16-bit greyscale PNG, found {depth}-bit"
    return width, height, None


def check_slice_file(root: Path, location: str) -> tuple[int, int, str | None]:
    """Header (and for loose files the trailing IEND) check of one slice: no decoding."""
    try:
        if ZIP_SEPARATOR in location:
            zf = open_zip(root, location.split(ZIP_SEPARATOR, 1)[0])
            with zf.open(location.split(ZIP_SEPARATOR, 1)[1]) as member:
                return check_png_header(member.read(33))
        with open(root / location, "rb") as fh:
            head = fh.read(33)
            width, height, problem = check_png_header(head)
            if problem:
                return width, height, problem
            fh.seek(-12, os.SEEK_END)
            if fh.read(12)[4:] != IEND:
                return width, height, "PNG is truncated (no IEND chunk at the end)"
            return width, height, None
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        return 0, 0, f"cannot read ({exc})"


_zips: dict[tuple[str, float], zipfile.ZipFile] = {}
_zips_lock = threading.Lock()


def open_zip(root: Path, rel: str) -> zipfile.ZipFile:
    """A process-wide open ZipFile per archive (reopened if the file changed); reads are thread-safe."""
    path = root / rel
    key = (str(path), path.stat().st_mtime)
    with _zips_lock:
        zf = _zips.get(key)
        if zf is None:
            zf = zipfile.ZipFile(path)
            _zips[key] = zf
        return zf


def read_slice_bytes(root: Path, location: str) -> bytes:
    try:
        if ZIP_SEPARATOR in location:
            rel, member = location.split(ZIP_SEPARATOR, 1)
            return open_zip(root, rel).read(member)
        return (root / location).read_bytes()
    except FileNotFoundError:
        raise PixelError(f"slice file {location} is missing") from None
    except KeyError:
        raise PixelError(f"slice {location} is not in its zip any more") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise PixelError(f"cannot read slice {location}: {exc}") from None


def decode_slice(data: bytes, location: str) -> np.ndarray:
    """16-bit PNG bytes → uint16 array, with a clear error for anything else."""
    _, _, problem = check_png_header(data[:33])
    if problem:
        raise PixelError(f"{location}: {problem}")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 2:
        raise PixelError(f"{location}: PNG could not be decoded (corrupt or truncated)")
    return arr
