"""The Redis backend of the job queue, on RQ (the queue library CVAT and Label Studio use): the enqueuing side.

RQ carries only "run MedView job N": each RQ job calls `TASK` with our database job id, on the RQ queue named
for the job's kind (`medview:gpu`, `medview:cpu`: prefixed so a shared Redis does not mix them with another
application's queues). State, progress and cancellation stay in the database. An RQ job id is
`medview-<job id>-<random>`: a job can be enqueued more than once (handed back on SIGTERM, taken over from a dead
worker, re-enqueued after Redis lost it) and each RQ execution keeps its own record, so a late RQ clean-up of a
dead worker's execution can never touch the new one.

Arguments travel as JSON, never pickle, and the worker refuses any RQ job that names another function
(`MedViewJob.func`): whoever can write to Redis can make a worker run a MedView job id, nothing else.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from app.errors import InvalidInput
from app.inference.jobs import QUEUES, queue_for
from app.inference.queue import QueueUnavailable

PREFIX = "medview:"
TASK = "app.inference.rq_worker.run"
RESULT_TTL = 600  # seconds RQ keeps a finished execution's record (the job itself is in the database)
FAILURE_TTL = 7 * 24 * 3600
HEALTH_TIMEOUT = 1.0
_RQ_ID = re.compile(r"medview-(\d+)-[0-9a-f]+")


class MedViewJob(RQJob):
    """An RQ job that may only call `TASK`."""

    @property
    def func(self) -> Any:
        if self.func_name != TASK or self.instance is not None:
            raise InvalidInput(f"RQ job {self.id} calls {self.func_name!r}; a MedView worker runs only {TASK}")
        return super().func


def rq_name(queue: str) -> str:
    """The RQ queue name of one of our named queues: "gpu" → "medview:gpu"."""
    return PREFIX + queue


def parse_queues(text: str) -> list[str]:
    """`--queues gpu,cpu` → ["gpu", "cpu"] (the order is the priority); InvalidInput naming an unknown one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in QUEUES]
    if unknown or not names:
        raise InvalidInput(f"--queues: unknown queue {', '.join(map(repr, unknown)) or '(none given)'}; "
                           f"known: {','.join(QUEUES)}")
    return list(dict.fromkeys(names))


def connect(url: str, timeout: float = 5.0) -> redis.Redis:
    """A Redis client that fails fast (connect and command timeouts) instead of hanging on a dead host."""
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def make_rq_queue(name: str, connection: redis.Redis) -> Queue:
    return Queue(rq_name(name), connection=connection, job_class=MedViewJob, serializer=JSONSerializer)


def job_id_of(rq_job_id: str) -> int | None:
    """Our job id in an RQ job id (None for an id not ours)."""
    match = _RQ_ID.fullmatch(rq_job_id)
    return int(match.group(1)) if match else None


class RQJobQueue:
    """Enqueue MedView jobs on RQ queues; what the app holds when MEDVIEW_QUEUE_URL is set."""

    def __init__(self, url: str, connection: redis.Redis | None = None):
        self.url = url
        self._redis = connection if connection is not None else connect(url)
        # health answers within the Docker health check's 2 s even when Redis' host is gone
        self._probe = connect(url, HEALTH_TIMEOUT)
        self.queues = {name: make_rq_queue(name, self._redis) for name in QUEUES}

    def submit(self, job_id: int, kind: str) -> None:
        self.enqueue(job_id, queue_for(kind))

    def enqueue(self, job_id: int, queue: str) -> None:
        """RQ job "run MedView job `job_id`" on the named queue; QueueUnavailable when Redis cannot take it."""
        try:
            self.queues[queue].enqueue_call(
                TASK, args=(job_id,), job_id=f"medview-{job_id}-{secrets.token_hex(6)}", timeout=-1,
                result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL, description=f"MedView job {job_id}")
        except RedisError as exc:
            raise QueueUnavailable(f"job queue unreachable: {exc}") from exc

    def enqueued_ids(self) -> set[int]:
        """Our job ids waiting on any of the queues (the recovery sweep re-enqueues queued jobs not among them)."""
        ids: set[int] = set()
        for rq_queue in self.queues.values():
            ids.update(i for i in map(job_id_of, rq_queue.get_job_ids()) if i is not None)
        return ids

    def ping(self) -> None:
        """Raises RedisError when the queue cannot be reached."""
        self._redis.ping()

    def health(self) -> dict[str, Any]:
        """Reachable or not, and per named queue the jobs waiting and the workers serving it. The reason of a
        failure is reduced to its type: health is public, and Redis' message names internal hosts."""
        try:
            with self._probe.pipeline(transaction=False) as pipe:
                for rq_queue in self.queues.values():
                    pipe.llen(rq_queue.key)
                    pipe.scard(WORKERS_BY_QUEUE_KEY % rq_queue.name)
                counts = pipe.execute()
        except RedisError as exc:
            return {"backend": "redis", "ok": False, "detail": f"unreachable ({type(exc).__name__})"}
        names = list(self.queues)
        return {"backend": "redis", "ok": True, "queued": dict(zip(names, counts[0::2], strict=True)),
                "workers": dict(zip(names, counts[1::2], strict=True))}

    def close(self) -> None:
        self._redis.close()
        self._probe.close()
