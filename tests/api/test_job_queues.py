"""Jobs on RQ's named queues (app.inference.rq_queue, rq_worker), against the real Redis (MEDVIEW_TEST_REDIS_URL)
and real `medview worker` processes: routing by kind, `--queues`, a worker SIGKILLed mid-job taken over with no
duplicate prediction, cancellation of queued and running jobs, the queue unreachable (503, nothing stored; the
worker's one line and exit 2; Redis going away under a running worker) and the queue in /api/health."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.datasets.ingest import ingest_path
from app.datasets.pcam import pixels
from app.datasets.pcam.synth import generate_pcam
from app.db.models import AuditEvent, Job, Prediction
from app.db.session import make_session_factory
from app.errors import InvalidInput
from app.inference import jobs as inference_jobs
from app.inference.queue import claim_when_visible
from app.inference.rq_queue import TASK, MedViewJob, RQJobQueue, make_rq_queue, parse_queues
from app.main import create_app
from tests.helpers import pcam
from tests.helpers.api import register, wait_finished
from tests.helpers.auth import signed_in
from tests.helpers.wait import wait_until

REDIS_URL = os.environ.get("MEDVIEW_TEST_REDIS_URL", "")
REPO = Path(__file__).resolve().parents[2]
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="MEDVIEW_TEST_REDIS_URL not set")


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis database, emptied before and after."""
    server = redis.Redis.from_url(REDIS_URL)
    server.flushdb()
    yield REDIS_URL
    server.flushdb()
    server.close()


class Workers:
    """`medview worker` processes of this checkout on the test's database; all stopped at the end."""

    def __init__(self, settings, database_url: str, tmp_path: Path):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
        self.env.update(MEDVIEW_DATABASE_URL=database_url, MEDVIEW_DATA_DIR=str(settings.data_dir),
                        MEDVIEW_DATA_ROOTS=f"{settings.data_roots}:{tmp_path}", MEDVIEW_INFERENCE_BATCH="1",
                        MEDVIEW_JOB_STALE_SECONDS="2", MEDVIEW_JOB_HEARTBEAT_SECONDS="0.3", PYTHONPATH=str(REPO))
        self.cwd = tmp_path
        self.started: list[subprocess.Popen[str]] = []

    def start(self, queue_url: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", *args], cwd=self.cwd,
                                env={**self.env, "MEDVIEW_QUEUE_URL": queue_url}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> str:
        """SIGTERM, the exit status checked (0), its stderr."""
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Traceback" not in stderr, stderr
        return stderr

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture
def workers(settings, database_url, tmp_path) -> Iterator[Workers]:
    started = Workers(settings, database_url, tmp_path)
    yield started
    started.close()


def job_of(engine, job_id: int) -> Job:
    with make_session_factory(engine)() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def counts(engine) -> tuple[int, int]:
    """(job rows, job.start audit events)."""
    with make_session_factory(engine)() as session:
        return (session.scalar(select(func.count()).select_from(Job)) or 0,
                session.scalar(select(func.count()).where(AuditEvent.action == "job.start")) or 0)


def predicted(engine, model_id: int) -> list[int]:
    with make_session_factory(engine)() as session:
        return list(session.scalars(select(Prediction.item_id).where(Prediction.model_id == model_id)))


# ---- the queue's small parts ----

def test_kinds_map_to_named_queues():
    assert inference_jobs.queue_for("predict") == "gpu"
    assert inference_jobs.queue_for("export") == "cpu"  # registered without a queue
    assert inference_jobs.queue_for("anything-else") == "cpu"
    with pytest.raises(ValueError, match="unknown job queue 'tpu'"):
        inference_jobs.register_job_kind("tpu-thing", lambda *a: "done", queue="tpu")
    assert parse_queues("gpu,cpu") == ["gpu", "cpu"] and parse_queues(" cpu ") == ["cpu"]
    for bad in ("gpu,fast", ""):
        with pytest.raises(InvalidInput, match="--queues: unknown queue"):
            parse_queues(bad)


@needs_redis
def test_a_worker_runs_no_other_function_than_a_medview_job(redis_url):
    """Whoever can write to Redis can make a worker run a MedView job id, not any importable function."""
    connection = redis.Redis.from_url(redis_url)
    queue = make_rq_queue("cpu", connection)
    foreign = queue.enqueue_call("os.getcwd", job_id="x1")
    with pytest.raises(InvalidInput, match="runs only app.inference.rq_worker.run"):
        MedViewJob.fetch(foreign.id, connection=connection, serializer=queue.serializer).perform()
    ours = RQJobQueue(redis_url, connection)
    ours.submit(7, "predict")
    (rq_id,) = ours.queues["gpu"].get_job_ids()
    job = MedViewJob.fetch(rq_id, connection=connection, serializer=queue.serializer)
    assert (job.func_name, job.args, job.timeout) == (TASK, [7], -1) and ours.enqueued_ids() == {7}
    connection.close()


def test_a_worker_waits_for_the_row_of_a_job_enqueued_before_its_commit(engine, settings, pcam_dataset_id,
                                                                         pcam_model_id):
    """Routes enqueue before they commit, so a worker can get the id first: it claims the job once the commit
    lands, and gives up on an id whose row never comes (its commit failed)."""
    factory = make_session_factory(engine)
    claimed: list[bool] = []
    with factory() as session:
        job = Job(kind="predict", status="queued", done=0, total=0,
                  params={"model_id": pcam_model_id, "dataset_id": pcam_dataset_id})
        session.add(job)
        session.flush()  # the id exists, the row is not committed
        waiting = threading.Thread(target=lambda: claimed.append(claim_when_visible(factory, settings, job.id)))
        waiting.start()
        wait_until(lambda: waiting.is_alive(), 5, "the worker to be waiting")
        session.commit()
    waiting.join(30)
    assert claimed == [True] and job_of(engine, job.id).status == "running"
    assert claim_when_visible(factory, settings, 999_999, wait=0.2) is False


# ---- the app side: routing, 503 with nothing stored, health ----

@needs_redis
def test_jobs_go_to_the_queue_of_their_kind(make_settings, engine, pcam_dataset_id, pcam_model_id, redis_url):
    queued = make_settings(queue_url=redis_url)
    with signed_in(TestClient(create_app(queued)), queued) as client:
        health = client.get("/api/health").json()
        assert health["status"] == "ok"
        assert health["queue"] == {"backend": "redis", "ok": True, "queued": {"gpu": 0, "cpu": 0},
                                   "workers": {"gpu": 0, "cpu": 0}}
        predict = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id,
                                                 "dataset_id": pcam_dataset_id})
        export = client.post("/api/exports", json={"dataset_id": pcam_dataset_id, "format": "csv"})
        assert predict.status_code == export.status_code == 202, (predict.text, export.text)
        assert client.get("/api/health").json()["queue"]["queued"] == {"gpu": 1, "cpu": 1}
    probe = RQJobQueue(redis_url)
    assert [probe.queues[q].get_job_ids()[0].split("-")[1] for q in ("gpu", "cpu")] == [
        str(predict.json()["id"]), str(export.json()["id"])]
    probe.close()
    assert counts(engine) == (2, 2)


@needs_redis
def test_queue_unreachable_answers_503_and_stores_nothing(make_settings, engine, pcam_dataset_id, pcam_model_id):
    down = make_settings(queue_url=f"redis://127.0.0.1:{closed_port()}/0")
    with signed_in(TestClient(create_app(down)), down) as client:
        before = counts(engine)
        for path, body in (("/api/jobs", {"kind": "predict", "model_id": pcam_model_id,
                                          "dataset_id": pcam_dataset_id}),
                           ("/api/exports", {"dataset_id": pcam_dataset_id, "format": "csv"})):
            r = client.post(path, json=body)
            assert r.status_code == 503, r.text
            assert r.json()["detail"].startswith("job queue unreachable: ") and "Connection refused" in r.text
        assert counts(engine) == before  # no job row, no audit event claiming one
        assert client.get("/api/jobs").json() == []
        health = client.get("/api/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert health.json()["queue"] == {"backend": "redis", "ok": False, "detail": "unreachable (ConnectionError)"}
        # bad input is still checked first: a 404 stays a 404 when the queue is down
        r = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id, "dataset_id": 999})
        assert r.status_code == 404


def test_health_reports_the_in_process_queue(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["queue"] == {"backend": "inprocess", "ok": True}


# ---- real workers ----

@pytest.fixture
def slow_job(app, client, engine, settings, tmp_path):
    """(model id, dataset id, item count) of a slow model over a 40-item PCam sample: ~40 ms an item. The test
    app's own worker thread is stopped: only `medview worker` processes run jobs here."""
    app.state.queue.close()
    root = generate_pcam(tmp_path / "pcam40", n_per_split=(36, 2, 2), seed=5).root
    pixels.close_all()
    dataset_id = ingest_path(engine, settings, root, kind="pcam", name="pcam40").dataset_id
    r = register(client, pcam.slow_classifier_onnx(tmp_path / "slow.onnx"), pcam.card_yaml(name="slow"))
    assert r.status_code == 201, r.text
    return r.json()["id"], dataset_id, 40


@needs_redis
def test_a_cpu_worker_leaves_predict_jobs_to_gpu_workers(make_settings, engine, pcam_dataset_id, pcam_model_id,
                                                         redis_url, workers):
    queued = make_settings(queue_url=redis_url)
    with signed_in(TestClient(create_app(queued)), queued) as client:
        cpu = workers.start(redis_url, "--queues", "cpu")
        predict = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id,
                                                 "dataset_id": pcam_dataset_id}).json()["id"]
        export = client.post("/api/exports", json={"dataset_id": pcam_dataset_id, "format": "csv"}).json()["id"]
        assert wait_finished(client, export)["status"] == "done"
        assert client.get(f"/api/jobs/{predict}").json()["status"] == "queued"
        assert client.get("/api/health").json()["queue"]["queued"] == {"gpu": 1, "cpu": 0}
        gpu = workers.start(redis_url, "--queues", "gpu")
        assert (job := wait_finished(client, predict))["status"] == "done", job
        cpu_log, gpu_log = workers.stop(cpu), workers.stop(gpu)
    assert f"job {export}: done" in cpu_log and f"job {predict}" not in cpu_log
    assert f"job {predict}: done" in gpu_log and "from medview:gpu on" in gpu_log
    assert sorted(predicted(engine, pcam_model_id)) == pcam.item_ids(engine, pcam_dataset_id)


@needs_redis
def test_a_worker_killed_mid_job_is_taken_over_without_duplicates(engine, slow_job, redis_url, workers):
    model_id, dataset_id, items = slow_job
    with make_session_factory(engine)() as session:
        job_id = inference_jobs.create_predict_job(session, model_id, dataset_id).id
    RQJobQueue(redis_url).submit(job_id, "predict")
    first = workers.start(redis_url)
    wait_until(lambda: job_of(engine, job_id).done >= 1, 60, "the first batch to be written")
    first.kill()  # SIGKILL: no hand-back, the job stays `running` with an ageing heartbeat
    first.communicate()
    stopped_at = job_of(engine, job_id)
    assert stopped_at.status == "running" and stopped_at.done < items, (stopped_at.status, stopped_at.done)
    second = workers.start(redis_url)
    wait_until(lambda: job_of(engine, job_id).status == "done", 120, "the second worker to take the job over")
    log = workers.stop(second)
    assert f"job {job_id}: done" in log and "no heartbeat" in log
    rows = predicted(engine, model_id)
    assert len(rows) == len(set(rows)) == items == job_of(engine, job_id).done


@needs_redis
def test_cancelling_a_queued_and_a_running_job(engine, slow_job, redis_url, workers, client):
    model_id, dataset_id, items = slow_job
    jobs_queue = RQJobQueue(redis_url)
    with make_session_factory(engine)() as session:
        queued = inference_jobs.create_predict_job(session, model_id, dataset_id, {"split": "valid"}).id
        running = inference_jobs.create_predict_job(session, model_id, dataset_id).id
    jobs_queue.submit(queued, "predict")
    jobs_queue.submit(running, "predict")
    assert client.post(f"/api/jobs/{queued}/cancel").json()["status"] == "cancelled"  # before any worker
    worker = workers.start(redis_url)
    wait_until(lambda: job_of(engine, running).done >= 1, 60, "the running job's first batch")
    assert client.post(f"/api/jobs/{running}/cancel").json()["status"] == "cancelled"
    cancelled_at = job_of(engine, running).done
    with make_session_factory(engine)() as session:  # the worker stops at its next batch, free for the next job
        after = inference_jobs.create_predict_job(session, model_id, dataset_id, {"split": "test"}).id
    jobs_queue.submit(after, "predict")
    wait_until(lambda: job_of(engine, after).status == "done", 60, "the next job to run")
    log = workers.stop(worker)
    assert f"job {queued}" not in log and f"job {running}: cancelled" in log and f"job {after}: done" in log
    final = job_of(engine, running)
    assert (final.status, final.done) == ("cancelled", cancelled_at) and cancelled_at < items
    assert job_of(engine, queued).status == "cancelled"
    # the cancelled job's written batches (and the one in flight at the cancel), then the test split's 2 items
    assert len(predicted(engine, model_id)) - 2 in (cancelled_at, cancelled_at + 1)
    jobs_queue.close()


# ---- the worker and Redis failing ----

def test_worker_on_a_dead_redis_says_so_in_one_line_and_exits_2(workers):
    port = closed_port()
    proc = workers.start(f"redis://:s3cret-pw@127.0.0.1:{port}/0")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert stderr.strip().splitlines() == [
        f"medview worker: job queue redis://:***@127.0.0.1:{port}/0 unreachable: "
        f"Error 111 connecting to 127.0.0.1:{port}. Connection refused."], stderr
    bad = workers.start(f"redis://127.0.0.1:{port}/0", "--queues", "gpu,fast")
    _, stderr = bad.communicate(timeout=60)
    assert bad.returncode == 2 and stderr.strip() == "medview worker: --queues: unknown queue 'fast'; known: gpu,cpu"


@pytest.fixture
def own_redis(tmp_path) -> Iterator[tuple[str, Callable[[], subprocess.Popen[bytes]]]]:
    """A redis-server of this test alone (so it can be stopped): its URL and a function (re)starting it."""
    port = closed_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        procs.append(proc)
        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), 10, "redis-server to answer")
        client.close()
        return proc

    yield f"redis://127.0.0.1:{port}/0", start
    for proc in procs:
        proc.kill()
        proc.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.skipif(not os.path.exists("/usr/bin/redis-server"), reason="no redis-server binary")
def test_redis_going_away_under_a_worker_is_retried_without_a_traceback(engine, slow_job, own_redis, workers):
    """Redis killed while a job runs: the job still finishes (its state is in the database), the worker stays up,
    retrying with backoff (one line each, no traceback); a job made while Redis was down (and so never enqueued;
    this Redis keeps nothing on disk) is enqueued by the worker's sweep once Redis is back, and runs."""
    url, start_redis = own_redis
    model_id, dataset_id, items = slow_job
    server = start_redis()
    worker = workers.start(url)
    with make_session_factory(engine)() as session:
        running = inference_jobs.create_predict_job(session, model_id, dataset_id).id
    RQJobQueue(url).submit(running, "predict")
    wait_until(lambda: job_of(engine, running).done >= 1, 60, "the job's first batch")
    server.kill()
    server.wait()
    with make_session_factory(engine)() as session:  # made while Redis is down: only the database has it
        later = inference_jobs.create_predict_job(session, model_id, dataset_id, {"split": "valid"}).id
    wait_until(lambda: job_of(engine, running).status == "done", 120, "the running job to finish without Redis")
    assert worker.poll() is None
    start_redis()
    wait_until(lambda: job_of(engine, later).status == "done", 120, "the later job to run once Redis is back")
    log = workers.stop(worker)
    assert f"job {running}: done" in log and f"job {later}: done" in log
    assert "Traceback" not in log and ("unreachable" in log or "could not connect" in log), log
    rows = predicted(engine, model_id)
    assert len(rows) == len(set(rows)) == items


def _workers_registered(url: str) -> bool:
    client = redis.Redis.from_url(url)
    try:
        return bool(client.scard("rq:workers"))
    finally:
        client.close()

