"""Finding PatchCamelyon's files and opening them for a scan: split discovery, `.h5.gz` decompression
into a cache, and header checks of the HDF5 datasets (shapes, dtypes, chunk layout) without reading pixels.

Published layout (github.com/basveeling/pcam): `camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5`
(x: N×96×96×3 uint8, y: N×1×1×1 uint8) and `…_meta.csv`, distributed as `.h5.gz`. An uncompressed copy
next to a `.gz` wins; otherwise the `.gz` is decompressed once, streamed in chunks, into
`<work dir>/<hash of path, size, mtime>/<name>.h5` and written under a temporary name that is renamed
only when the gzip stream ended with a good CRC, so an interrupted or corrupt archive never leaves a
file that looks complete. Decompression stops at a byte budget (MEDVIEW_MAX_DECOMPRESSED_MB, `GzipTooLarge`)
and the partial output is deleted on any failure, whatever the exception.

A dataset's declared shape is only believed when the file can hold it (`storage_problem`): HDF5 reads never
written (unallocated) storage as the fill value, so a KB-sized file may declare a million patches.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.datasets.base import ProgressFn

if TYPE_CHECKING:
    import numpy as np

PATCH = 96
_NAME = re.compile(r"^camelyonpatch_level_(\d+)_split_([A-Za-z0-9]+)_(x|y|meta)\.(h5|h5\.gz|csv)$")
SPLIT_ORDER = ("train", "valid", "test")
GZ_CHUNK = 4 << 20
CHUNK_CACHE_LIMIT = 1 << 20  # HDF5's default per-dataset chunk cache (PERFORMANCE.md §6)


class GzipCorrupt(Exception):
    """A `.h5.gz` that is not a complete, valid gzip stream; the message says what is wrong."""


class GzipTooLarge(GzipCorrupt):
    """A `.h5.gz` that decompresses to more than the byte budget; nothing of it is kept."""


@dataclass
class SplitFiles:
    """The files of one split, as paths relative to the dataset root (None when absent)."""

    name: str
    x: str | None = None
    y: str | None = None
    meta: str | None = None


def split_files(root: Path) -> list[SplitFiles]:
    """PCam files in root and its direct subfolders, grouped by split (train, valid, test first)."""
    found: dict[str, SplitFiles] = {}
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            m = _NAME.match(name)
            if m is None:
                continue
            rel = (folder / name).relative_to(root).as_posix()
            split, role, ext = m.group(2), m.group(3), m.group(4)
            entry = found.setdefault(split, SplitFiles(split))
            current = getattr(entry, role)
            if current is None or (current.endswith(".gz") and ext == "h5"):  # the uncompressed copy wins
                setattr(entry, role, rel)
    order = {s: i for i, s in enumerate(SPLIT_ORDER)}
    return sorted(found.values(), key=lambda s: (order.get(s.name, len(order)), s.name))


def has_pcam_files(root: Path) -> bool:
    try:
        return any(s.x or s.y for s in split_files(root))
    except OSError:
        return False


def cache_path(gz: Path, cache_dir: Path) -> Path:
    """Where the decompressed copy of `gz` lives: keyed by its absolute path, size and mtime."""
    st = gz.stat()
    key = f"{gz.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    return cache_dir / digest / gz.name[:-3]


def gunzip_cached(gz: Path, cache_dir: Path, progress: ProgressFn, max_bytes: int | None = None) -> Path:
    """The decompressed copy of `gz` (made once, streamed in 4 MiB chunks); raises GzipCorrupt, or GzipTooLarge
    as soon as more than `max_bytes` come out. Whatever fails (a bad stream, the budget, a full disk, an
    interrupt), the partial output is deleted: nothing is left behind."""
    target = cache_path(gz, cache_dir)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    total = gz.stat().st_size
    phase = f"decompressing {gz.name}"
    progress(phase, 0, total)
    done = False
    try:
        with open(gz, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as src, open(partial, "wb") as dst:
            buf = bytearray(GZ_CHUNK)
            view = memoryview(buf)
            n_chunks = 0
            written = 0
            while n := src.readinto(view):
                written += n
                if max_bytes is not None and written > max_bytes:
                    raise GzipTooLarge(f"decompresses to more than MEDVIEW_MAX_DECOMPRESSED_MB "
                                       f"({max_bytes // (1 << 20)} MB); the partial copy was deleted")
                dst.write(view[:n])
                n_chunks += 1
                if n_chunks % 16 == 0:
                    progress(phase, raw.tell(), total)
            if n_chunks == 0:
                raise GzipCorrupt("the gzip stream is empty")
        progress(phase, total, total)
        os.replace(partial, target)
        done = True
    except GzipTooLarge:
        raise
    except (gzip.BadGzipFile, EOFError, zlib.error, GzipCorrupt) as exc:
        raise GzipCorrupt(_gzip_reason(exc)) from None
    finally:
        if not done:
            _discard(partial)
    _drop_stale_copies(gz, target, cache_dir)
    return target


def discard_copy(copy: Path) -> None:
    """Delete a decompressed copy (and its folder's note, and the folder when empty): a split that was rejected
    after decompression keeps nothing in the data dir."""
    copy.unlink(missing_ok=True)
    if not any(copy.parent.glob("*.h5")):
        (copy.parent / SOURCE_NOTE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        copy.parent.rmdir()


SOURCE_NOTE = "source.txt"


def _drop_stale_copies(gz: Path, target: Path, cache_dir: Path) -> None:
    """Remove copies made from an earlier version of the same `.gz` (each would be gigabytes)."""
    source = str(gz.resolve())
    (target.parent / SOURCE_NOTE).write_text(source + "\n")
    for note in cache_dir.glob(f"*/{SOURCE_NOTE}"):
        if note.parent == target.parent:
            continue
        try:
            same = note.read_text().strip() == source
        except OSError:
            continue
        if same:
            stale = note.parent / target.name
            stale.unlink(missing_ok=True)
            note.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                note.parent.rmdir()


def _discard(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        partial.parent.rmdir()  # only when empty


def _gzip_reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, EOFError):
        return "truncated gzip file (the stream ends before its end marker); download it again"
    if "Not a gzipped file" in text:
        return "not a gzip file (" + text + ")"
    if "CRC check failed" in text or "Incorrect length" in text:
        return f"corrupt gzip file ({text}); download it again"
    return f"corrupt gzip file ({text or type(exc).__name__}); download it again"


@dataclass
class XInfo:
    """What the x dataset's header says (no pixel is read)."""

    count: int
    chunks: tuple[int, ...] | None
    compression: str | None

    @property
    def chunk_bytes(self) -> int:
        n = 1
        for c in self.chunks or ():
            n *= c
        return n

    @property
    def slow_random_access(self) -> bool:
        """Compressed chunks larger than HDF5's chunk cache are decompressed whole for every patch read."""
        return bool(self.compression) and self.chunk_bytes > CHUNK_CACHE_LIMIT


def datasets_text(f) -> str:
    names = sorted(f.keys())
    return ", ".join(names) if names else "none"


def storage_problem(ds, name: str, file_size: int, max_chunk_elements: int) -> str | None:
    """Why the dataset's declared shape is not believed (None when it is): unfiltered data must be stored in
    full (and fit in the file); filtered (compressed) data must have every chunk written, and chunks no larger
    than `max_chunk_elements` (each patch read decompresses a whole chunk)."""
    shape = tuple(int(n) for n in ds.shape)
    declared = math.prod(shape) * ds.dtype.itemsize
    if declared == 0:
        return None
    what = f"dataset '{name}' declares shape {shape} ({declared:,} bytes)"
    filtered = ds.chunks is not None and ds.id.get_create_plist().get_nfilters() > 0
    if not filtered:
        stored = ds.id.get_storage_size()
        if stored < declared or declared > file_size:
            return f"{what} but the file stores {min(stored, file_size):,} bytes of it (a file of {file_size:,})"
        return None
    if math.prod(ds.chunks) > max_chunk_elements:
        return f"{what} in compressed chunks of {ds.chunks}, each over MEDVIEW_MAX_VOLUME_VOXELS to decompress"
    expected = math.prod(-(-n // c) for n, c in zip(shape, ds.chunks, strict=True))
    written = ds.id.get_num_chunks()
    if written < expected:
        return f"{what} but only {written} of its {expected} compressed chunks are written"
    return None


def check_x(f, file_size: int | None = None, max_chunk_elements: int = 1 << 62) -> XInfo | str:
    """The x dataset's count and layout, or the reason it is not N×96×96×3 uint8 (or not stored in full)."""
    import numpy as np

    ds = f.get("x")
    if ds is None or not hasattr(ds, "shape"):
        return f"no dataset 'x' (datasets in the file: {datasets_text(f)})"
    shape = tuple(ds.shape)
    if len(shape) != 4 or shape[1:] != (PATCH, PATCH, 3):
        return f"dataset 'x' has shape {shape}; PCam patches are N×{PATCH}×{PATCH}×3"
    if ds.dtype != np.uint8:
        return f"dataset 'x' has dtype {ds.dtype}; PCam patches are uint8 RGB"
    if file_size is not None and (problem := storage_problem(ds, "x", file_size, max_chunk_elements)):
        return problem
    return XInfo(shape[0], tuple(ds.chunks) if ds.chunks else None, ds.compression)


def read_y(f, file_size: int | None = None, max_elements: int = 1 << 62) -> tuple[np.ndarray | None, str | None]:
    """(labels as a 1-D integer array, None) or (None, reason): y is N, N×1 or N×1×1×1 of 0/1, stored in full
    and no more than `max_elements` (it is read whole)."""
    import numpy as np

    ds = f.get("y")
    if ds is None or not hasattr(ds, "shape"):
        return None, f"no dataset 'y' (datasets in the file: {datasets_text(f)})"
    shape = tuple(ds.shape)
    if len(shape) == 0 or any(d != 1 for d in shape[1:]):
        return None, f"dataset 'y' has shape {shape}; PCam labels are N×1×1×1 (or N)"
    if not (np.issubdtype(ds.dtype, np.integer) or ds.dtype == np.bool_):
        return None, f"dataset 'y' has dtype {ds.dtype}; PCam labels are integers 0/1"
    if shape[0] > max_elements:
        return None, f"dataset 'y' declares {shape[0]:,} labels, over MEDVIEW_MAX_VOLUME_VOXELS"
    if file_size is not None and (problem := storage_problem(ds, "y", file_size, max_elements)):
        return None, problem
    return np.asarray(ds[()]).reshape(shape[0]), None
