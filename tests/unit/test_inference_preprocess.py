"""Preprocessing and postprocessing against independent numpy computations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.datasets.base import Image2D
from app.errors import Unsupported
from app.inference.card import ModelCard, card_from_dict
from app.inference.postprocess import class_probabilities, mask_probabilities, segment, sigmoid, softmax
from app.inference.preprocess import (
    ImageGeometry,
    PreprocessError,
    labels_to_image,
    prepare_batch,
    prepare_image,
    resize_to,
    scores_to_image,
)

RNG = np.random.default_rng(7)


def card(task: str = "classify", output: dict | None = None, **spec) -> ModelCard:
    base = {"size": [32, 48], "channels": 3}
    base.update(spec)
    out = output or ({"kind": "logits", "classes": ["a", "b"]} if task == "classify" else {"kind": "mask_logits"})
    return card_from_dict({"name": "t", "task": task, "input": base, "output": out})


def test_rgb_scale_mean_std_nchw_exact():
    pixels = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    c = card(scale=1 / 255, mean=mean, std=std)
    x, geometry = prepare_image(Image2D(pixels), c)
    ref = (pixels.astype(np.float64) * (1 / 255) - np.array(mean)) / np.array(std)
    assert x.shape == (3, 32, 48) and x.dtype == np.float32
    np.testing.assert_allclose(x, ref.transpose(2, 0, 1), rtol=1e-5, atol=1e-5)
    assert geometry == ImageGeometry(original=(32, 48), model=(32, 48))


def test_nhwc_layout_and_grey_channel_handling():
    grey = RNG.integers(0, 256, (32, 48), dtype=np.uint8)
    x, _ = prepare_image(grey, card(layout="NHWC", scale=2.0, mean=[1, 2, 3], std=[2, 4, 8]))
    assert x.shape == (32, 48, 3)
    for ch, (m, s) in enumerate([(1, 2), (2, 4), (3, 8)]):
        np.testing.assert_allclose(x[:, :, ch], (grey * 2.0 - m) / s, rtol=1e-6)
    rgb = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    one, _ = prepare_image(rgb, card(channels=1))
    np.testing.assert_array_equal(one[0], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32))
    rgba = np.dstack([rgb, np.full((32, 48), 255, np.uint8)])
    np.testing.assert_array_equal(prepare_image(rgba, card())[0], prepare_image(rgb, card())[0])


@pytest.mark.parametrize("window", [(-175.0, 275.0), (-1350.0, 150.0), (0.0, 80.0)])
def test_ct_window_to_unit_then_mean_std(window):
    hu = RNG.integers(-2000, 3000, (32, 48)).astype(np.int16)
    c = card(channels=1, window=list(window), scale=1 / 255, mean=[0.5], std=[0.5])  # scale is ignored for CT
    x, _ = prepare_image(Image2D(hu, slice=10), c)
    low, high = window
    ref = (np.clip((hu.astype(np.float64) - low) / (high - low), 0, 1) - 0.5) / 0.5
    np.testing.assert_allclose(x[0], ref, rtol=1e-6, atol=1e-6)
    assert x.min() >= -1 and x.max() <= 1


def test_ct_neighbour_slices_become_channels():
    volume = RNG.integers(-1000, 1000, (5, 32, 48)).astype(np.int16)
    key = 2

    def fetch(offset: int, key: int = key):
        k = key + offset
        return volume[k] if 0 <= k < len(volume) else None

    c = card(window=[-1000, 1000], slices=3)
    x, _ = prepare_image(Image2D(volume[key], slice=key), c, neighbours=fetch)
    unit = np.clip((volume.astype(np.float64) + 1000) / 2000, 0, 1)
    np.testing.assert_allclose(x, unit[key - 1:key + 2], atol=1e-6)
    # at the first slice there is no inferior neighbour: the key slice repeats
    x0, _ = prepare_image(volume[0], c, neighbours=lambda off: fetch(off, 0))
    np.testing.assert_allclose(x0, unit[[0, 0, 1]], atol=1e-6)
    with pytest.raises(PreprocessError, match="no neighbour slices were given"):
        prepare_image(volume[key], c)


def test_ct_single_slice_repeated_for_three_channel_backbone():
    hu = RNG.integers(-500, 500, (32, 48)).astype(np.int16)
    x, _ = prepare_image(hu, card(window=[-500, 500]))
    np.testing.assert_array_equal(x[0], x[1])
    np.testing.assert_array_equal(x[0], x[2])


def test_modality_mismatch_errors():
    with pytest.raises(PreprocessError, match="no input.window"):
        prepare_image(np.zeros((32, 48), np.int16), card())
    with pytest.raises(PreprocessError, match="8-bit, not HU"):
        prepare_image(np.zeros((32, 48), np.uint8), card(window=[-100, 100]))
    with pytest.raises(PreprocessError, match="expected a grey"):
        prepare_image(np.zeros((32, 48, 2), np.uint8), card())
    with pytest.raises(PreprocessError, match="RGB image cannot feed"):
        prepare_image(np.zeros((32, 48, 3), np.uint8), card(channels=2))
    seg3d = card_from_dict({"name": "v", "task": "segment3d", "input": {"layout": "NCDHW", "size": [8, 32, 32],
                            "channels": 1}, "output": {"kind": "mask"}})
    with pytest.raises(Unsupported):
        prepare_image(np.zeros((32, 32), np.uint8), seg3d)


def test_resize_interpolation_and_batch():
    big = RNG.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    small = RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    batch, geometries = prepare_batch([Image2D(big), Image2D(small)], card(layout="NHWC"))
    assert batch.shape == (2, 32, 48, 3)
    down = cv2.resize(big.astype(np.float32), (48, 32), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small.astype(np.float32), (48, 32), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(batch[0], down, rtol=1e-6)
    np.testing.assert_allclose(batch[1], up, rtol=1e-6)
    # 2×2 block averages when halving exactly
    np.testing.assert_allclose(batch[0], big.astype(np.float64).reshape(32, 2, 48, 2, 3).mean(axis=(1, 3)), rtol=1e-5)
    assert [g.original for g in geometries] == [(64, 96), (16, 24)]
    assert resize_to(np.zeros((10, 10, 1), np.float32), 5, 5).shape == (5, 5, 1)


def test_label_masks_resize_back_keeping_labels():
    labels = RNG.integers(0, 7, (32, 48)).astype(np.uint8)
    labels[labels == 3] = 200
    for original in [(64, 96), (100, 30), (32, 48), (7, 5)]:
        back = labels_to_image(labels, ImageGeometry(original=original, model=(32, 48)))
        assert back.shape == original and back.dtype == np.uint8
        assert set(np.unique(back)) <= set(np.unique(labels))
    exact = labels_to_image(labels, ImageGeometry(original=(64, 96), model=(32, 48)))
    np.testing.assert_array_equal(exact, np.repeat(np.repeat(labels, 2, axis=0), 2, axis=1))
    wide = labels_to_image(np.array([[1, 2, 3]], np.int32), ImageGeometry(original=(1, 6), model=(1, 3)))
    assert wide.tolist() == [[1, 1, 2, 2, 3, 3]]


def test_probabilities_resize_back_linearly():
    probs = RNG.random((2, 8, 12)).astype(np.float32)
    back = scores_to_image(probs, ImageGeometry(original=(16, 24), model=(8, 12)))
    assert back.shape == (2, 16, 24)
    for c in range(2):
        np.testing.assert_allclose(back[c], cv2.resize(probs[c], (24, 16), interpolation=cv2.INTER_LINEAR), atol=1e-6)
    assert back.min() >= probs.min() - 1e-6 and back.max() <= probs.max() + 1e-6
    assert scores_to_image(probs[0], ImageGeometry(original=(4, 6), model=(8, 12))).shape == (4, 6)


def test_softmax_sigmoid_stable():
    logits = np.array([[1000.0, 1001.0, 999.0], [-1e4, 0.0, 1e4]])
    p = softmax(logits)
    ref = np.exp(logits[0] - 1001) / np.exp(logits[0] - 1001).sum()
    np.testing.assert_allclose(p[0], ref)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    assert np.isfinite(p).all()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = sigmoid(np.array([-1e4, 0.0, 1e4]))
    np.testing.assert_allclose(s, [0.0, 0.5, 1.0])


def test_single_logit_binary_and_given_probabilities():
    binary = card()  # classes a, b
    p = class_probabilities(np.array([[0.0], [2.0]]), binary)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-np.array([0.0, 2.0]))))
    given = card(output={"kind": "probabilities", "classes": ["a", "b", "c"]})
    np.testing.assert_allclose(class_probabilities(np.array([[0.2, 0.3, 0.5]]), given), [[0.2, 0.3, 0.5]])


def test_segmentation_outputs():
    seg = card("segment2d")
    logits = RNG.normal(size=(2, 1, 32, 48)).astype(np.float32)
    masks = segment(logits, seg)
    np.testing.assert_array_equal(masks, (logits[:, 0] > 0).astype(np.uint8))
    multi = RNG.normal(size=(2, 4, 32, 48)).astype(np.float32)
    np.testing.assert_array_equal(segment(multi, seg), multi.argmax(axis=1))
    np.testing.assert_allclose(mask_probabilities(multi, seg).sum(axis=1), 1)
    nhwc = card("segment2d", layout="NHWC")
    np.testing.assert_array_equal(segment(multi.transpose(0, 2, 3, 1), nhwc), multi.argmax(axis=1))
    given = card("segment2d", output={"kind": "mask"})
    np.testing.assert_array_equal(segment(np.array([[[0.0, 2.0], [300.0, 1.0]]]), given), [[[0, 2], [300, 1]]])
    assert segment(np.array([[[0.0, 2.0], [300.0, 1.0]]]), given).dtype == np.int32


def test_uniform_rgb_batch_fast_path_equals_per_image():
    """The vectorised batch path gives exactly what prepare_image gives each image."""
    from app.inference.card import card_from_dict
    from app.inference.preprocess import prepare_batch, prepare_image

    card = card_from_dict({"name": "c", "task": "classify",
                           "input": {"layout": "NCHW", "size": [96, 96], "channels": 3, "scale": 1 / 255,
                                     "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.5]},
                           "output": {"kind": "logits", "classes": ["a", "b"]}, "applies_to": ["pcam"]})
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(5)]
    batch, geometries = prepare_batch(images, card)
    expected = np.stack([prepare_image(im, card)[0] for im in images])
    assert batch.shape == (5, 3, 96, 96) and batch.flags.c_contiguous
    np.testing.assert_allclose(batch, expected, rtol=1e-5, atol=1e-5)  # same arithmetic, reassociated
    assert all(g.original == (96, 96) for g in geometries)
