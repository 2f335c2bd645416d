"""Process heap tuning for a long-running worker: large buffers go back to the OS when freed (issue 13).

glibc serves allocations of 128 KiB and more with their own mmap, but after the first such block is freed it
raises that threshold to the block's size (up to 32 MiB), so the filtered id arrays and masks of the facet index
(1-5 MB each at a million items, one or more per request) are then carved from the malloc arenas of the
threadpool's threads and, freed, stay in the process. Measured with bench/facets_scale.py's request mix on
1,114,112 PCam items, a served worker grew 243 → 339 MiB over eight rounds and was still growing; with the
threshold pinned at 1 MiB it settled at ~280 MiB from the second round on. Pinning it (M_MMAP_THRESHOLD also
turns off the dynamic adjustment) costs a page fault per page of each large buffer, small against a request.

A no-op where the C library is not glibc (musl, macOS): nothing to tune there through this call."""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 1 << 20


def return_large_blocks() -> bool:
    """Pin glibc's mmap threshold at MMAP_THRESHOLD (process-wide, idempotent); False when not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl has mallopt as a stub)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
