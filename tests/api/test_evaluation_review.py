"""Evaluation for researchers: each confusion-matrix cell of the evaluation page links to the grid of exactly
its items (`label` values of the true class + `pred:MODEL=CLASS`); `annotations=current|dataset` evaluates
against the corrected annotations or the dataset's own — an edited RECIST changes the `current` FROC and not
the `dataset` one, on the API and on the page's toggle."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import numpy as np

from tests.api.test_predict_detect2d import SIZE, card, items_and_boxes
from tests.helpers.api import register
from tests.helpers.auth import api_token
from tests.onnx_models import constant_detector


def test_confusion_cells_open_the_grid_of_their_items(client, pcam_predicted):
    dataset, model = pcam_predicted
    result = client.get(f"/api/models/{model}/evaluation", params={"dataset_id": dataset}).json()
    matrix = result["confusion_matrix"]
    page = client.get(f"/models/{model}/evaluation", params={"dataset_id": dataset})
    assert page.status_code == 200
    links = [html.unescape(h) for h in re.findall(r'<a class="cell-link" href="([^"]+)"', page.text)]
    assert len(links) == sum(1 for row in matrix for c in row if c)  # every non-empty cell
    counts = []
    for link in links:
        url = urlsplit(link)
        assert url.path == f"/datasets/{dataset}" and f"pred%3A{model}=" in url.query
        listed = client.get(f"/api/datasets/{dataset}/items?{url.query}")
        assert listed.status_code == 200, listed.text
        counts.append(listed.json()["total"])
        assert client.get(link).status_code == 200  # the grid page itself
    assert counts == [c for row in matrix for c in row if c]
    bad = client.get(f"/api/datasets/{dataset}/items", params={"pred:x": "tumor"})
    assert bad.status_code == 400 and "pred:MODEL_ID=CLASS" in bad.json()["detail"]


def test_current_and_dataset_annotations(client, settings, engine, ingested, tmp_path):
    data = items_and_boxes(engine, ingested.dataset_id)
    item, gt = data[0]
    boxes = np.array([[v / 2 for v in gt[0]] + [0.9, 0]], np.float32)  # finds the first lesion exactly
    r = register(client, constant_detector(tmp_path / "det.onnx", boxes, (SIZE, SIZE)), card())
    model = r.json()["id"]
    assert client.post(f"/api/items/{item.id}/predict", json={"model_id": model}).status_code == 200
    url = f"/api/models/{model}/evaluation"
    params = {"dataset_id": ingested.dataset_id}
    before = client.get(url, params=params).json()
    assert before["annotations"] == "current" and before["sensitivity_at_fp"]["8"] == 1 / len(gt)

    recist = next(a for a in client.get(f"/api/items/{item.id}").json()["annotations"] if a["kind"] == "recist"
                  and a["geometry"]["bbox"] == gt[0])
    moved = {k: [[x - 150 if x > 200 else x + 150, y] for x, y in recist["geometry"][k]] for k in ("long", "short")}
    annotator = {"Authorization": f"Bearer {api_token(settings, 'ann', 'annotator')}"}
    r = client.put(f"/api/annotations/{recist['id']}", json={"version": recist["version"], "geometry": moved},
                   headers=annotator)
    assert r.status_code == 200, r.text

    current = client.get(url, params=params).json()
    dataset = client.get(url, params={**params, "annotations": "dataset"}).json()
    assert current["sensitivity_at_fp"]["1"] == 0  # the corrected lesion is elsewhere now: 1 FP, no TP
    assert before["sensitivity_at_fp"]["1"] == 1 / len(gt)
    assert dataset["annotations"] == "dataset" and dataset["sensitivity_at_fp"] == before["sensitivity_at_fp"]
    assert dataset["n_gt"] == before["n_gt"] == current["n_gt"]
    bad = client.get(url, params={**params, "annotations": "mine"})
    assert bad.status_code == 400 and "annotations" in bad.json()["detail"]

    page = client.get(f"/models/{model}/evaluation", params={**params, "annotations": "dataset"}).text
    assert re.search(r'data-annotations="dataset" aria-current="true"', page)
    assert f'href="/models/{model}/evaluation?dataset_id={ingested.dataset_id}"' in page  # back to current
