"""Image2D → model input per card, and model outputs → the original image's pixel grid.

Order of operations (one image, all float32):
  CT (int16 HU, card has input.window): each slice → clip((HU − low)/(high − low), 0, 1) — in float, not
  quantised to 8 bits as rendering is — key slice ± neighbours stacked as channels (`input.slices`);
  `scale` is ignored, as API.md says.
  Otherwise (uint8 grey / RGB): grey ↔ RGB to match `input.channels`, then × `scale`.
Then resize to `input.size` (cv2: INTER_AREA when shrinking, INTER_LINEAR when enlarging), then
(x − mean) / std per channel, then the card's layout. Batches stack along a new first axis.

`ImageGeometry` remembers each image's original and model sizes so outputs map back: label masks with
nearest neighbour (labels stay labels), probabilities/logits linearly, boxes by scaling coordinates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from app.datasets.base import Image2D
from app.errors import InvalidInput, Unsupported
from app.inference.card import ModelCard

# Fetches the slice `offset` steps from the key slice (−1 = the one before) as HU pixels of the key
# slice's shape, or None when the volume has no such slice (the nearest existing one is repeated).
NeighbourFn = Callable[[int], np.ndarray | None]


class PreprocessError(InvalidInput):
    """An image cannot be turned into this model's input; the message says why."""


@dataclass(frozen=True)
class ImageGeometry:
    """Where model pixels sit in the original image: sizes in pixels, (height, width)."""

    original: tuple[int, int]
    model: tuple[int, int]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Original pixels per model pixel along x and y."""
        return self.original[1] / self.model[1], self.original[0] / self.model[0]


def _pixels(image: Image2D | np.ndarray) -> np.ndarray:
    return image.pixels if isinstance(image, Image2D) else np.asarray(image)


def window_unit(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    """HU → [0, 1] float32: clip((HU − low)/(high − low), 0, 1)."""
    scaled = (hu.astype(np.float32) - np.float32(low)) / np.float32(high - low)
    return np.clip(scaled, 0.0, 1.0, out=scaled)


def _ct_slices(key: np.ndarray, slices: int, neighbours: NeighbourFn | None) -> list[np.ndarray]:
    """Key slice ± (slices // 2) neighbours, inferior first; missing neighbours repeat the nearest one."""
    half = slices // 2
    if half and neighbours is None:
        raise PreprocessError(f"the card stacks {slices} slices (input.slices) but no neighbour slices were given")
    stack = [key]
    for direction in (-1, 1):
        nearest = key
        for step in range(1, half + 1):
            found = neighbours(direction * step) if neighbours is not None else None
            if found is not None:
                found = np.asarray(found)
                if found.shape != key.shape:
                    raise PreprocessError(f"neighbour slice {direction * step:+d} has shape {found.shape}, "
                                          f"the key slice {key.shape}")
                nearest = found
            if direction < 0:
                stack.insert(0, nearest)
            else:
                stack.append(nearest)
    return stack


def _match_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """uint8 grey (H, W) or RGB(A) (H, W, 3|4) → (H, W, channels)."""
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise PreprocessError(f"expected a grey (H, W) or RGB (H, W, 3) image, got shape {pixels.shape}")
    have = pixels.shape[2]
    if have == channels:
        return pixels
    if have == 1:
        return np.repeat(pixels, channels, axis=2)
    if channels == 1:
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)[:, :, None]
    raise PreprocessError(f"an RGB image cannot feed a model with input.channels {channels}")


def resize_to(array: np.ndarray, height: int, width: int, interpolation: int | None = None) -> np.ndarray:
    """Resize (H, W) or (H, W, C) float/uint8 to (height, width); INTER_AREA down, INTER_LINEAR up."""
    h, w = array.shape[:2]
    if (h, w) == (height, width):
        return array
    if interpolation is None:
        interpolation = cv2.INTER_AREA if height <= h and width <= w else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(array), (width, height), interpolation=interpolation)
    if array.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
        out = out[:, :, None]
    return out


def prepare_image(image: Image2D | np.ndarray, card: ModelCard,
                  neighbours: NeighbourFn | None = None) -> tuple[np.ndarray, ImageGeometry]:
    """One 2-D image → float32 (C, H, W) for NCHW cards or (H, W, C) for NHWC, and its geometry."""
    if card.task == "segment3d":
        raise Unsupported("segment3d models take volumes; 2-D images cannot be prepared for them")
    spec = card.input
    pixels = _pixels(image)
    if pixels.ndim not in (2, 3) or min(pixels.shape[:2]) < 1:
        raise PreprocessError(f"expected a 2-D image, got shape {pixels.shape}")
    is_hu = pixels.dtype != np.uint8
    if is_hu:
        if spec.window is None:
            raise PreprocessError(f"the image holds CT values ({pixels.dtype}, HU) but the card has no input.window")
        if pixels.ndim != 2:
            raise PreprocessError(f"a CT slice must be (H, W), got shape {pixels.shape}")
        low, high = spec.window
        stack = [window_unit(s, low, high) for s in _ct_slices(pixels, spec.slices, neighbours)]
        x = np.stack(stack, axis=2)
        if x.shape[2] != spec.channels:  # one windowed slice repeated for a 3-channel backbone
            x = np.repeat(x, spec.channels, axis=2)
    else:
        if spec.window is not None:
            raise PreprocessError("the card windows CT values (input.window) but the image is 8-bit, not HU")
        x = _match_channels(pixels, spec.channels).astype(np.float32) * np.float32(spec.scale)
    original = (int(pixels.shape[0]), int(pixels.shape[1]))
    x = resize_to(x, spec.height, spec.width)
    mean = np.asarray(spec.mean_values, dtype=np.float32)
    std = np.asarray(spec.std_values, dtype=np.float32)
    x = (x - mean) / std
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=np.float32), ImageGeometry(original, (spec.height, spec.width))


def prepare_batch(images: Sequence[Image2D | np.ndarray], card: ModelCard,
                  neighbours: Sequence[NeighbourFn | None] | None = None) -> tuple[np.ndarray, list[ImageGeometry]]:
    """Several images → one (N, …) float32 batch in the card's layout, and each image's geometry."""
    if not images:
        raise PreprocessError("no images to prepare")
    if neighbours is not None and len(neighbours) != len(images):
        raise ValueError(f"{len(neighbours)} neighbour fetchers for {len(images)} images")
    fast = _uniform_rgb_batch(images, card) if neighbours is None else None
    if fast is not None:
        return fast
    arrays, geometries = [], []
    for i, image in enumerate(images):
        array, geometry = prepare_image(image, card, neighbours[i] if neighbours is not None else None)
        arrays.append(array)
        geometries.append(geometry)
    return np.stack(arrays), geometries


def _uniform_rgb_batch(images: Sequence[Image2D | np.ndarray],
                       card: ModelCard) -> tuple[np.ndarray, list[ImageGeometry]] | None:
    """The common case (8-bit images already at the model's size and channel count, e.g. PCam patches) as
    one vectorised pass over the stacked batch — the same arithmetic as prepare_image, 5–10× faster than
    per image. None when any image needs the general path."""
    spec = card.input
    if spec.window is not None or card.task == "segment3d":
        return None
    pixels = [_pixels(image) for image in images]
    shape = (spec.height, spec.width, spec.channels)
    if any(p.dtype != np.uint8 or p.shape != shape for p in pixels):
        return None
    u8 = np.stack(pixels)  # (N, H, W, C)
    std = np.asarray(spec.std_values, dtype=np.float32)
    gain = np.float32(spec.scale) / std  # (x·scale − mean)/std as one multiply-add per value
    offset = -np.asarray(spec.mean_values, dtype=np.float32) / std
    if spec.layout == "NCHW":
        u8 = u8.transpose(0, 3, 1, 2)  # a strided view: the multiply below reorders as it converts
        gain, offset = gain.reshape(1, -1, 1, 1), offset.reshape(1, -1, 1, 1)
    x = np.empty(u8.shape, np.float32)
    np.multiply(u8, gain, out=x)
    x += offset
    geometry = ImageGeometry((spec.height, spec.width), (spec.height, spec.width))
    return x, [geometry] * len(pixels)


def _nearest_index(src: int, dst: int) -> np.ndarray:
    """Source index of each destination pixel centre (pixel-centre aligned, like cv2's INTER_NEAREST_EXACT)."""
    return np.minimum(((np.arange(dst) + 0.5) * (src / dst)).astype(np.int64), src - 1)


def labels_to_image(mask: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """A (H, W) label mask at model size → the original size by nearest neighbour; values and dtype kept."""
    if mask.ndim != 2:
        raise ValueError(f"expected a (H, W) label mask, got shape {mask.shape}")
    height, width = geometry.original
    if mask.shape == (height, width):
        return mask
    return mask[np.ix_(_nearest_index(mask.shape[0], height), _nearest_index(mask.shape[1], width))]


def scores_to_image(scores: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """Probabilities or logits, (H, W) or (C, H, W), at model size → original size, bilinear, float32."""
    if scores.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (C, H, W) scores, got shape {scores.shape}")
    height, width = geometry.original
    scores = scores.astype(np.float32, copy=False)
    if scores.ndim == 2:
        return resize_to(scores, height, width, cv2.INTER_LINEAR)
    channels_last = resize_to(scores.transpose(1, 2, 0), height, width, cv2.INTER_LINEAR)
    return np.ascontiguousarray(channels_last.transpose(2, 0, 1))


def boxes_to_image(boxes: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """(K, ≥4) boxes x1, y1, x2, y2[, …] in model pixels → original pixels, clipped to the image."""
    boxes = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, boxes.shape[-1] if boxes.size else 6)
    sx, sy = geometry.scale_xy
    height, width = geometry.original
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] * sx, 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] * sy, 0, height)
    return boxes
