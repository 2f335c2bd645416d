"""Exact cosine top-k over unit vectors: the item's vector against every stored one.

Why exact: the vectors are unit length, so cosine is a dot product, and one float32 matrix–vector product over
n × dim is memory-bound — at n = 262,144 × 384 a float32 copy (kept with the loaded vectors, 400 MB) is read
once per query. The float16 files are converted to float32 once per load, in blocks, not per query.
`top_k` never returns the excluded rows (the item itself, its patient's other items).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from app.inference.vectors import Vectors

BLOCK = 65536  # rows converted float16 → float32 at a time (bounded temporary memory)

_f32: dict[int, tuple[Vectors, np.ndarray]] = {}
_lock = threading.Lock()


def as_float32(vectors: Vectors) -> np.ndarray:
    """The float32 copy of a loaded vector set, made once per load (the last one kept per dimension… per set)."""
    key = id(vectors)
    with _lock:
        hit = _f32.get(key)
        if hit is not None and hit[0] is vectors:
            return hit[1]
    matrix = np.empty(vectors.vectors.shape, np.float32)
    for start in range(0, len(vectors), BLOCK):
        matrix[start:start + BLOCK] = vectors.vectors[start:start + BLOCK]
    with _lock:
        if len(_f32) >= 4:  # a few model × dataset sets at most; the oldest goes
            _f32.pop(next(iter(_f32)))
        _f32[key] = (vectors, matrix)
    return matrix


def top_k(vectors: Vectors, query: np.ndarray, k: int, excluded_rows: Iterable[int] = ()) -> list[tuple[int, float]]:
    """(row, cosine) of the k best rows, best first (ties by lower item id), without `excluded_rows`."""
    matrix = as_float32(vectors)
    scores = matrix @ np.asarray(query, np.float32)
    excluded = np.fromiter(excluded_rows, np.int64)
    if excluded.size:
        scores[excluded] = -np.inf
    available = len(scores) - int(np.unique(excluded).size)
    k = min(k, max(available, 0))
    if k == 0:
        return []
    candidates = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    # best first; equal scores by row (= item id order, the ids are sorted)
    order = np.lexsort((candidates, -scores[candidates]))
    return [(int(candidates[i]), float(scores[candidates[i]])) for i in order]
