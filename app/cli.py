"""The `medview` command: serve, demo, ingest, models, db. Messages go to stderr; summaries to stdout."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.config import Settings
from app.datasets.base import IngestError
from app.errors import AppError, InvalidInput

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
MAX_LISTED_PROBLEMS = 25


def _engine(settings: Settings):
    from app.db.session import make_engine

    return make_engine(settings.database_url)


def _upgrade(settings: Settings) -> None:
    from app.db.migrate import upgrade

    upgrade(settings.database_url)


def _ensure_schema(settings: Settings) -> None:
    """A local SQLite file is brought up to date here; any other database must already be
    (`medview db upgrade`, run once rather than by every process), or we stop with that advice."""
    from app.db.migrate import is_current

    engine = _engine(settings)
    try:
        current = is_current(engine)
    finally:
        engine.dispose()
    if current:
        return
    if settings.database_kind != "sqlite":
        raise InvalidInput(f"database {settings.database_kind} is not at the newest schema; "
                           "run `medview db upgrade` first")
    _upgrade(settings)


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.migrate import downgrade

    if args.action == "upgrade":
        _upgrade(settings)
        err.print(f"database at the newest schema: {settings.database_url}")
    elif args.action == "downgrade":
        downgrade(settings.database_url, args.revision or "-1")
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from app.datasets.ingest import ingest_path

    _ensure_schema(settings)
    engine = _engine(settings)
    with Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=False, disable=args.quiet) as bar:
        tasks: dict[str, int] = {}

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


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    _ensure_schema(settings)
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/"
    err.print(f"MedView on {url}  (database: {settings.database_kind}; Ctrl-C stops)")
    if getattr(args, "open_browser", False):
        _open_browser(url)
    uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="warning")
    return 0


def _open_browser(url: str) -> None:
    if os.environ.get("DISPLAY") or sys.platform in ("darwin", "win32"):
        import threading
        import webbrowser

        threading.Timer(1.5, lambda: webbrowser.open(url)).start()


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from app.demo import build_demo

    _ensure_schema(settings)
    settings_for_demo = build_demo(settings, progress_console=err)
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

    p = sub.add_parser("db", help="database schema (Alembic migrations)")
    p.add_argument("action", choices=["upgrade", "downgrade"])
    p.add_argument("revision", nargs="?")
    p.set_defaults(func=cmd_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Path", "main"]
