"""Few-shot classifiers on embedding vectors, the arrays part (no database): draw N labelled items per class, fit a
linear head (logistic regression, or a linear SVM whose scores are Platt-scaled), apply it, measure the label
curve (balanced accuracy against labels per class), and compose the ONNX classifier = embedder + head.

The head is always one affine map of the unit-length vector followed by a softmax: probabilities =
softmax(W · x/|x| + b), W [K, D], b [K]. Logistic regression gives it directly (a binary one as the logits
(0, w·x + b)); the SVM's one-vs-rest scores s = V·x + c are calibrated by a multinomial logistic regression on s
(Platt scaling, fitted on the training items), A·s + a, which is again affine: W = A·V, b = A·c + a. So the
same head runs in numpy on the stored vectors and, appended to the embedder's graph, in onnxruntime on images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import InvalidInput

METHODS = ("logistic", "svm")
CURVE_SIZES = (1, 5, 10, 25, 50, 100, 250)
C_LOGISTIC = 10.0  # inverse regularisation; the inputs are unit vectors, so |logit| ≤ |w| + |b|
C_SVM = 1.0
C_PLATT = 1.0  # the SVM scores' calibration is regularised too: few-shot training scores are often separable


@dataclass(frozen=True)
class Head:
    weights: np.ndarray  # [K, D] float64
    bias: np.ndarray  # [K]

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        return unit(vectors) @ self.weights.T + self.bias

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        z = self.logits(vectors)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(vectors), axis=1)


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float64 (a zero row stays zero), as the vector store keeps them."""
    v = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def draw(labels: np.ndarray, per_class: int, n_classes: int, rng: np.random.Generator,
         class_names: Sequence[str] = ()) -> np.ndarray:
    """Row indices of `per_class` items of each class, drawn without replacement (sorted); InvalidInput naming
    the class when it has fewer labelled items."""
    chosen = []
    for k in range(n_classes):
        rows = np.flatnonzero(labels == k)
        if len(rows) < per_class:
            name = class_names[k] if k < len(class_names) else str(k)
            raise InvalidInput(f"per_class: class {name!r} has {len(rows)} labelled item"
                               f"{'' if len(rows) == 1 else 's'} with a vector, fewer than {per_class}")
        chosen.append(rng.choice(rows, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def _expand(coef: np.ndarray, intercept: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's binary models give one row (the positive class's score): logits (0, score)."""
    coef, intercept = np.asarray(coef, np.float64), np.asarray(intercept, np.float64)
    if coef.shape[0] == 1 and n_classes == 2:
        return np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    return coef, intercept


def fit_head(vectors: np.ndarray, labels: np.ndarray, n_classes: int, method: str = "logistic",
             seed: int = 0) -> Head:
    """A linear head on (unit) vectors of labelled items; every class 0..n_classes-1 must be present."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if method not in METHODS:
        raise InvalidInput(f"method: {method!r} is not one of {', '.join(METHODS)}")
    x, y = unit(vectors), np.asarray(labels)
    if sorted(set(y.tolist())) != list(range(n_classes)):
        raise InvalidInput(f"per_class: the training items must cover all {n_classes} classes")
    if method == "logistic":
        lr = LogisticRegression(C=C_LOGISTIC, max_iter=5000, random_state=seed).fit(x, y)
        return Head(*_expand(lr.coef_, lr.intercept_, n_classes))
    svm = LinearSVC(C=C_SVM, max_iter=20000, random_state=seed).fit(x, y)
    v, c = _expand(svm.coef_, svm.intercept_, n_classes)
    scores = x @ v.T + c
    platt = LogisticRegression(C=C_PLATT, max_iter=5000, random_state=seed).fit(scores, y)
    a, a0 = _expand(platt.coef_, platt.intercept_, n_classes)
    return Head(a @ v, a @ c + a0)


def balanced_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(truth, predicted))


def label_curve(vectors: np.ndarray, labels: np.ndarray, n_classes: int, *, method: str = "logistic",
                sizes: Sequence[int] = CURVE_SIZES, draws: int = 5, seed: int = 0, max_test: int = 20_000,
                class_names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Balanced accuracy on the held-out labelled items against labels per class: for each size that leaves
    every class at least one held-out item, `draws` random draws (seed + draw), each trained on its draw and
    tested on all the other labelled items (a seeded sample of `max_test` of them when there are more)."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes)
    usable = [n for n in sizes if n < int(counts.min())]
    points = []
    for n in usable:
        scores = []
        for d in range(draws):
            rng = np.random.default_rng([seed, d, n])
            train = draw(labels, n, n_classes, rng, class_names)
            test = np.setdiff1d(np.arange(len(labels)), train, assume_unique=True)
            if len(test) > max_test:
                test = np.sort(rng.choice(test, size=max_test, replace=False))
            head = fit_head(vectors[train], labels[train], n_classes, method, seed + d)
            scores.append(balanced_accuracy(labels[test], head.predict(vectors[test])))
        values = np.asarray(scores)
        points.append({"per_class": n, "mean": float(values.mean()), "sd": float(values.std(ddof=1)) if draws > 1
                       else 0.0, "draws": [round(s, 6) for s in scores], "train": n * n_classes,
                       "test": int(min(len(labels) - n * n_classes, max_test))})
    return points


def compose_onnx(embedder: bytes | str, head: Head) -> bytes:
    """The embedder's ONNX graph with the head appended: its first output [N, D] → L2-normalised → MatMul W^T →
    Add b → Softmax → `probabilities` [N, K] (the graph's only output; weights as float32 initialisers)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(embedder) if isinstance(embedder, bytes) else onnx.load(embedder)
    graph = model.graph
    source = graph.output[0].name
    k, d = head.weights.shape
    p = "fewshot_head_"

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(value, np.float32), p + name)

    graph.initializer.extend([const("ones", np.ones((d, 1))), const("eps", np.array(1e-24)),
                              const("w", head.weights.T), const("b", head.bias)])
    # Mul/MatMul/Max/Sqrt/Div/Add/Softmax(axis=1 on 2-D) mean the same in every opset, so any embedder fits
    graph.node.extend([
        helper.make_node("Mul", [source, source], [p + "sq"]),
        helper.make_node("MatMul", [p + "sq", p + "ones"], [p + "sumsq"]),
        helper.make_node("Max", [p + "sumsq", p + "eps"], [p + "sumsq_safe"]),
        helper.make_node("Sqrt", [p + "sumsq_safe"], [p + "norm"]),
        helper.make_node("Div", [source, p + "norm"], [p + "unit"]),
        helper.make_node("MatMul", [p + "unit", p + "w"], [p + "wx"]),
        helper.make_node("Add", [p + "wx", p + "b"], [p + "logits"]),
        helper.make_node("Softmax", [p + "logits"], [p + "probabilities"], axis=1),
    ])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(p + "probabilities", TensorProto.FLOAT, ["N", k]))
    model.producer_name = "medview-fewshot"
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
