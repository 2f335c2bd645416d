"""`medview db`, `ingest`, `models`, `predict` and `export`: the commands that work on the catalog in the foreground."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import MAX_LISTED_PROBLEMS, by_name, database_file_errors, engine_for, ensure_schema, field_filters
from app.config import Settings
from app.console import err, out, progress_bar
from app.db.session import safe_url
from app.errors import AppError, InvalidInput

if TYPE_CHECKING:
    from rich.progress import TaskID


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.migrate import downgrade, upgrade

    if args.action == "upgrade":
        with database_file_errors(settings):
            upgrade(settings.database_url)
        err.print(f"database at the newest schema: {safe_url(settings.database_url)}", markup=False)
    elif args.action == "downgrade":
        downgrade(settings.database_url, args.revision or "-1")
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from app.datasets.base import IngestError
    from app.datasets.ingest import ingest_path

    ensure_schema(settings)
    engine = engine_for(settings)
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
        f"{report.unchanged} unchanged, {report.removed} removed; {report.problem_count}; "
        f"{report.seconds:.1f} s", markup=False)
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.session import make_session_factory
    from app.inference import registry

    ensure_schema(settings)
    engine = engine_for(settings)
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


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from app.db.models import Dataset, Model
    from app.db.session import make_session_factory
    from app.inference.job_params import parse_predict_params
    from app.inference.jobs import get_job, plan_predict, queue_predict_job, run_job
    from app.inference.registry import RuntimeCache

    filters = field_filters(args.filters)
    ensure_schema(settings)
    engine = engine_for(settings)
    started = time.monotonic()
    try:
        factory = make_session_factory(engine)
        with factory() as session:
            model = by_name(session, Model, args.model, "model")
            dataset = by_name(session, Dataset, args.dataset, "dataset")
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
    return field_filters(rest), outs[0]


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from app.db.models import Dataset
    from app.db.session import make_session_factory
    from app.export.params import parse_export_params
    from app.export.service import plan_export, write_export

    filters, out_dir = _export_args(args.filters)
    ensure_schema(settings)
    engine = engine_for(settings)
    started = time.monotonic()
    try:
        with make_session_factory(engine)() as session:
            dataset = by_name(session, Dataset, args.dataset, "dataset")
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
