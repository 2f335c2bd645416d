"""Windowed key-slice renders through HTTP against the bare floor loop of PERFORMANCE.md.

Ours: `medview serve` (uvicorn, 1 worker) on 127.0.0.1 with the real DeepLesion samples indexed;
sequential keep-alive requests cycling over the real slices, each with a window never asked before
(so no rendered response can come from cache; decoded slices may, after one warm-up pass).
Floor: in this process, per slice: cv2.imread → np.clip + cv2.convertScaleAbs → cv2.imencode.
Prints per-image times and floor/ours ratios (target ≥ 0.7 for JPEG and PNG).

    python bench/render_http.py [--requests 400] [--realdata ../shared/realdata/deeplesion]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "realdata" / "deeplesion"
MEDVIEW = Path(sys.executable).with_name("medview")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def floor_loop(files: list[Path], n: int, fmt: str) -> float:
    """Median seconds per image for the bare decode → window → encode loop."""
    times = []
    for i in range(n):
        low = -1000 + (i % 700)
        high = low + 400 + (i % 13)
        t = time.perf_counter()
        hu = cv2.imread(str(files[i % len(files)]), cv2.IMREAD_UNCHANGED).astype(np.int32) - 32768
        alpha = 255.0 / (high - low)
        grey = cv2.convertScaleAbs(np.clip(hu, low, high), alpha=alpha, beta=-low * alpha)
        if fmt == "jpeg":
            ok, buf = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 90])
        else:
            ok, buf = cv2.imencode(".png", grey, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        assert ok and len(buf) > 1000
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def http_loop(port: int, ids: list[int], n: int, fmt: str, overlays: str, offset: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for i in range(n):
        low = -1000 + ((i + offset) % 997)
        high = low + 400 + ((i + offset) % 17) + 0.5  # a window never asked before
        path = f"/api/items/{ids[i % len(ids)]}/render?format={fmt}&window={low},{high}&overlays={overlays}"
        t = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        times.append(time.perf_counter() - t)
        assert resp.status == 200 and len(body) > 1000, (resp.status, body[:200])
    conn.close()
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--realdata", type=Path, default=DEFAULT_REAL)
    args = ap.parse_args()
    real = args.realdata.resolve()
    if not (real / "DL_info.csv").exists():
        print(f"real DeepLesion samples not found at {real}")
        return 1
    files = sorted((real / "Images_png").glob("*/*.png"))
    tmp = Path(tempfile.mkdtemp(prefix="medview-bench-render-"))
    env = dict(os.environ, MEDVIEW_DATABASE_URL=f"sqlite:///{tmp}/mv.db", MEDVIEW_DATA_DIR=str(tmp / "data"),
               MEDVIEW_DATA_ROOTS=str(real.parent),
               MEDVIEW_PUBLIC_READ="true")  # reads only: the sign-in check is measured by facets_scale.py
    subprocess.run([str(MEDVIEW), "ingest", str(real), "--name", "bench", "--quiet"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    server = subprocess.Popen([str(MEDVIEW), "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/api/datasets/1/items?limit=500")
        import json

        ids = [it["id"] for it in json.loads(conn.getresponse().read())["items"]]
        conn.close()
        print(f"{len(files)} real slices, {len(ids)} items, {args.requests} requests per run")
        http_loop(port, ids, len(ids) * 2, "jpeg", "none", offset=50_000)  # warm decoded-slice cache
        rows = []
        for fmt in ("jpeg", "png"):
            floor = floor_loop(files, args.requests, fmt)
            ours = http_loop(port, ids, args.requests, fmt, "none", offset=0 if fmt == "jpeg" else 7000)
            ours_gt = http_loop(port, ids, args.requests, fmt, "gt", offset=20_000 if fmt == "jpeg" else 30_000)
            rows.append((fmt, floor, ours, ours_gt))
        print(f"{'format':<6} {'floor ms':>9} {'ours ms':>8} {'ratio':>6}   {'ours+overlay ms':>15} {'ratio':>6}")
        for fmt, floor, ours, ours_gt in rows:
            print(f"{fmt:<6} {floor * 1e3:9.2f} {ours * 1e3:8.2f} {floor / ours:6.2f}   "
                  f"{ours_gt * 1e3:15.2f} {floor / ours_gt:6.2f}")
        print("target: ratio >= 0.7 for both formats (floor = cv2 decode + clip/convertScaleAbs + cv2 encode)")
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
