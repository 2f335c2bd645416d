"""The `medview` command: serve, demo, ingest, models, db. Messages go to stderr; summaries to stdout."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import OperationalError as DBAPIOperationalError

from app.accounts.cli import add_users_command
from app.config import Settings
from app.console import err, out, progress_bar
from app.db.session import safe_url
from app.errors import AppError, InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.db.models import Dataset, Model

# Start-up is part of every command's time (an export of a table is mostly start-up), so what only some commands
# need — rich's consoles and progress bars, numpy, OpenCV, the web stack, model runtimes, DICOM/NIfTI libraries —
# is imported inside the commands that use it; tests/unit/test_cli_imports.py keeps `import app.cli` lean.


MAX_LISTED_PROBLEMS = 25
NamedRow = TypeVar("NamedRow", "Dataset", "Model")


def _engine(settings: Settings):
    from app.db.session import make_engine

    return make_engine(settings.database_url)


def _ensure_schema(settings: Settings) -> None:
    from app.db.migrate import ensure_schema

    ensure_schema(settings.database_url, settings.database_kind)


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.migrate import downgrade, upgrade

    if args.action == "upgrade":
        upgrade(settings.database_url)
        err.print(f"database at the newest schema: {safe_url(settings.database_url)}", markup=False)
    elif args.action == "downgrade":
        downgrade(settings.database_url, args.revision or "-1")
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import TaskID

    from app.datasets.base import IngestError
    from app.datasets.ingest import ingest_path

    _ensure_schema(settings)
    engine = _engine(settings)
    with progress_bar(args.quiet) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        try:
            report = ingest_path(engine, settings, args.path, kind=args.kind, name=args.name, progress=progress)
        except (IngestError, AppError) as exc:
            problems = getattr(exc, "problems", [])
            for p in problems[:MAX_LISTED_PROBLEMS]:
                err.print(f"  problem: {p}", markup=False)
            err.print(f"medview ingest: nothing indexed: {exc}", markup=False)
            return 2
        finally:
            engine.dispose()
    for p in report.problems[:MAX_LISTED_PROBLEMS]:
        err.print(f"  problem: {p}", markup=False)
    if len(report.problems) > MAX_LISTED_PROBLEMS:
        err.print(f"  … and {len(report.problems) - MAX_LISTED_PROBLEMS} more problems "
                  "(all are listed on the dataset page and in GET /api/datasets/ID)")
    out.print(
        f"{report.name} ({report.kind}, dataset id {report.dataset_id}): {report.items} items, "
        f"{report.annotations} annotations; {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed; {len(report.problems)} problems; "
        f"{report.seconds:.1f} s", markup=False)
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.session import make_session_factory
    from app.inference import registry

    _ensure_schema(settings)
    engine = _engine(settings)
    try:
        with make_session_factory(engine)() as session:
            if args.action == "add":
                path = Path(args.file)
                model = registry.add_model(session, settings, path, path.name, card_path=args.card)
                err.print(f"registered {model.name} ({model.task}, {model.runtime})", markup=False)
                out.print(str(model.id), markup=False)
            else:
                for m in registry.list_models(session):
                    applies = ", ".join(m.card.get("applies_to", [])) or "any"
                    out.print(f"{m.id}  {m.name}  {m.task}  {m.runtime}  applies to: {applies}", markup=False)
    finally:
        engine.dispose()
    return 0


def _field_filters(extra: Sequence[str]) -> dict[str, list[str]]:
    """`--FIELD VALUE` / `--FIELD=VALUE` pairs (repeat a field for OR) → filters."""
    filters: dict[str, list[str]] = {}
    rest = list(extra)
    while rest:
        token = rest.pop(0)
        if not token.startswith("--") or len(token) < 3:
            raise InvalidInput(f"unexpected argument {token!r}; filters are given as --FIELD VALUE")
        name, eq, value = token[2:].partition("=")
        if not eq:
            if not rest or rest[0].startswith("--"):
                raise InvalidInput(f"filter --{name} needs a value")
            value = rest.pop(0)
        filters.setdefault(name.replace("-", "_"), []).append(value)
    return filters


def _by_name(session: Session, table: type[NamedRow], name: str, what: str) -> NamedRow:
    """The row with this name, else the one with this id (`--model 3`); NotFound naming what was asked for."""
    from sqlalchemy import select

    from app.errors import NotFound

    row = session.scalar(select(table).where(table.name == name))
    if row is None and name.isdigit():
        row = session.get(table, int(name))
    if row is None:
        raise NotFound(f"no {what} named {name!r}")
    return row


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from app.db.models import Dataset, Model
    from app.db.session import make_session_factory
    from app.inference.job_params import parse_predict_params
    from app.inference.jobs import get_job, plan_predict, queue_predict_job, run_job
    from app.inference.registry import RuntimeCache

    filters = _field_filters(args.filters)
    _ensure_schema(settings)
    engine = _engine(settings)
    started = time.monotonic()
    try:
        factory = make_session_factory(engine)
        with factory() as session:
            model = _by_name(session, Model, args.model, "model")
            dataset = _by_name(session, Dataset, args.dataset, "dataset")
            params = parse_predict_params({"model_id": model.id, "dataset_id": dataset.id, "filters": filters})
            job = queue_predict_job(session, plan_predict(model, dataset, params))  # model and dataset checked once
            job_id, model_name, dataset_name = job.id, model.name, dataset.name
        with progress_bar(args.quiet) as bar:
            task = bar.add_task(f"predict {model_name}", total=None)
            first: list[int] = []

            def progress(done: int, total: int) -> None:
                first.append(done)
                bar.update(task, completed=done, total=total)

            status = run_job(factory, settings, RuntimeCache(), job_id, progress=progress)
        with factory() as session:
            finished = get_job(session, job_id)
            summary = (f"job {job_id}: {status}; {model_name} on {dataset_name}: {finished.done}/{finished.total} "
                       f"items predicted ({finished.done - (first[0] if first else 0)} now); "
                       f"{time.monotonic() - started:.1f} s")
            error = finished.error
    finally:
        engine.dispose()
    if status != "done":
        err.print(f"medview predict: {summary}" + (f": {error}" if error else ""), markup=False)
        return 2
    out.print(summary, markup=False)
    return 0


def _export_args(extra: Sequence[str]) -> tuple[dict[str, list[str]], str]:
    """`--FIELD VALUE` filters and the one output folder among the arguments argparse did not know."""
    tokens, rest, outs = list(extra), [], []
    while tokens:
        token = tokens.pop(0)
        if token.startswith("--"):
            rest.append(token)
            if "=" not in token and tokens and not tokens[0].startswith("--"):
                rest.append(tokens.pop(0))
        else:
            outs.append(token)
    if len(outs) != 1:
        raise InvalidInput("give one output folder OUT (after the options): "
                           + (f"got {', '.join(map(repr, outs))}" if outs else "none given"))
    return _field_filters(rest), outs[0]


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from app.db.models import Dataset
    from app.db.session import make_session_factory
    from app.export.params import parse_export_params
    from app.export.service import plan_export, write_export

    filters, out_dir = _export_args(args.filters)
    _ensure_schema(settings)
    engine = _engine(settings)
    started = time.monotonic()
    try:
        with make_session_factory(engine)() as session:
            dataset = _by_name(session, Dataset, args.dataset, "dataset")
            params = parse_export_params({"dataset_id": dataset.id, "format": args.format, "filters": filters,
                                          "annotations": args.annotations})
            plan = plan_export(session, params, dataset)
            with progress_bar(args.quiet) as bar:
                task = bar.add_task(f"export {args.format}", total=plan.total)
                files = write_export(session, settings, plan, Path(out_dir),
                                     advance=lambda n: bar.advance(task, n))
            name = dataset.name
    finally:
        engine.dispose()
    out.print(f"{name}: {plan.total} items exported as {args.format} ({args.annotations} annotations) into "
              f"{out_dir}: {len(files)} file(s); {time.monotonic() - started:.1f} s", markup=False)
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import threading

    from redis.exceptions import RedisError

    from app.db.session import make_session_factory
    from app.export import jobs as export_jobs
    from app.inference.queue import RedisQueue
    from app.inference.registry import RuntimeCache

    export_jobs.register()  # export jobs run on the same workers
    if not settings.queue_url:
        raise InvalidInput("MEDVIEW_QUEUE_URL is empty: jobs run in the app's own worker thread; "
                           "set it to redis://… to run separate workers")
    _ensure_schema(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = _engine(settings)
    jobs_queue = RedisQueue(settings.queue_url)
    try:
        jobs_queue.ping()
        err.print(f"medview worker: waiting for jobs on {jobs_queue.key} (Ctrl-C or SIGTERM stops)")
        jobs_queue.work(make_session_factory(engine), settings, RuntimeCache(), stop.is_set,
                        on_job=lambda job_id, status: err.print(f"job {job_id}: {status}", markup=False))
    except KeyboardInterrupt:
        pass
    except RedisError as exc:  # refused, unknown host, timed out, wrong password: one line, no traceback
        err.print(f"medview worker: job queue {safe_url(settings.queue_url)} unreachable: {exc}", markup=False)
        return 2
    finally:
        jobs_queue.close()
        engine.dispose()
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.accounts.secret import is_weak

    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if not loopback and settings.secret_key and is_weak(settings.secret_key):
        err.print("medview serve: MEDVIEW_SECRET_KEY is a known or short key; refusing to listen on "
                  f"{args.host}. Set 32+ random characters, or leave it empty to generate one.", markup=False)
        return 2
    _ensure_schema(settings)
    if not _has_users(settings):
        err.print("No account exists yet. Create the first administrator:\n"
                  "  medview users add NAME --role admin", markup=False)
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/"
    err.print(f"MedView on {url}  (database: {settings.database_kind}; Ctrl-C stops)")
    if getattr(args, "open_browser", False):
        _open_browser(url)
    uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="warning")
    return 0


def _has_users(settings: Settings) -> bool:
    from sqlalchemy import create_engine, exists, select

    from app.db.models import User

    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return bool(conn.scalar(select(exists().where(User.id.is_not(None)))))
    finally:
        engine.dispose()


def _open_browser(url: str) -> None:
    if os.environ.get("DISPLAY") or sys.platform in ("darwin", "win32"):
        import threading
        import webbrowser

        threading.Timer(1.5, lambda: webbrowser.open(url)).start()


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from app.demo import build_demo
    from app.demo_accounts import ensure_demo_accounts

    _ensure_schema(settings)
    settings_for_demo = build_demo(settings, progress_console=err.real)
    lines, token = ensure_demo_accounts(settings_for_demo)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    err.print("demo accounts (one per role):", markup=False)
    for line in lines:
        err.print(line, markup=False)
    out.print(f"Sign in with one click: http://{host}:{args.port}/login/link?t={token}", markup=False)
    if args.no_serve:
        return 0
    os.environ["MEDVIEW_DATA_ROOTS"] = settings_for_demo.data_roots  # read by the server's own Settings()
    args.open_browser = True
    return cmd_serve(args, settings_for_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medview", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_serve_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--workers", type=int, default=1)

    p = sub.add_parser("serve", help="run the web app")
    add_serve_args(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="generate sample datasets, index them and serve")
    add_serve_args(p)
    p.add_argument("--no-serve", action="store_true", help="generate and index only")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ingest", help="index a dataset folder in place")
    p.add_argument("path")
    p.add_argument("--kind", help="dataset kind (detected from the files when omitted)")
    p.add_argument("--name", help="dataset name (default: the folder's name)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("models", help="register and list models")
    models_sub = p.add_subparsers(dest="action", required=True)
    add = models_sub.add_parser("add", help="register a model file with its card (prints the model id)")
    add.add_argument("file", help="ONNX (.onnx) or TorchScript (.pt, .ts) model")
    add.add_argument("--card", required=True, help="model card (YAML or JSON)")
    add.set_defaults(func=cmd_models)
    lst = models_sub.add_parser("list", help="registered models: id, name, task, runtime, applies_to")
    lst.set_defaults(func=cmd_models)

    p = sub.add_parser("predict", help="run a model over a dataset's (filtered) items in the foreground",
                       usage="medview predict --model NAME --dataset NAME [--FIELD VALUE ...]")
    p.add_argument("--model", required=True, help="model name (or id)")
    p.add_argument("--dataset", required=True, help="dataset name (or id)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict, filters=[])

    p = sub.add_parser("export", help="write a dataset's (filtered) items and annotations in a format, into OUT",
                       usage="medview export --dataset NAME --format FORMAT [--FIELD VALUE ...] "
                             "[--annotations current|dataset] OUT")
    p.add_argument("--dataset", required=True, help="dataset name (or id)")
    p.add_argument("--format", required=True,
                   help="csv, coco, deeplesion-csv, masks-png, nifti (docs/export.md: which fits which kind)")
    p.add_argument("--annotations", choices=["current", "dataset"], default="current",
                   help="current: with every edit (default); dataset: the dataset's own, as ingested")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export, filters=[])

    p = sub.add_parser("worker", help="run queued jobs from MEDVIEW_QUEUE_URL (Redis) until stopped")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("db", help="database schema (Alembic migrations)")
    p.add_argument("action", choices=["upgrade", "downgrade"])
    p.add_argument("revision", nargs="?")
    p.set_defaults(func=cmd_db)
    add_users_command(sub)
    return parser


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("predict", "export"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.filters = extra
    try:
        settings = Settings()
    except ValueError as exc:
        err.print(f"medview: configuration error: {exc}", markup=False)
        return 2
    try:
        return args.func(args, settings)
    except AppError as exc:
        err.print(f"medview {args.command}: {exc.detail}", markup=False)
        return 2
    except DBAPIOperationalError as exc:  # unreachable, missing database, refused login: one line, no traceback
        err.print(f"medview {args.command}: database {safe_url(settings.database_url)} unavailable: "
                  f"{_first_line(exc.orig or exc)}", markup=False)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Path", "main"]
