"""The embedding map's projections (app.embeddings.projection): PCA equals scikit-learn's on known data (fitted on
all rows, or on an even-stride sample above the fit limit), coordinates are normalised float32 keeping the aspect
ratio, UMAP separates two well-separated clusters, and the cache file follows the vectors' signature."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from app.embeddings import projection
from app.inference.vectors import Vectors, normalised


def blobs(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.05, (n // 2, dim)) + np.eye(dim)[0]
    b = rng.normal(0, 0.05, (n - n // 2, dim)) + np.eye(dim)[1]
    return np.concatenate([a, b]).astype(np.float32)


def test_pca_is_sklearns_and_normalised():
    x = np.random.default_rng(1).normal(size=(300, 12)).astype(np.float32) * np.linspace(3, 0.1, 12)
    got = projection.pca_xy(x)
    np.testing.assert_allclose(got, PCA(n_components=2).fit_transform(x), atol=1e-4)
    # above the fit limit: fitted on every k-th row, every row projected with that fit
    sampled = projection.pca_xy(x, fit_max=100)
    reference = PCA(n_components=2).fit(x[::3])
    np.testing.assert_allclose(sampled, reference.transform(x), atol=1e-4)
    xy = projection.normalised(got)
    assert xy.dtype == np.float32 and np.isclose(np.abs(xy).max(), 1.0)
    # one scale for both axes: the spread along the first axis stays the larger
    assert np.ptp(xy[:, 0]) > np.ptp(xy[:, 1]) and np.isclose(np.ptp(xy[:, 0]), 2.0)
    assert projection.normalised(np.zeros((3, 2))).tolist() == [[0, 0]] * 3


def test_projection_file_follows_the_vectors(tmp_path):
    x = normalised(blobs(40, 8)).astype(np.float16)
    ids = np.arange(1, 41, dtype=np.int64)
    first = projection.projection(tmp_path, Vectors(ids, x), "pca")
    assert first.xy.shape == (40, 2) and first.ids.tolist() == ids.tolist()
    assert [p.name for p in tmp_path.glob("map-pca-*.npy")] == [f"map-pca-{first.signature}.npy"]
    changed = x.copy()
    changed[0] = -changed[0]
    second = projection.projection(tmp_path, Vectors(ids, changed), "pca")
    assert second.signature != first.signature
    assert [p.name for p in tmp_path.glob("map-pca-*.npy")] == [f"map-pca-{second.signature}.npy"]
    (tmp_path / "one").mkdir()
    one = projection.projection(tmp_path / "one", Vectors(ids[:1], x[:1]), "pca")
    assert one.xy.tolist() == [[0.0, 0.0]]  # a single point sits at the centre
    with pytest.raises(Exception, match="method must be one of pca, umap"):
        projection.projection(tmp_path, Vectors(ids, x), "tsne")


def test_umap_separates_two_clusters():
    import umap  # noqa: F401  (a dependency: its absence is a failure, not a skip)
    x = normalised(blobs(200, 16))
    xy = projection.normalised(projection.umap_xy(x, seed=0))
    a, b = xy[:100], xy[100:]
    gap = np.linalg.norm(a.mean(axis=0) - b.mean(axis=0))
    spread = max(np.linalg.norm(a - a.mean(axis=0), axis=1).max(), np.linalg.norm(b - b.mean(axis=0), axis=1).max())
    assert gap > 2 * spread  # the clusters lie apart, each tighter than the distance between them
    assert projection.umap_xy(x[:3]).shape == (3, 2)  # too few for neighbours: laid out by PCA
