"""The sliding window of app.inference.volume3d with real ONNX models: tile placement, padding of volumes
smaller than a tile, Gaussian-weighted averaging (a pointwise model gives the same answer in every tile, so
the result must equal the model applied to the whole volume at once), and label-output models."""

from __future__ import annotations

import numpy as np
import pytest

from app.inference.card import card_from_dict
from app.inference.runtime import OnnxModel
from app.inference.volume3d import SlidingWindow, gaussian_weights, tile_starts, to_canonical_axes, to_model_axes
from tests.onnx_models import threshold_segmenter_3d

TILE = (4, 6, 8)


def card(kind: str = "mask_logits", overlap: float = 0.5, size=TILE) -> dict:
    return card_from_dict({"name": "t", "task": "segment3d",
                           "input": {"layout": "NCDHW", "size": list(size), "channels": 1, "window": [-100, 100],
                                     "overlap": overlap}, "output": {"kind": kind}})


@pytest.mark.parametrize(("length", "tile", "overlap", "want"), [
    (10, 4, 0.5, [0, 2, 4, 6]), (11, 4, 0.5, [0, 2, 4, 6, 7]), (3, 4, 0.5, [0]), (8, 4, 0.0, [0, 4]),
    (9, 4, 0.0, [0, 4, 5]), (4, 4, 0.75, [0])])
def test_tile_starts_cover_the_axis(length, tile, overlap, want):
    starts = tile_starts(length, tile, overlap)
    assert starts == want
    covered = np.zeros(max(length, tile), bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered[:length].all()


def test_gaussian_weights_peak_in_the_centre():
    g = gaussian_weights((5, 7, 9))
    assert g.shape == (5, 7, 9) and g.max() == pytest.approx(1.0) and g[2, 3, 4] == g.max() and g.min() > 0


def test_axes_round_trip():
    v = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert to_model_axes(v).shape == (4, 3, 2) and np.array_equal(to_canonical_axes(to_model_axes(v)), v)
    assert to_model_axes(v)[3, 2, 1] == v[1, 2, 3]


@pytest.mark.parametrize("shape", [(9, 13, 17), (3, 5, 4), (4, 6, 8)])
@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_pointwise_model_equals_whole_volume_threshold(tmp_path, shape, overlap):
    rng = np.random.default_rng(1)
    hu = rng.integers(-100, 100, size=shape).astype(np.int16) * 2 + 1  # odd: never exactly on the cut at 0
    model = OnnxModel(threshold_segmenter_3d(tmp_path / "m.onnx", TILE, 0.5), card(overlap=overlap), "cpu")
    labels = SlidingWindow(model, model.card, batch=3)(hu)
    assert labels.shape == shape and labels.dtype == np.uint8
    assert np.array_equal(labels, (hu > 0).astype(np.uint8))


def test_label_model_keeps_its_labels(tmp_path):
    rng = np.random.default_rng(2)
    hu = rng.integers(-100, 100, size=(7, 11, 10)).astype(np.int16) * 2 + 1
    model = OnnxModel(threshold_segmenter_3d(tmp_path / "m.onnx", TILE, 0.5, label=300), card("mask"), "cpu")
    labels = SlidingWindow(model, model.card, batch=2)(hu)
    assert labels.dtype == np.uint16 and np.array_equal(labels, (hu > 0) * 300)
