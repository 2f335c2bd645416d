"""Byte-budgeted, thread-safe LRU caches (cachetools underneath): the pixel layer's decoded images and volumes,
the renderer's encoded responses. Imports nothing of MedView's, so any layer may hold one."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from cachetools import LRUCache


class SizedLRU:
    """An LRU bounded by total size in bytes; values larger than the budget are not kept."""

    def __init__(self, max_bytes: int, sizeof: Callable[[Any], int]):
        self._sizeof = sizeof
        self._lock = threading.Lock()
        self._cache: LRUCache | None = LRUCache(maxsize=max_bytes, getsizeof=sizeof) if max_bytes > 0 else None
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        if self._cache is None:
            return None
        with self._lock:
            value = self._cache.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: Hashable, value: Any) -> None:
        if self._cache is None or self._sizeof(value) > self._cache.maxsize:
            return
        with self._lock:
            self._cache[key] = value

    def clear(self) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache.clear()

    def __len__(self) -> int:
        return 0 if self._cache is None else len(self._cache)
