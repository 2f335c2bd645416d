"""First pixel of the item viewer, and the cost of `/raw`, each against a bare baseline in the same run (issue 14).

1. **Browser.** Headless chromium opens an item page; the time from navigation start to the viewer's first frame
   with pixels (its `performance.mark("medview:first-draw")`, on the page's own clock). Baseline, same server, same
   run, same `/raw` URL: a bare page (`/bench/bare`, a dozen lines of HTML and one ES module served by this bench's
   server process) that fetches that URL, windows the int16 values through a lookup table into an ImageData,
   draws it on a canvas and marks `bare:first-draw` — the viewer's decoding path without the viewer. Every
   navigation is a fresh browser context (no HTTP cache: a first visit); the server's caches are warm for both
   (one visit each first). A DeepLesion key slice and a VerSe volume's first plane. Median of `--runs`;
   target: viewer ≤ 1.3 × bare.
2. **Server.** `/raw` of (item, slice) views never asked before (cold: PNG read + decode + gzip + HTTP), against
   a bare loop in this process over the same files: read the PNG, cv2 decode, to int16 HU, ISA-L gzip (level 2, as
   the server). Then the same views again (warm: from the response cache). Target: bare / cold ≥ 0.9.

    python bench/first_pixel.py [--runs 15] [--realdata ../shared/realdata/deeplesion] [--app-dir DIR]

`--app-dir` serves another checkout's `app/` (e.g. `git archive` of the commit before) with this bench, for a
before/after under the same conditions. The server is one uvicorn worker in a subprocess (as `medview serve`),
public read (the sign-in check is measured by bench/bench_auth.py).
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "realdata" / "deeplesion"
CHROMIUM = "/usr/bin/chromium"
TARGET_PAGE = 1.3
TARGET_RAW = 0.9

BARE_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>bare</title>
<script type="module" src="/bench/bare.js"></script></head><body style="margin:0;background:#000">
<canvas id="c"></canvas></body></html>"""
# the viewer's path in a few lines: fetch → Int16Array → 64k-entry LUT (pixels.js windowLut) → putImageData →
# drawImage on the shown canvas
BARE_JS = """const q = new URLSearchParams(location.search);
const low = Number(q.get("low")), high = Number(q.get("high"));
const r = await fetch(q.get("raw"));
const [h, w] = r.headers.get("x-shape").split(",").map(Number);
const values = new Int16Array(await r.arrayBuffer());
const lut = new Uint32Array(65536);
const scale = 255 / (high - low);
for (let n = 0; n < 65536; n++) {
  const g = Math.max(0, Math.min(255, Math.round((n - 32768 - low) * scale)));
  lut[n] = (0xff000000 | (g << 16) | (g << 8) | g) >>> 0;
}
const image = new OffscreenCanvas(w, h);
const data = image.getContext("2d").createImageData(w, h);
const words = new Uint32Array(data.data.buffer);
for (let p = 0; p < values.length; p++) words[p] = lut[values[p] + 32768];
image.getContext("2d").putImageData(data, 0, 0);
const canvas = document.getElementById("c");
canvas.width = innerWidth; canvas.height = innerHeight;
const z = Math.min(innerWidth / w, innerHeight / h);
canvas.getContext("2d").setTransform(z, 0, 0, z, 0, 0);
canvas.getContext("2d").drawImage(image, 0, 0);
performance.mark("bare:first-draw");
"""
MARK = "(name) => performance.getEntriesByName(name).at(-1)?.startTime ?? null"
FIRST_RAW = """() => { const v = window.medviewViewer.viewer, s = v.state, p = v.panes[0];
  return [v.url(s.raw_url, p.plane || "axial", v.sliceOf(p)), s.window[0], s.window[1]]; }"""


def bench_app():  # noqa: ANN201 - uvicorn's factory: the app plus the bare page's two routes
    from fastapi.responses import HTMLResponse, Response

    from app.main import create_app

    app = create_app()
    app.add_api_route("/bench/bare", lambda: HTMLResponse(BARE_HTML), include_in_schema=False)
    app.add_api_route("/bench/bare.js", lambda: Response(BARE_JS, media_type="text/javascript"),
                      include_in_schema=False)
    return app


def env_for(work: Path, data_roots: Path) -> dict[str, str]:
    return {"MEDVIEW_DATABASE_URL": f"sqlite:///{work / 'medview.db'}", "MEDVIEW_DATA_DIR": str(work / "data"),
            "MEDVIEW_DATA_ROOTS": f"{data_roots}:{work}", "MEDVIEW_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "MEDVIEW_PUBLIC_READ": "true"}


def serve(env: dict[str, str], app_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("import sys, uvicorn; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "uvicorn.run('bench.first_pixel:bench_app', factory=True, host='127.0.0.1', port=int(sys.argv[3]), "
            "log_level='warning')")
    proc = subprocess.Popen([sys.executable, "-c", code, str(app_dir), str(REPO), str(port)],
                            env={**os.environ, **env, "PYTHONPATH": f"{app_dir}:{REPO}"}, cwd=app_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start:\n" + (proc.stderr.read() if proc.stderr else b"").decode()[-2000:])


def get_json(port: int, path: str):  # noqa: ANN201
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", path)
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


IMAGE_PAINT = """() => new Promise((resolve) => {
  new PerformanceObserver((list) => {
    const e = list.getEntries().find((x) => x.identifier === "medview-first-image");
    if (e) resolve(e.renderTime || e.loadTime);
  }).observe({ type: "element", buffered: true });
  setTimeout(() => resolve(null), 3000);
})"""


def image_paint(page) -> float | None:  # noqa: ANN001
    """ms from navigation start to the paint of the item page's server-rendered image (Element Timing): the first
    CT pixels on screen, shown before any script runs and kept until the canvas has drawn."""
    value = page.evaluate(IMAGE_PAINT)
    return float(value) if value else None


def first_draw(page, url: str, mark: str) -> float:
    """ms from navigation start to `mark` on `page`."""
    page.goto(url)
    page.wait_for_function(f"() => ({MARK})({mark!r}) !== null", timeout=20000)
    return page.evaluate(MARK, mark)


class Browser:
    """Pages whose JavaScript errors end the bench; `fresh()` is a new context (empty HTTP cache: a first visit)."""

    def __init__(self, browser) -> None:  # noqa: ANN001
        self.browser = browser
        self.errors: list[str] = []

    def fresh(self):  # noqa: ANN201
        context = self.browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def once(self, url: str, mark: str, images: list[float] | None = None) -> float:
        page = self.fresh()
        try:
            ms = first_draw(page, url, mark)
            if images is not None and (painted := image_paint(page)) is not None:
                images.append(painted)
            return ms
        finally:
            page.context.close()


def first_raw(b: Browser, page_url: str) -> tuple[str, float, float]:
    """The viewer's own first `/raw` URL and window on `page_url` (the bare page fetches exactly that)."""
    page = b.fresh()
    first_draw(page, page_url, "medview:first-draw")
    raw, low, high = page.evaluate(FIRST_RAW)
    page.context.close()
    return raw, low, high


def bare_url(base: str, raw: str, low: float, high: float) -> str:
    from urllib.parse import urlencode

    return f"{base}/bench/bare?{urlencode({'raw': raw, 'low': low, 'high': high})}"


def page_bench(port: int, first_visit: dict[str, int], browse: list[int], runs: int) -> list[tuple[str, float, float]]:
    """Median ms to the first pixel, viewer and bare page, per case. First visit: a fresh browser context per
    navigation (every module, the stylesheet, the page and the slice over the network), the same item each time
    after one warm-up visit (the server's caches warm). Browsing: one context for the viewer and one for the bare
    page across navigations (static files from the browser's cache, as when going from item to item), a different
    item each time, each visited once before by a third context so the server's caches are warm for both."""
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    rows = []
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        b = Browser(chromium)
        for name, item_id in first_visit.items():
            page_url = f"{base}/items/{item_id}"
            bare = bare_url(base, *first_raw(b, page_url))
            b.once(bare, "bare:first-draw")
            viewer_ms, bare_ms, image_ms = [], [], []
            for n in range(runs):  # alternating, so drifts of the machine's load hit both
                pair = [(viewer_ms, page_url, "medview:first-draw", image_ms),
                        (bare_ms, bare, "bare:first-draw", None)]
                for out, url, mark, images in (pair if n % 2 == 0 else pair[::-1]):
                    out.append(b.once(url, mark, images))
            if image_ms:
                rows.append((f"{name}, first visit: server image", statistics.median(image_ms),
                             statistics.median(bare_ms)))
            rows.append((f"{name}, first visit: canvas", statistics.median(viewer_ms), statistics.median(bare_ms)))
        if browse:
            warm = b.fresh()
            targets = []
            for item_id in browse[:runs + 1]:
                page_url = f"{base}/items/{item_id}"
                first_draw(warm, page_url, "medview:first-draw")
                raw, low, high = warm.evaluate(FIRST_RAW)
                targets.append((page_url, bare_url(base, raw, low, high)))
            warm.context.close()
            viewer_page, bare_page = b.fresh(), b.fresh()
            first_draw(viewer_page, targets[0][0], "medview:first-draw")  # the static files into each cache
            first_draw(bare_page, targets[0][1], "bare:first-draw")
            viewer_ms, bare_ms = [], []
            for n, (page_url, bare) in enumerate(targets[1:]):
                pair = [(viewer_ms, viewer_page, page_url, "medview:first-draw"),
                        (bare_ms, bare_page, bare, "bare:first-draw")]
                for out, page, url, mark in (pair if n % 2 == 0 else pair[::-1]):
                    out.append(first_draw(page, url, mark))
            rows.append((f"DeepLesion, browsing ({len(viewer_ms)} items)", statistics.median(viewer_ms),
                         statistics.median(bare_ms)))
        chromium.close()
        if b.errors:
            raise SystemExit(f"JavaScript errors: {b.errors}")
    return rows


def raw_bench(port: int, views: list[tuple[int, int, int, Path]]) -> tuple[float, float, float]:
    """Median ms: bare read+decode+gzip loop, cold /raw, warm /raw (the views in the same order)."""
    import cv2
    import numpy as np
    from isal import igzip

    def bare_once(path: Path) -> float:
        t = time.perf_counter()
        data = path.read_bytes()
        hu = (cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).astype(np.int32) - 32768)
        body = igzip.compress(hu.astype("<i2").tobytes(), compresslevel=2)
        assert len(body) > 1000
        return time.perf_counter() - t

    def fetch(conn: http.client.HTTPConnection, item_id: int, slice_number: int, version: int) -> float:
        t = time.perf_counter()
        conn.request("GET", f"/api/items/{item_id}/raw?slice={slice_number}&v={version}")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and len(body) > 1000, (resp.status, body[:200])
        return time.perf_counter() - t

    for _, _, _, path in views[:5]:  # the loop's own warm-up (imports, first allocations)
        bare_once(path)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    bare, cold = [], []
    for item_id, slice_number, version, path in views:  # interleaved: the machine's load drifts hit both alike
        bare.append(bare_once(path))
        cold.append(fetch(conn, item_id, slice_number, version))
    warm = [fetch(conn, item_id, slice_number, version) for item_id, slice_number, version, _ in views]
    conn.close()
    return statistics.median(bare) * 1e3, statistics.median(cold) * 1e3, statistics.median(warm) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="navigations per page and kind (median)")
    ap.add_argument("--realdata", type=Path, default=DEFAULT_REAL, help="real DeepLesion samples (else generated)")
    ap.add_argument("--app-dir", type=Path, default=REPO, help="the checkout whose app is served")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/medview-bench/first-pixel"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))

    from app.config import Settings
    from app.datasets.deeplesion.synth import generate_deeplesion
    from app.datasets.ingest import ingest_path
    from app.datasets.verse.synth import generate_verse
    from app.db.migrate import upgrade
    from app.db.session import make_engine

    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    real = args.realdata.resolve()
    deeplesion = real if (real / "DL_info.csv").exists() else generate_deeplesion(work / "DeepLesion", patients=8,
                                                                                  seed=11).root
    verse = generate_verse(work / "verse", subjects=1, layout="bids", seed=3).root
    env = env_for(work, deeplesion.parent)
    settings = Settings(_env_file=None, database_url=env["MEDVIEW_DATABASE_URL"], data_dir=work / "data",
                        data_roots=env["MEDVIEW_DATA_ROOTS"])
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    dl = ingest_path(engine, settings, deeplesion, kind="deeplesion", name="deeplesion")
    vs = ingest_path(engine, settings, verse, kind="verse", name="verse")
    engine.dispose()
    server, port = serve(env, args.app_dir.resolve())
    try:
        listing = get_json(port, f"/api/datasets/{dl.dataset_id}/items?limit=500")["items"]
        details = [get_json(port, f"/api/items/{i['id']}") for i in listing]
        volume = get_json(port, f"/api/datasets/{vs.dataset_id}/items")["items"][0]["id"]
        views = [(d["id"], s, d["version"], deeplesion / "Images_png" / d["key"][:12] / f"{s:03d}.png")
                 for d in details for s in d["meta"]["slices"]]
        views = [v for v in views if v[3].exists()]
        print(f"server: {args.app_dir.resolve()}; {len(details)} DeepLesion key slices ({deeplesion}), "
              f"{len(views)} slice views; VerSe volume item {volume}; {args.runs} navigations per page")
        bare_ms, cold_ms, warm_ms = raw_bench(port, views)
        print(f"/raw  bare read+decode+gzip {bare_ms:.2f} ms · cold {cold_ms:.2f} ms (ratio bare/cold "
              f"{bare_ms / cold_ms:.2f}, target ≥ {TARGET_RAW}) · warm (cached) {warm_ms:.2f} ms")
        rows = page_bench(port, {"DeepLesion key slice": details[0]["id"], "VerSe volume (axial)": volume},
                          [d["id"] for d in details[1:]], args.runs)
        for name, viewer, bare in rows:
            print(f"first pixel  {name:<34} viewer {viewer:6.1f} ms · bare page {bare:6.1f} ms · ratio "
                  f"{viewer / bare:.2f} (target ≤ {TARGET_PAGE})")
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
