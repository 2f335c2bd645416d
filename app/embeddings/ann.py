"""Approximate nearest neighbours above EXACT_MAX vectors: a usearch HNSW index (cosine, float16) of one
model × dataset's vectors, keyed by item id.

Why: an exact float32 scan of 262,144 × 384 reads 400 MB per query (~40 ms on two cores), over the 20 ms a
similar-items query may take; the HNSW graph answers in about a millisecond, with recall@10 measured against the
exact search by bench/embed.py. The first query after the vectors changed starts building the index on a
background thread (minutes for a few hundred thousand vectors on two cores) and is answered by the exact scan
meanwhile; the index is saved beside the chunks as `index-<signature>.usearch`, so a restart only loads it.
The graph's best 4k (at least 64) candidates are re-scored exactly and the k best kept;
excluded rows (the item itself, its patient) are filtered out of them.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from app.inference.vectors import Vectors

EXACT_MAX = 100_000  # up to this many vectors the exact scan is fast enough (< ~15 ms)
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 128, 256
CANDIDATES = 64  # at least this many neighbours are fetched from the graph, then re-scored exactly

_indexes: dict[Path, tuple[str, object]] = {}
_lock = threading.Lock()


def signature(vectors: Vectors) -> str:
    """Names the vector set the index was built from (ids and their count; a re-embedded item changes the bytes)."""
    digest = hashlib.sha1(vectors.ids.tobytes())
    digest.update(vectors.vectors[:: max(len(vectors) // 1024, 1)].tobytes())
    return f"{len(vectors)}-{digest.hexdigest()[:16]}"


def index_for(folder: Path, vectors: Vectors):  # noqa: ANN201 - usearch.index.Index
    """The index of these vectors: in memory, else loaded from the folder, else built and saved there."""
    from usearch.index import Index

    sig = signature(vectors)
    with _lock:
        hit = _indexes.get(folder)
        if hit is not None and hit[0] == sig:
            return hit[1]
        path = folder / f"index-{sig}.usearch"
        index = Index(ndim=vectors.vectors.shape[1], metric="cos", dtype="f16", connectivity=CONNECTIVITY,
                      expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
        if path.is_file():
            index.load(str(path))
        else:
            index.add(vectors.ids, vectors.vectors, threads=0)
            tmp = path.with_suffix(".tmp")
            index.save(str(tmp))
            tmp.replace(path)
            for old in folder.glob("index-*.usearch"):
                if old != path:
                    old.unlink(missing_ok=True)
        _indexes[folder] = (sig, index)
        return index


_building: dict[Path, threading.Thread] = {}


def index_if_ready(folder: Path, vectors: Vectors):  # noqa: ANN201 - usearch.index.Index | None
    """The index when it is in memory or saved (loaded here), else None — and its build started on a background
    thread (one per folder), so no request waits minutes for it: the caller scans exactly meanwhile (~40 ms at
    262k × 384, over the target but far from a timeout)."""
    sig = signature(vectors)
    with _lock:
        hit = _indexes.get(folder)
        if hit is not None and hit[0] == sig:
            return hit[1]
        saved = (folder / f"index-{sig}.usearch").is_file()
        if not saved:
            running = _building.get(folder)
            if running is None or not running.is_alive():
                running = threading.Thread(target=index_for, args=(folder, vectors), daemon=True,
                                           name=f"ann-build-{folder.name}")
                _building[folder] = running
                running.start()
            return None
    return index_for(folder, vectors)  # saved: loading takes a moment


def ann_top_k(folder: Path, vectors: Vectors, query: np.ndarray, k: int,
              excluded_ids: set[int], index: Any = None) -> list[tuple[int, float]]:
    """(row, cosine) of about the k nearest, best first, without the excluded item ids (`index`: the one
    `index_if_ready` gave, else it is loaded or built here)."""
    index = index if index is not None else index_for(folder, vectors)
    found = index.search(np.asarray(query, np.float16), max(4 * k, CANDIDATES) + len(excluded_ids))
    rows = [r for key in found.keys.tolist() if key not in excluded_ids
            and (r := vectors.row_of(int(key))) is not None]
    if not rows:
        return []
    # the graph's candidates re-scored exactly (a few dozen rows): their order is the exact one
    scores = vectors.vectors[rows].astype(np.float32) @ np.asarray(query, np.float32)
    order = np.lexsort((np.asarray(rows), -scores))[:k]
    return [(rows[i], float(scores[i])) for i in order]
