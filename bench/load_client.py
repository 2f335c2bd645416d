"""bench/load.py's client side: the simulated users (one keep-alive HTTP/1.1 connection each, asyncio streams: a
minimal client, cheap because it shares the cores with the server), their request mix, the timing, and the /proc
readings of the server's CPU and memory."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

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
