"""Load test (issue 13): many concurrent users on one server, a realistic mix of reads and review writes.

    python bench/load.py [--db sqlite|postgresql|both] [--seconds 20] [--clients 50] [--sqlite-workers 1]
                         [--pg-workers 2] [--tree /tmp/medview-bench/deeplesion-full]

Data: the full-size synthetic DeepLesion tree (32,120 key slices, 32,735 RECIST lesions; bench/make_full_deeplesion.py,
generated on first use) indexed with `medview ingest` into a fresh database: a SQLite file in a temp dir, or a fresh
PostgreSQL database on MEDVIEW_TEST_POSTGRES_URL's server (dropped at the end). One user and API token per client
(half reviewers, half annotators), and one 2-reader review queue per pair of reviewers.
`medview serve` of this checkout runs in a subprocess (SQLite: --sqlite-workers, PostgreSQL: --pg-workers).

Each client is one user on one keep-alive connection (asyncio streams, a minimal HTTP/1.1 client: cheap, since it
shares the 2 cores with the server), picking its next request by weight, as a user of the grid and the viewer:
grid pages (random facet filters, sorts, the next cursor), live facet counts, the item JSON, the grid's thumbnails
(`thumbnail_url`, 256-px JPEG with ground truth), full renders under a new window (W/L drag without the raw path),
raw slices (scrolling the series around the key slice); reviewers take their queue's next item and record a verdict,
annotators move one of their RECIST annotations (PUT with the version they hold). Any status outside 2xx/3xx is an
error (its first bodies are printed). Baseline in the same run: the same clients against GET /api/health (the HTTP
floor of this server). Prints req/s and p50/p95/p99 per request type and overall, and the server's RSS (all its
processes, from /proc) before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from load_client import Stats, drive, server_rss_mb  # noqa: E402

DEFAULT_TREE = Path("/tmp/medview-bench/deeplesion-full")
TARGET_P95_MS = 250.0


# ---------------------------------------------------------------- data, users, server

def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))] if s else float("nan")


def run_cli(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=env["MEDVIEW_DATA_DIR"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"medview {' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def seed(url: str, clients: int, queue_items: int) -> dict[str, Any]:
    """Users and tokens (one per client), 2-reader queues (one per pair of reviewers), annotations per annotator."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from app.accounts.passwords import hash_password
    from app.accounts.tokens import create_token
    from app.db.base import utcnow
    from app.db.models import Annotation, Dataset, Item, User
    from app.db.session import make_engine
    from app.review.queues import create_queue

    engine = make_engine(url)
    rng = random.Random(13)
    out: dict[str, Any] = {"clients": []}
    with Session(engine) as session:
        dataset = session.scalars(select(Dataset)).one()
        out["dataset_id"] = dataset.id
        ids = list(session.scalars(select(Item.id).where(Item.dataset_id == dataset.id)))
        out["ids"] = ids
        anns = list(session.execute(select(Annotation.id, Annotation.version, Annotation.geometry)
                                    .where(Annotation.dataset_id == dataset.id).order_by(Annotation.id)))
        rng.shuffle(anns)
        n_reviewers = 2 * (clients // 4)
        users = []
        password_hash, now = hash_password("load-password-123"), utcnow()  # one argon2 hash (~1 s) for all
        for i in range(clients):
            role = "reviewer" if i < n_reviewers else "annotator"
            user = User(username=f"load{i:02d}", username_key=f"load{i:02d}", role=role, password_hash=password_hash,
                        disabled=False, session_epoch=0, created_at=now, updated_at=now, password_changed_at=now)
            session.add(user)
            session.flush()
            token, _ = create_token(session, user, "load")
            out["clients"].append({"name": user.username, "role": role, "token": token})
            users.append(user)
        for q in range(n_reviewers // 2):
            pair = out["clients"][2 * q:2 * q + 2]
            queue = create_queue(session, name=f"load {q}", dataset=dataset, filters={}, sort=None,
                                 readers_per_item=2, assignees=[u["name"] for u in pair],
                                 item_ids=rng.sample(ids, queue_items), actor=users[2 * q])
            for u in pair:
                u["queue"] = queue.id
        annotators = [u for u in out["clients"] if u["role"] == "annotator"]
        for k, u in enumerate(annotators):
            u["owned"] = [(a.id, a.version, a.geometry) for a in anns[k * 100:(k + 1) * 100]]
    engine.dispose()
    return out


def refresh_owned(url: str, world: dict[str, Any]) -> None:
    """Each annotator's annotations at their current version (with --keep, earlier runs moved them on)."""
    from sqlalchemy import or_, select
    from sqlalchemy.orm import Session

    from app.db.models import Annotation
    from app.db.session import make_engine

    engine = make_engine(url)
    with Session(engine) as session:
        for user in world["clients"]:
            if user["role"] != "annotator":
                continue
            user.setdefault("lineages", [a[0] for a in user["owned"]])
            rows = session.execute(select(Annotation.id, Annotation.lineage_id, Annotation.version,
                                          Annotation.geometry)
                                   .where(or_(Annotation.id.in_(user["lineages"]),
                                              Annotation.lineage_id.in_(user["lineages"])),
                                          Annotation.superseded_by.is_(None), Annotation.retired_at.is_(None)))
            user["owned"] = [(r.id, r.version, r.geometry) for r in rows]
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], workers: int, log_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers",
                                 str(workers)], env=env, cwd=env["MEDVIEW_DATA_DIR"], stdout=log, stderr=log,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc, port
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("server did not start:\n" + log_path.read_text()[-2000:])


def report(title: str, base: Stats, stats: Stats, elapsed: float, base_seconds: float,
           rss: tuple[tuple[float, int], tuple[float, int]]) -> float:
    print(f"\n== {title} ==")
    print(f"{'request':<24}{'n':>7}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}")

    def row(name: str, values: list[float], seconds: float, errors: int) -> None:
        print(f"{name:<24}{len(values):>7}{len(values) / seconds:>8.1f}{pct(values, 50):>9.1f}{pct(values, 95):>9.1f}"
              f"{pct(values, 99):>9.1f}{max(values, default=float('nan')):>9.1f}{errors:>8}")

    for name, values in sorted(stats.times.items()):
        row(name, values, elapsed, stats.errors[name])
    everything = [v for values in stats.times.values() for v in values]
    row("OVERALL (the mix)", everything, elapsed, sum(stats.errors.values()))
    for name, values in base.times.items():
        row(f"baseline {name}", values, base_seconds, base.errors[name])
    (before, n_before), (after, n_after) = rss
    print(f"server RSS: {before:.0f} MB before ({n_before} processes), {after:.0f} MB after ({n_after})")
    for line in stats.bodies + base.bodies:
        print("  error:", line)
    return pct(everything, 95)


def one_database(kind: str, args: argparse.Namespace, tree: Path) -> tuple[str, float, int]:
    keep = args.keep is not None and kind == "sqlite"  # profiling: prepare once, reuse the database
    tmp = args.keep.resolve() if keep else Path(tempfile.mkdtemp(prefix=f"medview-load-{kind}-"))
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), MEDVIEW_DATA_DIR=str(tmp), MEDVIEW_DATA_ROOTS=str(tree.parent),
               MEDVIEW_PUBLIC_READ="false")
    env.pop("MEDVIEW_QUEUE_URL", None)
    pg_admin, db_name = None, None
    if kind == "sqlite":
        url, workers = f"sqlite:///{tmp}/medview.db", args.sqlite_workers
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        server = make_url(args.postgres_url)
        db_name = f"medview_load_{os.getpid()}"
        pg_admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        url, workers = server.set(database=db_name).render_as_string(hide_password=False), args.pg_workers
    env["MEDVIEW_DATABASE_URL"] = url
    server_proc = None
    try:
        start = time.perf_counter()
        saved = tmp / "world.json"
        if keep and saved.exists():
            world = orjson.loads(saved.read_bytes())
        else:
            if kind != "sqlite":
                run_cli(env, "db", "upgrade")
            run_cli(env, "ingest", str(tree), "--kind", "deeplesion", "--name", "load", "--quiet")
            world = seed(url, args.clients, args.queue_items)
            if keep:
                saved.write_bytes(orjson.dumps(world))
        refresh_owned(url, world)
        print(f"[{kind}] indexed {len(world['ids']):,} items and seeded {args.clients} users in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        log_path = tmp / "server.log"
        server_proc, port = start_server(env, workers, log_path)
        import urllib.request

        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/datasets/{world['dataset_id']}",
                                     headers={"Authorization": f"Bearer {world['clients'][0]['token']}"})
        facets = orjson.loads(urllib.request.urlopen(req, timeout=60).read())["facets"]
        world["facets"] = {k: list(v) for k, v in facets.items() if v}
        rss_before = server_rss_mb(server_proc.pid)
        spies: list[subprocess.Popen] = []

        def profile() -> None:  # py-spy over the measured phase; LOAD_PROFILE_GIL=1: only the GIL holder (CPU)
            gil = ["--gil"] if os.environ.get("LOAD_PROFILE_GIL") else []
            spies.append(subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--subprocesses", "--format", "raw",
                 "--rate", "100", *gil, "-o", str(args.profile), "--pid", str(server_proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        base, stats, elapsed, usage = asyncio.run(drive(port, server_proc.pid, world, args.clients, args.seconds,
                                                        args.warmup, args.baseline_seconds,
                                                        profile if args.profile else None))
        rss_after = server_rss_mb(server_proc.pid)
        for spy in spies:
            spy.send_signal(2)  # py-spy writes its file on Ctrl-C
            spy.wait(60)
        title = (f"{kind}, {workers} worker(s): {len(world['ids']):,} items, {args.clients} clients x "
                 f"{args.seconds:g} s (client on the same cores)")
        p95 = report(title, base, stats, elapsed, args.baseline_seconds, (rss_before, rss_after))
        n = sum(len(v) for v in stats.times.values())
        print(f"CPU over the run: server {usage['server']:.1f} s ({n / max(usage['server'], 1e-9):.0f} requests per "
              f"server CPU-second), client {usage['client']:.1f} s, whole machine {usage['machine']:.1f} of "
              f"{usage['capacity']:.1f} s busy (the rest of the machine's load: "
              f"{usage['machine'] - usage['server'] - usage['client']:.1f} s)")
        if sum(stats.errors.values()):
            print("server log (tail):\n" + log_path.read_text()[-3000:])
        return title, p95, sum(stats.errors.values())
    finally:
        if server_proc is not None:
            os.killpg(server_proc.pid, 15)
            try:
                server_proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server_proc.pid, 9)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        if pg_admin is not None:
            import psycopg

            with psycopg.connect(pg_admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of the mix before measuring")
    ap.add_argument("--baseline-seconds", type=float, default=5.0)
    ap.add_argument("--sqlite-workers", type=int, default=1)
    ap.add_argument("--pg-workers", type=int, default=2)
    ap.add_argument("--queue-items", type=int, default=2000, help="items per 2-reader review queue")
    ap.add_argument("--tree", type=Path, default=DEFAULT_TREE)
    ap.add_argument("--keep", type=Path, help="SQLite only: prepare the database in this folder once and reuse it "
                    "(state changes between runs); default: a temp dir, removed")
    ap.add_argument("--profile", type=Path, help="record the server with py-spy (not a dependency: pip install "
                    "py-spy) into this file as collapsed stacks (--format raw)")
    ap.add_argument("--postgres-url", default=os.environ.get(
        "MEDVIEW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args(argv)
    if args.clients < 4:
        ap.error("--clients: at least 4 (reviewers come in pairs, plus annotators)")
    sys.path.insert(0, str(REPO / "bench"))
    from make_full_deeplesion import make_tree

    make_tree(args.tree)
    results = [one_database(kind, args, args.tree)
               for kind in (("sqlite", "postgresql") if args.db == "both" else (args.db,))]
    print()
    for title, p95, errors in results:
        verdict = "met" if p95 < TARGET_P95_MS and errors == 0 else "NOT met"
        print(f"{title}: p95 {p95:.0f} ms, {errors} errors -> target p95 < {TARGET_P95_MS:g} ms, 0 errors: {verdict}")
    return 0 if all(p95 < TARGET_P95_MS and e == 0 for _, p95, e in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
