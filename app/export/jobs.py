"""Exports as jobs: `POST /api/exports` queues one (kind `export`, parameters in `jobs.params`), a worker (the
app's in-process one, or `medview worker` with Redis) runs it through the same machinery as predict jobs, with
progress (`done`/`total` items) and cancellation between chunks.

Where the result goes is the server's choice, never the client's: `<data dir>/exports/<job id>/`. The files are
written into `<job id>/files/` through the atomic writer; a one-file export is then moved up as the result, a
many-file one zipped (atomically) into `<dataset>-<format>.zip`. The result's name and size are stored in the job's
params (`result`), so the listing and the download need no directory walk. A job that is interrupted is run again
from the start (each file is atomic, so nothing half-written is ever offered); deleting a job's row leaves its
files (an admin clears `<data dir>/exports/`).
"""

from __future__ import annotations

import logging
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from app import audit
from app.audit import Identified
from app.config import Settings
from app.db.base import utcnow
from app.db.models import Dataset, Job
from app.errors import Conflict, InvalidInput, NotFound
from app.export.context import Cancelled
from app.export.params import ExportParams, parse_export_params
from app.export.service import ExportPlan, plan_export, write_export
from app.export.writer import atomic_binary
from app.inference.jobs import ACTIVE, ProgressFn, Submit, commit_submitted, get_job, job_summary, register_job_kind
from app.pixels import PixelStore

log = logging.getLogger(__name__)

KIND = "export"
EXPORTS_DIR = "exports"
FILES_DIR = "files"
STORED_SUFFIXES = (".png", ".gz", ".zip", ".jpg")  # already compressed: zipped without deflating again


class Stopping(Exception):
    """The worker's process is stopping: the job stays `running` and is run again by the next worker."""


def exports_root(settings: Settings) -> Path:
    return settings.data_dir.resolve() / EXPORTS_DIR


def job_folder(settings: Settings, job_id: int) -> Path:
    return exports_root(settings) / str(int(job_id))


def queue_export_job(session: Session, plan: ExportPlan, actor: Identified | str | None = None,
                     address: str | None = None, submit: Submit | None = None) -> Job:
    job = Job(kind=KIND, params=plan.params.to_row(), status="queued", done=0, total=plan.total)
    session.add(job)
    session.flush()
    audit.record(session, actor, "job.start", "job", job.id, after={
        "kind": KIND, "dataset_id": plan.dataset.id, "format": plan.params.format, "total": plan.total,
        "filters": plan.params.filters, "annotations": plan.params.annotations}, address=address)
    return commit_submitted(session, job, submit)  # committed once the queue took it


def create_export_job(session: Session, params: ExportParams, actor: Identified | str | None = None,
                      address: str | None = None, submit: Submit | None = None) -> Job:
    """A queued export job (404 / 400 from `plan_export` when it could not run; the queue's error when `submit`
    could not take it, with nothing stored)."""
    return queue_export_job(session, plan_export(session, params), actor, address, submit)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "export"


def _zip(files: list[Path], base: Path, out: Path) -> None:
    with atomic_binary(out) as fh, zipfile.ZipFile(fh, "w") as zf:
        for f in files:
            stored = f.name.endswith(STORED_SUFFIXES)
            zf.write(f, f.relative_to(base).as_posix(),
                     compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)


def _active_update(session: Session, job_id: int, **values: Any) -> bool:
    """Update a job that is still active; False when it is not (cancelled meanwhile)."""
    result = cast(CursorResult[Any], session.execute(
        update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE)).values(**values)))
    session.commit()
    return result.rowcount > 0


def run_export_job(session: Session, settings: Settings, pixels: PixelStore, job: Job,
                   should_cancel: Callable[[], bool] | None, should_stop: Callable[[], bool] | None,
                   progress: ProgressFn | None) -> str:
    """The worker's side (registered as the runner of `export` jobs): plan again from the stored parameters,
    write into the job's folder, publish the result."""
    job_id = job.id
    params = parse_export_params(job.params)
    plan = plan_export(session, params)
    folder = job_folder(settings, job_id)
    files_dir = folder / FILES_DIR
    shutil.rmtree(files_dir, ignore_errors=True)  # a run interrupted before: start again
    now = utcnow()
    state = Session(bind=session.get_bind())  # progress commits apart from the export's reads
    try:
        if not _active_update(state, job_id, status="running", started_at=job.started_at or now, heartbeat_at=now,
                              total=plan.total, done=0, error=None):
            return state.scalar(select(Job.status).where(Job.id == job_id)) or "cancelled"
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done = min(done + n, plan.total)
            if should_cancel is not None and should_cancel():
                _active_update(state, job_id, status="cancelled", finished_at=utcnow())
                raise Cancelled
            if should_stop is not None and should_stop():
                raise Stopping
            if not _active_update(state, job_id, done=done, heartbeat_at=utcnow()):
                raise Cancelled
            if progress:
                progress(done, plan.total)

        try:
            files = write_export(session, settings, plan, files_dir, pixels=pixels, advance=advance)
        except Cancelled:
            shutil.rmtree(folder, ignore_errors=True)
            return state.scalar(select(Job.status).where(Job.id == job_id)) or "cancelled"
        except Stopping:
            return "running"
        session.commit()
        if len(files) == 1:
            result = folder / files[0].name
            files[0].replace(result)
        else:
            dataset = session.get(Dataset, params.dataset_id)
            name = _safe_name(f"{dataset.name if dataset else params.dataset_id}-{params.format}") + ".zip"
            result = folder / name
            _zip(files, files_dir, result)
        shutil.rmtree(files_dir, ignore_errors=True)
        stored = {**params.to_row(), "result": {"file": result.name, "bytes": result.stat().st_size,
                                                "files": len(files)}}
        if not _active_update(state, job_id, status="done", done=plan.total, params=stored, finished_at=utcnow(),
                              heartbeat_at=utcnow()):
            shutil.rmtree(folder, ignore_errors=True)
            return state.scalar(select(Job.status).where(Job.id == job_id)) or "cancelled"
        return "done"
    finally:
        state.close()


def register() -> None:
    """Let this process's workers run export jobs (create_app, `medview worker`, `medview export`)."""
    register_job_kind(KIND, run_export_job)


def export_summary(job: Job, dataset_name: str | None) -> dict[str, Any]:
    params = job.params or {}
    result = params.get("result") or None
    return {**job_summary(job), "dataset_id": params.get("dataset_id"), "dataset_name": dataset_name,
            "format": params.get("format"), "annotations": params.get("annotations", "current"),
            "filters": params.get("filters") or {}, "file": result["file"] if result else None,
            "bytes": result["bytes"] if result else None,
            "download_url": f"/api/exports/{job.id}/download" if result and job.status == "done" else None}


def list_exports(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    if not 1 <= limit <= 200:
        raise InvalidInput(f"limit must be between 1 and 200, got {limit}")
    dataset_id = Job.params["dataset_id"].as_integer()
    stmt = (select(Job, Dataset.name).outerjoin(Dataset, Dataset.id == dataset_id).where(Job.kind == KIND)
            .order_by(Job.id.desc()).limit(limit))
    return [export_summary(job, name) for job, name in session.execute(stmt)]


def get_export(session: Session, job_id: int) -> dict[str, Any]:
    job = get_job(session, job_id)
    if job.kind != KIND:
        raise NotFound(f"export {job_id} not found (job {job_id} is a {job.kind} job)")
    dataset = session.get(Dataset, (job.params or {}).get("dataset_id"))
    return export_summary(job, dataset.name if dataset else None)


def result_file(session: Session, settings: Settings, job_id: int) -> tuple[Path, str]:
    """The finished export's file and its download name; Conflict while it is not done, NotFound when its
    file is gone."""
    summary = get_export(session, job_id)
    if summary["status"] != "done" or not summary["file"]:
        raise Conflict(f"export {job_id} is {summary['status']}; its file can be downloaded once it is done")
    folder = job_folder(settings, job_id)
    path = (folder / summary["file"]).resolve()
    if path.parent != folder or not path.is_file():
        raise NotFound(f"the file of export {job_id} is no longer on the server")
    return path, summary["file"]
