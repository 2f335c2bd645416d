"""Ingest as a job (issue 13): `POST /api/datasets` (admin) indexes a folder under the data roots in the background,
with its progress in the `jobs` row, on the same workers as predict and export jobs.

Why a module of its own, at the top of `app`: the runner needs both the ingest driver (`app.datasets`, which may
not import the job machinery) and the job machinery (`app.inference.jobs`); the routes, pages, CLI and `main` sit
above it (tests/unit/test_layers.py).

- Checked where the job is made (`create_ingest_job`, 400/409 before any row is written): the path is absolute and
  lies, resolved, inside MEDVIEW_DATA_ROOTS (the refusal names the path as given and the roots, never where a link
  points, and says nothing about whether an outside path exists); the kind is known, or detected from the files;
  the name is not another folder's dataset's (a re-ingest of the same folder keeps its dataset, and its name when
  none is given — `medview ingest` would rename it to the folder's name); no other ingest of the folder is active.
- Run (`run_ingest_job`, registered as kind `ingest`): `ingest_path` with a progress callback that writes the phase
  (in `params.phase`) and `done`/`total` to the row when the phase changes, when a phase completes, and otherwise
  at most every PROGRESS_SECONDS — never per item. Done: `params.result` holds the dataset id and the report's
  counts. Nothing indexable (`IngestError`): `failed` with its message, the first MAX_JOB_PROBLEMS problems in
  `params.problems`; nothing was written (the driver validates before writing).
- Cancelling (`POST /api/jobs/{id}/cancel`) is honoured at the next progress write: while scanning nothing has been
  written yet; once writing has begun, a first ingest's partial dataset is deleted (no half-written dataset is
  left), and a re-ingest's dataset is left `failed` ("ingest stopped: …"), which running the ingest again resumes
  (the driver's own crash semantics). Any other failure of a first ingest also deletes its partial dataset.
- A worker that stops (SIGTERM) leaves the job `running`; the next worker runs it again, which resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from sqlalchemy import CursorResult, Engine, delete, select, update
from sqlalchemy.orm import Session

from app import audit
from app.audit import Identified
from app.config import Settings
from app.datasets.base import IngestError
from app.datasets.ingest import IngestReport, ingest_path
from app.datasets.registry import available_kinds, detect_kind, get_adapter
from app.datasets.roots import DataRoots
from app.db.base import utcnow
from app.db.models import Dataset, Job
from app.errors import AppError, Conflict, InvalidInput
from app.inference.jobs import ACTIVE, ProgressFn, Submit, commit_submitted, register_job_kind
from app.inference.vectors import remove_vectors
from app.pixels import PixelStore

log = logging.getLogger(__name__)

KIND = "ingest"
PROGRESS_SECONDS = 0.5  # the longest a phase's progress waits to be written (the page polls every 0.5 s)
MAX_JOB_PROBLEMS = 20  # problems kept in a job's params (the dataset keeps up to 1,000 of a finished ingest's)
MAX_PATH_CHARS = 4096


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class IngestParams(BaseModel):
    """What an ingest job indexes (the request body of POST /api/datasets; stored in `jobs.params` with the
    folder resolved and the kind and name decided)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    path: Annotated[Text, StringConstraints(max_length=MAX_PATH_CHARS)] = Field(
        description="The dataset's root folder on the server: an absolute path inside MEDVIEW_DATA_ROOTS.")
    kind: Annotated[Annotated[Text, StringConstraints(max_length=32)] | None, BeforeValidator(_blank_is_none)] = Field(
        None, description="Dataset kind (`deeplesion`, `pcam`, `bis5k`, `verse`, `imagefolder`, `dicom`, "
                          "`nifti`); detected from the files when omitted.")
    name: Annotated[Annotated[Text, StringConstraints(max_length=200)] | None, BeforeValidator(_blank_is_none)] = Field(
        None, description="The dataset's name; default: the folder's name (a re-ingest keeps the dataset's name).")

    def to_row(self) -> dict[str, Any]:
        return self.model_dump(include=set(IngestParams.model_fields))


# -- making a job ------------------------------------------------------------------------------------------------

def check_folder(text: str, settings: Settings) -> Path:
    """The folder `text` names, resolved: absolute, inside the data roots, existing. InvalidInput (400) naming
    `text` as given and the configured roots otherwise; whether a path outside the roots exists is not said."""
    roots = DataRoots(settings.allowed_roots)
    listing = ":".join(str(p) for p in settings.allowed_roots)
    if "\x00" in text:
        raise InvalidInput("path: contains a NUL character")
    candidate = Path(text)
    if not candidate.is_absolute():
        raise InvalidInput(f"path {text!r} is not absolute: give the dataset's folder as a full path inside the "
                           f"data roots ({listing})")
    try:
        real = candidate.resolve()
    except (OSError, RuntimeError):  # a link loop, an unreadable parent
        raise InvalidInput(f"path {text}: cannot be resolved (a link loop or an unreadable folder)") from None
    if not roots.contains(real):
        raise InvalidInput(f"path {text} is outside the data roots ({listing}); only folders inside "
                           "MEDVIEW_DATA_ROOTS can be ingested")
    if not real.exists():
        raise InvalidInput(f"path {text}: no such folder")
    if not real.is_dir():
        raise InvalidInput(f"path {text}: not a folder (give the dataset's root folder)")
    return real


def decide_kind(root: Path, text: str, kind: str | None) -> str:
    """The given kind, checked (400 listing the known kinds), or the one detected from the files (400 when none)."""
    if kind is not None:
        get_adapter(kind)
        return kind
    try:
        return detect_kind(root)
    except InvalidInput:
        raise InvalidInput(f"path {text}: not a dataset MedView recognises; choose its kind (one of "
                           f"{', '.join(available_kinds())})") from None


def active_ingest_of(session: Session, root: Path) -> int | None:
    """The id of a queued or running ingest job of `root`, if any."""
    for job_id, params in session.execute(select(Job.id, Job.params).where(Job.kind == KIND,
                                                                          Job.status.in_(ACTIVE))):
        if (params or {}).get("path") == str(root):
            return job_id
    return None


def plan_ingest(session: Session, settings: Settings, params: IngestParams) -> IngestParams:
    """The parameters the worker runs: the folder resolved, the kind decided, the name decided — or the 400 / 409
    that says why the ingest could not run, before anything is written."""
    root = check_folder(params.path, settings)
    kind = decide_kind(root, params.path, params.kind)
    existing = session.execute(select(Dataset.id, Dataset.name, Dataset.kind)
                               .where(Dataset.root == str(root))).first()
    if existing is not None and existing.kind != kind:
        raise Conflict(f"path {params.path} is already indexed as {existing.kind} (dataset {existing.name!r}), "
                       f"not {kind}")
    name = params.name or (existing.name if existing is not None else root.name)
    clash = session.execute(select(Dataset.id).where(Dataset.name == name, Dataset.root != str(root))).first()
    if clash is not None:
        raise Conflict(f"a dataset named {name!r} already exists (from another folder); choose another name")
    running = active_ingest_of(session, root)
    if running is not None:
        raise Conflict(f"path {params.path} is already being ingested (job {running}); follow or cancel that job")
    return IngestParams(path=str(root), kind=kind, name=name)


def create_ingest_job(session: Session, settings: Settings, params: IngestParams,
                      actor: Identified | str | None = None, address: str | None = None,
                      submit: Submit | None = None) -> Job:
    """A queued ingest job with its `job.start` audit event (400 / 409 from `plan_ingest` when it could not run),
    committed once `submit` (the queue) took it — else nothing stored and the queue's error raised (503)."""
    plan = plan_ingest(session, settings, params)
    job = Job(kind=KIND, params={**plan.to_row(), "phase": "queued"}, status="queued", done=0, total=0)
    session.add(job)
    session.flush()
    audit.record(session, actor, "job.start", "job", job.id, after={
        "kind": KIND, "path": plan.path, "dataset_kind": plan.kind, "name": plan.name}, address=address)
    return commit_submitted(session, job, submit)


# -- running one -------------------------------------------------------------------------------------------------

class Cancelled(Exception):
    """The job was cancelled (through the API, or `should_cancel`): the ingest stops at this progress report."""

    def __str__(self) -> str:
        return "cancelled; run the ingest again to finish it"


class Stopping(Exception):
    """The worker's process is stopping: the job stays `running` and the next worker runs it again (resuming)."""

    def __str__(self) -> str:
        return "the worker stopped; the next run resumes it"


def _active_update(session: Session, job_id: int, **values: Any) -> bool:
    """Update a job that is still active; False when it is not (cancelled meanwhile)."""
    result = cast(CursorResult[Any], session.execute(
        update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE)).values(**values)))
    session.commit()
    return result.rowcount > 0


class ProgressWriter:
    """The ingest driver's progress callback: the phase and done/total into the job row, throttled, and the
    place where a cancel or a stop is noticed (by raising, which the driver passes on)."""

    def __init__(self, state: Session, job_id: int, row: dict[str, Any],
                 should_cancel: Callable[[], bool] | None, should_stop: Callable[[], bool] | None,
                 progress: ProgressFn | None, clock: Callable[[], float] = time.monotonic):
        self.state, self.job_id, self.row = state, job_id, row
        self.should_cancel, self.should_stop, self.progress, self.clock = should_cancel, should_stop, progress, clock
        self.phase: str | None = None
        self.written_at = float("-inf")
        self.written_done = -1
        self.writes = 0
        self.writing = False  # the driver has begun writing items

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled
        if self.should_stop is not None and self.should_stop():
            raise Stopping
        now = self.clock()
        completes = done >= total and self.written_done < total
        if phase == self.phase and not completes and now - self.written_at < PROGRESS_SECONDS:
            return
        if phase.startswith("writing"):
            self.writing = True
        self.phase, self.written_at, self.written_done = phase, now, done
        self.writes += 1
        if not _active_update(self.state, self.job_id, done=done, total=total, heartbeat_at=utcnow(),
                              params={**self.row, "phase": phase}):
            raise Cancelled  # cancelled through the API meanwhile: the update matched no active job
        if self.progress is not None:
            self.progress(done, total)


def _dataset_of(engine: Engine, root: str) -> int | None:
    with engine.connect() as conn:
        return conn.scalar(select(Dataset.id).where(Dataset.root == root))


def _discard_new_dataset(engine: Engine, settings: Settings, root: str, existed: int | None) -> None:
    """Delete what a first ingest of `root` wrote before it stopped (rows go with it: ON DELETE CASCADE; any
    embedding vectors of its id after the commit); a re-ingest's dataset (it existed before the job) is kept as
    the driver left it, `failed` and resumable."""
    if existed is not None:
        return
    with engine.begin() as conn:
        dataset_id = conn.scalar(select(Dataset.id).where(Dataset.root == root))
        conn.execute(delete(Dataset).where(Dataset.root == root))
    if dataset_id is not None:
        remove_vectors(settings, dataset_id=dataset_id)


def _result(report: IngestReport) -> dict[str, Any]:
    return {"dataset_id": report.dataset_id, "name": report.name, "kind": report.kind, "items": report.items,
            "annotations": report.annotations, "added": report.added, "updated": report.updated,
            "unchanged": report.unchanged, "removed": report.removed, "problems": len(report.problems),
            "seconds": round(report.seconds, 3)}


def run_ingest_job(session: Session, settings: Settings, pixels: PixelStore, job: Job,
                   should_cancel: Callable[[], bool] | None, should_stop: Callable[[], bool] | None,
                   progress: ProgressFn | None) -> str:
    """The worker's side (registered as the runner of `ingest` jobs): the stored parameters through `ingest_path`,
    progress into the row, the outcome into the row. Returns the job's final status (`running` when stopped)."""
    job_id = job.id
    row = IngestParams.model_validate(job.params or {}).to_row()
    session.commit()  # the job is read: hold no transaction open while the ingest runs
    engine = session.get_bind()
    if not isinstance(engine, Engine):
        raise TypeError("an ingest job needs a session bound to an engine")
    existed = _dataset_of(engine, row["path"])
    state = Session(bind=engine)  # progress commits apart from the ingest's own connections
    try:
        now = utcnow()
        if not _active_update(state, job_id, status="running", started_at=job.started_at or now, heartbeat_at=now,
                              done=0, total=0, error=None, params={**row, "phase": "starting"}):
            return state.scalar(select(Job.status).where(Job.id == job_id)) or "cancelled"
        writer = ProgressWriter(state, job_id, row, should_cancel, should_stop, progress)
        try:
            report = ingest_path(engine, settings, row["path"], kind=row["kind"], name=row["name"], progress=writer)
        except Stopping:
            return "running"
        except Cancelled:
            _discard_new_dataset(engine, settings, row["path"], existed)
            _active_update(state, job_id, status="cancelled", finished_at=utcnow(),
                           params={**row, "phase": "cancelled"})
            return state.scalar(select(Job.status).where(Job.id == job_id)) or "cancelled"
        except (IngestError, AppError) as exc:
            _discard_new_dataset(engine, settings, row["path"], existed)
            problems = list(getattr(exc, "problems", []))
            message = exc.detail if isinstance(exc, AppError) else str(exc)
            _active_update(state, job_id, status="failed", error=message, finished_at=utcnow(), params={
                **row, "phase": "failed", "problems": [p.as_dict() for p in problems[:MAX_JOB_PROBLEMS]],
                "problem_count": len(problems)})
            return state.scalar(select(Job.status).where(Job.id == job_id)) or "failed"
        except Exception:
            _discard_new_dataset(engine, settings, row["path"], existed)
            raise  # run_job marks the job failed with the exception's text (and logs it)
        stored = {**row, "phase": "done", "result": _result(report),
                  "problems": [p.as_dict() for p in report.problems[:MAX_JOB_PROBLEMS]],
                  "problem_count": len(report.problems)}
        # a cancel that came after the last batch finds a finished dataset: it stays, ready
        if not _active_update(state, job_id, status="done", done=report.items, total=report.items, params=stored,
                              finished_at=utcnow(), heartbeat_at=utcnow()):
            return state.scalar(select(Job.status).where(Job.id == job_id)) or "cancelled"
        return "done"
    finally:
        state.close()


def register() -> None:
    """Let this process's workers run ingest jobs (create_app, `medview worker`)."""
    register_job_kind(KIND, run_ingest_job, queue="cpu")


def list_ingest_jobs(session: Session, limit: int = 5) -> list[Job]:
    """The newest ingest jobs (the datasets page's list for admins)."""
    return list(session.scalars(select(Job).where(Job.kind == KIND).order_by(Job.id.desc()).limit(limit)))
