"""GET /api/models/{id}/evaluation: classification metrics over predicted items, checked against
scikit-learn on the stored probabilities and the items' own labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from tests.api.test_jobs import dataset_id, model_id, pcam_root, settings, wait_finished  # noqa: F401


@pytest.fixture
def predicted(client, dataset_id, model_id):  # noqa: F811
    job = client.post("/api/jobs", json={"kind": "predict", "model_id": model_id, "dataset_id": dataset_id})
    assert wait_finished(client, job.json()["id"])["status"] == "done"
    return dataset_id, model_id


def truth_and_probabilities(client, dataset_id, **filters):
    page = client.get(f"/api/datasets/{dataset_id}/items", params={"limit": 500, **filters}).json()["items"]
    y, p = [], []
    for item in page:
        detail = client.get(f"/api/items/{item['id']}").json()
        y.append(int(detail["label"]))
        p.append(detail["predictions"][0]["outputs"]["probabilities"])
    return np.array(y), np.array(p)


def test_evaluation_matches_sklearn(client, predicted):
    dataset_id, model_id = predicted
    body = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": dataset_id}).json()
    y, p = truth_and_probabilities(client, dataset_id)
    assert body["n"] == body["predicted"] == len(y) == 20
    assert body["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert body["nll"] == pytest.approx(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]), rel=1e-6)
    assert body["auc"] == pytest.approx(roc_auc_score(y, p[:, 1]))
    assert sum(map(sum, body["confusion_matrix"])) == len(y)


def test_evaluation_follows_filters_and_rejects_bad_input(client, predicted):
    dataset_id, model_id = predicted
    body = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": dataset_id, "split": "train"})
    y, p = truth_and_probabilities(client, dataset_id, split="train")
    assert body.json()["n"] == len(y) == 12
    assert body.json()["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": 999}).status_code == 404
    assert client.get("/api/models/999/evaluation", params={"dataset_id": dataset_id}).status_code == 404
    bad = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": dataset_id, "colour": "x"})
    assert bad.status_code == 400 and "unknown filter" in bad.json()["detail"]
    assert client.get(f"/api/models/{model_id}/evaluation").status_code == 422
