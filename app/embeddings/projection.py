"""2-D projections of one model × dataset's embedding vectors for the map page (issue 15): PCA, answered at
once, and UMAP, computed off the request path.

- PCA (scikit-learn): the two principal axes of the vectors. Up to PCA_FIT_MAX rows it is fitted on all of them;
  above, on PCA_FIT_MAX rows taken at an even stride (deterministic), and every vector is then projected — 2–4 s
  at 262,144 × 384 on two busy cores, once per vector set (the float16 → float32 copy is the one the similar-items
  search shares, `app.embeddings.search.as_float32`).
- UMAP (umap-learn, n_neighbors 15, min_dist 0.1, euclidean on the unit vectors = a monotone function of cosine):
  26 s at 20,000 points here, minutes at a few hundred thousand, so the first request starts it on a background
  thread (one per vector set and process; a lock file keeps a second process from starting it too, as the HNSW
  build does in `app.embeddings.ann`) and is told it is computing; later requests get it once it is saved.

Both are cached in memory and in a file beside the vector chunks, `map-<method>-<signature>.npy`, keyed by the
vectors' signature (`app.embeddings.ann.signature`: ids and sampled bytes), so new or re-embedded vectors make a
new projection and the old files are removed. Coordinates are float32, centred and scaled by one factor (the
aspect ratio is kept) into [-1, 1]; row i is the point of `vectors.ids[i]`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.embeddings.ann import signature
from app.embeddings.search import as_float32
from app.errors import InvalidInput
from app.inference.vectors import Vectors

log = logging.getLogger(__name__)

METHODS = ("pca", "umap")
PCA_FIT_MAX = 65_536
UMAP_NEIGHBOURS, UMAP_MIN_DIST = 15, 0.1
LOCK_STALE_S = 6 * 3600  # a lock file older than this was left by a process that died


@dataclass(frozen=True)
class Projection:
    method: str
    signature: str
    ids: np.ndarray  # int64, ascending (the vectors' ids)
    xy: np.ndarray  # float32 [n, 2] in [-1, 1]


class Computing(Exception):  # noqa: N818 - a state, not an error
    """The projection is being computed in the background; ask again later."""

    def __init__(self, method: str, started: float) -> None:
        super().__init__(f"the {method} map of these vectors is being computed (started "
                         f"{max(0, round(time.time() - started))} s ago); ask again in a while")
        self.method, self.started = method, started


def normalised(xy: np.ndarray) -> np.ndarray:
    """Centred on the bounding box's middle and scaled by one factor into [-1, 1] (float32; NaN-free)."""
    xy = np.nan_to_num(np.asarray(xy, np.float64))
    if xy.size == 0:
        return np.zeros((0, 2), np.float32)
    low, high = xy.min(axis=0), xy.max(axis=0)
    half = float((high - low).max()) / 2
    scaled = (xy - (low + high) / 2) / (half if half > 0 else 1.0)
    return np.clip(scaled, -1, 1).astype(np.float32)


def pca_xy(matrix: np.ndarray, fit_max: int = PCA_FIT_MAX) -> np.ndarray:
    """The rows' coordinates on the two principal axes (un-normalised; sklearn's sign convention)."""
    from sklearn.decomposition import PCA

    n, dim = matrix.shape
    if n < 2 or dim < 2:  # nothing to spread: every point at the centre
        return np.zeros((n, 2), np.float32)
    # the dim × dim covariance's eigenvectors: 2.5× faster than sklearn's default SVD at 65,536 × 384 here
    pca = PCA(n_components=2, svd_solver="covariance_eigh" if dim <= 2048 else "auto")
    if n <= fit_max:
        return pca.fit_transform(matrix)
    pca.fit(matrix[:: -(-n // fit_max)])
    # pca.transform(matrix) without its centred copy of the whole matrix (400 MB at 262,144 × 384)
    axes = pca.components_.T.astype(np.float32)
    return matrix @ axes - (pca.mean_.astype(np.float32) @ axes)


def umap_xy(matrix: np.ndarray, seed: int | None = None) -> np.ndarray:
    """UMAP's 2-D embedding of the rows (un-normalised). `seed` makes it reproducible but single-threaded."""
    import umap

    n = matrix.shape[0]
    if n < 4:  # UMAP needs a few neighbours; a handful of points are simply laid out by PCA
        return pca_xy(matrix)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(UMAP_NEIGHBOURS, n - 1), min_dist=UMAP_MIN_DIST,
                        init="spectral" if n > 64 else "random", random_state=seed, low_memory=True,
                        n_jobs=1 if seed is not None else -1)
    return reducer.fit_transform(matrix)


_cache: dict[tuple[Path, str], Projection] = {}
_building: dict[tuple[Path, str], tuple[threading.Thread, float]] = {}
_failed: dict[tuple[Path, str], str] = {}
_lock = threading.Lock()


def _path(folder: Path, method: str, sig: str) -> Path:
    return folder / f"map-{method}-{sig}.npy"


def _save(folder: Path, method: str, sig: str, xy: np.ndarray) -> None:
    path = _path(folder, method, sig)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # two writers never share a temporary file
    with open(tmp, "wb") as fh:
        np.save(fh, xy)
    tmp.replace(path)
    for old in folder.glob(f"map-{method}-*.npy"):
        if old != path:
            old.unlink(missing_ok=True)


def _load(folder: Path, method: str, sig: str, n: int) -> np.ndarray | None:
    path = _path(folder, method, sig)
    if not path.is_file():
        return None
    try:
        xy = np.load(path)
    except (OSError, ValueError):  # a torn or foreign file: computed again
        return None
    return xy if xy.shape == (n, 2) and xy.dtype == np.float32 else None


def _compute(folder: Path, method: str, vectors: Vectors) -> np.ndarray:
    matrix = as_float32(vectors)
    started = time.perf_counter()
    xy = normalised(pca_xy(matrix) if method == "pca" else umap_xy(matrix))
    log.info("%s map of %s: %d points in %.1f s", method, folder, len(vectors), time.perf_counter() - started)
    return xy


def projection(folder: Path, vectors: Vectors, method: str) -> Projection:
    """The method's projection of these vectors: from memory, else the file, else computed — PCA here, UMAP on a
    background thread (raises Computing meanwhile; InvalidInput naming the error if its last run failed)."""
    if method not in METHODS:
        raise InvalidInput(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    sig = signature(vectors)
    key = (folder, method)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit.signature == sig:
            return hit
    xy = _load(folder, method, sig, len(vectors))
    if xy is None and method == "pca":
        xy = _compute(folder, method, vectors)
        _save(folder, method, sig, xy)
    if xy is None:
        _start_umap(folder, vectors, sig)
        raise AssertionError("unreachable")  # _start_umap raises Computing or InvalidInput
    result = Projection(method, sig, vectors.ids, xy)
    with _lock:
        _cache[key] = result
        while len(_cache) > 8:  # a few model × dataset × method maps per process
            _cache.pop(next(iter(_cache)))
    return result


def _start_umap(folder: Path, vectors: Vectors, sig: str) -> None:
    key = (folder, "umap")
    lock = folder / f"map-umap-{sig}.lock"
    with _lock:
        error = _failed.pop(key, None)
        if error is not None:
            raise InvalidInput(f"the umap map of these vectors failed: {error}; ask again to retry")
        running = _building.get(key)
        if running is not None and running[0].is_alive():
            raise Computing("umap", running[1])
        try:  # another process may be computing it: its lock file says since when
            age = time.time() - lock.stat().st_mtime
            if age < LOCK_STALE_S:
                raise Computing("umap", time.time() - age)
            lock.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise Computing("umap", time.time()) from None
        os.close(fd)
        started = time.time()
        thread = threading.Thread(target=_build_umap, args=(folder, vectors, sig, lock), daemon=True,
                                  name=f"umap-{folder.name}")
        _building[key] = (thread, started)
        thread.start()
    raise Computing("umap", started)


def _build_umap(folder: Path, vectors: Vectors, sig: str, lock: Path) -> None:
    try:
        xy = _compute(folder, "umap", vectors)
        _save(folder, "umap", sig, xy)
    except Exception as exc:  # reported to the next request, which may retry
        log.exception("umap map of %s failed", folder)
        with _lock:
            _failed[(folder, "umap")] = f"{type(exc).__name__}: {exc}"
    finally:
        lock.unlink(missing_ok=True)


def wait_for(folder: Path, method: str, timeout: float) -> bool:
    """Wait up to `timeout` s for a background build of this folder's map (tests, the bench); True when none runs."""
    with _lock:
        running = _building.get((folder, method))
    if running is None:
        return True
    running[0].join(timeout)
    return not running[0].is_alive()
