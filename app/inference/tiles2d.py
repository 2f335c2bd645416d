"""2-D sliding-window segmentation (card `input.tile: true`): a large image is cut into tiles of the card's
`input.size` at its own resolution — no resizing, so a pathologist's 40× tile keeps its nuclei — overlapping
by `input.overlap`, and the tiles' class probabilities are blended back with a Gaussian importance map (tile
centres count most, as in nnU-Net / MONAI's sliding-window inference), then thresholded or arg-maxed.

An image smaller than a tile is padded by repeating its edge pixels, and the padding is cropped away again.
A model whose output is a label mask (`output.kind: mask`) votes: each label is one-hot and blended alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.datasets.base import Image2D
from app.inference.card import ModelCard
from app.inference.preprocess import prepare_batch
from app.inference.volume3d import gaussian_weights, tile_starts


@dataclass(frozen=True)
class Tiling:
    """Where one image's tiles sit: its size, its padded size, and each tile's top-left corner."""

    shape: tuple[int, int]
    padded: tuple[int, int]
    corners: list[tuple[int, int]]


def plan(shape: tuple[int, int], tile: tuple[int, int], overlap: float) -> Tiling:
    padded = (max(shape[0], tile[0]), max(shape[1], tile[1]))
    corners = [(y, x) for y in tile_starts(padded[0], tile[0], overlap)
               for x in tile_starts(padded[1], tile[1], overlap)]
    return Tiling(shape, padded, corners)


def _pad(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    extra = ((0, height - pixels.shape[0]), (0, width - pixels.shape[1])) + ((0, 0),) * (pixels.ndim - 2)
    return np.pad(pixels, extra, mode="edge") if any(e[1] for e in extra) else pixels


def tile_batch(images: Sequence[Image2D], card: ModelCard) -> tuple[np.ndarray, list[Tiling]]:
    """Every image's tiles, preprocessed per the card, as one (tiles, …) batch; and each image's tiling."""
    height, width = card.input.size
    tiles: list[Image2D] = []
    plans: list[Tiling] = []
    for image in images:
        tiling = plan(image.pixels.shape[:2], (height, width), card.input.overlap)
        padded = _pad(image.pixels, *tiling.padded)
        tiles += [Image2D(padded[y:y + height, x:x + width]) for y, x in tiling.corners]
        plans.append(tiling)
    batch, _ = prepare_batch(tiles, card)
    return batch, plans


def class_probabilities(output: np.ndarray, card: ModelCard) -> np.ndarray:
    """(tiles, C, h, w) float32: probabilities, or one-hot votes for a label-mask model."""
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 3:  # (N, H, W): one channel
        out = out[:, None]
    elif card.input.layout == "NHWC":
        out = np.moveaxis(out, -1, 1)
    if card.output.kind == "probabilities":
        return out
    if card.output.kind == "mask_logits":  # the 2-D counterpart of volume3d.probabilities32
        if out.shape[1] == 1:
            return (1.0 / (1.0 + np.exp(-np.clip(out, -80, 80)))).astype(np.float32)
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    labels = np.rint(out[:, 0]).astype(np.int64)
    classes = max(len(card.output.classes or []), int(labels.max(initial=0)) + 1, 2)
    return np.moveaxis(np.eye(classes, dtype=np.float32)[labels], -1, 1)


def stitch(probabilities: np.ndarray, tilings: Sequence[Tiling]) -> list[np.ndarray]:
    """Blend tile probabilities (in `tile_batch` order) into one (C, H, W) map per image."""
    weights = gaussian_weights(probabilities.shape[2:])
    out, n = [], 0
    for tiling in tilings:
        channels = probabilities.shape[1]
        acc = np.zeros((channels, *tiling.padded), np.float32)
        norm = np.zeros(tiling.padded, np.float32)
        h, w = probabilities.shape[2:]
        for y, x in tiling.corners:
            acc[:, y:y + h, x:x + w] += probabilities[n] * weights
            norm[y:y + h, x:x + w] += weights
            n += 1
        acc /= norm
        out.append(acc[:, :tiling.shape[0], :tiling.shape[1]])
    return out


def labels_of(probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(C, H, W) → (H, W) uint8 labels: foreground where p > threshold for one channel, else the arg-max."""
    if probability.shape[0] == 1:
        return (probability[0] > threshold).astype(np.uint8)
    return np.argmax(probability, axis=0).astype(np.uint8)


def foreground(probability: np.ndarray) -> np.ndarray:
    """(C, H, W) → (H, W) foreground probability (1 − background for several classes)."""
    return np.clip(probability[0] if probability.shape[0] == 1 else 1.0 - probability[0], 0.0, 1.0)
