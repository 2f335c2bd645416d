"""Reading one PCam patch: `ds[i]` from an HDF5 file kept open per process.

Opening an HDF5 file costs ~1 ms against ~0.03 ms for one patch (PERFORMANCE.md §6), so files stay
open in a small LRU. The key holds the process id, so a worker forked after a file was opened opens
its own handle (HDF5 handles must not be shared across fork), and the file's size and mtime, so a
replaced file is reopened. h5py serialises calls anyway; one lock keeps the cache consistent.

From a chunked dataset a patch is read through h5py's low-level API (a hyperslab of the cached file
dataspace into a fresh array): 0.011 ms per random patch with (1, 96, 96, 3) chunks, where `ds[i]`
takes 0.024–0.054 ms; from a contiguous dataset `ds[i]` is the faster one (0.010 vs 0.014 ms; medians
of 30 rounds of 300 random reads). Compressed chunks go through HDF5's filters as usual.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from app.datasets.base import PixelError

MAX_OPEN = 8
PATCH_SHAPE = (96, 96, 3)
_open: OrderedDict[tuple, _PatchFile] = OrderedDict()
_lock = threading.Lock()

# what h5py raises on a damaged file: OSError for most, RuntimeError / KeyError / ValueError when an internal
# structure (a local heap, a B-tree node) is corrupt — each becomes a PixelError naming the file, never a 500
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


class _PatchFile:
    """An open HDF5 file with its `x` dataset and the dataspaces one patch read needs."""

    def __init__(self, path: Path):
        import h5py
        from h5py import h5s

        self.file = h5py.File(path, "r")
        ds = self.file.get("x")
        if ds is None or not hasattr(ds, "shape"):
            self.file.close()
            raise PixelError(f"{path.name} has no dataset 'x'")
        if len(ds.shape) != 4 or tuple(ds.shape[1:]) != PATCH_SHAPE or ds.dtype != np.uint8:
            self.file.close()
            raise PixelError(f"{path.name}: dataset 'x' is {ds.dtype} {tuple(ds.shape)}, not N×96×96×3 uint8")
        self.name = path.name
        self.count = ds.shape[0]
        self.dataset = ds
        self.contiguous = ds.chunks is None
        self.dsid = ds.id
        self.file_space = ds.id.get_space()
        self.memory_space = h5s.create_simple((1, *PATCH_SHAPE))

    def read(self, index: int) -> np.ndarray:
        try:
            if self.contiguous:
                return self.dataset[index]
            out = np.empty(PATCH_SHAPE, np.uint8)
            self.file_space.select_hyperslab((index, 0, 0, 0), (1, *PATCH_SHAPE))
            self.dsid.read(self.memory_space, self.file_space, out)
        except H5_ERRORS as exc:
            raise PixelError(f"cannot read patch {index} of {self.name} ({exc})") from None
        return out

    def read_run(self, start: int, count: int) -> np.ndarray:
        """`count` consecutive patches in one HDF5 read (PERFORMANCE.md: ds[s:s+64] is the fastest batch)."""
        try:
            return self.dataset[start:start + count]
        except H5_ERRORS as exc:
            raise PixelError(f"cannot read patches {start}–{start + count - 1} of {self.name} ({exc})") from None

    def close(self) -> None:
        self.file.close()


def _file(path: Path) -> _PatchFile:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PixelError(f"patch file {path.name} is missing") from None
    key = (str(path), st.st_size, st.st_mtime_ns, os.getpid())
    f = _open.get(key)
    if f is not None:
        _open.move_to_end(key)
        return f
    try:
        f = _PatchFile(path)
    except H5_ERRORS as exc:
        raise PixelError(f"cannot open {path.name} as HDF5 ({exc})") from None
    _open[key] = f
    while len(_open) > MAX_OPEN:
        old_key, old = _open.popitem(last=False)
        if old_key[3] == os.getpid():  # never close a handle inherited from the parent process
            old.close()
    return f


def read_patch(path: Path, index: int | None) -> np.ndarray:
    """Patch `index` of the file's `x` dataset as a 96×96×3 uint8 RGB array (a new array)."""
    with _lock:
        f = _file(path)
        if index is None or not 0 <= index < f.count:
            raise PixelError(f"patch {index} is not in {path.name} ({f.count} patches)")
        return f.read(index)


def close_all() -> None:
    """Close this process's open files (tests that rewrite a file in place call this)."""
    with _lock:
        for key, f in list(_open.items()):
            if key[3] == os.getpid():
                f.close()
            del _open[key]


def read_patches(path: Path, indices: list[int]) -> list[np.ndarray]:
    """Several patches of one file: consecutive runs are read with one slice each, the rest one by one."""
    f = _file(path)
    out: list[np.ndarray] = []
    start = 0
    while start < len(indices):
        end = start + 1
        while end < len(indices) and indices[end] == indices[end - 1] + 1:
            end += 1
        if end - start > 1:
            out.extend(f.read_run(indices[start], end - start))
        else:
            out.append(f.read(indices[start]))
        start = end
    return out
