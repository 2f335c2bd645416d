"""The `medview` command: serve, demo, worker, ingest, models, predict, fewshot, export, db, users, backup, restore.
Messages go to stderr; summaries to stdout.

Start-up is part of every command's time (an export of a table is mostly start-up), so what only some commands
need — rich's consoles and progress bars, numpy, OpenCV, the web stack, model runtimes, DICOM/NIfTI libraries —
is imported inside the commands that use it; tests/unit/test_cli_imports.py keeps `import app.cli` lean.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from sqlalchemy.exc import DatabaseError as DBAPIDatabaseError
from sqlalchemy.exc import OperationalError as DBAPIOperationalError

from app.accounts.cli import add_users_command
from app.cli.backup import add_backup_commands
from app.cli.data import cmd_db, cmd_export, cmd_ingest, cmd_models, cmd_predict
from app.cli.fewshot import add_fewshot_commands
from app.cli.server import cmd_demo, cmd_serve, cmd_worker
from app.config import Settings
from app.console import err
from app.db.session import safe_url
from app.errors import AppError


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
    p.add_argument("--queues", default="gpu,cpu",
                   help="named queues to serve, in priority order (default gpu,cpu): gpu = inference, cpu = the rest")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("db", help="database schema (Alembic migrations)")
    p.add_argument("action", choices=["upgrade", "downgrade"])
    p.add_argument("revision", nargs="?")
    p.set_defaults(func=cmd_db)
    add_fewshot_commands(sub)
    add_users_command(sub)
    add_backup_commands(sub)
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
    except DBAPIDatabaseError as exc:
        if type(exc) is not DBAPIDatabaseError:  # integrity, programming errors…: bugs, not the database's state
            raise
        # the file is there but is no database (SQLite: "file is not a database"): one line, no traceback
        err.print(f"medview {args.command}: database {safe_url(settings.database_url)} cannot be used: "
                  f"{_first_line(exc.orig or exc)}", markup=False)
        return 2
    except KeyboardInterrupt:
        return 130


__all__ = ["build_parser", "main"]
