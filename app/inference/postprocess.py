"""Raw model outputs → predictions, per the card's output kind (still in model pixels for masks/boxes).

- classify: logits → softmax (numerically stable; one logit with two classes → sigmoid), or the model's
  probabilities as given; label = classes[argmax]. Shapes (N, K).
- segment: mask_logits → sigmoid (one channel, foreground where p > threshold) or softmax + argmax;
  probabilities the same without the activation; mask → integer labels as given. The channel axis
  follows the card's layout (channels last for NHWC), and (N, H, W) means one channel.
- detect2d: boxes (N, 6) or (batch, N, 6) as x1, y1, x2, y2, score, label; kept where score ≥ threshold,
  best first.
Map masks and boxes back to the original image with `app.inference.preprocess`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.inference.card import ModelCard


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x − max) / Σ exp(x − max): no overflow for large logits."""
    x = np.asarray(logits, dtype=np.float64)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−x) without overflow warnings for large |x|."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass(frozen=True)
class ClassPrediction:
    probabilities: np.ndarray  # (K,), sums to 1
    index: int
    label: str

    def as_outputs(self) -> dict[str, Any]:
        """The API's classification outputs: {"probabilities": [...], "label": ...}."""
        return {"probabilities": [float(p) for p in self.probabilities], "label": self.label}


def class_probabilities(output: np.ndarray, card: ModelCard) -> np.ndarray:
    """(N, K) probabilities from a classifier's output."""
    out = np.asarray(output, dtype=np.float64)
    if out.ndim == 1:
        out = out[None, :]
    if out.ndim != 2:
        raise ValueError(f"a classifier's output must be (N, K), got shape {out.shape}")
    classes = card.output.classes or []
    if card.output.kind == "logits":
        if out.shape[1] == 1 and len(classes) == 2:
            p = sigmoid(out[:, 0])
            return np.stack([1.0 - p, p], axis=1)
        return softmax(out, axis=1)
    if out.shape[1] == 1 and len(classes) == 2:
        return np.concatenate([1.0 - out, out], axis=1)
    return out


def classify(output: np.ndarray, card: ModelCard) -> list[ClassPrediction]:
    probabilities = class_probabilities(output, card)
    classes = card.output.classes or []
    if probabilities.shape[1] != len(classes):
        raise ValueError(f"the model gives {probabilities.shape[1]} scores but the card names {len(classes)} classes")
    indices = np.argmax(probabilities, axis=1)
    return [ClassPrediction(p, int(i), classes[int(i)]) for p, i in zip(probabilities, indices, strict=True)]


def _channels_first(output: np.ndarray, card: ModelCard) -> np.ndarray:
    """Segmentation output → (N, C, *spatial)."""
    out = np.asarray(output)
    spatial = len(card.input.size)
    if out.ndim == spatial + 1:
        return out[:, None]
    if out.ndim != spatial + 2:
        raise ValueError(f"a {card.task} output must have {spatial + 1} or {spatial + 2} dimensions, got {out.shape}")
    return np.moveaxis(out, -1, 1) if card.input.layout == "NHWC" else out


def mask_probabilities(output: np.ndarray, card: ModelCard) -> np.ndarray:
    """(N, C, *spatial) per-pixel probabilities; one channel means foreground probability."""
    out = _channels_first(output, card)
    kind = card.output.kind
    if kind == "mask":
        raise ValueError("a model that outputs a mask gives labels, not probabilities")
    if kind == "mask_logits":
        return sigmoid(out) if out.shape[1] == 1 else softmax(out, axis=1)
    return out.astype(np.float64)


def segment(output: np.ndarray, card: ModelCard, threshold: float = 0.5) -> np.ndarray:
    """(N, *spatial) integer label masks (uint8 when labels fit, else int32); 0 = background."""
    out = _channels_first(output, card)
    if card.output.kind == "mask":
        labels = np.rint(out[:, 0]) if np.issubdtype(out.dtype, np.floating) else out[:, 0]
    else:
        p = mask_probabilities(output, card)
        labels = p[:, 0] > threshold if p.shape[1] == 1 else np.argmax(p, axis=1)
    labels = np.asarray(labels)
    dtype = np.uint8 if labels.size == 0 or (labels.min() >= 0 and labels.max() <= 255) else np.int32
    return labels.astype(dtype)


def detections(output: np.ndarray, score_threshold: float = 0.5) -> list[np.ndarray]:
    """Per image, (K, 6) float32 boxes with score ≥ threshold, highest score first."""
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 2:
        out = out[None]
    if out.ndim != 3 or out.shape[-1] != 6:
        raise ValueError(f"boxes must be (N, 6) or (batch, N, 6) as x1, y1, x2, y2, score, label; got {out.shape}")
    kept = []
    for boxes in out:
        boxes = boxes[boxes[:, 4] >= score_threshold]
        kept.append(boxes[np.argsort(-boxes[:, 4], kind="stable")])
    return kept


def boxes_as_outputs(boxes: np.ndarray, card: ModelCard) -> dict[str, Any]:
    """The API's detection outputs: {"boxes": [[x1, y1, x2, y2, score, label]…]}, label named when possible."""
    classes = card.output.classes or []
    rows = []
    for x1, y1, x2, y2, score, label in np.asarray(boxes, dtype=np.float64).reshape(-1, 6):
        index = int(round(label))
        name: str | int = classes[index] if 0 <= index < len(classes) else index
        rows.append([float(x1), float(y1), float(x2), float(y2), float(score), name])
    return {"boxes": rows}
