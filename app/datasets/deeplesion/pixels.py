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

import numpy as np

from app.datasets.base import PixelError, Problem

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND = b"IEND\xaeB`\x82"
ZIP_SEPARATOR = "::"
IMAGES_DIR = "Images_png"


_SLICE_NAMES = [f"{n:03d}.png" for n in range(1000)]  # formatting ~1M names per full scan was measurable


def slice_file_name(number: int) -> str:
    return _SLICE_NAMES[number] if 0 <= number < 1000 else f"{number:03d}.png"


@dataclass
class SeriesFiles:
    """The slice files of one series folder: where they live and their file names."""

    base: str  # "Images_png/<series>" or "Images_png_01.zip::Images_png/<series>"
    names: set[str]

    def location(self, number: int) -> str | None:
        name = slice_file_name(number)
        return f"{self.base}/{name}" if name in self.names else None

    def numbers_between(self, low: int, high: int) -> list[int]:
        """Slice numbers present in [low, high] (a Slice_range is short, so test each number)."""
        names = self.names
        return [n for n in range(max(low, 0), high + 1) if slice_file_name(n) in names]


@dataclass
class SliceIndex:
    """Every slice file found, by series folder name."""

    series: dict[str, SeriesFiles] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    zips: list[str] = field(default_factory=list)


def list_slices(root: Path) -> SliceIndex:
    """List loose slices under root/Images_png and members of root/Images_png*.zip."""
    index = SliceIndex()
    images = root / IMAGES_DIR
    if images.is_dir():
        with os.scandir(images) as series_dirs:
            for entry in series_dirs:
                if entry.is_dir():
                    index.series[entry.name] = SeriesFiles(f"{IMAGES_DIR}/{entry.name}",
                                                           set(os.listdir(entry.path)))
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
    by_dir: dict[str, list[str]] = {}
    for name in names:
        folder, _, file_name = name.rpartition("/")
        if file_name:
            by_dir.setdefault(folder, []).append(file_name)
    for folder, file_names in by_dir.items():
        series = folder.rpartition("/")[2]
        if series and series not in index.series:
            index.series[series] = SeriesFiles(f"{rel}{ZIP_SEPARATOR}{folder}", set(file_names))


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
            rel, member = location.split(ZIP_SEPARATOR, 1)
            with open_zip(root, rel).open(member) as fh:
                return check_png_header(fh.read(33))
        fd = os.open(os.path.join(root, location), os.O_RDONLY)
        try:
            width, height, problem = check_png_header(os.pread(fd, 33, 0))
            if problem:
                return width, height, problem
            size = os.fstat(fd).st_size
            if os.pread(fd, 8, size - 8) != IEND:
                return width, height, "PNG is truncated (no IEND chunk at the end)"
            return width, height, None
        finally:
            os.close(fd)
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
    import cv2  # imported here: ingest never decodes, and skipping the import saves its start-up

    _, _, problem = check_png_header(data[:33])
    if problem:
        raise PixelError(f"{location}: {problem}")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 2:
        raise PixelError(f"{location}: PNG could not be decoded (corrupt or truncated)")
    return arr
