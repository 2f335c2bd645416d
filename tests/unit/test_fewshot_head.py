"""Few-shot heads on embedding vectors (app.embeddings.fewshot_head), on synthetic embeddings: logistic regression
and the Platt-scaled SVM separate separable classes, the label curve rises with labels, the draw refuses a class
with too few items, and the composed ONNX model (a real embedder graph + the head) gives on an image what the head
gives on the stored float16 unit vector; the uncertainty measures match their definitions."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from app.embeddings.fewshot_head import Head, compose_onnx, draw, fit_head, label_curve, unit
from app.embeddings.uncertainty import entropies, margins
from app.errors import InvalidInput
from tests.onnx_models import projection_embedder


def blobs(n_per_class: int, dim: int, classes: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters around random unit centres; `spread` = the noise's standard deviation per dimension."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((classes, dim)))
    y = np.repeat(np.arange(classes), n_per_class)
    x = centres[y] + spread * rng.standard_normal((len(y), dim))
    return unit(x).astype(np.float16), y


@pytest.mark.parametrize("method", ["logistic", "svm"])
def test_separable_embeddings_are_classified(method):
    x, y = blobs(60, 32, 3, spread=0.05)
    rng = np.random.default_rng(1)
    train = draw(y, 5, 3, rng)
    assert np.bincount(y[train]).tolist() == [5, 5, 5]
    head = fit_head(x[train], y[train], 3, method)
    test = np.setdiff1d(np.arange(len(y)), train)
    assert (head.predict(x[test]) == y[test]).mean() == 1.0
    p = head.probabilities(x[test])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (p[np.arange(len(test)), y[test]] > 0.5).all()  # calibrated towards the right class, not just argmax


def test_binary_head_is_two_logits():
    x, y = blobs(20, 8, 2, spread=0.05)
    head = fit_head(x, y, 2, "logistic")
    assert head.weights.shape == (2, 8) and head.bias.shape == (2,)
    np.testing.assert_array_equal(head.weights[0], 0.0)  # logits (0, w·x + b): softmax = (1 − σ, σ)


def test_curve_rises_with_labels():
    x, y = blobs(300, 64, 2, spread=0.35, seed=3)
    points = label_curve(x, y, 2, sizes=(1, 5, 25, 100), draws=4, seed=0)
    assert [p["per_class"] for p in points] == [1, 5, 25, 100]
    means = [p["mean"] for p in points]
    assert means[-1] > means[0] + 0.05 and means[-1] > 0.9, means
    assert all(b >= a - 0.02 for a, b in zip(means, means[1:], strict=False)), means
    assert points[0]["train"] == 2 and points[0]["test"] == 598 and len(points[0]["draws"]) == 4
    # reproducible: the same seed gives the same draws
    assert label_curve(x, y, 2, sizes=(5,), draws=2, seed=0)[0]["draws"] == \
        label_curve(x, y, 2, sizes=(5,), draws=2, seed=0)[0]["draws"]


def test_curve_stops_where_a_class_runs_out():
    x, y = blobs(30, 8, 2, spread=0.1)
    y[30:55] = 0  # class 1 keeps 5 items: 1 per class leaves it held-out items, 5 would not
    assert [p["per_class"] for p in label_curve(x, y, 2, draws=2)] == [1]


def test_draw_refuses_a_class_with_too_few_items():
    y = np.array([0, 0, 0, 1])
    with pytest.raises(InvalidInput, match="per_class: class 'tumor' has 1 labelled item with a vector, fewer than 2"):
        draw(y, 2, 2, np.random.default_rng(0), ["normal", "tumor"])


def test_composed_onnx_equals_the_head_on_the_stored_vector(tmp_path):
    embedder = projection_embedder(tmp_path / "embedder.onnx", (96, 96), dim=16)
    rng = np.random.default_rng(5)
    images = rng.random((6, 3, 96, 96)).astype(np.float32)
    raw = ort.InferenceSession(str(embedder)).run(None, {"image": images})[0]
    stored = unit(raw).astype(np.float16)  # as the vector store keeps them
    head = Head(rng.standard_normal((3, 16)) * 4, rng.standard_normal(3))
    composed = ort.InferenceSession(compose_onnx(embedder.read_bytes(), head))
    [out] = composed.run(None, {"image": images})
    assert out.shape == (6, 3)
    np.testing.assert_allclose(out, head.probabilities(stored.astype(np.float32)), atol=5e-3)
    np.testing.assert_allclose(out, head.probabilities(raw), atol=1e-5)  # exact but for float16 storage


def test_margins_and_entropies():
    p = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])
    np.testing.assert_allclose(margins(p), [0.2, 0.85, 0.01])
    np.testing.assert_allclose(entropies(p), [-(r * np.log(r)).sum() for r in p])
    assert entropies(np.array([[1.0, 0.0]]))[0] == 0.0
