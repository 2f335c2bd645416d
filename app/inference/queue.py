"""Job queue backends behind one small interface: `submit(job_id, kind)`, `health()`, `close()`.

- `InProcessQueue` (MEDVIEW_QUEUE_URL empty, the embedded default): a daemon thread of the app process consuming
  a `queue.Queue`; on start it re-enqueues jobs left `queued`/`running` (resume after a crash or restart). The
  named queues mean nothing here: one thread runs every kind.
- `RQJobQueue` (MEDVIEW_QUEUE_URL=redis://…, app.inference.rq_queue): the API enqueues "run MedView job N" on
  the RQ queue named for the job's kind (`medview:gpu` for predict, `medview:cpu` for the rest) and `medview
  worker` processes (app.inference.rq_worker) run them.
State and progress are in the database either way. Both run a job only after claiming it (`run_claimed`), keep
its heartbeat while it runs, and take over jobs whose worker died (app.inference.recovery).

A route enqueues a job *before* committing its row (app.inference.jobs.commit_submitted), so a queue that
cannot take it leaves nothing behind (503, `QueueUnavailable`); the price is that a fast worker may see the id
before the row is visible, so `run_claimed` waits for it a little.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import Job
from app.errors import AppError
from app.inference.jobs import run_job, unfinished_job_ids
from app.inference.recovery import Heartbeat, claim, recover_jobs, release
from app.inference.registry import RuntimeCache
from app.pixels import PixelStore

log = logging.getLogger(__name__)

_STOP = -1
VISIBLE_WAIT = 10.0  # seconds a worker waits for the row of a job enqueued just before its commit


class QueueUnavailable(AppError):
    """The job queue (Redis) cannot be reached: the job was not stored; the client may retry later."""

    status_code = 503


def claim_when_visible(factory: sessionmaker[Session], settings: Settings, job_id: int,
                       wait: float = VISIBLE_WAIT, should_stop: Callable[[], bool] = lambda: False) -> bool:
    """Claim the job; when its row is not there yet (enqueued before its commit) try again until it appears or
    `wait` runs out (its commit failed: there is nothing to run). A row that turns up `queued` between the claim
    and the look is claimed again at once."""
    deadline = time.monotonic() + wait
    while True:
        with factory() as session:
            if claim(session, job_id, settings.job_stale_seconds):
                return True
            status = session.scalar(select(Job.status).where(Job.id == job_id))
        if status not in (None, "queued") or time.monotonic() >= deadline or should_stop():
            return False  # another worker has it, or it is no longer active, or it never came, or we stop
        if status is None:
            time.sleep(0.05)


def run_claimed(factory: sessionmaker[Session], settings: Settings, runtimes: RuntimeCache, job_id: int,
                pixels: PixelStore | None, should_stop: Callable[[], bool]) -> str | None:
    """Claim, run with a heartbeat, and release if stopped midway; None when another worker has the job or it
    is no longer active."""
    if not claim_when_visible(factory, settings, job_id, should_stop=should_stop):
        return None
    with Heartbeat(factory, job_id, settings.job_heartbeat_seconds):
        status = run_job(factory, settings, runtimes, job_id, pixels=pixels, should_stop=should_stop)
    if status == "running":  # stopped between batches: the next worker (or start) resumes it at once
        with factory() as session:
            release(session, job_id)
    return status


def sweep_interval(settings: Settings) -> float:
    """How often a worker looks for jobs whose worker died."""
    return max(0.2, min(settings.job_stale_seconds / 2, 30.0))


class JobQueue(Protocol):
    def submit(self, job_id: int, kind: str) -> None:
        """Hand the job to a worker; QueueUnavailable when the queue cannot take it."""

    def health(self) -> dict[str, Any]:
        """{"backend", "ok", …} for GET /api/health; never raises."""

    def close(self) -> None: ...


class InProcessQueue:
    """Jobs run one at a time on a daemon thread of this process."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings, runtimes: RuntimeCache,
                 pixels: PixelStore | None = None):
        self._factory, self._settings, self._runtimes, self._pixels = session_factory, settings, runtimes, pixels
        self._queue: queue.Queue[int] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, resume: bool = True) -> None:
        if resume:
            with self._factory() as session:
                for job_id in unfinished_job_ids(session):
                    self._queue.put(job_id)
        self._thread = threading.Thread(target=self._loop, name="medview-jobs", daemon=True)
        self._thread.start()

    def submit(self, job_id: int, kind: str = "") -> None:
        self._queue.put(job_id)

    def health(self) -> dict[str, Any]:
        alive = self._thread is not None and self._thread.is_alive()
        return {"backend": "inprocess", "ok": alive, **({} if alive else {"detail": "worker thread not running"})}

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job_id = self._queue.get(timeout=sweep_interval(self._settings))
            except queue.Empty:
                self._sweep()
                continue
            if job_id == _STOP:
                return
            try:
                run_claimed(self._factory, self._settings, self._runtimes, job_id, self._pixels,
                            self._stopping.is_set)
            except Exception:  # run_job records failures itself; this is the database going away
                log.exception("in-process worker: job %d", job_id)

    def _sweep(self) -> None:
        try:
            recover_jobs(self._factory, self._settings.job_stale_seconds, self.submit,
                         self._held)  # and queued jobs it does not hold (none should be)
        except Exception:
            log.exception("in-process worker: looking for stale jobs")

    def _held(self) -> list[int]:
        with self._queue.mutex:
            return list(self._queue.queue)

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the current batch; an unfinished job is handed back (`queued`) and resumes at the next
        start."""
        self._stopping.set()
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)


def make_queue(settings: Settings, session_factory: sessionmaker[Session], runtimes: RuntimeCache,
               pixels: PixelStore | None = None) -> JobQueue:
    """The app's queue: RQ on Redis when MEDVIEW_QUEUE_URL is set (enqueue only; `medview worker` runs the
    jobs), else a started in-process worker."""
    if settings.queue_url:
        from app.inference.rq_queue import RQJobQueue

        return RQJobQueue(settings.queue_url)
    worker = InProcessQueue(session_factory, settings, runtimes, pixels)
    worker.start()
    return worker
