"""2-D segmentation end to end on a generated BIS5k: a real ONNX segmenter that thresholds the channel mean,
run synchronously, through a job and through the CLI; the stored masks, per-item metrics, item_metrics rows,
the mask endpoint and the evaluation checked against masks computed here with numpy from the PNG files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from sqlalchemy import select

from app.cli import main as cli_main
from app.db.models import Item, ItemMetric, Prediction
from app.db.session import make_session_factory
from app.imaging.labels import decode_label_png
from app.metrics.segmentation import e_measure, mae, s_measure, weighted_f_measure
from tests.helpers.api import register, wait_finished
from tests.helpers.bis5k import GAIN, SIZE, THRESHOLD, card, gt_mask, items
from tests.onnx_models import threshold_segmenter, threshold_segmenter_3d


@pytest.fixture
def model_id(client, tmp_path) -> int:
    r = register(client, threshold_segmenter(tmp_path / "seg.onnx", (SIZE, SIZE), THRESHOLD, GAIN), card())
    assert r.status_code == 201, r.text
    return r.json()["id"]


def expected(root: Path, item: Item) -> tuple[np.ndarray, np.ndarray]:
    """(labels, foreground probability) at full size, for a 512 × 512 image: the model's 256 × 256 input is
    the mean of each 2 × 2 block (INTER_AREA halving), and nearest-neighbour doubling brings the mask back."""
    rgb = cv2.cvtColor(cv2.imread(str(root / item.location)), cv2.COLOR_BGR2RGB).astype(np.float64) / 255
    assert rgb.shape[:2] == (512, 512)
    half = rgb.reshape(256, 2, 256, 2, 3).mean(axis=(1, 3)).mean(axis=2)
    logits = GAIN * (half - THRESHOLD)
    labels = np.repeat(np.repeat(logits > 0, 2, axis=0), 2, axis=1).astype(np.uint8)
    return labels, 1 / (1 + np.exp(-logits))


def test_predict_items_masks_and_metrics(client, engine, settings, bis_dataset_id, model_id, bis_root):
    checked = 0
    for item in items(engine, bis_dataset_id):
        r = client.post(f"/api/items/{item.id}/predict", json={"model_id": model_id})
        assert r.status_code == 200, r.text
        body = r.json()
        url = f"/api/items/{item.id}/predictions/{model_id}/mask"
        assert body["task"] == "segment2d" and body["outputs"]["mask"] == url
        png = client.get(url)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        mask = decode_label_png(png.content)
        assert mask.shape == (item.height, item.width)  # the size of /raw for the item
        assert client.get(url, headers={"If-None-Match": png.headers["etag"]}).status_code == 304
        stored = Path(settings.data_dir) / "predictions" / str(model_id) / f"{item.id}.png"
        assert np.array_equal(decode_label_png(stored.read_bytes()), mask)
        assert body["outputs"]["labels"] == ([1] if mask.any() else [])
        assert body["outputs"]["area_fraction"] == pytest.approx(mask.mean())
        truth = gt_mask(bis_root, item)
        if truth is None:
            assert body["metrics"] == {}  # no ground truth: stored, without metrics
            continue
        if (item.width, item.height) == (512, 512):
            labels, probability = expected(bis_root, item)
            assert np.array_equal(mask, labels)
            m = body["metrics"]
            inter = np.logical_and(labels > 0, truth).sum()
            assert m["dice"] == pytest.approx(2 * inter / (labels.sum() + truth.sum()))
            assert m["iou"] == pytest.approx(inter / np.logical_or(labels > 0, truth).sum())
            assert m["mae"] == pytest.approx(np.abs(probability.repeat(2, 0).repeat(2, 1) - truth).mean(), abs=0.01)
            checked += 1
        m = body["metrics"]
        assert set(m) == {"dice", "iou", "mae", "wfm", "s_measure", "e_measure"}
        with make_session_factory(engine)() as session:
            rows = dict(session.execute(select(ItemMetric.name, ItemMetric.value).where(
                ItemMetric.item_id == item.id, ItemMetric.model_id == model_id)).all())
        assert rows == pytest.approx(m)
    assert checked >= 1


def test_metrics_use_the_probability_map(client, engine, bis_dataset_id, model_id, bis_root):
    """wFm, S- and E-measure of a 512 × 512 image agree with the metric functions on the full-size map."""
    item = next(i for i in items(engine, bis_dataset_id) if (i.width, i.height) == (512, 512) and gt_mask(bis_root, i)
                is not None)
    body = client.post(f"/api/items/{item.id}/predict", json={"model_id": model_id}).json()
    _, probability = expected(bis_root, item)
    full = cv2.resize(probability.astype(np.float32), (512, 512), interpolation=cv2.INTER_LINEAR).clip(0, 1)
    truth = gt_mask(bis_root, item)
    for key, fn in (("wfm", weighted_f_measure), ("s_measure", s_measure), ("e_measure", e_measure), ("mae", mae)):
        assert body["metrics"][key] == pytest.approx(fn(full, truth), abs=2e-3), key


def test_job_evaluation_and_worst_first(client, engine, bis_dataset_id, model_id, bis_root):
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": model_id, "dataset_id": bis_dataset_id})
    assert r.status_code == 202, r.text
    assert wait_finished(client, r.json()["id"])["status"] == "done"
    every = items(engine, bis_dataset_id)
    with make_session_factory(engine)() as session:
        preds = {p.item_id: p.metrics for p in session.scalars(select(Prediction).where(
            Prediction.model_id == model_id))}
        metric_rows = session.execute(select(ItemMetric.item_id, ItemMetric.value).where(
            ItemMetric.model_id == model_id, ItemMetric.name == "dice")).all()
    assert set(preds) == {i.id for i in every}
    with_truth = [i for i in every if gt_mask(bis_root, i) is not None]
    assert len(metric_rows) == len(with_truth) == len(every) - 1
    ev = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": bis_dataset_id})
    assert ev.status_code == 200, ev.text
    body = ev.json()
    assert body["task"] == "segment2d" and body["n"] == len(with_truth) and body["predicted"] == len(every)
    dices = [preds[i.id]["dice"] for i in with_truth]
    assert body["dice"] == pytest.approx(np.mean(dices))
    assert body["iou"] == pytest.approx(np.mean([preds[i.id]["iou"] for i in with_truth]))
    assert sum(body["dice_histogram"]["counts"]) == len(with_truth)
    assert body["dice_histogram"]["counts"][min(int(dices[0] * 10), 9)] >= 1
    assert body["worst_first"]["sort"] == f"metric:{model_id}:dice"
    # filtered by split: only the test images
    test_only = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": bis_dataset_id, "split": "test"})
    assert test_only.json()["n"] == len([i for i in with_truth if i.split == "test"])
    page = client.get(f"/models/{model_id}/evaluation", params={"dataset_id": bis_dataset_id})
    assert page.status_code == 200
    assert f"/datasets/{bis_dataset_id}?sort=metric:{model_id}:dice" in page.text
    assert 'class="roc histogram"' in page.text and page.text.count('<rect class="bar"') == 10


def test_cli_predict_runs_a_segmenter(engine, settings, bis_dataset_id, model_id, monkeypatch, capsys):
    monkeypatch.setenv("MEDVIEW_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MEDVIEW_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MEDVIEW_DATA_ROOTS", ":".join(str(r) for r in settings.allowed_roots))
    assert cli_main(["predict", "--model", "bis-threshold", "--dataset", "bis", "--split", "test"]) == 0
    with make_session_factory(engine)() as session:
        done = set(session.scalars(select(Prediction.item_id).where(Prediction.model_id == model_id)))
    assert done == {i.id for i in items(engine, bis_dataset_id) if i.split == "test"}
    for item_id in done:
        assert (Path(settings.data_dir) / "predictions" / str(model_id) / f"{item_id}.png").is_file()


def test_bad_inputs(client, engine, bis_dataset_id, model_id, tmp_path):
    item = items(engine, bis_dataset_id)[0]
    # a mask whose size differs from the input: refused at registration, naming the sizes
    r = register(client, threshold_segmenter(tmp_path / "odd.onnx", (SIZE, SIZE), 0.5, stride=2),
                 card(name="odd"))
    assert r.status_code == 400 and "differs from the card's input.size" in r.json()["detail"]
    # a 3-D segmenter on 2-D images
    card3d = {"name": "vol", "task": "segment3d", "input": {"layout": "NCDHW", "size": [8, 8, 8], "channels": 1,
                                                            "window": [-1000, 1000]},
              "output": {"kind": "mask_logits"}}
    r = register(client, threshold_segmenter_3d(tmp_path / "vol.onnx", (8, 8, 8), 0.5), yaml.safe_dump(card3d))
    assert r.status_code == 201, r.text
    bad = client.post(f"/api/items/{item.id}/predict", json={"model_id": r.json()["id"]})
    assert bad.status_code == 400 and "segment3d" in bad.json()["detail"] and "bis5k" in bad.json()["detail"]
    job = client.post("/api/jobs", json={"kind": "predict", "model_id": r.json()["id"], "dataset_id": bis_dataset_id})
    assert job.status_code == 400
    # masks that do not exist
    missing = client.get(f"/api/items/{item.id}/predictions/{model_id}/mask")
    assert missing.status_code == 404 and "no prediction" in missing.json()["detail"]
    client.post(f"/api/items/{item.id}/predict", json={"model_id": model_id})
    plane = client.get(f"/api/items/{item.id}/predictions/{model_id}/mask", params={"plane": "coronal"})
    assert plane.status_code == 400 and "2-D mask" in plane.json()["detail"]
