"""Few-shot classifiers on embeddings (issue 15) over HTTP, on the PCam sample with a real ONNX embedder built here,
on both databases: training registers a classify model (embedder + head, one ONNX file) whose predictions for the
held-out items are stored at once and read by the evaluation API; that model run on an image gives what the head
gives on the stored vector; the label curve; reviewer-confirmed labels; the uncertainty-first review queue; the
refusals (400/404/409) and who may do what."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select, update

from app.cli import main as cli_main
from app.db.models import Model, QueueItem
from app.db.session import make_session_factory
from app.embeddings import fewshot
from app.embeddings.uncertainty import margins
from app.errors import InvalidInput
from app.inference import registry, vectors
from tests.helpers import pcam
from tests.helpers.api import wait_finished
from tests.helpers.auth import api_token

ALL = 20
LABEL_OF = {"0": "normal", "1": "tumor"}


@pytest.fixture
def embedder(client, tmp_path) -> int:
    return pcam.register_embedder(client, tmp_path)


@pytest.fixture
def embedded(client, pcam_dataset_id, embedder) -> tuple[int, int]:
    """(dataset id, embed model id) once every item has its vector."""
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": embedder, "dataset_id": pcam_dataset_id})
    assert wait_finished(client, r.json()["id"])["status"] == "done"
    return pcam_dataset_id, embedder


def labels(client, dataset_id: int) -> dict[int, str]:
    items = client.get(f"/api/datasets/{dataset_id}/items", params={"limit": 100}).json()["items"]
    assert len(items) == ALL
    return {i["id"]: LABEL_OF[i["label"]] for i in items}


def as_role(settings, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, f'user-{role}', role)}"}


def separable(settings, dataset_id: int, model_id: int, truth: dict[int, str]) -> None:
    """Replace the stored vectors by synthetic ones: two tight clusters, one per class (the newest vector wins)."""
    rng = np.random.default_rng(0)
    centres = {"normal": rng.standard_normal(16), "tumor": rng.standard_normal(16)}
    ids = sorted(truth)
    v = np.stack([centres[truth[i]] + 0.05 * rng.standard_normal(16) for i in ids])
    vectors.append(settings, model_id, dataset_id, ids, v)
    # and a vector left over from an item the dataset no longer has: never trained on, never predicted
    vectors.append(settings, model_id, dataset_id, [max(ids) + 1000], v[:1])


def test_train_registers_a_classifier_with_held_out_predictions(client, settings, embedded):
    dataset_id, embed_id = embedded
    truth = labels(client, dataset_id)
    counts = {c: list(truth.values()).count(c) for c in ("normal", "tumor")}
    r = client.post("/api/models/fewshot", json={"embed_model_id": embed_id, "dataset_id": dataset_id,
                                                  "per_class": 2, "seed": 3})
    assert r.status_code == 201, r.text
    made = r.json()
    model = made["model"]
    assert model["name"] == "pcam-embedder-fewshot-logistic-2" and model["task"] == "classify"
    assert model["card"]["output"] == {"kind": "probabilities", "classes": ["normal", "tumor"],
                                       "score_threshold": 0.5}
    assert model["card"]["input"]["mean"] == pcam.MEAN and model["applies_to"] == ["pcam"]
    assert made["labelled"] == counts and made["predicted"] == ALL - 4 and made["heldout"]["items"] == ALL - 4
    train = made["train_item_ids"]
    assert sorted(truth[i] for i in train) == ["normal", "normal", "tumor", "tumor"]
    # the same seed draws the same items (a second model, other name)
    again = client.post("/api/models/fewshot", json={"embed_model_id": embed_id, "dataset_id": dataset_id,
                                                      "per_class": 2, "seed": 3, "name": "again"}).json()
    assert again["train_item_ids"] == train

    # its predictions: every embedded item but the training ones, written as a classify job writes them
    evaluation = client.get(f"/api/models/{model['id']}/evaluation", params={"dataset_id": dataset_id}).json()
    assert evaluation["predicted"] == ALL - 4 and evaluation["n"] == ALL - 4
    assert evaluation["balanced_accuracy"] == pytest.approx(made["heldout"]["balanced_accuracy"])
    item = next(i for i in truth if i not in train)
    [stored] = [p for p in client.get(f"/api/items/{item}").json()["predictions"] if p["model_id"] == model["id"]]
    assert set(stored["outputs"]) == {"probabilities", "label"} and set(stored["metrics"]) == {"correct", "nll"}
    assert client.get(f"/api/items/{train[0]}").json()["predictions"] == []  # trained on: not predicted

    # the registered ONNX model, run on the item's image, gives what the head gave on its stored vector
    r = client.post(f"/api/items/{item}/predict", json={"model_id": model["id"]})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["outputs"]["probabilities"], stored["outputs"]["probabilities"], atol=5e-3)
    # and the evaluation page shows it
    page = client.get(f"/models/{model['id']}/evaluation", params={"dataset_id": dataset_id})
    assert page.status_code == 200 and "balanced accuracy" in page.text


def test_separable_vectors_and_the_curve(client, settings, embedded):
    dataset_id, embed_id = embedded
    truth = labels(client, dataset_id)
    separable(settings, dataset_id, embed_id, truth)
    for method in ("logistic", "svm"):
        made = client.post("/api/models/fewshot", json={"embed_model_id": embed_id, "dataset_id": dataset_id,
                                                         "per_class": 1, "method": method}).json()
        assert made["heldout"]["balanced_accuracy"] == 1.0, made
        assert made["predicted"] == ALL - 2 and made["heldout"]["items"] == ALL - 2
    r = client.get(f"/api/models/{embed_id}/fewshot-curve", params={"dataset_id": dataset_id, "draws": 3})
    assert r.status_code == 200, r.text
    curve = r.json()
    smallest = min(list(truth.values()).count(c) for c in ("normal", "tumor"))
    assert [p["per_class"] for p in curve["points"]] == [n for n in (1, 5, 10) if n < smallest]
    assert all(p["mean"] == 1.0 and len(p["draws"]) == 3 for p in curve["points"])
    assert curve["classes"] == ["normal", "tumor"] and curve["draws"] == 3


def test_labels_from_reviewers_verdicts(client, settings, embedded):
    dataset_id, embed_id = embedded
    truth = labels(client, dataset_id)
    confirmed = [i for c in ("normal", "tumor") for i in [k for k, v in truth.items() if v == c][:2]]
    for n, item in enumerate(confirmed):
        verdict = "accept" if n % 2 else "corrected"
        assert client.post(f"/api/items/{item}/reviews", json={"verdict": verdict}).status_code == 201
    body = {"embed_model_id": embed_id, "dataset_id": dataset_id, "per_class": 2, "source": "verdicts"}
    made = client.post("/api/models/fewshot", json=body).json()
    assert sorted(made["train_item_ids"]) == sorted(confirmed) and made["labelled"] == {"normal": 2, "tumor": 2}
    assert made["heldout"]["items"] == 0 and made["heldout"]["balanced_accuracy"] is None
    r = client.post("/api/models/fewshot", json={**body, "per_class": 3, "name": "three"})
    assert r.status_code == 400 and "per_class: class 'normal' has 2 labelled items" in r.json()["detail"]


def test_uncertainty_queue_orders_by_margin_unreviewed_first(client, engine, embedded):
    dataset_id, embed_id = embedded
    model_id = client.post("/api/models/fewshot", json={"embed_model_id": embed_id, "dataset_id": dataset_id,
                                                         "per_class": 2}).json()["model"]["id"]
    predicted = {}
    for item in labels(client, dataset_id):
        found = [p for p in client.get(f"/api/items/{item}").json()["predictions"] if p["model_id"] == model_id]
        if found:
            predicted[item] = found[0]["outputs"]["probabilities"]
    ids = sorted(predicted)
    m = margins(np.array([predicted[i] for i in ids]))
    expected = [ids[n] for n in np.lexsort((ids, m))]
    reviewed = expected[0]  # the most uncertain one, reviewed already: it goes last
    assert client.post(f"/api/items/{reviewed}/reviews", json={"verdict": "accept"}).status_code == 201
    expected = [i for i in expected if i != reviewed] + [reviewed]
    r = client.post("/api/review/queues", json={"name": "active", "dataset_id": dataset_id,
                                                "uncertainty": {"model_id": model_id}})
    assert r.status_code == 201, r.text
    queue = r.json()
    assert queue["sort"] == f"uncertainty:{model_id}:margin" and queue["progress"]["items"] == len(ids)
    with make_session_factory(engine)() as session:
        order = list(session.scalars(select(QueueItem.item_id).where(QueueItem.queue_id == queue["id"])
                                    .order_by(QueueItem.position)))
    assert order == expected
    # limit and filters go with it: the 3 least certain of the valid split
    r = client.post("/api/review/queues", json={"name": "valid", "dataset_id": dataset_id, "limit": 3,
                                                "filters": {"split": ["valid"]},
                                                "uncertainty": {"model_id": model_id, "measure": "entropy"}})
    assert r.status_code == 201 and r.json()["progress"]["items"] == 3


def test_refusals(monkeypatch, client, engine, settings, pcam_dataset_id, pcam_model_id, embedder, tmp_path):
    def train(**body):
        base = {"embed_model_id": embedder, "dataset_id": pcam_dataset_id, "per_class": 2}
        return client.post("/api/models/fewshot", json={**base, **body})

    def refused(r, status: int, text: str) -> None:
        assert r.status_code == status, r.text
        assert text in r.json()["detail"], r.json()["detail"]

    refused(train(), 400, "has no vectors of dataset 'pcam' yet")
    refused(client.get(f"/api/models/{embedder}/fewshot-curve", params={"dataset_id": pcam_dataset_id}), 400,
            "no vectors")
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": embedder, "dataset_id": pcam_dataset_id})
    assert wait_finished(client, r.json()["id"])["status"] == "done"
    refused(train(embed_model_id=pcam_model_id), 400, "embed_model_id: model 'pcam-baseline' is a classify model")
    refused(train(per_class=50), 400, "per_class: class 'normal' has")
    refused(train(dataset_id=9999), 404, "dataset")
    refused(train(embed_model_id=9999), 404, "model")
    refused(train(source="verdicts"), 400, "reviewer-confirmed (accepted or corrected) embedded items of 0 classes")
    assert train(per_class=0).status_code == 422 and train(method="forest").status_code == 422
    assert train(name="taken").status_code == 201
    refused(train(name="taken"), 409, "already registered")
    refused(client.get(f"/api/models/{pcam_model_id}/fewshot-curve", params={"dataset_id": pcam_dataset_id}), 400,
            "not an embedding model")
    refused(client.get(f"/api/models/{embedder}/fewshot-curve", params={"dataset_id": 9999}), 404, "dataset")
    queue = {"name": "q", "dataset_id": pcam_dataset_id}
    refused(client.post("/api/review/queues", json={**queue, "uncertainty": {"model_id": embedder}}), 400,
            "uncertainty.model_id: model 'pcam-embedder' is a embed model")
    refused(client.post("/api/review/queues", json={**queue, "uncertainty": {"model_id": pcam_model_id}}), 400,
            "uncertainty.model_id: model 'pcam-baseline' has no prediction")
    refused(client.post("/api/review/queues", json={**queue, "uncertainty": {"model_id": 9999}}), 404, "model")
    with make_session_factory(engine)() as session:  # a TorchScript embedder has no graph to extend
        session.execute(update(Model).where(Model.id == embedder).values(runtime="torchscript"))
        session.commit()
    refused(train(name="ts"), 400, "is a torchscript model; a few-shot classifier is built onto an ONNX")
    assert client.get(f"/api/models/{embedder}/fewshot-curve", params={"dataset_id": pcam_dataset_id}).status_code \
        == 200
    with make_session_factory(engine)() as session:
        session.execute(update(Model).where(Model.id == embedder).values(runtime="onnx"))
        session.commit()
    # a failure after the registration (writing the predictions) removes the model and its files again
    def broken(*args, **kwargs):
        raise InvalidInput("disk full (simulated)")

    monkeypatch.setattr(fewshot, "insert_batch", broken)
    refused(train(name="half"), 400, "disk full (simulated)")
    names = [m["name"] for m in client.get("/api/models").json()]
    assert names == ["pcam-baseline", "pcam-embedder", "taken"]
    assert len(list(registry.models_dir(settings).iterdir())) == 3


def test_roles(anon_client, settings, embedded):
    dataset_id, embed_id = embedded
    admin = {"Authorization": anon_client.headers.pop("Authorization")}  # the fixtures' admin; now signed out
    body = {"embed_model_id": embed_id, "dataset_id": dataset_id, "per_class": 1}
    assert anon_client.post("/api/models/fewshot", json=body).status_code == 401
    r = anon_client.post("/api/models/fewshot", json=body, headers=as_role(settings, "reviewer"))
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    curve = anon_client.get(f"/api/models/{embed_id}/fewshot-curve", params={"dataset_id": dataset_id, "draws": 2},
                            headers=as_role(settings, "viewer"))
    assert curve.status_code == 200, curve.text
    model_id = anon_client.post("/api/models/fewshot", json=body, headers=admin).json()["model"]["id"]
    queue = {"name": "q", "dataset_id": dataset_id, "uncertainty": {"model_id": model_id}}
    r = anon_client.post("/api/review/queues", json=queue, headers=as_role(settings, "annotator"))
    assert r.status_code == 403
    assert anon_client.post("/api/review/queues", json=queue, headers=as_role(settings, "reviewer")).status_code == 201


def test_cli(monkeypatch, capsys, client, settings, embedded):
    for name in ("database_url", "data_dir", "data_roots"):
        monkeypatch.setenv(f"MEDVIEW_{name.upper()}", str(getattr(settings, name)))
    assert cli_main(["fewshot", "curve", "--model", "pcam-embedder", "--dataset", "pcam", "--draws", "2"]) == 0
    printed = capsys.readouterr().out
    assert "per_class  balanced_accuracy" in printed and "\n        1  " in printed
    assert cli_main(["fewshot", "train", "--model", "pcam-embedder", "--dataset", "pcam", "--per-class", "2",
                     "--method", "svm", "--name", "from-cli"]) == 0
    model_id = int(capsys.readouterr().out.strip())
    assert client.get(f"/api/models/{model_id}").json()["name"] == "from-cli"
    assert cli_main(["fewshot", "train", "--model", "pcam-embedder", "--dataset", "pcam", "--per-class", "99"]) == 2
    assert "per_class: class" in capsys.readouterr().err


def test_page_by_role(anon_client, settings, embedded, pcam_model_id):
    dataset_id, embed_id = embedded
    admin = {"Authorization": anon_client.headers.pop("Authorization")}
    made = anon_client.post("/api/models/fewshot", headers=admin, json={
        "embed_model_id": embed_id, "dataset_id": dataset_id, "per_class": 2}).json()
    url = f"/models/{embed_id}/fewshot"
    page = anon_client.get(url, headers=admin)
    assert page.status_code == 200 and 'id="fewshot-train-form"' in page.text
    assert f'data-model-id="{made["model"]["id"]}"' in page.text and "uncertainty-queue" in page.text
    assert f"{made['heldout']['balanced_accuracy']:.3f}" in page.text and "20 vectors" in page.text
    viewer = anon_client.get(url, params={"dataset_id": dataset_id}, headers=as_role(settings, "viewer"))
    assert viewer.status_code == 200 and 'id="fewshot-curve-form"' in viewer.text
    assert "fewshot-train-form" not in viewer.text and "uncertainty-queue" not in viewer.text
    reviewer = anon_client.get(url, headers=as_role(settings, "reviewer")).text
    assert "fewshot-train-form" not in reviewer and "uncertainty-queue" in reviewer
    assert anon_client.get(f"/models/{pcam_model_id}/fewshot", headers=admin).status_code == 400
    assert anon_client.get("/models/9999/fewshot", headers=admin).status_code == 404
    models = anon_client.get("/models", headers=admin).text
    assert f'/models/{embed_id}/fewshot"' in models
