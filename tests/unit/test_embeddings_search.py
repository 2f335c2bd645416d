"""Similar-item search on real vectors: the exact scan against numpy brute force, and the usearch HNSW index
(used above EXACT_MAX) against the exact scan — recall@10, exclusions, the index saved and loaded again."""

from __future__ import annotations

import numpy as np

from app.embeddings import ann
from app.embeddings.search import top_k
from app.inference.vectors import Vectors, normalised


def clustered(n: int, dim: int, seed: int = 0) -> Vectors:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 20, dim))
    v = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, dim))
    ids = np.arange(1, n + 1, dtype=np.int64) * 3  # ids are not rows
    return Vectors(ids, normalised(v).astype(np.float16))


def test_exact_matches_brute_force():
    vectors = clustered(2000, 24)
    m = vectors.vectors.astype(np.float64)
    for row in (0, 999, 1999):
        found = top_k(vectors, vectors.vectors[row], 10, [row, 5])
        scores = m @ m[row]
        scores[[row, 5]] = -np.inf
        assert [r for r, _ in found] == list(np.argsort(-scores, kind="stable")[:10])
        np.testing.assert_allclose([s for _, s in found], np.sort(scores)[::-1][:10], atol=1e-3)
    assert len(top_k(vectors, vectors.vectors[0], 5000, [0])) == 1999


def test_ann_recall_and_exclusions(tmp_path):
    vectors = clustered(6000, 32)
    hits = total = 0
    for row in range(0, 6000, 150):
        item = int(vectors.ids[row])
        exact = {r for r, _ in top_k(vectors, vectors.vectors[row], 10, [row])}
        approx = ann.ann_top_k(tmp_path, vectors, vectors.vectors[row], 10, {item})
        assert row not in [r for r, _ in approx] and len(approx) == 10
        scores = [s for _, s in approx]
        assert scores == sorted(scores, reverse=True)
        hits += len(exact & {r for r, _ in approx})
        total += 10
    assert hits / total >= 0.95, hits / total
    saved = list(tmp_path.glob("index-*.usearch"))
    assert len(saved) == 1
    ann._indexes.clear()  # a restart: the saved index is loaded, not rebuilt
    before = saved[0].stat().st_mtime_ns
    again = ann.ann_top_k(tmp_path, vectors, vectors.vectors[0], 10, {int(vectors.ids[0])})
    assert saved[0].stat().st_mtime_ns == before and len(again) == 10


def test_a_query_never_waits_for_the_index_build(tmp_path):
    """Above EXACT_MAX the first query starts the build in the background and is answered without the index; once
    it is saved, the index is used (and loaded, not rebuilt, after a restart)."""
    from tests.helpers.wait import wait_until

    vectors = clustered(3000, 16)
    ann._indexes.clear()
    assert ann.index_if_ready(tmp_path, vectors) is None  # not built yet: the caller scans exactly
    wait_until(lambda: list(tmp_path.glob("index-*.usearch")), 120, "the background build to save the index")
    wait_until(lambda: ann.index_if_ready(tmp_path, vectors) is not None, 30, "the index to be ready")
    ann._indexes.clear()
    index = ann.index_if_ready(tmp_path, vectors)  # saved: loaded at once
    assert index is not None and len(index) == 3000
    found = ann.ann_top_k(tmp_path, vectors, vectors.vectors[7], 5, {int(vectors.ids[7])}, index)
    assert len(found) == 5 and 7 not in [r for r, _ in found]


def test_lesion_crop_with_context():
    from app.inference.tasks.embed import crop_box

    assert crop_box([], (512, 512)) is None
    # a 20×10 box gets half its size on each side; several boxes their union; clipped to the image
    assert crop_box([[100, 200, 120, 210]], (512, 512)) == (90, 195, 130, 215)
    assert crop_box([[100, 200, 120, 210], [140, 205, 150, 230]], (512, 512)) == (75, 185, 175, 245)
    assert crop_box([[0, 0, 10, 10]], (8, 8)) == (0, 0, 8, 8)
