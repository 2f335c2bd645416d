"""2-D detection end to end on the generated DeepLesion sample: a real ONNX detector whose boxes are constants in
the graph, so outputs (mapped back to the 512 × 512 key slice), the score threshold, per-item metrics and the
FROC evaluation can be worked out here by hand against the RECIST boxes; and the 3-slice input checked against
the neighbouring slice PNGs read with OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from sqlalchemy import select

from app.db.models import Annotation, Item, ItemMetric
from app.db.session import make_session_factory
from app.inference.card import card_from_text
from app.inference.tasks import TaskContext
from app.inference.tasks.detect2d import Detect2dTask
from app.pixels import PixelStore
from tests.helpers.api import register, wait_finished
from tests.onnx_models import constant_detector

SIZE = 256  # model pixels; the key slices are 512 × 512, so image coordinates are model coordinates × 2
WINDOW = [-175.0, 275.0]


def card(name: str = "dl-constant", threshold: float = 0.5, size: int = SIZE) -> str:
    return yaml.safe_dump({
        "name": name, "task": "detect2d",
        "input": {"layout": "NCHW", "size": [size, size], "channels": 3, "window": WINDOW, "slices": 3},
        "output": {"kind": "boxes", "classes": ["lesion"], "score_threshold": threshold},
        "applies_to": ["deeplesion"]}, sort_keys=False)


def items_and_boxes(engine, dataset_id: int) -> list[tuple[Item, list[list[float]]]]:
    with make_session_factory(engine)() as session:
        items = list(session.scalars(select(Item).where(Item.dataset_id == dataset_id).order_by(Item.id)))
        out = []
        for item in items:
            boxes = [a.geometry["bbox"] for a in session.scalars(select(Annotation).where(
                Annotation.item_id == item.id, Annotation.kind == "recist"))]
            out.append((item, boxes))
        session.expunge_all()
    return out


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture
def setup(client, engine, ingested, tmp_path):
    data = items_and_boxes(engine, ingested.dataset_id)
    target = data[0][1][0]  # the first item's first lesion box, in image pixels
    boxes = np.array([[v / 2 for v in target] + [0.9, 0],  # shown, matches that lesion exactly
                      [0, 0, 10, 10, 0.3, 0],  # a candidate below the threshold, never a lesion
                      [0, 0, 5, 5, 0.01, 0]], np.float32)  # below 0.05: dropped
    r = register(client, constant_detector(tmp_path / "det.onnx", boxes, (SIZE, SIZE)), card())
    assert r.status_code == 201, r.text
    return r.json()["id"], data, target


def test_predict_boxes_and_metrics(client, engine, setup):
    model_id, data, target = setup
    for item, gt in data[:3]:
        r = client.post(f"/api/items/{item.id}/predict", json={"model_id": model_id})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["task"] == "detect2d"
        [box] = body["outputs"]["boxes"]
        assert box[:4] == pytest.approx(target, abs=1e-3)  # model box × 2: back in key-slice pixels
        assert box[4:] == [pytest.approx(0.9), "lesion"]
        assert body["outputs"]["candidates"] == [[0.0, 0.0, 20.0, 20.0, pytest.approx(0.3), "lesion"]]
        assert body["outputs"]["score_threshold"] == 0.5
        tp = int(any(iou(target, g) >= 0.5 for g in gt))
        assert body["metrics"] == {"tp": tp, "fp": 1 - tp, "fn": len(gt) - tp, "sensitivity": tp / len(gt)}
        with make_session_factory(engine)() as session:
            rows = dict(session.execute(select(ItemMetric.name, ItemMetric.value).where(
                ItemMetric.item_id == item.id, ItemMetric.model_id == model_id)).all())
        assert rows == {"tp": tp, "fp": 1 - tp, "fn": len(gt) - tp, "sensitivity": pytest.approx(tp / len(gt))}
        item_json = client.get(f"/api/items/{item.id}").json()["predictions"]
        assert item_json[0]["outputs"] == body["outputs"] and item_json[0]["task"] == "detect2d"
        no_mask = client.get(f"/api/items/{item.id}/predictions/{model_id}/mask")
        assert no_mask.status_code == 404 and "not a mask" in no_mask.json()["detail"]


def test_job_froc_by_hand(client, engine, ingested, setup):
    model_id, data, target = setup
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": model_id, "dataset_id": ingested.dataset_id})
    assert r.status_code == 202, r.text
    assert wait_finished(client, r.json()["id"])["status"] == "done"
    n = len(data)
    n_gt = sum(len(gt) for _, gt in data)
    hits = sum(any(iou(target, g) >= 0.5 for g in gt) for _, gt in data)  # one 0.9 box per image
    # operating points: (0, 0); score 0.9: hits TPs, n − hits FPs; score 0.3: n more FPs
    points = [(0.0, 0.0), ((n - hits) / n, hits / n_gt), ((2 * n - hits) / n, hits / n_gt)]
    body = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": ingested.dataset_id}).json()
    assert body["task"] == "detect2d" and body["n"] == n and body["n_gt"] == n_gt
    for key in ("0.5", "1", "2", "4", "8"):
        want = max(s for fp, s in points if fp <= float(key) + 1e-12)
        assert body["sensitivity_at_fp"][key] == pytest.approx(want), key
    assert body["froc"]["fps_per_image"] == pytest.approx([p[0] for p in points])
    assert body["froc"]["sensitivity"] == pytest.approx([p[1] for p in points])
    assert body["worst_first"]["sort"] == f"metric:{model_id}:sensitivity"
    page = client.get(f"/models/{model_id}/evaluation", params={"dataset_id": ingested.dataset_id})
    assert page.status_code == 200 and 'class="roc froc"' in page.text
    assert page.text.count('class="operating-point"') == 5


def test_three_slices_are_the_neighbouring_pngs(engine, settings, deeplesion_sample, ingested):
    """input.slices 3: channels are slices key − 1, key, key + 1 of the series, windowed per the card."""
    text = card(size=512)
    ctx = TaskContext(settings, PixelStore.from_settings(settings), card_from_text(text, "yaml"), 0, "deeplesion")
    with make_session_factory(engine)() as session:
        item = session.scalars(select(Item).where(Item.dataset_id == ingested.dataset_id).order_by(Item.id)).first()
        prepared = Detect2dTask().prepare(session, ctx, [item.id])
    key = item.location_index
    folder = Path(deeplesion_sample.root) / item.location.rpartition("/")[0]
    for channel, offset in enumerate((-1, 0, 1)):
        number = key + offset if key + offset in item.meta["slices"] else key
        raw = cv2.imread(str(folder / f"{number:03d}.png"), cv2.IMREAD_UNCHANGED).astype(np.float64) - 32768
        want = np.clip((raw - WINDOW[0]) / (WINDOW[1] - WINDOW[0]), 0, 1)
        np.testing.assert_allclose(prepared.batch[0, channel], want, atol=1e-6)
    assert key - 1 in item.meta["slices"] or key + 1 in item.meta["slices"]  # some neighbour really exists


def test_score_threshold_outside_0_1_is_refused(client, tmp_path):
    bad = card(name="neg", threshold=1.5)
    r = register(client, constant_detector(tmp_path / "d.onnx", np.zeros((1, 6)), (SIZE, SIZE)), bad)
    assert r.status_code == 400 and "output.score_threshold" in r.json()["detail"]
