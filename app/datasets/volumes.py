"""Decompressed volumes kept in a bounded per-process LRU (MEDVIEW_VOLUME_CACHE_MB).

A .nii.gz must be decompressed whole to reach a deep slice (PERFORMANCE.md: 0.5 s per 157 MB), so
the first view of a volume pays that and every later plane/slice is a numpy slice. Volumes are
stored canonical (RAS+) with their voxel spacing. One cache per process, configured by
`create_app` from the settings (adapters are process-wide singletons, so this is where it lives).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.datasets.base import Image2D, PixelError, View
from app.imaging.volume import PLANE_AXIS, display_plane, plane_count
from app.render.cache import SizedLRU

DEFAULT_BUDGET_MB = 1024


@dataclass(frozen=True)
class Volume:
    data: np.ndarray  # canonical RAS+ array
    affine: np.ndarray  # canonical affine (voxel → RAS mm)
    spacing: tuple[float, float, float]


_cache = SizedLRU(DEFAULT_BUDGET_MB * 1024 * 1024, lambda v: v.data.nbytes)
_loading: dict[tuple, threading.Lock] = {}
_loading_guard = threading.Lock()


def configure(budget_mb: int) -> None:
    global _cache
    _cache = SizedLRU(budget_mb * 1024 * 1024, lambda v: v.data.nbytes)


def cached_volume(path: str, loader: Callable[[], Volume], variant: str = "") -> Volume:
    """The volume for `path` (keyed with its mtime and size, so an edited file is reloaded); concurrent
    requests for the same volume wait for one load instead of decompressing it twice."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size, variant)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    with _loading_guard:
        lock = _loading.setdefault(key, threading.Lock())
    with lock:
        hit = _cache.get(key)
        if hit is None:
            hit = loader()
            hit.data.setflags(write=False)
            _cache.put(key, hit)
    with _loading_guard:
        _loading.pop(key, None)
    return hit


def volume_view(vol: Volume, view: View, source: str = "") -> Image2D:
    """One display plane of a cached canonical volume (default: the middle slice), square-mm pixels."""
    if view.plane not in PLANE_AXIS:
        raise PixelError(f"plane must be one of {', '.join(PLANE_AXIS)}, not {view.plane!r}")
    count = plane_count(vol.data.shape, view.plane)
    index = count // 2 if view.slice is None else view.slice
    if not 0 <= index < count:
        where = f" of {source}" if source else ""
        raise PixelError(f"slice {index} is outside the {view.plane} range 0–{count - 1}{where}")
    pixels, pixel_mm = display_plane(vol.data, vol.spacing, view.plane, index)
    return Image2D(pixels, index, pixel_mm)
