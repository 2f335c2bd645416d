"""Tiled 2-D segmentation (card `input.tile: true`): images run at their own resolution in overlapping tiles.
A per-pixel threshold model gives every tile the same value for a pixel, so the blended result must equal the
threshold of the full-resolution image computed here with numpy — for images larger than a tile and for an
image smaller than one (padded, then cropped) — and a job over the dataset stores the same masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.imaging.labels import decode_label_png
from app.inference import tiles2d
from app.inference.card import card_from_text
from tests.helpers.api import register, wait_finished
from tests.helpers.bis5k import GAIN, THRESHOLD, card, gt_mask, items
from tests.onnx_models import threshold_segmenter

TILE = 160  # BIS5k images are 512 or 768 wide: several overlapping tiles, the last ones flush with the edge


def full_resolution_threshold(root, item) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.imread(str(root / item.location)), cv2.COLOR_BGR2RGB).astype(np.float64) / 255
    return (rgb.mean(axis=2) > THRESHOLD).astype(np.uint8)


@pytest.mark.parametrize("tile", [TILE, 1024])  # 1024: larger than every image (padded)
def test_tiled_masks_equal_the_full_resolution_threshold(client, engine, bis_dataset_id, bis_root, tmp_path, tile):
    r = register(client, threshold_segmenter(tmp_path / "seg.onnx", (tile, tile), THRESHOLD, GAIN),
                 card(name=f"tiled-{tile}", input={"layout": "NCHW", "size": [tile, tile], "channels": 3,
                                                   "scale": 1 / 255, "tile": True, "overlap": 0.25}))
    assert r.status_code == 201, r.text
    model_id = r.json()["id"]
    for item in items(engine, bis_dataset_id):
        body = client.post(f"/api/items/{item.id}/predict", json={"model_id": model_id}).json()
        mask = decode_label_png(client.get(body["outputs"]["mask"]).content)
        expected = full_resolution_threshold(bis_root, item)
        assert mask.shape == expected.shape == (item.height, item.width)
        assert (mask != expected).mean() < 1e-4  # only pixels within float error of the threshold may differ
        truth = gt_mask(bis_root, item)
        if truth is not None:
            inter, total = np.logical_and(mask > 0, truth).sum(), int(mask.sum()) + int(truth.sum())
            assert body["metrics"]["dice"] == pytest.approx(2 * inter / total if total else 1.0)


def test_a_tiled_job_stores_the_same_masks(client, engine, bis_dataset_id, bis_root, tmp_path):
    r = register(client, threshold_segmenter(tmp_path / "seg.onnx", (TILE, TILE), THRESHOLD, GAIN),
                 card(name="tiled-job", input={"layout": "NCHW", "size": [TILE, TILE], "channels": 3,
                                               "scale": 1 / 255, "tile": True}))
    model_id = r.json()["id"]
    job = client.post("/api/jobs", json={"kind": "predict", "model_id": model_id, "dataset_id": bis_dataset_id})
    assert wait_finished(client, job.json()["id"])["status"] == "done"
    for item in items(engine, bis_dataset_id):
        mask = decode_label_png(client.get(f"/api/items/{item.id}/predictions/{model_id}/mask").content)
        assert (mask != full_resolution_threshold(bis_root, item)).mean() < 1e-4


def test_tiling_plan_covers_the_image_and_blending_is_a_weighted_mean():
    tiling = tiles2d.plan((300, 500), (128, 128), 0.5)
    covered = np.zeros((300, 500), bool)
    for y, x in tiling.corners:
        covered[y:y + 128, x:x + 128] = True
    assert covered.all() and max(y for y, _ in tiling.corners) == 300 - 128
    probabilities = np.random.default_rng(0).random((len(tiling.corners), 1, 128, 128), np.float32)
    blended = tiles2d.stitch(probabilities, [tiling])[0]
    assert blended.shape == (1, 300, 500)
    assert blended.min() >= probabilities.min() - 1e-6 and blended.max() <= probabilities.max() + 1e-6
    small = tiles2d.plan((50, 70), (128, 128), 0.5)
    assert small.padded == (128, 128) and small.corners == [(0, 0)]


def test_tile_is_refused_outside_segment2d():
    with pytest.raises(Exception, match="input.tile: only segment2d models run on tiles, not classify"):
        card_from_text("name: c\ntask: classify\ninput: {size: [96, 96], channels: 3, tile: true}\n"
                       "output: {kind: logits, classes: [a, b]}\n")
