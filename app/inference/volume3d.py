"""3-D segmentation by sliding window over a whole volume, in bounded memory.

Input: the canonical (RAS+) CT volume at its native voxel grid (no resampling: the card's input.size is in
voxels). It is fed as (D, H, W) = the canonical k (inferior→superior), j (posterior→anterior) and
i (left→right) axes — `to_model_axes` — windowed per the card (HU → [0, 1]) or × `scale`, then (x − mean) / std.
Axes shorter than the tile are padded with the value of HU ≤ window low (0 before normalisation).

Tiles of the card's input.size start every `size × (1 − input.overlap)` voxels along each axis (the last one
flush with the end), `inference_batch` tiles per model run. Overlapping predictions are averaged with
Gaussian weights (σ = size / 8 per axis, as nnU-Net), so tile borders count less than tile centres;
then argmax (or p > 0.5 for one channel). Models that output labels (`output.kind: mask`) cannot be averaged:
each voxel takes the label of the tile whose centre weight there is highest.

Memory: probabilities are accumulated only for the slab of planes the current row of tiles covers
(C × D_tile × H × W floats), and each plane is reduced to a label as soon as no later tile reaches it; the
volume itself is one float32 copy. See docs/model-card.md for timings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from app.inference.card import ModelCard
from app.inference.postprocess import segment
from app.inference.preprocess import PreprocessError, window_unit
from app.inference.runtime import InferenceRuntime


def _first(output: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
    return output[0] if isinstance(output, tuple) else output


def to_model_axes(canonical: np.ndarray) -> np.ndarray:
    """Canonical (i, j, k) → model (D, H, W) = (k, j, i) (a view)."""
    return canonical.transpose(2, 1, 0)


def to_canonical_axes(model: np.ndarray) -> np.ndarray:
    return model.transpose(2, 1, 0)


def normalise_volume(values: np.ndarray, card: ModelCard) -> tuple[np.ndarray, float]:
    """Model-axes values → float32 per the card, and the padding value (the normalised 0 level)."""
    spec = card.input
    if spec.window is not None:
        x = window_unit(values, *spec.window)
    else:
        x = values.astype(np.float32) * np.float32(spec.scale)
    mean, std = np.float32(spec.mean_values[0]), np.float32(spec.std_values[0])
    if mean != 0 or std != 1:
        x -= mean
        x /= std
    return x, float((0.0 - mean) / std)


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets covering 0..length with tiles of `tile`, overlapping by `overlap` (last one flush)."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1.0 - overlap)))
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def gaussian_weights(size: Sequence[int]) -> np.ndarray:
    """Separable Gaussian importance map of any rank, σ = size / 8, peak 1, no zeros (every pixel or voxel of a
    tile counts a bit)."""
    g = np.ones((), np.float64)
    for n in size:
        centre, sigma = (n - 1) / 2.0, max(n / 8.0, 1e-3)
        g = np.multiply.outer(g, np.exp(-0.5 * ((np.arange(n) - centre) / sigma) ** 2))
    g = (g / g.max()).astype(np.float32)
    return np.maximum(g, g[g > 0].min(initial=1.0) if (g > 0).any() else 1.0)


def probabilities32(output: np.ndarray, card: ModelCard) -> np.ndarray:
    """(N, C, D, H, W) float32 probabilities of a tile batch: as `postprocess.mask_probabilities` but in
    float32 in place (a batch of 128³ tiles is tens of millions of values; float64 doubled the time)."""
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 4:
        out = out[:, None]
    if card.output.kind != "mask_logits":
        return out
    if out.shape[1] == 1:
        return (1.0 / (1.0 + np.exp(-np.clip(out, -80, 80)))).astype(np.float32)
    e = np.exp(out - out.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def _batches(positions: list[tuple[int, int, int]], size: int) -> Iterator[list[tuple[int, int, int]]]:
    for n in range(0, len(positions), size):
        yield positions[n:n + size]


class SlidingWindow:
    """One volume through one 3-D model (see the module docstring)."""

    def __init__(self, runtime: InferenceRuntime, card: ModelCard, batch: int):
        self.runtime, self.card, self.batch = runtime, card, max(1, batch)
        self.tile = tuple(card.input.size)
        self.weights = gaussian_weights(self.tile)
        self.foreground_only = False  # set by a call whose model gave one channel (a binary mask, label 1)

    def _run(self, x: np.ndarray, positions: list[tuple[int, int, int]]) -> np.ndarray:
        d, h, w = self.tile
        tiles = np.stack([x[z:z + d, y:y + h, xx:xx + w] for z, y, xx in positions])[:, None]
        if self.card.input.channels > 1:
            tiles = np.repeat(tiles, self.card.input.channels, axis=1)
        return _first(self.runtime.run(tiles))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Model-axes (D, H, W) raw values → (D, H, W) labels (uint8, or uint16 above 255)."""
        if values.ndim != 3 or min(values.shape) < 1:
            raise PreprocessError(f"expected a 3-D volume, got shape {values.shape}")
        shape = values.shape
        x, pad_value = normalise_volume(values, self.card)
        padded = tuple(max(n, t) for n, t in zip(shape, self.tile, strict=True))
        if padded != shape:
            x = np.pad(x, [(0, p - n) for p, n in zip(padded, shape, strict=True)], constant_values=pad_value)
        labels = self._labels_from_masks(x) if self.card.output.kind == "mask" else self._labels_from_scores(x)
        labels = labels[:shape[0], :shape[1], :shape[2]]
        return labels.astype(np.uint8) if labels.max(initial=0) <= 255 else labels.astype(np.uint16)

    def _positions(self, x: np.ndarray) -> tuple[list[int], list[tuple[int, int]]]:
        overlap = self.card.input.overlap
        zs = tile_starts(x.shape[0], self.tile[0], overlap)
        plane = [(y, xx) for y in tile_starts(x.shape[1], self.tile[1], overlap)
                 for xx in tile_starts(x.shape[2], self.tile[2], overlap)]
        return zs, plane

    def _labels_from_scores(self, x: np.ndarray) -> np.ndarray:
        d, h, w = self.tile
        depth, height, width = x.shape
        zs, plane = self._positions(x)
        labels = np.zeros(x.shape, np.int32)
        acc: np.ndarray | None = None  # (C, d, H, W): planes lo … lo + d, the current row of tiles
        wsum = np.zeros((d, height, width), np.float32)
        lo = 0
        for n, z in enumerate(zs):
            for group in _batches([(z, y, xx) for y, xx in plane], self.batch):
                p = probabilities32(self._run(x, group), self.card)
                if acc is None:
                    acc = np.zeros((p.shape[1], d, height, width), np.float32)
                for probs, (tz, ty, tx) in zip(p, group, strict=True):
                    rows = slice(tz - lo, tz - lo + d)
                    acc[:, rows, ty:ty + h, tx:tx + w] += probs * self.weights
                    wsum[rows, ty:ty + h, tx:tx + w] += self.weights
            assert acc is not None  # every row has at least one tile
            done = zs[n + 1] if n + 1 < len(zs) else depth
            k = done - lo
            if acc.shape[0] == 1:
                self.foreground_only = True
                labels[lo:done] = acc[0, :k] > 0.5 * wsum[:k]
            else:
                labels[lo:done] = np.argmax(acc[:, :k], axis=0)
            acc = np.concatenate([acc[:, k:], np.zeros_like(acc[:, :k])], axis=1)
            wsum = np.concatenate([wsum[k:], np.zeros_like(wsum[:k])], axis=0)
            lo = done
        return labels

    def _labels_from_masks(self, x: np.ndarray) -> np.ndarray:
        d, h, w = self.tile
        zs, plane = self._positions(x)
        labels = np.zeros(x.shape, np.int32)
        best = np.zeros(x.shape, np.float32)
        positions = [(z, y, xx) for z in zs for y, xx in plane]
        for group in _batches(positions, self.batch):
            tile_labels = segment(self._run(x, group), self.card)
            for lab, (tz, ty, tx) in zip(tile_labels, group, strict=True):
                region = (slice(tz, tz + d), slice(ty, ty + h), slice(tx, tx + w))
                better = self.weights > best[region]
                labels[region][better] = lab[better]
                best[region][better] = self.weights[better]
        return labels
