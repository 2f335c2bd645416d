"""Jobs survive their workers: atomic claims, heartbeats, and taking over jobs whose worker died.

A job id can reach a worker twice (a re-queued stale job, two app processes resuming at start, an RQ
queue re-filled after Redis lost it), so a worker first *claims* the job: one UPDATE that succeeds only
while the job is queued, or running with a heartbeat older than `job_stale_seconds`. While the job runs,
a `Heartbeat` thread refreshes `heartbeat_at` every `job_heartbeat_seconds`, independent of batch length
(a 3-D batch can take longer than the stale limit). A worker that stops gracefully releases its job
(running → queued) so the next one resumes it at once; one that dies (kill -9, OOM, power) leaves a
running job whose heartbeat ages, and `requeue_stale` hands it back; `recover_jobs` (every worker's periodic
sweep) enqueues those again, on the queue of their kind. Resuming skips items already predicted
(app.inference.jobs), so nothing is done twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import Job

log = logging.getLogger(__name__)


def _stale(cutoff: datetime) -> ColumnElement[bool]:
    return and_(Job.status == "running", or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff))


def claim(session: Session, job_id: int, stale_seconds: float) -> bool:
    """Take the job for this worker: True when it was queued, or running but silent for `stale_seconds`."""
    now = utcnow()
    cutoff = now - timedelta(seconds=stale_seconds)
    result = cast(CursorResult[Any], session.execute(
        update(Job).where(Job.id == job_id, or_(Job.status == "queued", _stale(cutoff)))
        .values(status="running", heartbeat_at=now)))
    session.commit()
    return result.rowcount > 0


def release(session: Session, job_id: int) -> None:
    """A worker stopping gracefully hands its unfinished job back (running → queued)."""
    session.execute(update(Job).where(Job.id == job_id, Job.status == "running").values(status="queued"))
    session.commit()


def requeue_stale(session: Session, stale_seconds: float) -> list[int]:
    """Running jobs silent for `stale_seconds` (their worker died) → queued again; their ids, to enqueue."""
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    ids = list(session.scalars(select(Job.id).where(_stale(cutoff)).order_by(Job.id)))
    taken = []
    for job_id in ids:  # one guarded UPDATE each: a job that spoke meanwhile is left alone
        result = cast(CursorResult[Any], session.execute(
            update(Job).where(Job.id == job_id, _stale(cutoff)).values(status="queued")))
        if result.rowcount:
            taken.append(job_id)
            log.warning("job %d: no heartbeat for %.0f s; re-queued for another worker", job_id, stale_seconds)
    session.commit()
    return taken


def queued_before(session: Session, seconds: float) -> list[int]:
    """Jobs queued longer than `seconds` ago (candidates for re-enqueueing when a queue lost them)."""
    cutoff = utcnow() - timedelta(seconds=seconds)
    return list(session.scalars(select(Job.id).where(Job.status == "queued", Job.created_at < cutoff)
                                .order_by(Job.id)))


def recover_jobs(factory: sessionmaker[Session], stale_seconds: float, submit: Callable[[int, str], None],
                 enqueued: Callable[[], Collection[int]] | None = None) -> list[int]:
    """Hand jobs whose worker died back to `submit` (job id, kind); with `enqueued` (the ids a Redis queue holds)
    also queued jobs older than `stale_seconds` it does not hold (a Redis restarted without its data forgot
    them). A duplicate is harmless: the claim lets one through."""
    with factory() as session:
        ids = requeue_stale(session, stale_seconds)
        if enqueued is not None:
            held = set(enqueued())
            ids += [i for i in queued_before(session, stale_seconds) if i not in ids and i not in held]
        kinds = {i: kind for i, kind in session.execute(select(Job.id, Job.kind).where(Job.id.in_(ids)))}
    for job_id in ids:
        if job_id in kinds:
            submit(job_id, kinds[job_id])
    return ids


class Heartbeat:
    """Refreshes a running job's `heartbeat_at` from a daemon thread until the block ends."""

    def __init__(self, factory: sessionmaker[Session], job_id: int, every_seconds: float):
        self._factory, self._job_id, self._every = factory, job_id, every_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                with self._factory() as session:
                    session.execute(update(Job).where(Job.id == self._job_id, Job.status == "running")
                                    .values(heartbeat_at=utcnow()))
                    session.commit()
            except Exception:  # the database is briefly away: the next beat tries again
                log.exception("job %d: heartbeat not written", self._job_id)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
