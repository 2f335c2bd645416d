"""Prediction jobs with a real ONNX PCam classifier: the in-process queue, cancellation, resume after a crash,
the CLI, bad input, and the Redis backend with a real `medview worker` process (when MEDVIEW_TEST_REDIS_URL is
set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sqlalchemy import func, select, update

from app.cli import main as cli_main
from app.db.models import Job, Prediction
from app.db.session import make_session_factory
from app.inference.jobs import create_predict_job, run_job
from app.inference.registry import RuntimeCache
from app.main import create_app
from tests.helpers.api import register, wait_finished
from tests.helpers.auth import signed_in
from tests.helpers.pcam import BATCH, TRAIN, card_yaml, classifier_onnx, item_ids, predictions

REDIS_URL = os.environ.get("MEDVIEW_TEST_REDIS_URL", "")


@pytest.fixture
def settings(make_settings):
    """Jobs write BATCH items at a time: the train split of the sample takes 3 batches."""
    return make_settings(inference_batch=BATCH)


def test_predict_job_in_process(client, engine, pcam_dataset_id, pcam_model_id):
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id, "dataset_id": pcam_dataset_id,
                                       "filters": {"split": "train"}})
    assert r.status_code == 202, r.text
    job = wait_finished(client, r.json()["id"])
    assert {k: job[k] for k in ("id", "kind", "status", "done", "total", "error")} == {
        "id": r.json()["id"], "kind": "predict", "status": "done", "done": TRAIN, "total": TRAIN, "error": None}

    stored = predictions(engine, pcam_model_id)
    train = item_ids(engine, pcam_dataset_id, "train")
    assert sorted(stored) == train  # exactly the filtered items
    for item_id in train:  # the same outputs as the single-item endpoint
        single = client.post(f"/api/items/{item_id}/predict", json={"model_id": pcam_model_id}).json()
        batch = stored[item_id]
        np.testing.assert_allclose(batch.outputs["probabilities"], single["outputs"]["probabilities"],
                                   rtol=1e-5, atol=1e-6)
        assert batch.outputs["label"] == single["outputs"]["label"]
        assert batch.metrics["correct"] == single["metrics"]["correct"]
        assert batch.metrics["nll"] == pytest.approx(single["metrics"]["nll"], rel=1e-5, abs=1e-6)

    # a second job over everything skips the train items already predicted
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id, "dataset_id": pcam_dataset_id})
    job = wait_finished(client, r.json()["id"])
    assert (job["status"], job["done"], job["total"]) == ("done", 20, 20)
    assert sorted(predictions(engine, pcam_model_id)) == item_ids(engine, pcam_dataset_id)


def test_cancel(client, app, engine, settings, pcam_dataset_id, pcam_model_id):
    with app.state.session_factory() as session:
        job_id = create_predict_job(session, pcam_model_id, pcam_dataset_id, {"split": ["train", "valid"]}).id
    r = client.post(f"/api/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    app.state.queue.submit(job_id, "predict")  # the worker finds it cancelled and leaves it
    assert run_job(engine, settings, RuntimeCache(), job_id) == "cancelled"
    job = wait_finished(client, job_id)
    assert (job["status"], job["total"]) == ("cancelled", TRAIN + 4)
    assert predictions(engine, pcam_model_id) == {}
    assert client.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "cancelled"  # idempotent

    # cancelled between batches by the caller
    with app.state.session_factory() as session:
        job_id = create_predict_job(session, pcam_model_id, pcam_dataset_id, {"split": "train"}).id
    calls = []
    assert run_job(engine, settings, RuntimeCache(), job_id, lambda: calls.append(1) or len(calls) > 1) == "cancelled"
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["status"], job["done"], job["total"]) == ("cancelled", BATCH, TRAIN)
    assert len(predictions(engine, pcam_model_id)) == BATCH < TRAIN

    r = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id, "dataset_id": pcam_dataset_id,
                                       "filters": {"split": "test"}})
    assert wait_finished(client, r.json()["id"])["status"] == "done"
    r = client.post(f"/api/jobs/{r.json()['id']}/cancel")
    assert r.status_code == 409 and "already finished" in r.json()["detail"]


def test_cancel_through_the_api_while_running(client, app, engine, settings, pcam_dataset_id, pcam_model_id):
    """A cancel arriving mid-job stops it at its next batch write: that batch is kept, no further batch runs."""
    with app.state.session_factory() as session:
        job_id = create_predict_job(session, pcam_model_id, pcam_dataset_id, {"split": "train"}).id

    def cancel_after_first_batch(done, total):
        if done == BATCH:
            assert client.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "cancelled"

    assert run_job(engine, settings, RuntimeCache(), job_id, progress=cancel_after_first_batch) == "cancelled"
    assert len(predictions(engine, pcam_model_id)) == 2 * BATCH  # the batch running when the cancel came is kept
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["status"], job["done"]) == ("cancelled", BATCH)


def test_resume_after_crash(client, app, engine, settings, pcam_dataset_id, pcam_model_id):
    with app.state.session_factory() as session:
        job_id = create_predict_job(session, pcam_model_id, pcam_dataset_id, {"split": "train"}).id
    calls = []
    # the "crash": the job stops after its first batch
    run_job(engine, settings, RuntimeCache(), job_id, lambda: calls.append(1) or len(calls) > 1)
    first = predictions(engine, pcam_model_id)
    assert len(first) == BATCH
    with app.state.session_factory() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="running"))
        session.commit()

    seen = []
    assert run_job(engine, settings, RuntimeCache(), job_id, progress=lambda d, t: seen.append((d, t))) == "done"
    assert seen == [(BATCH, TRAIN), (2 * BATCH, TRAIN), (TRAIN, TRAIN)]
    after = predictions(engine, pcam_model_id)
    assert sorted(after) == item_ids(engine, pcam_dataset_id, "train")
    for item_id, p in first.items():  # not recomputed
        assert (after[item_id].id, after[item_id].created_at) == (p.id, p.created_at)
    with app.state.session_factory() as session:
        count = session.scalar(select(func.count()).select_from(Prediction))
        assert count == TRAIN  # no duplicates
        assert session.scalar(select(func.count(func.distinct(Prediction.item_id)))) == TRAIN
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["status"], job["done"], job["total"], job["error"]) == ("done", TRAIN, TRAIN, None)
    assert run_job(engine, settings, RuntimeCache(), job_id) == "done"  # nothing to do again


def test_unfinished_jobs_resume_at_startup(app, engine, settings, pcam_dataset_id, tmp_path):
    with signed_in(TestClient(app), settings) as client:
        r = register(client, classifier_onnx(tmp_path / "m.onnx"), card_yaml())
        model_id = r.json()["id"]
    with make_session_factory(engine)() as session:
        job_id = create_predict_job(session, model_id, pcam_dataset_id, {"split": "valid"}).id  # never submitted
    with signed_in(TestClient(create_app(settings)), settings) as client:
        job = wait_finished(client, job_id)
    assert (job["status"], job["done"]) == ("done", 4)


def test_bad_jobs(client, pcam_dataset_id, pcam_model_id, tmp_path):
    def post(**body):
        return client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id,
                                              "dataset_id": pcam_dataset_id, **body})

    r = post(model_id=9999)
    assert r.status_code == 404 and "model 9999" in r.json()["detail"]
    r = post(dataset_id=9999)
    assert r.status_code == 404 and "dataset 9999" in r.json()["detail"]
    r = post(filters={"organ": "liver"})
    assert r.status_code == 400 and "unknown filter 'organ'" in r.json()["detail"]
    r = post(kind="evaluate")
    assert r.status_code == 400 and "unknown job kind 'evaluate'" in r.json()["detail"]
    other = register(client, classifier_onnx(tmp_path / "o.onnx"), card_yaml(name="other", applies_to=("bis5k",)))
    r = post(model_id=other.json()["id"])
    assert r.status_code == 400 and "bis5k" in r.json()["detail"]
    assert post(model_id="x").status_code == 422
    assert client.get("/api/jobs/9999").status_code == 404
    assert client.post("/api/jobs/9999/cancel").status_code == 404


def test_cli_predict(monkeypatch, capsys, client, engine, settings, pcam_dataset_id, pcam_model_id):
    for name in ("database_url", "data_dir", "data_roots"):
        monkeypatch.setenv(f"MEDVIEW_{name.upper()}", str(getattr(settings, name)))
    assert cli_main(["predict", "--model", "pcam-baseline", "--dataset", "pcam", "--split", "valid", "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert "done" in summary and "4/4 items" in summary
    assert sorted(predictions(engine, pcam_model_id)) == item_ids(engine, pcam_dataset_id, "valid")
    assert cli_main(["predict", "--model", "pcam-baseline", "--dataset", "pcam", "--organ", "liver"]) == 2
    assert "unknown filter 'organ'" in capsys.readouterr().err
    assert cli_main(["predict", "--model", "nope", "--dataset", "pcam"]) == 2
    assert "no model named 'nope'" in capsys.readouterr().err


def test_jobs_on_selected_ids_and_the_job_list(client, engine, pcam_dataset_id, pcam_model_id):
    """`id` / `exclude_id` pseudo-filters narrow a job to a grid selection; GET /api/jobs lists a dataset's jobs."""
    train = item_ids(engine, pcam_dataset_id, "train")
    chosen, skipped = train[:3], train[3:5]
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id, "dataset_id": pcam_dataset_id,
                                       "filters": {"split": "train", "id": chosen}})
    assert r.status_code == 202, r.text
    first = wait_finished(client, r.json()["id"])
    assert (first["status"], first["total"]) == ("done", 3)
    assert sorted(predictions(engine, pcam_model_id)) == chosen
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id, "dataset_id": pcam_dataset_id,
                                       "filters": {"split": "train", "exclude_id": skipped}})
    second = wait_finished(client, r.json()["id"])
    assert (second["status"], second["total"], second["done"]) == ("done", TRAIN - 2, TRAIN - 2)
    assert sorted(predictions(engine, pcam_model_id)) == sorted(set(train) - set(skipped))
    listed = client.get("/api/jobs", params={"dataset_id": pcam_dataset_id}).json()
    assert [j["id"] for j in listed] == [second["id"], first["id"]]
    assert listed[0]["model_name"] == "pcam-baseline"
    assert client.get("/api/jobs", params={"dataset_id": pcam_dataset_id + 999}).json() == []
    for filters, fragment in (({"id": ["x1"]}, "'x1' is not an item id"),
                              ({"exclude_id": [-1]}, "'-1' is not an item id")):
        r = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id, "dataset_id": pcam_dataset_id,
                                           "filters": filters})
        assert r.status_code == 422 and fragment in r.json()["detail"], r.text  # the body's schema refuses them
    assert client.get("/api/jobs", params={"limit": 0}).status_code == 400


def test_job_bodies_are_bounded_naming_the_field(client, pcam_dataset_id, pcam_model_id):
    """Oversized filters are refused by the request body's schema (422 naming the field, not echoing the value),
    before any query; nothing is stored."""
    def post(filters):
        return client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id,
                                              "dataset_id": pcam_dataset_id,
                                              "filters": filters})

    r = post({"split": "x" * 3_000_000})  # past MEDVIEW_MAX_REQUEST_KB: refused before it is read
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    r = post({"split": "x" * 600})
    assert r.status_code == 422 and r.json()["detail"] == "filters.split.0: String should have at most 512 characters"
    r = post({"id": list(range(1, 60_002))})
    assert r.status_code == 422 and r.json()["detail"].startswith("filters.id: List should have at most 50000 items")
    r = post({"label": [str(i) for i in range(1_001)]})
    assert r.status_code == 422 and "filter 'label' lists 1,001 values" in r.json()["detail"]
    r = post({"s" * 100_000: "train"})
    assert r.status_code == 422 and len(r.json()["detail"]) < 200
    assert client.get("/api/jobs").json() == []


def test_model_resolved_once_at_the_edge_and_loaded_once_in_the_worker(monkeypatch, client, app, engine, settings,
                                                                        pcam_dataset_id, pcam_model_id):
    """The card is parsed once where the job is made (with the model and dataset checks) and once by the worker,
    which hands it to the runtime cache instead of parsing it again to load the model."""
    import app.inference.registry as registry

    parsed: list[str] = []
    real = registry.card_from_dict
    monkeypatch.setattr(registry, "card_from_dict", lambda data, source: parsed.append(source) or real(data, source))
    app.state.queue.close()  # the job is run below, by hand
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id, "dataset_id": pcam_dataset_id,
                                       "filters": {"split": "valid"}})
    assert r.status_code == 202 and parsed == ["model pcam-baseline"]
    parsed.clear()
    assert run_job(engine, settings, RuntimeCache(), r.json()["id"]) == "done"
    assert parsed == ["model pcam-baseline"]


def test_a_job_row_written_by_older_code_runs(engine, settings, pcam_dataset_id, pcam_model_id):
    """`jobs.params` keeps its JSON shape, so rows stored before the typed parameters run unchanged."""
    valid = item_ids(engine, pcam_dataset_id, "valid")
    with make_session_factory(engine)() as session:
        job = Job(kind="predict", status="queued", done=0, total=0, params={
            "model_id": pcam_model_id, "dataset_id": pcam_dataset_id,
            "filters": {"split": ["valid"], "exclude_id": [str(valid[0])]}})
        session.add(job)
        session.commit()
        job_id = job.id
    assert run_job(engine, settings, RuntimeCache(), job_id) == "done"
    assert sorted(predictions(engine, pcam_model_id)) == valid[1:]


@pytest.mark.skipif(not REDIS_URL, reason="MEDVIEW_TEST_REDIS_URL not set")
def test_redis_worker(make_settings, settings, database_url, engine, pcam_dataset_id, tmp_path):
    if not database_url.startswith("sqlite"):
        pytest.skip("the worker process shares this test's SQLite file")
    import redis

    server = redis.Redis.from_url(REDIS_URL)
    server.flushdb()
    server.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # this checkout's app, wherever it is installed
    env.update(MEDVIEW_QUEUE_URL=REDIS_URL, MEDVIEW_DATABASE_URL=database_url, MEDVIEW_DATA_DIR=str(settings.data_dir),
               MEDVIEW_DATA_ROOTS=settings.data_roots, MEDVIEW_INFERENCE_BATCH=str(BATCH))
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        queued = make_settings(queue_url=REDIS_URL, inference_batch=BATCH)
        with signed_in(TestClient(create_app(queued)), queued) as client:
            r = register(client, classifier_onnx(tmp_path / "m.onnx"), card_yaml())
            model_id = r.json()["id"]
            r = client.post("/api/jobs", json={"kind": "predict", "model_id": model_id, "dataset_id": pcam_dataset_id,
                                               "filters": {"split": "train"}})
            assert r.status_code == 202
            job = wait_finished(client, r.json()["id"])
        assert (job["status"], job["done"], job["total"]) == ("done", TRAIN, TRAIN), job
        assert sorted(predictions(engine, model_id)) == item_ids(engine, pcam_dataset_id, "train")
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert f"job {r.json()['id']}: done" in stderr


# ---- evaluation: classification metrics over the predicted items, against scikit-learn ----

def truth_and_probabilities(client, dataset_id, **filters):
    page = client.get(f"/api/datasets/{dataset_id}/items", params={"limit": 500, **filters}).json()["items"]
    y, p = [], []
    for item in page:
        detail = client.get(f"/api/items/{item['id']}").json()
        y.append(int(detail["label"]))
        p.append(detail["predictions"][0]["outputs"]["probabilities"])
    return np.array(y), np.array(p)


def test_evaluation_matches_sklearn(client, pcam_predicted):
    dataset_id, model_id = pcam_predicted
    body = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": dataset_id}).json()
    y, p = truth_and_probabilities(client, dataset_id)
    assert body["n"] == body["predicted"] == len(y) == 20
    assert body["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert body["nll"] == pytest.approx(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]), rel=1e-6)
    assert body["auc"] == pytest.approx(roc_auc_score(y, p[:, 1]))
    assert sum(map(sum, body["confusion_matrix"])) == len(y)


def test_evaluation_follows_filters_and_rejects_bad_input(client, pcam_predicted):
    dataset_id, model_id = pcam_predicted
    body = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": dataset_id, "split": "train"})
    y, p = truth_and_probabilities(client, dataset_id, split="train")
    assert body.json()["n"] == len(y) == 12
    assert body.json()["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": 999}).status_code == 404
    assert client.get("/api/models/999/evaluation", params={"dataset_id": dataset_id}).status_code == 404
    bad = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": dataset_id, "colour": "x"})
    assert bad.status_code == 400 and "unknown filter" in bad.json()["detail"]
    assert client.get(f"/api/models/{model_id}/evaluation").status_code == 422
