"""Embedding vectors on disk, per model and dataset (issue 15): `<data_dir>/embeddings/<model_id>/<dataset_id>/`.

Why files and not rows: 262,144 items × 384 dimensions would be 100 million numbers; as float16 arrays they are
200 MB that load in one read and search as one matrix. The folder holds append-only chunk files
`chunk-NNNNNN.npz`, each the `ids` (int64) and `vectors` (float16, L2-normalised at write, so cosine = dot
product) of one job batch. A chunk is written to a temporary name, flushed and then hard-linked to its final
name, which fails if another writer took that number (it then takes the next): a crash leaves only whole chunks
(and a stray `.tmp` that nothing reads), so a job re-run skips the items already stored and resumes.
An item written twice (a single-item predict after a job) keeps its latest vector.

Sub-stores: the same chunk format in a sub-folder keyed by other ids — `lesions/` holds one vector per lesion
(DeepLesion's RECIST boxes), keyed by annotation id (`sub=LESIONS`); `lookup` reads only the vectors of a few
ids (one patient's lesions) without loading the whole store.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Settings
from app.errors import InvalidInput

_CHUNK = re.compile(r"^chunk-(\d{6,})\.npz$")
LESIONS = "lesions"  # the sub-store of per-lesion vectors, keyed by annotation id
SUB_STORES = (LESIONS,)


@dataclass(frozen=True)
class Vectors:
    """All the stored vectors of one model × dataset: `ids` sorted ascending, `vectors[i]` the unit vector of
    `ids[i]` (float16, [n, dim])."""

    ids: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def row_of(self, item_id: int) -> int | None:
        i = int(np.searchsorted(self.ids, item_id))
        return i if i < len(self.ids) and int(self.ids[i]) == item_id else None


def embeddings_root(settings: Settings) -> Path:
    return Path(settings.data_dir) / "embeddings"


def store_dir(settings: Settings, model_id: int, dataset_id: int, sub: str | None = None) -> Path:
    """The folder of a model × dataset's vectors; with `sub` (one of SUB_STORES) its sub-store's."""
    folder = embeddings_root(settings) / str(int(model_id)) / str(int(dataset_id))
    if sub is None:
        return folder
    if sub not in SUB_STORES:
        raise ValueError(f"unknown vector sub-store {sub!r}")
    return folder / sub


def _chunks(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), folder / name) for name in os.listdir(folder) if (m := _CHUNK.match(name))]
    return sorted(found)


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float32 (an all-zero row stays zero: it matches nothing)."""
    v = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def append(settings: Settings, model_id: int, dataset_id: int, ids: list[int], vectors: np.ndarray,
           sub: str | None = None) -> None:
    """Store one batch as a new whole chunk (InvalidInput when the model gave no finite [n, dim] vectors)."""
    if not ids:
        return
    v = np.asarray(vectors)
    if v.ndim != 2 or v.shape[0] != len(ids):
        raise InvalidInput(f"the embedder gave an output of shape {list(v.shape)} for {len(ids)} items; "
                           "it must output [batch, dimensions]")
    if not np.isfinite(v).all():
        bad = [ids[i] for i in np.flatnonzero(~np.isfinite(v).all(axis=1))[:5]]
        raise InvalidInput(f"the embedder gave non-finite numbers for items {bad}")
    folder = store_dir(settings, model_id, dataset_id, sub)
    folder.mkdir(parents=True, exist_ok=True)
    existing = _chunks(folder)
    if existing and (dim := _dim(existing[-1][1])) != v.shape[1]:
        raise InvalidInput(f"the embedder gave {v.shape[1]}-dimensional vectors, but {folder} holds {dim}-dimensional "
                           "ones (was the model file replaced?)")
    tmp = folder / f".{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, ids=np.asarray(ids, np.int64), vectors=normalised(v).astype(np.float16))
        fh.flush()
        os.fsync(fh.fileno())
    number = existing[-1][0] + 1 if existing else 1
    try:
        while True:
            try:
                os.link(tmp, folder / f"chunk-{number:06d}.npz")
                break
            except FileExistsError:  # another writer took this number
                number += 1
    finally:
        tmp.unlink(missing_ok=True)


def _dim(path: Path) -> int:
    with np.load(path) as z:
        return int(z["vectors"].shape[1])


def stored_ids(settings: Settings, model_id: int, dataset_id: int, sub: str | None = None) -> set[int]:
    """The ids that have a vector (items: what a job skips)."""
    out: set[int] = set()
    for _, path in _chunks(store_dir(settings, model_id, dataset_id, sub)):
        with np.load(path) as z:
            out.update(z["ids"].tolist())
    return out


_cache: dict[Path, tuple[tuple[tuple[int, int], ...], Vectors]] = {}
_lock = threading.Lock()


def has_vectors(settings: Settings, model_id: int, dataset_id: int, sub: str | None = None) -> bool:
    return bool(_chunks(store_dir(settings, model_id, dataset_id, sub)))


# folder → (its chunk files and the first one's identity, every chunk's ids end to end, the chunk number of
# each): chunks never change once linked, so the list of names (and the first chunk's inode and time, which
# tell a folder deleted and written again) says whether the map is current — no stat per chunk per look-up
_id_maps: dict[Path, tuple[tuple[Any, ...], np.ndarray, np.ndarray]] = {}


def _id_map(folder: Path, chunks: list[tuple[int, Path]]) -> tuple[np.ndarray, np.ndarray]:
    paths = tuple(p for _, p in chunks)
    first = paths[0].stat()
    key = (first.st_ino, first.st_mtime_ns, *paths)
    with _lock:
        hit = _id_maps.get(folder)
    if hit is not None and hit[0] == key:
        return hit[1], hit[2]
    known = dict(zip(hit[0][2:], np.split(hit[1], np.flatnonzero(np.diff(hit[2])) + 1), strict=True)) \
        if hit is not None and hit[0][:3] == key[:3] else {}
    parts = []
    for path in paths:  # only the chunks added since the last look are read
        if path not in known:
            with np.load(path) as z:
                known[path] = np.asarray(z["ids"])
        parts.append(known[path])
    ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(paths)), [len(p) for p in parts])
    with _lock:
        _id_maps[folder] = (key, ids, owner)
    return ids, owner


def lookup(settings: Settings, model_id: int, dataset_id: int, ids: list[int],
           sub: str | None = None) -> dict[int, np.ndarray]:
    """The stored unit vectors (float32) of these ids only (the latest write of each), without loading the
    store: the folder's id map (every chunk's ids, kept in memory and extended as chunks are added) says which
    chunks hold them, and only those chunks' `vectors` are read — a few small reads for one patient's lesions."""
    wanted = np.asarray(sorted(set(ids)), np.int64)
    out: dict[int, np.ndarray] = {}
    folder = store_dir(settings, model_id, dataset_id, sub)
    chunks = _chunks(folder)
    if not len(wanted) or not chunks:
        return out
    all_ids, owner = _id_map(folder, chunks)
    hits = np.flatnonzero(np.isin(all_ids, wanted))
    starts = np.searchsorted(owner, np.arange(len(chunks)))
    for chunk in np.unique(owner[hits]):  # ascending: later writes win
        rows = hits[owner[hits] == chunk]
        with np.load(chunks[chunk][1]) as z:
            found = z["vectors"][rows - starts[chunk]].astype(np.float32)
        out.update({int(all_ids[r]): found[n] for n, r in enumerate(rows)})
    return out


def load(settings: Settings, model_id: int, dataset_id: int, sub: str | None = None) -> Vectors | None:
    """Every stored vector as one array (None when there are none), cached per folder until a chunk is added."""
    folder = store_dir(settings, model_id, dataset_id, sub)
    chunks = _chunks(folder)
    if not chunks:
        return None
    signature = tuple((n, p.stat().st_size) for n, p in chunks)
    with _lock:
        hit = _cache.get(folder)
        if hit is not None and hit[0] == signature:
            return hit[1]
    id_parts, vec_parts = [], []
    for _, path in chunks:
        with np.load(path) as z:
            id_parts.append(z["ids"])
            vec_parts.append(z["vectors"])
    all_ids = np.concatenate(id_parts)
    all_vectors = np.concatenate(vec_parts)
    # the latest vector of an item wins: unique over the reversed order keeps each id's last write
    _, last = np.unique(all_ids[::-1], return_index=True)
    keep = np.sort(len(all_ids) - 1 - last)
    order = np.argsort(all_ids[keep], kind="stable")
    result = Vectors(np.ascontiguousarray(all_ids[keep][order]), np.ascontiguousarray(all_vectors[keep][order]))
    with _lock:
        _cache[folder] = (signature, result)
    return result


def remove_vectors(settings: Settings, *, model_id: int | None = None, dataset_id: int | None = None) -> list[Path]:
    """Delete the vectors (chunks, sub-stores, ANN index files) of a deleted model (`<model_id>/`) or dataset
    (`*/<dataset_id>/`) — called after the deletion is committed, never before: a rolled-back delete keeps them.
    Ids may be reused by the database later (SQLite reuses the highest), so nothing may be inherited. Returns
    the folders removed."""
    root = embeddings_root(settings)
    if model_id is not None:
        folders = [root / str(int(model_id))]
    elif dataset_id is not None:
        folders = [p for p in sorted(root.glob(f"*/{int(dataset_id)}")) if p.parent.name.isdigit()]
    else:
        raise ValueError("remove_vectors needs a model_id or a dataset_id")
    removed = []
    for folder in folders:
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    with _lock:
        for cached in [f for f in _cache if any(f == d or f.is_relative_to(d) for d in removed)]:
            del _cache[cached]
        for cached in [f for f in _id_maps if any(f == d or f.is_relative_to(d) for d in removed)]:
            del _id_maps[cached]
    return removed
