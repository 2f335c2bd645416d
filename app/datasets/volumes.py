"""Decompressed volumes in a bounded LRU (MEDVIEW_VOLUME_CACHE_MB), one `VolumeCache` per app.

A .nii.gz must be decompressed whole to reach a deep slice (PERFORMANCE.md: 0.5 s per 157 MB), so the first
view of a volume pays that and every later plane/slice is a numpy slice. Volumes are stored canonical (RAS+)
with their voxel spacing. The cache is made by whoever owns the pixel layer (`app.pixels.PixelStore`: the
web app in its lifespan, a worker process at start) and handed to the adapters' volume methods, so two apps
in one process (tests) never share one and nothing here is a module-level global.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from app.datasets.base import Image2D, ItemRef, PixelError, View
from app.imaging.volume import PLANE_AXIS, display_plane, plane_count
from app.lru import SizedLRU

MB = 1024 * 1024


@dataclass(frozen=True)
class Volume:
    data: np.ndarray  # canonical RAS+ array (CT: int16 HU; labels: uint8/uint16)
    affine: np.ndarray  # canonical affine (voxel → RAS mm)
    spacing: tuple[float, float, float]  # mm per voxel along i, j, k


class VolumeCache:
    """Canonical volumes by file (keyed with its mtime and size, so an edited file is reloaded); concurrent
    requests for the same volume wait for one load instead of decompressing it twice."""

    def __init__(self, budget_mb: int):
        self._lru = SizedLRU(budget_mb * MB, lambda v: v.data.nbytes)
        self._loading: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, path: str, loader: Callable[[], Volume], variant: str = "") -> Volume:
        """The volume of `path` (`variant` tells apart volumes read from one file: CT vs labels, a DICOM
        series' frames); `loader` runs at most once per key at a time and may raise PixelError/OSError."""
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size, variant)
        hit = self._lru.get(key)
        if hit is not None:
            return hit
        with self._guard:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:
            hit = self._lru.get(key)
            if hit is None:
                hit = loader()
                hit.data.setflags(write=False)
                self._lru.put(key, hit)
        with self._guard:
            self._loading.pop(key, None)
        return hit

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def hits(self) -> int:
        return self._lru.hits

    @property
    def misses(self) -> int:
        return self._lru.misses


def volume_view(vol: Volume, view: View, source: str = "") -> Image2D:
    """One display plane of a canonical volume (default: the middle slice), square-mm pixels."""
    if view.plane not in PLANE_AXIS:
        raise PixelError(f"plane must be one of {', '.join(PLANE_AXIS)}, not {view.plane!r}")
    count = plane_count(vol.data.shape, view.plane)
    index = count // 2 if view.slice is None else view.slice
    if not 0 <= index < count:
        where = f" of {source}" if source else ""
        raise PixelError(f"slice {index} is outside the {view.plane} range 0–{count - 1}{where}")
    pixels, pixel_mm = display_plane(vol.data, vol.spacing, view.plane, index)
    return Image2D(pixels, index, pixel_mm)


def canonical_shape(item: ItemRef) -> tuple[int, int, int]:
    """The (x, y, z) voxel shape of an item stored as one canonical volume: its width × height × depth."""
    return item.width, item.height, item.depth


def canonical_slices(item: ItemRef, plane: str) -> Sequence[int]:
    """The slice numbers of a plane of an item stored as one canonical (RAS+) volume whose size is the item's
    width × height × depth (VerSe, NIfTI); ValueError naming the planes for any other plane."""
    if plane not in PLANE_AXIS:
        raise ValueError(f"plane must be one of {', '.join(PLANE_AXIS)}, not {plane!r}")
    return range(plane_count(canonical_shape(item), plane))
