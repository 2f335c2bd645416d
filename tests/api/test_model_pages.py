"""Model HTML pages: the models table (with the device in use), an evaluation page (metrics as in the JSON, the
confusion matrix, the ROC polyline), the n == 0 message and an unknown model; the item page's Run model control."""

from __future__ import annotations

import re


def test_models_page_lists_model_with_device(client, pcam_dataset_id, pcam_model_id):
    device = client.get(f"/api/models/{pcam_model_id}").json()["device"]
    r = client.get("/models")
    assert r.status_code == 200
    html = r.text
    row = re.search(rf'<tr data-model-id="{pcam_model_id}">(.*?)</tr>', html, re.S).group(1)
    assert "pcam-baseline" in row and "onnx" in row and "classify" in row
    assert f'<td class="mono device">{device}</td>' in row
    assert "normal" in row and "tumor" in row
    assert f"/models/{pcam_model_id}/evaluation?dataset_id={pcam_dataset_id}" in row
    assert re.search(r'class="topnav" href="[^"]*/models"', client.get("/").text)  # top bar link


def test_evaluation_page_matches_json(client, pcam_predicted):
    dataset, model = pcam_predicted
    body = client.get(f"/api/models/{model}/evaluation", params={"dataset_id": dataset}).json()
    assert body["n"] > 0
    r = client.get(f"/models/{model}/evaluation", params={"dataset_id": dataset})
    assert r.status_code == 200
    html = r.text
    assert f'id="metric-accuracy">{body["accuracy"]:.3f}<' in html
    assert f'id="metric-n">{body["n"]}<' in html
    assert f'id="metric-nll">{body["nll"]:.3f}<' in html
    points = re.search(r'<polyline class="curve" points="([^"]*)"', html).group(1).split()
    assert len(points) == len(body["roc"]["fpr"])
    for p in points:
        x, y = map(float, p.split(","))
        assert 40 <= x <= 340 and 40 <= y <= 340
    cells = re.findall(r'<td class="num cell[^"]*"[^>]*>(?:<a [^>]*>)?(\d+)(?:</a>)?</td>', html)
    assert [int(c) for c in cells] == [c for row in body["confusion_matrix"] for c in row]
    assert f"/api/models/{model}/evaluation?dataset_id={dataset}" in html


def test_evaluation_page_filtered(client, pcam_predicted):
    dataset, model = pcam_predicted
    body = client.get(f"/api/models/{model}/evaluation", params={"dataset_id": dataset, "split": "train"}).json()
    html = client.get(f"/models/{model}/evaluation", params={"dataset_id": dataset, "split": "train"}).text
    assert f'id="metric-n">{body["n"]}<' in html
    assert "split=train" in html


def test_evaluation_page_without_predictions(client, pcam_dataset_id, pcam_model_id):
    body = client.get(f"/api/models/{pcam_model_id}/evaluation", params={"dataset_id": pcam_dataset_id}).json()
    assert body["n"] == 0 and body["predicted"] == 0 and body["accuracy"] is None  # the JSON twin, too
    r = client.get(f"/models/{pcam_model_id}/evaluation", params={"dataset_id": pcam_dataset_id})
    assert r.status_code == 200
    assert "no items with both a prediction and ground truth" in r.text.lower()
    assert "run a predict job" in r.text
    assert "<polyline" not in r.text


def test_unknown_model_is_404_html(client, pcam_dataset_id):
    r = client.get("/models/999/evaluation", params={"dataset_id": pcam_dataset_id})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "model 999 not found" in r.text


def test_item_page_run_model_control(client, pcam_dataset_id, pcam_model_id):
    item = client.get(f"/api/datasets/{pcam_dataset_id}/items", params={"limit": 1}).json()["items"][0]
    html = client.get(f"/items/{item['id']}").text
    assert 'id="run-model"' in html and f'<option value="{pcam_model_id}">pcam-baseline</option>' in html
    assert "js/predictions.js" in html
    assert 'data-layer="pred"' in html  # a model applies: its prediction is a layer to toggle


def test_item_page_without_models_has_no_control(client, pcam_dataset_id):
    item = client.get(f"/api/datasets/{pcam_dataset_id}/items", params={"limit": 1}).json()["items"][0]
    html = client.get(f"/items/{item['id']}").text
    assert 'id="run-model"' not in html and "predictions.js" not in html
    assert 'data-layer="pred"' not in html  # a pathology patch without a model: no Prediction layer
