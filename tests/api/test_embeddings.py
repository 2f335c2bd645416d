"""Embedding models and similar items (issue 15), with a real ONNX embedder built here (a fixed random
projection of pooled pixels) on the PCam sample, on both databases: the job writes float16 unit vectors to the
vector files, a re-run skips them, a crash mid-way resumes; `GET /api/items/{id}/similar` agrees with brute-force
numpy cosine, leaves the item (and optionally its patient) out, and refuses what it cannot answer."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from sqlalchemy import update

from app.cli import main as cli_main
from app.config import Settings
from app.db.models import Item, Job, Patient
from app.inference import vectors
from app.inference.card import ModelCardError, card_from_dict
from app.inference.jobs import create_predict_job, run_job
from app.inference.registry import RuntimeCache
from tests.helpers.api import register, wait_finished
from tests.helpers.pcam import BATCH, MEAN, SCALE, STD, TRAIN, item_ids
from tests.onnx_models import projection_embedder

DIM = 16
ALL = 20  # items of the PCam sample


@pytest.fixture
def settings(make_settings):
    return make_settings(inference_batch=BATCH)


def embed_card(**changes) -> dict:
    data = {"name": "pcam-embedder", "task": "embed", "description": "test: random projection of pooled pixels",
            "input": {"layout": "NCHW", "size": [96, 96], "channels": 3, "scale": SCALE, "mean": MEAN, "std": STD},
            "output": {"kind": "embedding"}, "applies_to": ["pcam"]}
    data.update(changes)
    return data


@pytest.fixture
def embed_model_id(client, tmp_path) -> int:
    r = register(client, projection_embedder(tmp_path / "embedder.onnx", (96, 96), dim=DIM),
                 yaml.safe_dump(embed_card()))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def stored(settings: Settings, model_id: int, dataset_id: int) -> vectors.Vectors:
    found = vectors.load(settings, model_id, dataset_id)
    assert found is not None
    return found


def test_card_embed_task():
    assert card_from_dict(embed_card()).task == "embed"
    with pytest.raises(ModelCardError, match=r"output.kind: 'logits' does not fit task embed \(expected embedding\)"):
        card_from_dict(embed_card(output={"kind": "logits"}))


def test_job_stores_vectors_and_similar_matches_brute_force(client, engine, settings, pcam_dataset_id, embed_model_id):
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": embed_model_id, "dataset_id": pcam_dataset_id})
    assert r.status_code == 202, r.text
    job = wait_finished(client, r.json()["id"])
    assert (job["status"], job["done"], job["total"], job["error"]) == ("done", ALL, ALL, None)
    got = stored(settings, embed_model_id, pcam_dataset_id)
    folder = vectors.store_dir(settings, embed_model_id, pcam_dataset_id)
    assert len(list(folder.glob("chunk-*.npz"))) == ALL // BATCH  # one whole chunk per batch
    assert got.vectors.dtype == np.float16 and got.vectors.shape == (ALL, DIM)
    assert got.ids.tolist() == item_ids(engine, pcam_dataset_id)
    np.testing.assert_allclose(np.linalg.norm(got.vectors.astype(np.float32), axis=1), 1.0, atol=2e-3)

    # the single-item predict gives the same vector as the job (to float16 precision)
    item = int(got.ids[3])
    single = client.post(f"/api/items/{item}/predict", json={"model_id": embed_model_id})
    assert single.status_code == 200, single.text
    assert single.json()["outputs"] == {"dimensions": DIM}
    again = stored(settings, embed_model_id, pcam_dataset_id)
    assert len(again) == ALL
    np.testing.assert_allclose(again.vectors[3].astype(np.float32), got.vectors[3].astype(np.float32), atol=2e-3)

    matrix = got.vectors.astype(np.float64)
    for row in (0, 7, ALL - 1):
        item = int(got.ids[row])
        r = client.get(f"/api/items/{item}/similar", params={"model": embed_model_id, "k": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        scores = matrix @ matrix[row]
        scores[row] = -np.inf
        expected = [int(got.ids[i]) for i in np.argsort(-scores, kind="stable")[:5]]
        assert [x["id"] for x in body["items"]] == expected
        assert item not in [x["id"] for x in body["items"]]
        np.testing.assert_allclose([x["score"] for x in body["items"]], np.sort(scores)[::-1][:5], atol=1e-4)
        assert body["model_id"] == embed_model_id and body["k"] == 5
    # k larger than the dataset: every other item
    r = client.get(f"/api/items/{int(got.ids[0])}/similar", params={"model": embed_model_id, "k": 200})
    assert len(r.json()["items"]) == ALL - 1


def test_resume_and_skip(client, app, engine, settings, pcam_dataset_id, embed_model_id):
    with app.state.session_factory() as session:
        job_id = create_predict_job(session, embed_model_id, pcam_dataset_id, {"split": "train"}).id
    calls: list[int] = []
    # the "crash": the job stops after its first batch, left running
    assert run_job(engine, settings, RuntimeCache(), job_id,
                   should_stop=lambda: calls.append(1) or len(calls) > 1) == "running"
    first = stored(settings, embed_model_id, pcam_dataset_id)
    assert len(first) == BATCH
    seen: list[tuple[int, int]] = []
    assert run_job(engine, settings, RuntimeCache(), job_id, progress=lambda d, t: seen.append((d, t))) == "done"
    assert seen == [(BATCH, TRAIN), (2 * BATCH, TRAIN), (TRAIN, TRAIN)]
    after = stored(settings, embed_model_id, pcam_dataset_id)
    assert after.ids.tolist() == item_ids(engine, pcam_dataset_id, "train")
    # a second job over everything embeds only the rest
    with app.state.session_factory() as session:
        job_id = create_predict_job(session, embed_model_id, pcam_dataset_id, {}).id
    seen.clear()
    assert run_job(engine, settings, RuntimeCache(), job_id, progress=lambda d, t: seen.append((d, t))) == "done"
    assert seen[0] == (TRAIN, ALL) and seen[-1] == (ALL, ALL)
    folder = vectors.store_dir(settings, embed_model_id, pcam_dataset_id)
    assert sum(len(np.load(p)["ids"]) for p in folder.glob("chunk-*.npz")) == ALL  # nothing embedded twice
    chunks = sorted(folder.glob("chunk-*.npz"))
    assert len(chunks) == 3 + 2  # train: 5 + 5 + 2; the rest: 5 + 3
    with app.state.session_factory() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="running"))
        session.commit()
    assert run_job(engine, settings, RuntimeCache(), job_id) == "done"
    assert sorted(folder.glob("chunk-*.npz")) == chunks  # nothing to do: no empty chunk


def test_exclude_same_patient(client, app, engine, settings, pcam_dataset_id, embed_model_id):
    job = client.post("/api/jobs", json={"kind": "predict", "model_id": embed_model_id, "dataset_id": pcam_dataset_id})
    assert wait_finished(client, job.json()["id"])["status"] == "done"
    ids = item_ids(engine, pcam_dataset_id)
    query = ids[0]
    plain = client.get(f"/api/items/{query}/similar", params={"model": embed_model_id, "k": 19}).json()["items"]
    same = [x["id"] for x in plain[:3]]  # the 3 nearest become the same patient as the query
    with app.state.session_factory() as session:
        patient = Patient(dataset_id=pcam_dataset_id, external_id="p-embed-test")
        session.add(patient)
        session.flush()
        session.execute(update(Item).where(Item.id.in_([query, *same])).values(patient_id=patient.id))
        session.commit()
    r = client.get(f"/api/items/{query}/similar",
                   params={"model": embed_model_id, "k": 19, "exclude_same_patient": "true"})
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["items"]] == [x["id"] for x in plain[3:]]


def test_similar_refusals(client, engine, settings, pcam_dataset_id, pcam_model_id, embed_model_id):
    item = item_ids(engine, pcam_dataset_id)[0]
    r = client.get(f"/api/items/{item}/similar", params={"model": embed_model_id})
    assert r.status_code == 404 and "has no embedding from model 'pcam-embedder' yet" in r.json()["detail"]
    r = client.get(f"/api/items/{item}/similar", params={"model": pcam_model_id})
    assert r.status_code == 400 and "is a classify model" in r.json()["detail"]
    assert client.get(f"/api/items/{item}/similar", params={"model": 999999}).status_code == 404
    assert client.get("/api/items/999999/similar", params={"model": embed_model_id}).status_code == 404
    assert client.get(f"/api/items/{item}/similar", params={"model": embed_model_id, "k": 0}).status_code == 422
    assert client.get(f"/api/items/{item}/similar").status_code == 422  # model is required
    r = client.get(f"/api/models/{embed_model_id}/evaluation", params={"dataset_id": pcam_dataset_id})
    assert r.status_code == 400 and "no evaluation" in r.json()["detail"]


def test_store_chunks_are_whole(tmp_path, make_settings):
    settings = make_settings()
    vectors.append(settings, 1, 2, [5, 3], np.array([[3.0, 4.0], [0.0, 2.0]]))
    folder = vectors.store_dir(settings, 1, 2)
    (folder / ".deadbeef.tmp").write_bytes(b"half a chunk")  # what a crash mid-write leaves: never read
    vectors.append(settings, 1, 2, [5], np.array([[1.0, 0.0]]))  # a later vector of item 5 wins
    got = vectors.load(settings, 1, 2)
    assert got is not None and got.ids.tolist() == [3, 5]
    np.testing.assert_allclose(got.vectors.astype(np.float32), [[0.0, 1.0], [1.0, 0.0]])
    assert vectors.stored_ids(settings, 1, 2) == {3, 5}
    with pytest.raises(Exception, match="3-dimensional vectors, but .* holds 2-dimensional"):
        vectors.append(settings, 1, 2, [7], np.ones((1, 3)))
    with pytest.raises(Exception, match=r"non-finite numbers for items \[7\]"):
        vectors.append(settings, 1, 2, [7], np.array([[np.nan, 1.0]]))
    with pytest.raises(Exception, match=r"shape \[1, 2\] for 2 items"):
        vectors.append(settings, 1, 2, [7, 8], np.ones((1, 2)))


def test_cli_predict_embeds(monkeypatch, capsys, engine, settings, pcam_dataset_id, embed_model_id):
    for name in ("database_url", "data_dir", "data_roots"):
        monkeypatch.setenv(f"MEDVIEW_{name.upper()}", str(getattr(settings, name)))
    assert cli_main(["predict", "--model", "pcam-embedder", "--dataset", "pcam", "--split", "valid", "--quiet"]) == 0
    assert "4/4 items" in capsys.readouterr().out
    assert stored(settings, embed_model_id, pcam_dataset_id).ids.tolist() == item_ids(engine, pcam_dataset_id,
                                                                                      "valid")
