"""`medview serve`, `demo` and `worker`: the long-running processes."""

from __future__ import annotations

import argparse
import os
import sys

from app.cli.common import engine_for, ensure_schema
from app.config import Settings
from app.console import err, out
from app.db.session import safe_url
from app.errors import InvalidInput


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run jobs from the named RQ queues until SIGTERM / Ctrl-C (app.inference.rq_worker); Redis unreachable at
    start: one line, exit 2."""
    import threading

    from redis.exceptions import RedisError

    from app import ingest_jobs
    from app.db.session import make_session_factory
    from app.export import jobs as export_jobs
    from app.inference.registry import RuntimeCache
    from app.inference.rq_queue import RQJobQueue, parse_queues, rq_name
    from app.inference.rq_worker import install_stop_handlers, serve

    stop = threading.Event()
    install_stop_handlers(stop)  # a SIGTERM while still starting ends the worker at once, exit 0
    export_jobs.register()  # export jobs run on the same workers
    ingest_jobs.register()  # and ingest jobs (POST /api/datasets)
    if not settings.queue_url:
        raise InvalidInput("MEDVIEW_QUEUE_URL is empty: jobs run in the app's own worker thread; "
                           "set it to redis://… to run separate workers")
    queues = parse_queues(args.queues)
    ensure_schema(settings)
    where = safe_url(settings.queue_url)
    probe = RQJobQueue(settings.queue_url)
    try:
        probe.ping()
    except RedisError as exc:  # refused, unknown host, timed out, wrong password: one line, no traceback
        err.print(f"medview worker: job queue {where} unreachable: {exc}", markup=False)
        return 2
    finally:
        probe.close()
    if stop.is_set():
        return 0
    err.print(f"medview worker: running jobs from {', '.join(map(rq_name, queues))} on {where} "
              "(Ctrl-C or SIGTERM stops)", markup=False)
    engine = engine_for(settings)
    try:
        serve(settings.queue_url, queues, make_session_factory(engine), settings, RuntimeCache(), stop,
              lambda line: err.print(line, markup=False), where)
    finally:
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
    ensure_schema(settings)
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

    ensure_schema(settings)
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
