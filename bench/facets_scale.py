"""Facet counts and filtered keyset pages over HTTP at 1 M items (target: p95 under 50 ms on SQLite).

    python bench/facets_scale.py [--root /tmp/medview-bench/pcam-1m] [--rounds 20]

The database is bench/make_pcam_1m.py's (1,114,112 PCam items: train 1,048,576, valid and test 32,768 each,
810 slides), generated and indexed on first use. `medview serve` (uvicorn, 1 worker) runs in a subprocess;
requests are sequential on one keep-alive connection. Mix, per round:
- /facets under 8 filter combinations (none, split, label, split+label, slide, split+slide, two slides, label+slide);
- /items first pages under the same filters, the deep page (following 20 cursors from a random offset), sorted
  pages (label, -label, split) and an offset jump;
- review facets live: each round also filters by the derived review facets (reviewer, edited, review_status) and
  POSTs one verdict on a random item, so the next /facets pays the live sync (app.catalog.counts.sync: one MAX
  over facet_changes, then only the changed items re-read) — reported as "facets after a verdict";
Baselines in the same run: GET /api/health over the same connection (the HTTP framework floor), and the
plain SQL a naive implementation would run per facet request (GROUP BY label/split under a filter, raw sqlite3).
Prints p50/p95 per kind, and p95 against the health floor.

Memory (issue 13): the facet index is first built in a fresh child process that has imported what a worker
imports; its RSS before the build, its peak during it (VmHWM, reset just before) and its settled RSS after are
printed, per million items and as the ratio peak/settled (target <= 1.5, whole process as a worker sees it; the
build's own increase is printed beside). The served worker's RSS is printed after start-up (the index built)
and after the rounds, so growth under load shows.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from bench_auth import auth_headers, bench_token  # noqa: E402
from make_pcam_1m import DEFAULT_ROOT, ensure  # noqa: E402

TARGET_MS = 50.0
TARGET_PEAK_RATIO = 1.5
BUILD_CHILD = r"""
import gc, json, os, re, sys, time

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def peak_mib():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024

import app.main  # everything a worker has loaded before its first build
from app.catalog.counts import build_index
from app.db.models import Dataset
from app.db.session import make_engine, make_session_factory

engine = make_engine(sys.argv[1])
with make_session_factory(engine)() as session:
    ds = session.get(Dataset, int(sys.argv[2]))
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak from here on: the imports' own peak does not count
    base = rss_mib()
    start = time.perf_counter()
    index = build_index(session, ds)
    seconds = time.perf_counter() - start
    peak = peak_mib()
gc.collect()
print(json.dumps({"items": index.total, "cells": len(index.cells), "seconds": seconds, "base": base, "peak": peak,
                  "settled": rss_mib()}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                            env={**env, "PYTHONPATH": str(REPO)}, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/health")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start:\n" + proc.stderr.read().decode()[-2000:])


class Client:
    def __init__(self, port: int, headers: dict[str, str] | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = headers or {}

    def get(self, path: str, method: str = "GET", body: bytes | None = None) -> tuple[float, bytes]:
        start = time.perf_counter()
        headers = {**self.headers, "content-type": "application/json"} if body else self.headers
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        body = r.read()
        ms = (time.perf_counter() - start) * 1000
        if r.status not in (200, 201):
            raise SystemExit(f"{path}: HTTP {r.status} {body[:300]!r}")
        return ms, body


def build_memory(db: Path) -> dict:
    """The facet index of dataset 1 built in a fresh process of this checkout: items, seconds, RSS in MiB."""
    out = subprocess.run([sys.executable, "-c", BUILD_CHILD, f"sqlite:///{db}", "1"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    if out.returncode:
        raise SystemExit("facet index build failed:\n" + out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_build_memory(m: dict) -> None:
    per_m = 1e6 / max(m["items"], 1)
    ratio = m["peak"] / m["settled"]
    grew, kept = m["peak"] - m["base"], m["settled"] - m["base"]
    print(f"facet index build in a fresh process: {m['items']:,} items in {m['cells']:,} cells, {m['seconds']:.1f} s")
    print(f"  RSS before {m['base']:.0f} MiB, peak {m['peak']:.0f} MiB, settled {m['settled']:.0f} MiB; "
          f"per million items: peak +{grew * per_m:.0f} MiB, settled +{kept * per_m:.0f} MiB")
    print(f"  peak/settled {ratio:.2f} ({'meets' if ratio <= TARGET_PEAK_RATIO else 'MISSES'} the "
          f"{TARGET_PEAK_RATIO} target); the build's own increase, peak/settled: {grew / max(kept, 1e-9):.2f}")


def process_memory(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()

    def kib(key: str) -> float:
        found = re.search(rf"{key}:\s+(\d+)", status)
        return int(found.group(1)) / 1024 if found else float("nan")

    return kib("VmRSS"), kib("VmHWM")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def filter_sets(db: Path, rng: random.Random) -> list[dict[str, list[str]]]:
    con = sqlite3.connect(db)
    slides = [r[0] for r in con.execute("SELECT external_id FROM series ORDER BY id")]
    con.close()
    train = [s for s in slides if "_train_" in s]
    return [{}, {"split": ["train"]}, {"label": ["1"]}, {"split": ["valid"], "label": ["1"]},
            {"slide": [rng.choice(slides)]}, {"split": ["train"], "slide": [rng.choice(train)]},
            {"slide": rng.sample(slides, 2)}, {"label": ["0"], "slide": [rng.choice(train)]},
            {"reviewer": ["bench"]}, {"edited": ["no"], "split": ["train"]},
            {"review_status": ["accepted", "rejected"], "label": ["1"]}]


def url(path: str, filters: dict[str, list[str]], **extra) -> str:
    pairs = [(f, v) for f, vs in filters.items() for v in vs] + [(k, str(v)) for k, v in extra.items()]
    return f"{path}?{urlencode(pairs)}" if pairs else path


def bare_sql(db: Path, sets: list[dict[str, list[str]]], rounds: int) -> list[float]:
    """What a naive /facets costs: GROUP BY split and label under the column filters, straight on sqlite3."""
    con = sqlite3.connect(db)
    out = []
    for _ in range(rounds):
        for f in sets:
            where = " AND ".join(f"{c} IN ({','.join('?' * len(f[c]))})" for c in ("split", "label") if c in f)
            args = [v for c in ("split", "label") if c in f for v in f[c]]
            start = time.perf_counter()
            for col in ("split", "label"):
                con.execute(f"SELECT {col}, count(*) FROM items WHERE dataset_id=1 {'AND ' + where if where else ''} "
                            f"GROUP BY {col}", args).fetchall()
            out.append((time.perf_counter() - start) * 1000)
    con.close()
    return out


def run(root: Path, rounds: int, seed: int) -> dict[str, list[float]]:
    db, env = ensure(root)
    rng = random.Random(seed)
    sets = filter_sets(db, rng)
    print_build_memory(build_memory(db))
    proc, port = start_server(env, root)
    try:
        c = Client(port, auth_headers(bench_token(env)))  # signed in, as every user is
        cold, _ = c.get("/api/datasets/1/facets")  # builds the facet index (once per dataset version)
        print(f"first /facets after start (builds the facet index): {cold:.0f} ms")
        rss, hwm = process_memory(proc.pid)
        print(f"served worker after start-up: RSS {rss:.0f} MiB, peak so far {hwm:.0f} MiB")
        times: dict[str, list[float]] = {k: [] for k in ("health", "facets", "first page", "deep page", "sorted page",
                                                         "jump (offset)", "verdict (POST)",
                                                         "facets after a verdict")}
        n_items = json.loads(c.get("/api/datasets/1/items?limit=1")[1])["total"]
        first_id = json.loads(c.get("/api/datasets/1/items?limit=1")[1])["items"][0]["id"]
        for _ in range(rounds):
            for _ in range(3):  # another reviewer's verdict: the next read syncs the changed item
                verdict = json.dumps({"verdict": rng.choice(["accept", "reject"])}).encode()
                item = first_id + rng.randrange(n_items)
                times["verdict (POST)"].append(c.get(f"/api/items/{item}/reviews", "POST", verdict)[0])
                times["facets after a verdict"].append(c.get(url("/api/datasets/1/facets", rng.choice(sets)))[0])
            for f in sets:
                times["health"].append(c.get("/api/health")[0])
                times["facets"].append(c.get(url("/api/datasets/1/facets", f))[0])
                ms, body = c.get(url("/api/datasets/1/items", f, limit=64))
                times["first page"].append(ms)
                total = json.loads(body)["total"]
                ms, body = c.get(url("/api/datasets/1/items", f, limit=64, offset=rng.randrange(max(1, total))))
                times["jump (offset)"].append(ms)
                cursor = json.loads(body)["next_cursor"]
                for _ in range(20 if cursor else 0):
                    ms, body = c.get(url("/api/datasets/1/items", f, limit=64, cursor=cursor))
                    times["deep page"].append(ms)
                    cursor = json.loads(body)["next_cursor"]
                    if not cursor:
                        break
                sort = rng.choice(["label", "-label", "split"])
                ms, body = c.get(url("/api/datasets/1/items", f, limit=64, sort=sort))
                times["sorted page"].append(ms)
                cursor = json.loads(body)["next_cursor"]
                if cursor:
                    times["sorted page"].append(c.get(url("/api/datasets/1/items", f, limit=64, sort=sort,
                                                          cursor=cursor))[0])
        rss_after, hwm_after = process_memory(proc.pid)
        print(f"served worker after {rounds} rounds: RSS {rss_after:.0f} MiB (+{rss_after - rss:.0f}), "
              f"peak {hwm_after:.0f} MiB")
        times["bare SQL GROUP BY (no HTTP)"] = bare_sql(db, sets, max(2, rounds // 4))
        return times
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    times = run(args.root.expanduser().resolve(), args.rounds, args.seed)
    floor = pct(times["health"], 95)
    print(f"\n{'request':<28}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p95/health':>12}")
    for name, values in times.items():
        p95 = pct(values, 95)
        print(f"{name:<28}{len(values):>6}{statistics.median(values):>9.2f}{p95:>9.2f}{p95 / floor:>12.1f}")
    worst = max(pct(times[k], 95) for k in ("facets", "first page", "deep page", "sorted page",
                                            "facets after a verdict"))
    print(f"\nworst p95 of facets/pages: {worst:.1f} ms ({'meets' if worst < TARGET_MS else 'MISSES'} the "
          f"{TARGET_MS:.0f} ms target); health floor p95 {floor:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
