"""Job queue backends behind one small interface: `submit(job_id)` and a worker loop that calls `run_job`.

- `InProcessQueue` (MEDVIEW_QUEUE_URL empty): a daemon thread of the app process consuming a `queue.Queue`;
  on start it re-enqueues jobs left `queued`/`running` (resume after a crash or restart).
- `RedisQueue` (MEDVIEW_QUEUE_URL=redis://…): the API only pushes job ids onto the list `medview:jobs`;
  `medview worker` processes BLPOP them and run the jobs. State and progress are in the database either way.
Both run a job only after claiming it, keep its heartbeat while it runs, and, when idle, take over jobs
whose worker died (app.inference.recovery).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.inference.jobs import run_job, unfinished_job_ids
from app.inference.recovery import Heartbeat, claim, queued_before, release, requeue_stale
from app.inference.registry import RuntimeCache
from app.pixels import PixelStore

log = logging.getLogger(__name__)

REDIS_KEY = "medview:jobs"
_STOP = -1


def run_claimed(factory: sessionmaker[Session], settings: Settings, runtimes: RuntimeCache, job_id: int,
                pixels: PixelStore | None, should_stop: Callable[[], bool]) -> str | None:
    """Claim, run with a heartbeat, and release if stopped midway; None when another worker has the job or it
    is no longer active."""
    with factory() as session:
        if not claim(session, job_id, settings.job_stale_seconds):
            return None
    with Heartbeat(factory, job_id, settings.job_heartbeat_seconds):
        status = run_job(factory, settings, runtimes, job_id, pixels=pixels, should_stop=should_stop)
    if status == "running":  # stopped between batches: the next worker (or start) resumes it at once
        with factory() as session:
            release(session, job_id)
    return status


def sweep_interval(settings: Settings) -> float:
    """How often an idle worker looks for jobs whose worker died."""
    return max(0.2, min(settings.job_stale_seconds / 2, 30.0))


class JobQueue(Protocol):
    def submit(self, job_id: int) -> None: ...

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

    def submit(self, job_id: int) -> None:
        self._queue.put(job_id)

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
            with self._factory() as session:
                for job_id in requeue_stale(session, self._settings.job_stale_seconds):
                    self._queue.put(job_id)
        except Exception:
            log.exception("in-process worker: looking for stale jobs")

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the current batch; an unfinished job is handed back (`queued`) and resumes at the next
        start."""
        self._stopping.set()
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)


class RedisQueue:
    """Job ids on a Redis list; `work()` is the `medview worker` loop."""

    def __init__(self, url: str, key: str = REDIS_KEY):
        import redis

        self.key = key
        self._redis = redis.Redis.from_url(url)

    def submit(self, job_id: int) -> None:
        self._redis.rpush(self.key, str(job_id))

    def ping(self) -> None:
        """Raises redis' ConnectionError (or another RedisError) when the queue cannot be reached."""
        self._redis.ping()

    def work(self, session_factory: sessionmaker[Session], settings: Settings, runtimes: RuntimeCache,
             should_stop: Callable[[], bool], on_job: Callable[[int, str | None], None] | None = None,
             poll_seconds: float = 1.0) -> None:
        pixels = PixelStore.from_settings(settings)
        swept = 0.0
        while not should_stop():
            if time.monotonic() - swept >= sweep_interval(settings):
                self.recover(session_factory, settings)
                swept = time.monotonic()
            popped = self._redis.blpop([self.key], timeout=poll_seconds)
            if popped is None:
                continue
            job_id = int(popped[1])
            status = run_claimed(session_factory, settings, runtimes, job_id, pixels, should_stop)
            if status == "running":  # stopped mid-job: hand it back for another worker
                self.submit(job_id)
            if on_job and status is not None:
                on_job(job_id, status)

    def recover(self, session_factory: sessionmaker[Session], settings: Settings) -> list[int]:
        """Re-enqueue jobs whose worker died, and queued jobs missing from the list (Redis keeps nothing on
        disk: a restarted Redis has forgotten them). A duplicate id is harmless: the claim lets one through."""
        with session_factory() as session:
            ids = requeue_stale(session, settings.job_stale_seconds)
            ids += [i for i in queued_before(session, settings.job_stale_seconds)
                    if i not in ids and self._redis.lpos(self.key, str(i)) is None]
        for job_id in ids:
            self.submit(job_id)
        return ids

    def close(self) -> None:
        self._redis.close()


def make_queue(settings: Settings, session_factory: sessionmaker[Session], runtimes: RuntimeCache,
               pixels: PixelStore | None = None) -> JobQueue:
    """The app's queue: Redis when MEDVIEW_QUEUE_URL is set (enqueue only), else a started in-process worker."""
    if settings.queue_url:
        return RedisQueue(settings.queue_url)
    worker = InProcessQueue(session_factory, settings, runtimes, pixels)
    worker.start()
    return worker
