"""Job queue backends behind one small interface: `submit(job_id)` and a worker loop that calls `run_job`.

- `InProcessQueue` (MEDVIEW_QUEUE_URL empty): a daemon thread of the app process consuming a `queue.Queue`;
  on start it re-enqueues jobs left `queued`/`running` (resume after a crash or restart).
- `RedisQueue` (MEDVIEW_QUEUE_URL=redis://…): the API only pushes job ids onto the list `medview:jobs`;
  `medview worker` processes BLPOP them and run the jobs. State and progress are in the database either way.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.inference.jobs import run_job, unfinished_job_ids
from app.inference.registry import RuntimeCache
from app.render.service import Renderer

log = logging.getLogger(__name__)

REDIS_KEY = "medview:jobs"
_STOP = -1


class JobQueue(Protocol):
    def submit(self, job_id: int) -> None: ...

    def close(self) -> None: ...


class InProcessQueue:
    """Jobs run one at a time on a daemon thread of this process."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings, runtimes: RuntimeCache,
                 renderer: Renderer | None = None):
        self._factory, self._settings, self._runtimes, self._renderer = session_factory, settings, runtimes, renderer
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
            job_id = self._queue.get()
            if job_id == _STOP:
                return
            try:
                run_job(self._factory, self._settings, self._runtimes, job_id, renderer=self._renderer,
                        should_stop=self._stopping.is_set)
            except Exception:  # run_job records failures itself; this is the database going away
                log.exception("in-process worker: job %d", job_id)

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the current batch; an unfinished job stays `running` and resumes at the next start."""
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

    def work(self, session_factory: sessionmaker[Session], settings: Settings, runtimes: RuntimeCache,
             should_stop: Callable[[], bool], on_job: Callable[[int, str | None], None] | None = None,
             poll_seconds: float = 1.0) -> None:
        renderer = Renderer(settings.slice_cache_mb * 1024 * 1024, settings.render_cache_mb * 1024 * 1024)
        while not should_stop():
            popped = self._redis.blpop([self.key], timeout=poll_seconds)
            if popped is None:
                continue
            job_id = int(popped[1])
            status = run_job(session_factory, settings, runtimes, job_id, renderer=renderer, should_stop=should_stop)
            if status == "running":  # stopped mid-job: hand it back for another worker
                self.submit(job_id)
            if on_job:
                on_job(job_id, status)

    def close(self) -> None:
        self._redis.close()


def make_queue(settings: Settings, session_factory: sessionmaker[Session], runtimes: RuntimeCache,
               renderer: Renderer | None = None) -> JobQueue:
    """The app's queue: Redis when MEDVIEW_QUEUE_URL is set (enqueue only), else a started in-process worker."""
    if settings.queue_url:
        return RedisQueue(settings.queue_url)
    worker = InProcessQueue(session_factory, settings, runtimes, renderer)
    worker.start()
    return worker
