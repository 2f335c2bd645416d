"""Jobs outlive their workers: atomic claims, heartbeats, and a dead worker's job taken over and finished
(in process, and by a real `medview worker` process on the real Redis when MEDVIEW_TEST_REDIS_URL is set)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.db.base import utcnow
from app.db.models import Job
from app.db.session import make_session_factory
from app.inference import recovery
from app.inference.jobs import create_predict_job
from app.inference.recovery import Heartbeat, claim, release, requeue_stale
from app.main import create_app
from tests.helpers.api import wait_finished
from tests.helpers.auth import signed_in
from tests.helpers.pcam import BATCH, TRAIN, item_ids, predictions
from tests.helpers.wait import wait_until

REDIS_URL = os.environ.get("MEDVIEW_TEST_REDIS_URL", "")


def _job(engine, model_id, dataset_id, **values) -> int:
    with make_session_factory(engine)() as session:
        job_id = create_predict_job(session, model_id, dataset_id, {"split": "train"}).id
        if values:
            session.execute(update(Job).where(Job.id == job_id).values(**values))
            session.commit()
    return job_id


def _status(engine, job_id) -> tuple[str, object]:
    with make_session_factory(engine)() as session:
        return tuple(session.execute(select(Job.status, Job.heartbeat_at).where(Job.id == job_id)).one())


def test_claim_lets_one_worker_through_until_the_heartbeat_goes_stale(client, engine, pcam_dataset_id,
                                                                      pcam_model_id):
    job_id = _job(engine, pcam_model_id, pcam_dataset_id)
    factory = make_session_factory(engine)
    with factory() as session:
        assert claim(session, job_id, stale_seconds=60)
        assert not claim(session, job_id, stale_seconds=60)  # running, heartbeat fresh: someone has it
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=120)))
        session.commit()
        assert requeue_stale(session, 300) == []  # not silent for 300 s yet
        assert claim(session, job_id, stale_seconds=60)  # silent for 120 s: taken over
        release(session, job_id)
    assert _status(engine, job_id)[0] == "queued"
    cancelled = _job(engine, pcam_model_id, pcam_dataset_id, status="cancelled")
    with factory() as session:
        assert not claim(session, cancelled, stale_seconds=0.001)


def test_heartbeat_refreshes_a_running_job(client, engine, pcam_dataset_id, pcam_model_id):
    old = utcnow() - timedelta(hours=1)
    job_id = _job(engine, pcam_model_id, pcam_dataset_id, status="running", heartbeat_at=old)
    with Heartbeat(make_session_factory(engine), job_id, every_seconds=0.05):
        wait_until(lambda: _status(engine, job_id)[1] > old + timedelta(minutes=59), 10, "a heartbeat to be written")
    status, beat = _status(engine, job_id)
    assert status == "running" and beat > old + timedelta(minutes=59)


def test_in_process_worker_takes_over_a_dead_workers_job(make_settings, engine, pcam_dataset_id, pcam_model_id,
                                                          monkeypatch):
    """A job left running by a worker that died (heartbeat old) is re-queued by the app's idle sweep and
    finished; one whose worker is alive (fresh heartbeat) is left alone."""
    dead = _job(engine, pcam_model_id, pcam_dataset_id, status="running",
                heartbeat_at=utcnow() - timedelta(seconds=30))
    alive = _job(engine, pcam_model_id, pcam_dataset_id, status="running",
                 heartbeat_at=utcnow() + timedelta(hours=1))
    sweeps: list[list[int]] = []  # what each idle sweep of the worker re-queued

    def counted(session, stale_seconds):
        taken = requeue_stale(session, stale_seconds)
        sweeps.append(taken)
        return taken

    monkeypatch.setattr(recovery, "requeue_stale", counted)
    fast = make_settings(inference_batch=BATCH, job_stale_seconds=2, job_heartbeat_seconds=0.2)
    with signed_in(TestClient(create_app(fast)), fast) as client:
        job = wait_finished(client, dead)
        assert (job["status"], job["done"], job["total"]) == ("done", TRAIN, TRAIN)
        finished_at = len(sweeps)
        wait_until(lambda: len(sweeps) > finished_at, 10, "an idle sweep after the dead worker's job finished")
        assert alive not in sum(sweeps, [])
        assert client.get(f"/api/jobs/{alive}").json()["status"] == "running"
    assert sorted(predictions(engine, pcam_model_id)) == item_ids(engine, pcam_dataset_id, "train")


@pytest.mark.skipif(not REDIS_URL, reason="MEDVIEW_TEST_REDIS_URL not set")
def test_redis_worker_recovers_jobs_of_a_dead_worker_and_of_a_restarted_redis(settings, database_url, engine,
                                                                              pcam_dataset_id, pcam_model_id,
                                                                              tmp_path):
    """The state a kill -9 leaves (job running, heartbeat old, id on no RQ queue) and the state a Redis
    restart leaves (job queued, queues empty): a fresh real worker process finds both and finishes them."""
    import redis

    server = redis.Redis.from_url(REDIS_URL)
    server.flushdb()
    server.close()
    long_ago = utcnow() - timedelta(minutes=5)
    killed = _job(engine, pcam_model_id, pcam_dataset_id, status="running", heartbeat_at=long_ago,
                  started_at=long_ago)
    forgotten = _job(engine, pcam_model_id, pcam_dataset_id, created_at=long_ago)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # this checkout's app, wherever it is installed
    env.update(MEDVIEW_QUEUE_URL=REDIS_URL, MEDVIEW_DATABASE_URL=database_url, MEDVIEW_DATA_DIR=str(settings.data_dir),
               MEDVIEW_DATA_ROOTS=settings.data_roots, MEDVIEW_INFERENCE_BATCH=str(BATCH),
               MEDVIEW_JOB_STALE_SECONDS="2")
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: {_status(engine, j)[0] for j in (killed, forgotten)} == {"done"}, 60,
                   "the worker to finish both jobs")
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert _status(engine, killed)[0] == "done" and _status(engine, forgotten)[0] == "done", stderr
    assert f"job {killed}: done" in stderr and f"job {forgotten}: done" in stderr
    assert sorted(predictions(engine, pcam_model_id)) == item_ids(engine, pcam_dataset_id, "train")
