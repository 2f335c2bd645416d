"""Prediction jobs: many items through one model, with state and progress in the `jobs` table.

A job is made from typed parameters (`app.inference.job_params.PredictJobParams`), resolved once against the
database where it is made (`resolve_predict` → a `PredictPlan`; the 404 / 400 are raised there), and its
selection counted (`queue_predict_job`). `run_job` (called by a queue backend's worker, or by `medview predict`
in the foreground) reads the stored parameters back typed, loads the model once, and processes the filtered
items in id order, `inference_batch` at a time: one `runtime.run` per batch and one transaction per batch that
inserts its predictions and advances `done`. Items that already have a prediction from the model are skipped,
so a job re-run after a crash resumes where it stopped. Cancellation (the API sets status `cancelled`, or
`should_cancel()` says so) is honoured between batches; an error marks the job `failed` with its message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Engine, Exists, Select, Table, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app import audit
from app.audit import Identified
from app.catalog.queries import filtered_ids, get_dataset
from app.config import Settings
from app.db.base import utcnow
from app.db.lookup import get_or_404
from app.db.models import AuditEvent, Dataset, Item, Job, Model, Prediction
from app.db.session import make_session_factory
from app.errors import AppError, Conflict, InvalidInput
from app.inference.job_params import PredictJobParams, parse_predict_params
from app.inference.predict import check_applies
from app.inference.registry import RuntimeCache, get_model, model_card
from app.inference.store import insert_batch
from app.inference.tasks import Prepared, Result, Task, TaskContext, get_task
from app.inference.tasks.embed import embedded_ids, store_results
from app.pixels import PixelStore

log = logging.getLogger(__name__)

JOB_KINDS = ("predict",)
ACTIVE = ("queued", "running")
# Named queues (MEDVIEW_QUEUE_URL set): `medview worker --queues gpu,cpu` serves them in that order. Inference goes
# to the GPU machines, the rest (export, ingest) to CPU ones; a kind registered without a queue runs on "cpu".
QUEUES = ("gpu", "cpu")
_QUEUE_OF: dict[str, str] = {"predict": "gpu"}
MB = 1024 * 1024
ProgressFn = Callable[[int, int], None]
Submit = Callable[[int, str], None]  # (job id, kind) → the job queue; raises when the queue cannot take it


class JobRunner(Protocol):
    """Runs a job of another kind than predict (an export, app.export.jobs) on the worker: returns its final
    status, as `run_job` does; the job is already claimed and `running`/`queued` when it is called."""

    def __call__(self, session: Session, settings: Settings, pixels: PixelStore, job: Job,
                 should_cancel: Callable[[], bool] | None, should_stop: Callable[[], bool] | None,
                 progress: ProgressFn | None) -> str: ...


_RUNNERS: dict[str, JobRunner] = {}


def register_job_kind(kind: str, runner: JobRunner, queue: str = "cpu") -> None:
    """Let the workers run jobs of `kind` (packages above this one register theirs: `create_app`, `medview
    worker` and the CLI call e.g. `app.export.jobs.register()`), on the named `queue` (one of QUEUES);
    registering the same runner again is a no-op."""
    if kind in JOB_KINDS:
        raise ValueError(f"{kind!r} is the built-in job kind")
    if queue not in QUEUES:
        raise ValueError(f"unknown job queue {queue!r}; known: {', '.join(QUEUES)}")
    _RUNNERS[kind] = runner
    _QUEUE_OF[kind] = queue


def queue_for(kind: str) -> str:
    """The named queue a job of `kind` is enqueued on ("gpu" for predict, else "cpu" unless registered so)."""
    return _QUEUE_OF.get(kind, "cpu")


def commit_submitted(session: Session, job: Job, submit: Submit | None) -> Job:
    """Commit a new job (its row and `job.start` event are flushed) after handing it to the queue: when the queue
    cannot take it, the transaction is rolled back and the error raised, so no job row nor an event claiming it
    remains (POST answers 503, nothing to retry twice). A worker may see the id before the commit lands; it
    waits for the row (app.inference.queue.run_claimed)."""
    if submit is not None:
        try:
            submit(job.id, job.kind)
        except BaseException:
            session.rollback()
            raise
    session.commit()
    return job


def job_kinds() -> tuple[str, ...]:
    """Every job kind a worker of this process can run."""
    return (*JOB_KINDS, *_RUNNERS)


IDS_AHEAD = 16  # batches of pending ids read per query


@dataclass(frozen=True)
class PredictPlan:
    """A predict job resolved once, where it is made: its parameters, the model row and the dataset its card
    applies to (NotFound / InvalidInput were raised by then)."""

    params: PredictJobParams
    model: Model
    dataset: Dataset


def plan_predict(model: Model, dataset: Dataset, params: PredictJobParams) -> PredictPlan:
    """The plan for rows the caller already holds (`medview predict` finds them by name); 400 when the model's
    card does not apply to the dataset's kind."""
    if (params.model_id, params.dataset_id) != (model.id, dataset.id):
        raise ValueError("the parameters name another model or dataset than the rows given")
    check_applies(model, model_card(model), dataset.kind)
    return PredictPlan(params, model, dataset)


def resolve_predict(session: Session, params: PredictJobParams) -> PredictPlan:
    """The model and dataset the parameters name (404 naming the missing one), checked to fit (400)."""
    return plan_predict(get_model(session, params.model_id), get_dataset(session, params.dataset_id), params)


def job_selection(dataset: Dataset, params: PredictJobParams) -> Select[tuple[int]]:
    """SELECT of the ids a job covers: the dataset's items matching the field filters (InvalidInput for a field
    the dataset does not have), narrowed to the selected ids or without the excluded ones when given."""
    selection = filtered_ids(dataset, params.field_filters)
    if params.ids is not None:
        selection = selection.where(Item.id.in_(params.ids))
    if params.excluded_ids is not None:
        selection = selection.where(Item.id.not_in(params.excluded_ids))
    return selection


def list_jobs(session: Session, dataset_id: int | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest jobs (of one dataset: its id sits in the params JSON), each with its model's name, for the
    pages' live job lists."""
    if not 1 <= limit <= 200:
        raise InvalidInput(f"limit must be between 1 and 200, got {limit}")
    model_id = Job.params["model_id"].as_integer()
    stmt = select(Job, Model.name).outerjoin(Model, Model.id == model_id).order_by(Job.id.desc()).limit(limit)
    if dataset_id is not None:
        stmt = stmt.where(Job.params["dataset_id"].as_integer() == dataset_id)
    return [{**job_summary(job), "model_name": name} for job, name in session.execute(stmt)]


def _count(session: Session, stmt: Select[tuple[int]]) -> int:
    return session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def _predicted(model_id: int) -> Exists:
    return exists().where(Prediction.item_id == Item.id, Prediction.model_id == model_id)


def queue_predict_job(session: Session, plan: PredictPlan, actor: Identified | str | None = None,
                      address: str | None = None, submit: Submit | None = None) -> Job:
    """A queued predict job over the plan's selection (InvalidInput for a filter field the dataset lacks), with
    its `job.start` audit event (who started it: the one who may cancel it besides an admin), handed to
    `submit` before it is committed (`commit_submitted`)."""
    total = _count(session, job_selection(plan.dataset, plan.params))
    job = Job(kind="predict", params=plan.params.to_row(), status="queued", done=0, total=total)
    session.add(job)
    session.flush()
    audit.record(session, actor, "job.start", "job", job.id, after={
        "kind": "predict", "model_id": plan.model.id, "dataset_id": plan.dataset.id, "total": total,
        "filters": plan.params.to_row().get("filters") or {}}, address=address)
    return commit_submitted(session, job, submit)


def create_predict_job(session: Session, model_id: int, dataset_id: int,
                       filters: Mapping[str, Any] | None = None) -> Job:
    """A queued predict job from plain values (Python callers; NotFound / InvalidInput when it could not run)."""
    params = parse_predict_params({"model_id": model_id, "dataset_id": dataset_id, "filters": filters})
    return queue_predict_job(session, resolve_predict(session, params))


def create_job(session: Session, kind: str, params: PredictJobParams, actor: Identified | str | None = None,
               address: str | None = None, submit: Submit | None = None) -> Job:
    """A job from validated parameters (POST /api/jobs): the kind checked, model and dataset resolved once, the
    job committed only once `submit` took it."""
    if kind not in JOB_KINDS:
        raise InvalidInput(f"unknown job kind {kind!r}; supported: {', '.join(JOB_KINDS)}")
    return queue_predict_job(session, resolve_predict(session, params), actor, address, submit)


def job_starter(session: Session, job_id: int) -> int | None:
    """The user id that started a job, from its `job.start` audit event (None: the CLI, or before accounts)."""
    return session.scalar(select(AuditEvent.actor_id).where(
        AuditEvent.action == "job.start", AuditEvent.target_type == "job", AuditEvent.target_id == str(job_id)))


def get_job(session: Session, job_id: int) -> Job:
    return get_or_404(session, Job, job_id, "job")


def job_summary(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status, "done": job.done, "total": job.total,
            "error": job.error, "params": job.params,
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def cancel_job(session: Session, job_id: int, actor: Identified | str | None = None,
               address: str | None = None) -> Job:
    """Mark a queued or running job cancelled (its worker stops before the next batch); idempotent."""
    job = get_job(session, job_id)
    if job.status in ("done", "failed"):
        raise Conflict(f"job {job_id} has already finished ({job.status})")
    before = job.status
    session.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE))
                    .values(status="cancelled", finished_at=utcnow()))
    if before != "cancelled":
        audit.record(session, actor, "job.cancel", "job", job_id, before={"status": before},
                     after={"status": "cancelled"}, address=address)
    session.commit()
    session.refresh(job)
    return job


def delete_job(session: Session, job_id: int, actor: Identified | str | None = None,
               address: str | None = None) -> None:
    """Remove a job that is no longer active (Conflict while queued or running: cancel it first)."""
    job = get_job(session, job_id)
    if job.status in ACTIVE:
        raise Conflict(f"job {job_id} is {job.status}; cancel it before deleting it")
    audit.record(session, actor, "job.delete", "job", job_id, before=job_summary(job), address=address)
    session.delete(job)
    session.commit()


def unfinished_job_ids(session: Session) -> list[int]:
    """Jobs left queued or running (e.g. by a crash), oldest first."""
    return list(session.scalars(select(Job.id).where(Job.status.in_(ACTIVE)).order_by(Job.id)))


def _set(session: Session, job_id: int, **values: Any) -> bool:
    """Update an active job; False when it is no longer active (cancelled meanwhile)."""
    result = cast(CursorResult[Any], session.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE))
                                                     .values(**values)))
    session.commit()
    return result.rowcount > 0


def _write_batch(session: Session, job_id: int, model_id: int, results: list[Result], done: int) -> bool:
    """One transaction: the batch's predictions, their per-item metric rows and the job's progress. False when
    the job is no longer active (cancelled meanwhile): the progress update matched nothing."""
    for attempt in range(2):
        try:
            insert_batch(session, model_id, results)
            # Core on the connection: the ORM's bulk-update bookkeeping cost more than the UPDATE itself
            active = session.connection().execute(
                update(cast(Table, Job.__table__)).where(Job.id == job_id, Job.status.in_(ACTIVE))
                .values(done=done, heartbeat_at=utcnow())).rowcount > 0
            session.commit()
            return active
        except IntegrityError:  # a single-item prediction stored some of them meanwhile: keep those
            session.rollback()
            if attempt:
                raise
            taken = set(session.scalars(select(Prediction.item_id).where(
                Prediction.model_id == model_id, Prediction.item_id.in_([r.item_id for r in results]))))
            results = [r for r in results if r.item_id not in taken]
    raise AssertionError("unreachable: the second attempt returns or raises")


def run_job(factory: Engine | sessionmaker[Session], settings: Settings, runtimes: RuntimeCache, job_id: int,
            should_cancel: Callable[[], bool] | None = None, *, pixels: PixelStore | None = None,
            progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None) -> str | None:
    """Run (or resume) a queued/running job; returns its final status (None for an unknown job).

    `should_cancel()` → the job ends `cancelled`; `should_stop()` (process shutting down) → it is left `running`
    so the next start resumes it."""
    if isinstance(factory, Engine):
        factory = make_session_factory(factory)
    pixels = pixels or PixelStore.from_settings(settings)
    with factory() as session:
        job = session.get(Job, job_id)
        if job is None:
            log.warning("job %d not found", job_id)
            return None
        if job.status not in ACTIVE:
            return job.status
        try:
            runner = _RUNNERS.get(job.kind)
            if runner is not None:
                return runner(session, settings, pixels, job, should_cancel, should_stop, progress)
            return _run_predict(session, settings, runtimes, pixels, job, should_cancel, should_stop, progress)
        except Exception as exc:  # any failure ends the job with its reason
            session.rollback()
            message = exc.detail if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, AppError):
                log.exception("job %d failed", job_id)
            _set(session, job_id, status="failed", error=message, finished_at=utcnow())
            return session.scalar(select(Job.status).where(Job.id == job_id))


def _prepare_in(session: Session, task: Task, ctx: TaskContext, ids: list[int]) -> Prepared:
    """Prepare on the prefetch thread, ending its read transaction so no snapshot is held between batches."""
    try:
        return task.prepare(session, ctx, ids)
    finally:
        session.commit()


def _run_predict(session: Session, settings: Settings, runtimes: RuntimeCache, pixels: PixelStore, job: Job,
                 should_cancel: Callable[[], bool] | None, should_stop: Callable[[], bool] | None,
                 progress: ProgressFn | None) -> str:
    job_id = job.id
    if job.kind not in JOB_KINDS:
        raise InvalidInput(f"unknown job kind {job.kind!r}")
    # checked when the job was made (resolve_predict); here each row is read, and the card parsed, once
    params = PredictJobParams.from_row(job.params)
    model = get_model(session, params.model_id)
    dataset = get_dataset(session, params.dataset_id)
    card = model_card(model)
    selection = job_selection(dataset, params)
    pending = selection.where(~_predicted(model.id))
    total = _count(session, selection)
    embed = card.task == "embed"  # vectors go to files (app.inference.vectors); the ones stored are skipped
    stored = embedded_ids(session, settings, model.id, dataset.id) if embed else set()
    ahead: list[int] = [i for i in cast(list[int], session.scalars(selection.order_by(Item.id)).all())
                        if i not in stored] if embed else []
    done = total - (len(ahead) if embed else _count(session, pending))
    now = utcnow()
    if not _set(session, job_id, status="running", started_at=job.started_at or now, heartbeat_at=now,
                total=total, done=done, error=None):
        return session.scalar(select(Job.status).where(Job.id == job_id)) or "cancelled"
    runtime = runtimes.get(model, settings.device, card)
    task = get_task(card)
    ctx = TaskContext(settings, pixels, card, model.id, dataset.kind)
    chunk = task.chunk(settings, card)
    if progress:
        progress(done, total)

    # pending ids read IDS_AHEAD batches at a time: one query per many batches (an embed job has them all)
    def next_ids(after: int) -> list[int]:
        nonlocal ahead
        if len(ahead) < chunk and not embed:
            start = ahead[-1] if ahead else after
            ahead += session.scalars(pending.where(Item.id > start).order_by(Item.id).limit(chunk * IDS_AHEAD))
        taken, ahead = ahead[:chunk], ahead[chunk:]
        return taken

    # The next batch is read and preprocessed on a second thread (its own session) while the model runs on
    # this one: onnxruntime releases the GIL, so preparation and inference overlap.
    ids = next_ids(0)
    prepared = task.prepare(session, ctx, ids) if ids else None
    # A cancel through the API shows as a progress update that matches no active job (no status query per batch).
    with ThreadPoolExecutor(max_workers=1) as pool, Session(bind=session.get_bind()) as prep_session:
        while prepared is not None:
            if should_cancel is not None and should_cancel():
                _set(session, job_id, status="cancelled", finished_at=utcnow())
                return "cancelled"
            if should_stop is not None and should_stop():
                return "running"
            following = next_ids(prepared.ids[-1])
            upcoming = pool.submit(_prepare_in, prep_session, task, ctx, following) if following else None
            results = task.infer(runtime, ctx, prepared)
            if embed:
                store_results(settings, model.id, dataset.id, results)
                results = []
            done = min(done + len(prepared.ids), total)
            if not _write_batch(session, job_id, ctx.model_id, results, done):
                if upcoming:
                    upcoming.result()  # let the prefetch finish with its session before leaving
                return session.scalar(select(Job.status).where(Job.id == job_id)) or "cancelled"
            if progress:
                progress(done, total)
            prepared = upcoming.result() if upcoming else None
    if not _set(session, job_id, status="done", done=total, finished_at=utcnow(), heartbeat_at=utcnow()):
        return session.scalar(select(Job.status).where(Job.id == job_id)) or "cancelled"
    return "done"
