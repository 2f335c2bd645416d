"""Prediction jobs: many items through one model, with state and progress in the `jobs` table.

`create_predict_job` validates and counts the selection; `run_job` (called by a queue backend's worker, or by
`medview predict` in the foreground) processes the filtered items in id order, `inference_batch` at a time: one
`runtime.run` per batch and one transaction per batch that inserts its predictions and advances `done`. Items
that already have a prediction from the model are skipped, so a job re-run after a crash resumes where it
stopped. Cancellation (the API sets status `cancelled`, or `should_cancel()` says so) is honoured between
batches; an error marks the job `failed` with its message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.catalog.queries import filtered_ids, get_dataset
from app.config import Settings
from app.db.base import utcnow
from app.db.lookup import get_or_404
from app.db.models import Dataset, Item, Job, Model, Prediction
from app.db.session import make_session_factory
from app.errors import AppError, Conflict, InvalidInput
from app.inference.predict import check_applies
from app.inference.registry import RuntimeCache, get_model, model_card
from app.inference.store import insert_batch
from app.inference.tasks import Prepared, Result, Task, TaskContext, get_task
from app.pixels import PixelStore

log = logging.getLogger(__name__)

JOB_KINDS = ("predict",)
ACTIVE = ("queued", "running")
MB = 1024 * 1024
ProgressFn = Callable[[int, int], None]


def normalise_filters(filters: Any) -> dict[str, list[str]]:
    """`{field: value | [values]}` → `{field: [str, …]}`."""
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise InvalidInput("filters must be an object {field: value or [values]}")
    out: dict[str, list[str]] = {}
    for field, value in filters.items():
        values = value if isinstance(value, list) else [value]
        if not values or any(v is None or isinstance(v, dict | list) for v in values):
            raise InvalidInput(f"filter {field!r} must be a value or a non-empty list of values")
        out[str(field)] = [str(v) for v in values]
    return out


# Pseudo-filters of a job (not item fields): a grid selection is "these ids" or "all matching except these".
ID_FILTERS = ("id", "exclude_id")
MAX_SELECTED_IDS = 50_000
IDS_AHEAD = 16  # batches of pending ids read per query


def job_selection(dataset: Dataset, filters: Mapping[str, Sequence[str]]):
    """SELECT of the ids a job covers: the dataset's items matching the field filters, narrowed to `id` values
    or without `exclude_id` values when given."""
    fields = {f: v for f, v in filters.items() if f not in ID_FILTERS}
    selection = filtered_ids(dataset, fields)
    for name in ID_FILTERS:
        values = filters.get(name)
        if values is None:
            continue
        if len(values) > MAX_SELECTED_IDS:
            raise InvalidInput(f"filter {name!r} lists {len(values):,} ids; at most {MAX_SELECTED_IDS:,} "
                               "(select all matching and exclude a few instead)")
        bad = next((v for v in values if not v.isdigit()), None)
        if bad is not None:
            raise InvalidInput(f"filter {name!r}: {bad!r} is not an item id")
        ids = [int(v) for v in values]
        selection = selection.where(Item.id.in_(ids) if name == "id" else Item.id.not_in(ids))
    return selection


def list_jobs(session: Session, dataset_id: int | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest jobs (of one dataset: its id sits in the params JSON), each with its model's name, for the
    pages' live job lists."""
    if not 1 <= limit <= 200:
        raise InvalidInput(f"limit must be between 1 and 200, got {limit}")
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if dataset_id is not None:
        stmt = stmt.where(Job.params["dataset_id"].as_integer() == dataset_id)
    jobs = session.scalars(stmt).all()
    model_ids = {(j.params or {}).get("model_id") for j in jobs}
    names = dict(session.execute(select(Model.id, Model.name).where(Model.id.in_(model_ids))).all())
    return [{**job_summary(j), "model_name": names.get((j.params or {}).get("model_id"))} for j in jobs]


def _count(session: Session, stmt) -> int:
    return session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def _predicted(model_id: int):
    return exists().where(Prediction.item_id == Item.id, Prediction.model_id == model_id)


def create_predict_job(session: Session, model_id: int, dataset_id: int, filters: Any = None) -> Job:
    """A queued predict job over the dataset's filtered items (NotFound / InvalidInput when it could not run)."""
    model = get_model(session, model_id)
    dataset = get_dataset(session, dataset_id)
    check_applies(model, model_card(model), dataset.kind)
    clean = normalise_filters(filters)
    total = _count(session, job_selection(dataset, clean))
    job = Job(kind="predict", params={"model_id": model.id, "dataset_id": dataset.id, "filters": clean},
              status="queued", done=0, total=total)
    session.add(job)
    session.commit()
    return job


def create_job(session: Session, kind: str, params: Mapping[str, Any]) -> Job:
    if kind not in JOB_KINDS:
        raise InvalidInput(f"unknown job kind {kind!r}; supported: {', '.join(JOB_KINDS)}")
    for name in ("model_id", "dataset_id"):
        if not isinstance(params.get(name), int) or isinstance(params.get(name), bool):
            raise InvalidInput(f"a {kind} job needs an integer {name}")
    return create_predict_job(session, params["model_id"], params["dataset_id"], params.get("filters"))


def get_job(session: Session, job_id: int) -> Job:
    return get_or_404(session, Job, job_id, "job")


def job_summary(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status, "done": job.done, "total": job.total,
            "error": job.error, "params": job.params,
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def cancel_job(session: Session, job_id: int) -> Job:
    """Mark a queued or running job cancelled (its worker stops before the next batch); idempotent."""
    job = get_job(session, job_id)
    if job.status in ("done", "failed"):
        raise Conflict(f"job {job_id} has already finished ({job.status})")
    session.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE))
                    .values(status="cancelled", finished_at=utcnow()))
    session.commit()
    session.refresh(job)
    return job


def unfinished_job_ids(session: Session) -> list[int]:
    """Jobs left queued or running (e.g. by a crash), oldest first."""
    return list(session.scalars(select(Job.id).where(Job.status.in_(ACTIVE)).order_by(Job.id)))


def _set(session: Session, job_id: int, **values: Any) -> bool:
    """Update an active job; False when it is no longer active (cancelled meanwhile)."""
    result = session.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE)).values(**values))
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
                update(Job.__table__).where(Job.id == job_id, Job.status.in_(ACTIVE))
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
    params = job.params or {}
    model = get_model(session, params.get("model_id"))
    dataset = get_dataset(session, params.get("dataset_id"))
    card = model_card(model)
    check_applies(model, card, dataset.kind)
    selection = job_selection(dataset, normalise_filters(params.get("filters")))
    pending = selection.where(~_predicted(model.id))
    total = _count(session, selection)
    done = total - _count(session, pending)
    now = utcnow()
    if not _set(session, job_id, status="running", started_at=job.started_at or now, heartbeat_at=now,
                total=total, done=done, error=None):
        return session.scalar(select(Job.status).where(Job.id == job_id)) or "cancelled"
    runtime = runtimes.get(model, settings.device)
    task = get_task(card)
    ctx = TaskContext(settings, pixels, card, model.id, dataset.kind)
    chunk = task.chunk(settings, card)
    if progress:
        progress(done, total)

    ahead: list[int] = []  # pending ids read IDS_AHEAD batches at a time: one query per many batches

    def next_ids(after: int) -> list[int]:
        nonlocal ahead
        if len(ahead) < chunk:
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
