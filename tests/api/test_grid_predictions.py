"""Issue 14: a model's predictions on the grid — `model=ID` badges on /items and the dataset page (class and
probability coloured right/wrong against the ground truth; Dice for a segmenter), and the "predicted by" facet
whose counts match the stored predictions and whose values filter with `pred:ID=CLASS`. Real ONNX models
(tests/helpers/pcam.py, tests/onnx_models.py), both databases."""

from __future__ import annotations

import re

import pytest

from tests.helpers import pcam
from tests.helpers.api import register, wait_finished
from tests.helpers.bis5k import GAIN, SIZE, THRESHOLD, card
from tests.onnx_models import threshold_segmenter


def _items(client, ds: int, query: str) -> list[dict]:
    r = client.get(f"/api/datasets/{ds}/items?limit=500&{query}")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_classifier_badges_verdicts_and_facet(client, engine, pcam_predicted):
    ds, model = pcam_predicted
    stored = pcam.predictions(engine, model)
    items = _items(client, ds, f"model={model}")
    assert len(items) == len(stored) > 0
    names = ["normal", "tumor"]
    verdicts = set()
    for item in items:
        badge, p = item["prediction"], stored[item["id"]]
        assert badge["model_id"] == model and badge["label"] == p.outputs["label"]
        assert badge["probability"] == pytest.approx(p.outputs["probabilities"][names.index(badge["label"])])
        truth = names[int(item["label"])] if item["label"] is not None else None
        assert badge["verdict"] == (None if truth is None else "right" if truth == badge["label"] else "wrong")
        verdicts.add(badge["verdict"])
    assert {"right", "wrong"} <= verdicts, "the sample has right and wrong predictions"
    assert "prediction" not in _items(client, ds, "")[0]  # without model= the summary is unchanged
    # the dataset page: the newest model chosen by default, badges coloured, the facet counted
    page = client.get(f"/datasets/{ds}").text
    assert 'id="model-select"' in page and f'<option value="{model}" selected' in page
    assert page.count("pred-badge mono pred-wrong") == sum(i["prediction"]["verdict"] == "wrong" for i in items)
    for name in names:
        expected = sum(p.outputs["label"] == name for p in stored.values())
        m = re.search(rf'data-field="pred:{model}" data-value="{name}" data-count="(\d+)"', page)
        assert m and int(m.group(1)) == expected
        assert len(_items(client, ds, f"pred:{model}={name}")) == expected
    # under another filter the facet counts only the matching items
    page = client.get(f"/datasets/{ds}?split=valid").text
    valid = {i["id"] for i in _items(client, ds, "split=valid")}
    tumor = sum(stored[i].outputs["label"] == "tumor" for i in valid)
    assert f'data-field="pred:{model}" data-value="tumor" data-count="{tumor}"' in page
    # model= (empty) hides them; a wrong id is a clear 400
    assert 'pred-badge mono pred-' not in client.get(f"/datasets/{ds}?model=").text
    r = client.get(f"/api/datasets/{ds}/items?model=999")
    assert r.status_code == 400 and "no such model" in r.json()["detail"]
    assert client.get(f"/api/datasets/{ds}/items?model=x").status_code == 400


def test_segmenter_badges_show_dice(client, engine, bis_dataset_id, tmp_path):
    r = register(client, threshold_segmenter(tmp_path / "seg.onnx", (SIZE, SIZE), THRESHOLD, GAIN), card())
    model = r.json()["id"]
    job = client.post("/api/jobs", json={"kind": "predict", "model_id": model, "dataset_id": bis_dataset_id})
    assert wait_finished(client, job.json()["id"])["status"] == "done"
    items = _items(client, bis_dataset_id, f"model={model}")
    stored = pcam.predictions(engine, model)
    scored = 0
    for item in items:
        badge = item["prediction"]
        dice = (stored[item["id"]].metrics or {}).get("dice")
        if dice is None:
            assert badge["dice"] is None and badge["verdict"] is None  # no ground truth
            continue
        scored += 1
        assert badge["dice"] == pytest.approx(dice) and badge["label"] is None
        assert badge["verdict"] == ("good" if dice >= 0.7 else "fair" if dice >= 0.5 else "poor")
    assert scored
    page = client.get(f"/datasets/{bis_dataset_id}").text
    assert "Dice " in page and f'data-field="pred:{model}"' not in page  # no class facet for a segmenter
