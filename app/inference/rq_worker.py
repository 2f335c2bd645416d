"""`medview worker`: an RQ worker running MedView jobs from the named queues (`--queues gpu,cpu`, in that
priority), with the database's claims, heartbeats and takeovers around each job (app.inference.queue,
app.inference.recovery).

Why these choices:
- `SimpleWorker`, not RQ's forking worker: a job runs in the worker's own process, so the model runtime cache
  (an ONNX session takes seconds to build, a CUDA one longer) stays warm from one job to the next. RQ's job
  timeout is off (`NoTimeout`): a job runs as long as it needs and stops through the database (cancel) or
  SIGTERM. Because no parent process watches the job, a thread refreshes RQ's own heartbeats while it runs, so
  RQ does not declare a long job abandoned.
- SIGTERM (compose stop) and Ctrl-C: RQ's warm shutdown, plus our `stopping` flag, which the job checks between
  batches: the job is released (`queued`), enqueued again on the queue it came from, and the worker exits 0 at
  once; an idle worker leaves at once.
- A worker SIGKILLed mid-job leaves its job `running` with an ageing heartbeat: every worker's sweep thread
  (`recover_jobs`, every `sweep_interval`) re-queues it after MEDVIEW_JOB_STALE_SECONDS and enqueues it again
  through RQ; the next worker resumes it, skipping what was predicted. The sweep also re-enqueues queued jobs
  no queue holds (a Redis restarted without its data).
- Redis going away while working: RQ retries its dequeue with backoff, one log line each; anything else that
  fails on Redis ends the RQ loop and `serve` starts it again with backoff. Redis errors are logged as one line,
  never a traceback (`OneLineRedisErrors`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, get_current_job
from rq.exceptions import StopRequested
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer
from rq.timeouts import BaseDeathPenalty
from rq.worker import WorkerStatus
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.inference.queue import QueueUnavailable, run_claimed, sweep_interval
from app.inference.recovery import recover_jobs
from app.inference.registry import RuntimeCache
from app.inference.rq_queue import PREFIX, MedViewJob, RQJobQueue, connect, make_rq_queue
from app.pixels import PixelStore

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0


@dataclass
class WorkerContext:
    """What the RQ task needs from the worker process that runs it."""

    factory: sessionmaker[Session]
    settings: Settings
    runtimes: RuntimeCache
    pixels: PixelStore
    stopping: threading.Event
    queue: RQJobQueue
    say: Callable[[str], None]


_context: WorkerContext | None = None  # set by `serve` for the life of the worker process


def run(job_id: int) -> str | None:
    """The RQ task (`rq_queue.TASK`): run MedView job `job_id` here. Stopped midway (SIGTERM), the job is
    handed back: `queued` in the database and enqueued again on the queue it came from."""
    ctx = _context
    if ctx is None:
        raise RuntimeError("MedView jobs run inside `medview worker` only")
    job_id = int(job_id)
    status = run_claimed(ctx.factory, ctx.settings, ctx.runtimes, job_id, ctx.pixels, ctx.stopping.is_set)
    if status == "running":
        current = get_current_job()
        origin = current.origin.removeprefix(PREFIX) if current is not None else "cpu"
        try:
            ctx.queue.enqueue(job_id, origin)
            status = "handed back (queued)"
        except QueueUnavailable as exc:  # the sweep of a worker enqueues it once Redis is back
            status = f"handed back (queued; not re-enqueued: {exc.detail})"
    if status is not None:
        ctx.say(f"job {job_id}: {status}")
    return status


class NoTimeout(BaseDeathPenalty):
    """No RQ time limit: a MedView job stops through the database (cancel) or the worker's SIGTERM."""

    def setup_death_penalty(self) -> None:
        pass

    def cancel_death_penalty(self) -> None:
        pass


class MedViewWorker(SimpleWorker):
    """RQ's non-forking worker, stopping our jobs between batches on SIGTERM."""

    death_penalty_class = NoTimeout

    def __init__(self, queues: list[Queue], ctx: WorkerContext, connection: redis.Redis):
        super().__init__(queues, connection=connection, job_class=MedViewJob, serializer=JSONSerializer)
        self._ctx = ctx

    def subscribe(self) -> None:
        """No pub/sub command channel: MedView stops jobs through the database (cancel) and workers by signal.
        (RQ 3.0's channel thread, with redis-py 8, could hold a stopping worker for up to a minute: its
        teardown joins a thread that sleeps 60 s once unsubscribed.)"""

    def request_stop(self, signum: Any, frame: Any) -> None:
        self._ctx.stopping.set()  # the running job stops after its batch
        super().request_stop(signum, frame)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None,
                                     max_idle_time: int | None = None) -> tuple[RQJob, Queue] | None:
        if self._ctx.stopping.is_set():  # a signal that came before RQ's handlers were installed
            raise StopRequested()
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def execute_job(self, job: RQJob, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.job_monitoring_interval):
                with contextlib.suppress(RedisError):  # Redis away: the database heartbeat keeps the job ours
                    self.maintain_heartbeats(job, execution)

        beating = threading.Thread(target=beat, name="rq-heartbeat", daemon=True)
        beating.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            beating.join()
        self.set_state(WorkerStatus.IDLE)


class OneLineRedisErrors(logging.Filter):
    """A log record carrying a Redis error (RQ logs them with their traceback) becomes one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RedisError):
            record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}: {exc}", ()
            record.exc_info, record.exc_text = None, None
        return True


def install_stop_handlers(stopping: threading.Event) -> None:
    """SIGTERM and Ctrl-C set `stopping` (RQ installs its own while its loop runs; these cover the rest)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())


def _sweep(ctx: WorkerContext) -> None:
    """Take over jobs of dead workers and re-enqueue jobs Redis lost: at start, then every sweep_interval."""
    while True:
        try:
            recover_jobs(ctx.factory, ctx.settings.job_stale_seconds, ctx.queue.submit, ctx.queue.enqueued_ids)
        except (RedisError, QueueUnavailable):
            pass  # the worker loop reports Redis; the next sweep enqueues what this one could not
        except Exception as exc:  # the database away: one line, the next sweep tries again
            log.warning("looking for jobs of dead workers: %s: %s", type(exc).__name__, str(exc).splitlines()[0])
        if ctx.stopping.wait(sweep_interval(ctx.settings)):
            return


def serve(url: str, queue_names: list[str], factory: sessionmaker[Session], settings: Settings,
          runtimes: RuntimeCache, stopping: threading.Event, say: Callable[[str], None],
          describe_url: str) -> None:
    """Run jobs from the named queues until `stopping` is set (SIGTERM, Ctrl-C). Redis errors outside RQ's own
    retries restart the RQ loop after a backoff (1 s doubling to a minute), each reported in one line."""
    global _context
    for handler in logging.getLogger().handlers:
        handler.addFilter(OneLineRedisErrors())
    ctx = WorkerContext(factory, settings, runtimes, PixelStore.from_settings(settings), stopping, RQJobQueue(url),
                        say)
    _context = ctx
    sweeper = threading.Thread(target=_sweep, args=(ctx,), name="medview-sweep", daemon=True)
    sweeper.start()
    backoff = 1.0
    try:
        while not stopping.is_set():
            started = time.monotonic()
            connection = connect(url)
            try:
                worker = MedViewWorker([make_rq_queue(name, connection) for name in queue_names], ctx, connection)
                worker.work(logging_level="WARNING")
            except RedisError as exc:
                if not stopping.is_set():
                    say(f"medview worker: job queue {describe_url} unreachable: {exc} (retrying in {backoff:.0f} s)")
            finally:
                install_stop_handlers(stopping)  # RQ's handlers point at the worker that just ended
                connection.close()
            if time.monotonic() - started > MAX_BACKOFF:
                backoff = 1.0
            if stopping.wait(backoff):
                break
            backoff = min(backoff * 2, MAX_BACKOFF)
    finally:
        stopping.set()
        sweeper.join()
        ctx.queue.close()
        ctx.pixels.clear()
        _context = None
