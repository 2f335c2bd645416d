"""Where DeepLesion slices live (loose `Images_png/` folders or the published `Images_png_NN.zip`s)
and how to check and read them without extracting anything.

Ingest only lists folders and zip directories and reads each key slice's PNG header (and, for
loose files, its last 12 bytes for the IEND chunk): no pixel is decoded, so the full 928k-file
tree indexes in seconds.

Every file (a series folder, a zip, a loose PNG) is opened through the dataset's `DatasetFiles`: one that links
outside the data roots is reported (ingest) or refused (read), never read. A slice whose header declares more
than MEDVIEW_MAX_IMAGE_PIXELS, or whose file (or zip member) is larger than such a PNG can be, is refused
before its bytes are read or decoded (real slices are 512×512).
"""

from __future__ import annotations

import os
import struct
import threading
import zipfile
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

import numpy as np

from app.datasets.base import FileRefused, PixelError, Problem, TooLarge
from app.datasets.roots import DatasetFiles, Limits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND = b"IEND\xaeB`\x82"
ZIP_SEPARATOR = "::"
IMAGES_DIR = "Images_png"


_SLICE_NAMES = [f"{n:03d}.png" for n in range(1000)]  # formatting ~1M names per full scan was measurable


_NUMBERS_TEXT = ",".join(map(str, range(1000)))
_NUMBER_AT = list(accumulate((len(str(n)) + 1 for n in range(999)), initial=0))  # where number n starts


def numbers_text(numbers: list[int]) -> str:
    """",".join(map(str, numbers)) for ascending distinct numbers, cut out of one precomputed string when they
    run consecutively below 1000 (almost every key slice: formatting ~928k numbers for the fingerprints was
    measurable)."""
    if numbers and numbers[0] >= 0 and numbers[-1] < 999 and numbers[-1] - numbers[0] == len(numbers) - 1:
        return _NUMBERS_TEXT[_NUMBER_AT[numbers[0]]:_NUMBER_AT[numbers[-1] + 1] - 1]
    return ",".join(map(str, numbers))


def slice_file_name(number: int) -> str:
    return _SLICE_NAMES[number] if 0 <= number < 1000 else f"{number:03d}.png"


@dataclass
class SeriesFiles:
    """The slice files of one series folder: where they live and their file names."""

    base: str  # "Images_png/<series>" or "Images_png_01.zip::Images_png/<series>"
    names: set[str]
    real: str | None = None  # a loose folder's resolved path, checked inside the data roots when listed

    def location(self, number: int) -> str | None:
        name = slice_file_name(number)
        return f"{self.base}/{name}" if name in self.names else None

    def numbers_between(self, low: int, high: int) -> list[int]:
        """Slice numbers present in [low, high] (a Slice_range is short, so test each number; usually all are
        there, which one set operation in C confirms)."""
        names, low = self.names, max(low, 0)
        if high < len(_SLICE_NAMES) and names.issuperset(_SLICE_NAMES[low:high + 1]):
            return list(range(low, high + 1))
        return [n for n in range(low, high + 1) if slice_file_name(n) in names]


@dataclass
class SliceIndex:
    """Every slice file found, by series folder name."""

    series: dict[str, SeriesFiles] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    zips: list[str] = field(default_factory=list)


def list_slices(root: Path, files: DatasetFiles | None = None) -> SliceIndex:
    """List loose slices under root/Images_png and members of root/Images_png*.zip; a series folder or zip that
    links outside the data roots is a problem, not listed."""
    files = files or DatasetFiles.confined_to(root)
    index = SliceIndex()
    try:
        images = files.path(IMAGES_DIR)
    except FileRefused as exc:
        index.problems.append(Problem(f"{exc.rel}/", f"{exc.reason}; its slices are skipped"))
        images = None
    if images is not None and images.is_dir():
        real_images = str(images)  # resolved and checked: a folder in it that is no link lies inside too
        with os.scandir(images) as series_dirs:
            for entry in series_dirs:
                if entry.is_dir():
                    rel = f"{IMAGES_DIR}/{entry.name}"
                    try:  # a link is resolved and checked; a plain folder needs no resolving (11k of them)
                        folder = str(files.path(rel)) if entry.is_symlink() else f"{real_images}/{entry.name}"
                    except FileRefused as exc:
                        index.problems.append(Problem(f"{exc.rel}/", f"{exc.reason}; its slices are skipped"))
                        continue
                    index.series[entry.name] = SeriesFiles(rel, set(os.listdir(folder)), folder)
    for zpath in sorted(root.glob("Images_png*.zip")):
        _list_zip(files, zpath.relative_to(root).as_posix(), index)
    return index


def _list_zip(files: DatasetFiles, rel: str, index: SliceIndex) -> None:
    try:
        zpath = files.path(rel)
    except FileRefused as exc:
        index.problems.append(Problem(exc.rel, f"{exc.reason}; its slices are skipped"))
        return
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


def max_png_bytes(width: int, height: int) -> int:
    """The most a 16-bit grey PNG of this size can hold: its raw rows (stored, not deflated) plus the deflate,
    zlib and chunk framing; a file or zip member larger than this is not a slice of that size."""
    raw = (2 * width + 1) * height
    return raw + raw // 1000 + (1 << 20)


def size_problem(width: int, height: int, nbytes: int, limits: Limits) -> str | None:
    """Why a slice of this header size and file size is not read (None when it may be)."""
    problem = limits.image_problem(width, height)
    if problem:
        return problem + "; not decoded"
    if nbytes > max_png_bytes(width, height):
        return f"file is {nbytes} bytes, more than a {width}×{height} 16-bit PNG can be; not read"
    return None


def _open_in(folder: str | None, location: str) -> int | None:
    """A descriptor for a loose slice in a folder already resolved and checked (list_slices), when the file itself
    is no symbolic link (O_NOFOLLOW): no per-file path resolution, and no link swapped in before the open.
    None when there is no such folder, the file is a link (ELOOP) or cannot be opened: the caller then resolves
    and checks it, and reports what opening it says."""
    if folder is None or not hasattr(os, "O_NOFOLLOW"):
        return None
    try:
        return os.open(f"{folder}/{location.rpartition('/')[2]}", _NOFOLLOW)
    except OSError:
        return None


_NOFOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def check_slice_file(root: Path | DatasetFiles, location: str,
                     folder: str | None = None) -> tuple[int, int, str | None]:
    """Header (and for loose files the trailing IEND) check of one slice: no decoding. Its file (or zip) is opened
    through `files`: a link outside the data roots, or a header over the limits, is the problem returned.
    `folder`: the loose file's folder as `SeriesFiles.real` gives it (resolved and checked), to skip resolving."""
    files = root if isinstance(root, DatasetFiles) else DatasetFiles.confined_to(root)
    try:
        if ZIP_SEPARATOR in location:
            rel, member = location.split(ZIP_SEPARATOR, 1)
            zf = open_zip(files, rel)
            with zf.open(member) as fh:
                width, height, problem = check_png_header(fh.read(33))
            return width, height, problem or size_problem(width, height, zf.getinfo(member).file_size,
                                                          files.limits)
        fd = _open_in(folder, location)
        if fd is None:
            fd = os.open(files.path(location), os.O_RDONLY)
        try:
            width, height, problem = check_png_header(os.pread(fd, 33, 0))
            if problem:
                return width, height, problem
            size = os.fstat(fd).st_size
            too_large = size_problem(width, height, size, files.limits)
            if too_large:
                return width, height, too_large
            if os.pread(fd, 8, size - 8) != IEND:
                return width, height, "PNG is truncated (no IEND chunk at the end)"
            return width, height, None
        finally:
            os.close(fd)
    except FileRefused as exc:
        return 0, 0, exc.reason
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        return 0, 0, f"cannot read ({exc})"


_zips: dict[tuple[str, float], zipfile.ZipFile] = {}
_zips_lock = threading.Lock()


def open_zip(files: DatasetFiles, rel: str) -> zipfile.ZipFile:
    """A process-wide open ZipFile per archive (reopened if the file changed); reads are thread-safe. The
    archive's real path is checked (OutsideRoots) before it is opened or found in the cache."""
    path = files.path(rel)
    key = (str(path), path.stat().st_mtime)
    with _zips_lock:
        zf = _zips.get(key)
        if zf is None:
            zf = zipfile.ZipFile(path)
            _zips[key] = zf
        return zf


def read_slice_bytes(root: Path | DatasetFiles, location: str) -> bytes:
    """The slice's PNG bytes, from its loose file or zip member, once its header and size pass the limits."""
    files = root if isinstance(root, DatasetFiles) else DatasetFiles.confined_to(root)
    try:
        if ZIP_SEPARATOR in location:
            rel, member = location.split(ZIP_SEPARATOR, 1)
            zf = open_zip(files, rel)
            with zf.open(member) as fh:
                head = fh.read(33)
            _refuse_large(head, zf.getinfo(member).file_size, location, files.limits)
            return zf.read(member)
        with open(files.path(location), "rb") as fh:
            _refuse_large(fh.read(33), os.fstat(fh.fileno()).st_size, location, files.limits)
            fh.seek(0)
            return fh.read()
    except FileNotFoundError:
        raise PixelError(f"slice file {location} is missing") from None
    except KeyError:
        raise PixelError(f"slice {location} is not in its zip any more") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise PixelError(f"cannot read slice {location}: {exc}") from None


def _refuse_large(head: bytes, nbytes: int, location: str, limits: Limits) -> None:
    width, height, problem = check_png_header(head)
    too_large = None if problem else size_problem(width, height, nbytes, limits)
    if too_large:
        raise TooLarge(location, too_large)


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
