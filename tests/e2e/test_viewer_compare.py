"""Predictions in the viewer (H1's prediction contract, rows inserted directly): a BIS5k mask prediction side by side
with the ground truth and as a difference whose false positive / negative pixel counts equal numpy's on the two mask
files; DeepLesion detection boxes matched / missed / spurious at IoU ≥ 0.5; a PCam classification's bars."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sqlalchemy.orm import Session

from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path
from app.db.models import Model, Prediction
from tests.helpers.browser import viewer_redrawn
from tests.helpers.live import live_get

pytestmark = pytest.mark.browser

READY = "() => window.medviewViewer && window.medviewViewer.ready()"


def add_prediction(engine, item_id: int, name: str, task: str, outputs: dict, metrics: dict | None = None) -> int:
    with Session(engine) as session:
        model = Model(name=name, task=task, runtime="onnx", path="/nonexistent.onnx", card={"applies_to": []})
        session.add(model)
        session.flush()
        session.add(Prediction(item_id=item_id, model_id=model.id, outputs=outputs, metrics=metrics or {}))
        session.commit()
        return model.id


@pytest.fixture(scope="module")
def bis5k_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_bis5k(tmp_path_factory.mktemp("bis5k-compare") / "BIS5k", n_train=4, n_test=2, seed=2)


def test_mask_prediction_side_by_side_and_difference(page, live_server, engine, settings, bis5k_tree):
    report = ingest_path(engine, settings, bis5k_tree.root, kind="bis5k", name="bis5k")
    items = live_get(f"{live_server}/api/datasets/{report.dataset_id}/items", params={"limit": 50}).json()["items"]
    by_key = {i["key"]: i["id"] for i in items}
    # two tiles of one size with masks: the other tile's mask stands in for a model's prediction
    tiles = [t for t in bis5k_tree.images if t.foreground]
    truth_tile, pred_tile = next((a, b) for a in tiles for b in tiles
                                 if a is not b and (a.width, a.height) == (b.width, b.height))
    item_id, other_id = by_key[truth_tile.image], by_key[pred_tile.image]
    model_id = add_prediction(engine, item_id, "seg-model", "segment2d",
                              {"mask": f"/api/items/{other_id}/mask", "labels": ["background", "lesion"]},
                              {"dice": 0.25})
    truth = cv2.imread(str(bis5k_tree.root / truth_tile.mask), cv2.IMREAD_GRAYSCALE) > 0
    pred = cv2.imread(str(bis5k_tree.root / pred_tile.mask), cv2.IMREAD_GRAYSCALE) > 0
    want = {"tp": int((truth & pred).sum()), "fp": int((pred & ~truth).sum()), "fn": int((truth & ~pred).sum())}

    page.goto(f"{live_server}/items/{item_id}?layout=side&zoom=1")
    page.wait_for_function(READY)
    panes = page.evaluate("() => window.medviewViewer.panes()")
    assert [p["role"] for p in panes] == ["gt", "pred"] and panes[0]["view"] == panes[1]["view"]
    assert "seg-model" in page.text_content(".pane[data-role=pred] .pane-title")
    assert "Dice 0.250" in page.inner_text(".pane[data-role=pred] .pane-legend")
    # a pixel in the prediction only is amber on the right, plain on the left
    ys, xs = np.nonzero(pred & ~truth)
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
    left, right = (page.evaluate("([n, x, y]) => window.medviewViewer.pixel(n, x, y)", [n, x, y]) for n in (0, 1))
    assert left != right
    assert right[0] > right[2] + 60  # amber-tinted (red ≫ blue)

    # the difference view: the left pane's counts are numpy's, and the colours are where numpy says
    with viewer_redrawn(page):
        page.keyboard.press("d")
    diff = page.evaluate("() => window.medviewViewer.panes()[0].diff")
    assert {k: diff[k] for k in want} == want and diff["foreground"] is False  # both binary: labels compared
    legend = page.inner_text(".pane[data-role=gt] .pane-legend")
    assert f"false positive {want['fp']}" in legend and f"false negative {want['fn']}" in legend
    fp_px = page.evaluate("([x, y]) => window.medviewViewer.pixel(0, x, y)", [x, y])
    assert fp_px[0] > fp_px[1] + 40  # red-magenta
    page.wait_for_function("(m) => location.search.includes('diff=1') && location.search.includes('layout=side')",
                           arg=model_id)
    page.screenshot(path=str(bis5k_tree.root.parent / "compare.png"))


def test_detection_boxes_are_matched_at_iou_half(page, live_server, engine, ingested):
    items = live_get(f"{live_server}/api/datasets/{ingested.dataset_id}/items", params={"limit": 50}).json()["items"]
    item = live_get(f"{live_server}/api/items/{items[0]['id']}").json()
    bbox = next(a["geometry"]["bbox"] for a in item["annotations"] if a["kind"] == "recist")
    x1, y1, x2, y2 = bbox
    w = x2 - x1
    hit = [x1 + 0.1 * w, y1, x2 + 0.1 * w, y2, 0.9, 1]  # IoU ≈ 0.82
    miss = [5, 5, 40, 40, 0.4, 1]
    add_prediction(engine, item["id"], "det-model", "detect2d", {"boxes": [hit, miss]})
    n_truth = sum(1 for a in item["annotations"] if a["kind"] == "recist")
    page.goto(f"{live_server}/items/{item['id']}?diff=1")
    page.wait_for_function(READY)
    counts = page.evaluate("() => window.medviewViewer.panes()[0].boxes")
    assert counts == {"matched": 1, "missed": n_truth - 1, "spurious": 1}
    assert page.locator('.pane-svg rect[data-id="matched"]').count() == 1
    assert page.locator('.pane-svg rect[data-id="spurious"]').count() == 1
    # side by side: the prediction's boxes with their scores on the right
    with viewer_redrawn(page):
        page.keyboard.press("x")
    assert page.locator('.pane[data-role=pred] .pane-svg rect[data-layer="pred"]').count() == 2
    texts = page.locator('.pane[data-role=pred] .pane-svg text[data-layer="pred"]').all_text_contents()
    assert sorted(texts) == ["0.40", "0.90"]
    # off the key slice the boxes do not apply
    with viewer_redrawn(page):
        page.keyboard.press("ArrowRight")
    assert page.locator('.pane-svg rect[data-layer="pred"]').count() == 0
    assert "key slice" in page.inner_text(".pane[data-role=pred] .pane-legend")
