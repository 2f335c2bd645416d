"""`medview worker` honours SIGTERM (what `docker compose stop/down` sends): mid-job it finishes the batch it is
running, hands the job back (`queued`, enqueued again on its RQ queue `medview:gpu`) and exits 0 at once, well
inside compose's 30 s grace; the next worker resumes the job and finishes it with no duplicate prediction.
A real worker process on the real Redis (MEDVIEW_TEST_REDIS_URL) with a real, deliberately slow ONNX model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.datasets.ingest import ingest_path
from app.datasets.pcam import pixels
from app.datasets.pcam.synth import generate_pcam
from app.db.models import Job, Prediction
from app.db.session import make_session_factory
from app.inference.jobs import create_predict_job
from app.inference.rq_queue import RQJobQueue
from tests.helpers import pcam
from tests.helpers.api import register
from tests.helpers.wait import wait_until

REDIS_URL = os.environ.get("MEDVIEW_TEST_REDIS_URL", "")
REPO = Path(__file__).resolve().parents[2]
ITEMS = 30  # enough work (≈ 40 ms an item) that SIGTERM lands mid-job even when the first poll is late

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="MEDVIEW_TEST_REDIS_URL not set")


def _job(engine, job_id: int) -> Job:
    with make_session_factory(engine)() as session:
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        session.expunge(job)
        return job


def test_sigterm_mid_job_hands_the_job_back_and_the_next_worker_finishes_it(client, settings, database_url,
                                                                            engine, tmp_path):
    import redis

    queue_url = REDIS_URL  # this test process's own database (tests/conftest.py: one per xdist worker)
    server = redis.Redis.from_url(queue_url)
    server.flushdb()  # this test's own database: no queued leftovers
    root = generate_pcam(tmp_path / "pcam", n_per_split=(ITEMS - 4, 2, 2), seed=3).root
    pixels.close_all()
    dataset_id = ingest_path(engine, settings, root, kind="pcam", name="pcam").dataset_id
    r = register(client, pcam.slow_classifier_onnx(tmp_path / "slow.onnx"), pcam.card_yaml(name="slow"))
    assert r.status_code == 201, r.text
    with make_session_factory(engine)() as session:
        job_id = create_predict_job(session, r.json()["id"], dataset_id, {}).id
    jobs_queue = RQJobQueue(queue_url)
    jobs_queue.submit(job_id, "predict")

    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    env.update(MEDVIEW_QUEUE_URL=queue_url, MEDVIEW_DATABASE_URL=database_url, MEDVIEW_DATA_DIR=str(settings.data_dir),
               MEDVIEW_DATA_ROOTS=f"{tmp_path}:{settings.data_dir}", MEDVIEW_INFERENCE_BATCH="1",
               PYTHONPATH=str(REPO))

    def worker() -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=tmp_path,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = worker()
    try:
        wait_until(lambda: _job(engine, job_id).done >= 1, 60, "the first batch to be written")
        sent = time.monotonic()
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=10)
        stopped_in = time.monotonic() - sent
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    job = _job(engine, job_id)
    assert first.returncode == 0 and "Traceback" not in stderr, stderr
    assert stopped_in < 5, f"SIGTERM to exit took {stopped_in:.1f} s"
    assert job.status == "queued" and 0 < job.done < ITEMS, (job.status, job.done)
    assert jobs_queue.enqueued_ids() == {job_id}  # handed back for the next worker, on the GPU queue
    assert jobs_queue.queues["gpu"].count == 1 and jobs_queue.queues["cpu"].count == 0
    assert f"job {job_id}: handed back (queued)" in stderr

    second = worker()
    try:
        wait_until(lambda: _job(engine, job_id).status == "done", 120, "the second worker to finish the job")
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=10)
    assert second.returncode == 0
    with make_session_factory(engine)() as session:
        model_id = r.json()["id"]
        rows = session.scalars(select(Prediction.item_id).where(Prediction.model_id == model_id)).all()
    assert len(rows) == len(set(rows)) == ITEMS
    jobs_queue.close()
    server.close()
