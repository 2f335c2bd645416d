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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_TREE = Path("/tmp/medview-bench/deeplesion-full")
TARGET_P95_MS = 250.0
READS = {"grid": 12, "facets": 6, "item": 8, "thumb": 30, "render": 8, "raw": 24}
WRITES = {"reviewer": {"next+verdict": 8}, "annotator": {"edit": 8}}


# ---------------------------------------------------------------- the client

class Http:
    """One keep-alive HTTP/1.1 connection; `request` returns (status, body) with the body read in full."""

    def __init__(self, port: int, token: str | None):
        self.port = port
        self.head = f"Host: 127.0.0.1:{port}\r\nAccept-Encoding: gzip\r\n"
        if token:
            self.head += f"Authorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        reused = self.writer is not None
        try:
            return await self._request(method, path, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            if not reused:
                raise
            self.writer = None  # the server closed an idle keep-alive connection: a browser retries at once
            return await self._request(method, path, body)

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        data = b"" if body is None else orjson.dumps(body)
        extra = f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n" if body is not None else ""
        self.writer.write(f"{method} {path} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + data)
        assert self.reader is not None
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        if "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readuntil(b"\r\n")
            payload = b"".join(parts)
        else:
            payload = b""
        if headers.get("connection") == "close":
            self.writer.close()
            self.writer = None
        return status, payload


@dataclass
class Stats:
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bodies: list[str] = field(default_factory=list)
    recording: bool = True

    def add(self, kind: str, ms: float, status: int, path: str, body: bytes) -> None:
        self.times[kind].append(ms)
        if not 200 <= status < 400:
            self.errors[kind] += 1
            if len(self.bodies) < 8:
                self.bodies.append(f"{kind} {path} -> {status}: {body[:300]!r}")


@dataclass
class Client:
    http: Http
    role: str  # reviewer | annotator
    rng: random.Random
    stats: Stats
    world: dict[str, Any]
    queue_id: int | None = None
    owned: list[list[Any]] = field(default_factory=list)  # annotator: [annotation id, version, geometry]
    page: list[dict[str, Any]] = field(default_factory=list)
    cursor: str | None = None
    query: str = ""
    item: dict[str, Any] | None = None
    seen: set[str] = field(default_factory=set)  # the browser cache: version-pinned URLs already fetched

    async def call(self, kind: str, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        recording = self.stats.recording
        start = time.perf_counter()
        try:
            status, payload = await self.http.request(method, path, body)
        except (OSError, asyncio.IncompleteReadError) as exc:  # a dropped connection: an error, then reconnect
            status, payload = 0, repr(exc).encode()
            self.http.writer = None
        if recording:
            self.stats.add(kind, (time.perf_counter() - start) * 1000, status, path, payload)
        return status, payload

    def random_query(self) -> str:
        facets = self.world["facets"]
        parts = []
        for name in self.rng.sample(list(facets), k=self.rng.choice((0, 1, 1, 2))):
            parts.append(urlencode({name: self.rng.choice(facets[name])}))
        if self.rng.random() < 0.25:
            parts.append("sort=" + self.rng.choice(("-age", "lesion_size", "-lesion_size", "key")))
        return "&".join(parts)

    async def grid(self) -> None:
        did = self.world["dataset_id"]
        if self.cursor and self.rng.random() < 0.5:  # scroll on
            path = f"/api/datasets/{did}/items?{self.query}&cursor={self.cursor}"
        else:
            self.query = self.random_query()
            path = f"/api/datasets/{did}/items?{self.query}"
        status, body = await self.call("grid page", "GET", path)
        if status == 200:
            page = orjson.loads(body)
            self.cursor = page["next_cursor"]
            self.page = page["items"] or self.page

    async def facets(self) -> None:
        await self.call("facets", "GET", f"/api/datasets/{self.world['dataset_id']}/facets?{self.random_query()}")

    async def open_item(self, item_id: int | None = None) -> None:
        item_id = item_id or (self.rng.choice(self.page)["id"] if self.page else self.rng.choice(self.world["ids"]))
        status, body = await self.call("item json", "GET", f"/api/items/{item_id}")
        if status == 200:
            self.item = orjson.loads(body)

    async def fetch_once(self, kind: str, url: str) -> None:
        """A version-pinned URL (immutable): a browser asks for it once, then serves it from its cache."""
        self.seen.add(url)
        await self.call(kind, "GET", url)

    async def thumb(self) -> None:
        fresh = [it["thumbnail_url"] for it in self.page if it["thumbnail_url"] not in self.seen]
        if not fresh:  # every thumbnail of this page is in the browser's cache: scroll on, or filter anew
            await self.grid()
            fresh = [it["thumbnail_url"] for it in self.page if it["thumbnail_url"] not in self.seen]
        if fresh:
            await self.fetch_once("thumbnail", self.rng.choice(fresh))

    async def render(self) -> None:
        if self.item is None:
            await self.open_item()
        if self.item is not None:
            low = self.rng.randint(-1200, 100)
            high = low + self.rng.randint(80, 1500)
            await self.call("render (new window)", "GET", f"/api/items/{self.item['id']}/render?format=jpeg"
                            f"&window={low},{high}&overlays=gt&v={self.item['version']}")

    def raw_urls(self) -> list[str]:
        if self.item is None:
            return []
        low, high = self.item["meta"].get("slice_range") or (self.item["slice"], self.item["slice"])
        urls = [f"/api/items/{self.item['id']}/raw?slice={n}&v={self.item['version']}" for n in range(low, high + 1)]
        return [u for u in urls if u not in self.seen]

    async def raw(self) -> None:
        """The viewer scrolls the series: a slice it has not loaded yet (else the next item)."""
        if not self.raw_urls():
            await self.open_item()
        if urls := self.raw_urls():
            key = f"/api/items/{self.item['id']}/raw?slice={self.item['slice']}&"  # type: ignore[index]
            await self.fetch_once("raw slice", next((u for u in urls if u.startswith(key)), self.rng.choice(urls)))

    async def verdict(self) -> None:
        status, body = await self.call("queue next", "GET", f"/api/review/queues/{self.queue_id}/next")
        if status == 200:
            item_id = orjson.loads(body)["item"]["id"]
            verdict = self.rng.choices(("accept", "reject", "uncertain"), (6, 2, 1))[0]
            await self.call("verdict (POST)", "POST", f"/api/items/{item_id}/reviews",
                            {"verdict": verdict, "queue_id": self.queue_id})
        elif status == 204:  # queue done: a verdict outside queues
            await self.call("verdict (POST)", "POST", f"/api/items/{self.rng.choice(self.world['ids'])}/reviews",
                            {"verdict": "accept"})

    async def edit(self) -> None:
        mine = self.rng.choice(self.owned)
        ann_id, version, geometry = mine
        dx, dy = self.rng.choice((-1, 1)), self.rng.choice((-1, 1))
        moved = {k: [[x + dx, y + dy] for x, y in v] for k, v in geometry.items() if k in ("long", "short")}
        status, body = await self.call("annotation edit (PUT)", "PUT", f"/api/annotations/{ann_id}",
                                       {"version": version, "geometry": moved})
        if status == 200:
            new = orjson.loads(body)
            mine[:] = [new["id"], new["version"], new["geometry"]]

    async def run(self, deadline: float) -> None:
        actions = {"grid": self.grid, "facets": self.facets, "item": self.open_item, "thumb": self.thumb,
                   "render": self.render, "raw": self.raw, "next+verdict": self.verdict, "edit": self.edit}
        weights = {**READS, **WRITES[self.role]}
        names, w = list(weights), list(weights.values())
        while time.monotonic() < deadline:
            await actions[self.rng.choices(names, w)[0]]()


async def health_loop(http: Http, stats: Stats, deadline: float) -> None:
    while time.monotonic() < deadline:
        start = time.perf_counter()
        status, body = await http.request("GET", "/api/health")
        stats.add("GET /api/health", (time.perf_counter() - start) * 1000, status, "/api/health", body)


async def drive(port: int, server_pid: int, world: dict[str, Any], clients: int, seconds: float, warmup: float,
                baseline_seconds: float, on_measure: Any = None) -> tuple[Stats, Stats, float, dict[str, float]]:
    """The baseline, then the mix: one run of warm-up + measured seconds (no client waits for the others in
    between: an idle keep-alive connection would be closed by the server after 5 s); requests that start in the
    measured window are recorded."""
    base = Stats()
    deadline = time.monotonic() + baseline_seconds
    await asyncio.gather(*(health_loop(Http(port, None), base, deadline) for _ in range(clients)))
    stats = Stats(recording=False)
    users = world["clients"]
    crowd = [Client(Http(port, u["token"]), u["role"], random.Random(i), stats, world, queue_id=u.get("queue"),
                    owned=[list(a) for a in u.get("owned", ())]) for i, u in enumerate(users[:clients])]
    start = time.monotonic() + warmup
    usage: dict[str, float] = {}

    async def measure() -> None:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        stats.recording = True
        if on_measure is not None:
            on_measure()
        pids = descendants(server_pid)
        server_cpu, client_cpu, machine = cpu_seconds(pids), time.process_time(), machine_busy()
        await asyncio.sleep(max(0.0, start + seconds - time.monotonic()))
        stats.recording = False
        busy, total = (b - a for a, b in zip(machine, machine_busy(), strict=True))
        usage.update(server=cpu_seconds(pids) - server_cpu, client=time.process_time() - client_cpu,
                     machine=busy, capacity=total)

    await asyncio.gather(measure(), *(c.run(start + seconds) for c in crowd))
    return base, stats, seconds, usage


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


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (utime, stime of /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def server_rss_mb(root: int) -> tuple[float, int]:
    """RSS of `root` and all its descendants (uvicorn's supervisor and workers), MB, and how many processes."""
    total, count = 0, 0
    for pid in descendants(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    count += 1
        except OSError:
            pass
    return total / 1024, count


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
