"""Time per window/level frame of the client-side viewer in headless chromium, against a bare canvas loop.

Ours: the item page of a 512×512 DeepLesion key slice (generated in the real layout, indexed into a temporary
SQLite database, served by uvicorn in this process), driven through its JS API: `medviewViewer.setWindow(low, high)`
rebuilds the 65,536-entry LUT, maps the slice through it into an ImageData, puts it and draws the pane (zoom
transform, SVG overlay) — everything a W/L drag does per frame. Each frame ends with a 1-pixel getImageData on the
shown canvas, which forces chromium to rasterise the draw (otherwise it is deferred and not timed).
Bare: a minimal page, same canvas sizes, that only puts a precomputed 512×512 frame and draws it scaled onto the
display canvas, with the same flush. Prints ms/frame (median and p95 over N frames) and ours/bare; target < 8 ms.

    python bench/wl_frame.py [--frames 300] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 900}

OURS = """async (n) => {
  const v = window.medviewViewer; const base = v.state.window; const times = [];
  const pane = v.viewer.panes[0];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    v.setWindow(base[0] + (i % 200), base[1] + 2 * (i % 200));
    pane.ctx.getImageData(0, 0, 1, 1);
    times.push(performance.now() - t0);
  }
  return times; }"""

BARE = """async ([n, w, h]) => {
  const src = document.createElement('canvas'); src.width = 512; src.height = 512;
  const sctx = src.getContext('2d');
  const frame = sctx.createImageData(512, 512);
  for (let i = 0; i < frame.data.length; i++) frame.data[i] = (i * 7) & 255;
  const dst = document.createElement('canvas'); dst.width = w; dst.height = h; document.body.append(dst);
  const ctx = dst.getContext('2d', {alpha: false});
  const z = Math.min(w / 512, h / 512); const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    sctx.putImageData(frame, 0, 0);
    ctx.setTransform(z, 0, 0, z, (w - 512 * z) / 2, (h - 512 * z) / 2);
    ctx.drawImage(src, 0, 0);
    ctx.getImageData(0, 0, 1, 1);
    times.push(performance.now() - t0);
  }
  return times; }"""


def serve(tmp: Path) -> tuple[str, int]:
    """Generate and index the sample, start the app; returns (base URL, a 512×512 key-slice item id)."""
    import httpx
    import uvicorn

    from app.config import Settings
    from app.datasets.deeplesion.synth import generate_deeplesion
    from app.datasets.ingest import ingest_path
    from app.db.migrate import upgrade
    from app.db.session import make_engine
    from app.main import create_app

    sample = generate_deeplesion(tmp / "DeepLesion", patients=2, seed=1)
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    settings = Settings(_env_file=None, database_url=url, data_dir=tmp / "data", data_roots=str(tmp),
                        public_read=True)  # the page only reads; W/L frames never touch the server
    engine = make_engine(url)
    report = ingest_path(engine, settings, sample.root, kind="deeplesion", name="bench")
    engine.dispose()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    items = httpx.get(f"{base}/api/datasets/{report.dataset_id}/items").json()["items"]
    item = next(i for i in items if i["width"] == 512 and i["height"] == 512)
    return base, item["id"]


def summary(times: list[float]) -> tuple[float, float]:
    times = sorted(times[10:])  # the first frames warm up the JIT
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        base, item_id = serve(Path(tmp))
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{base}/items/{item_id}")
        page.wait_for_function("() => window.medviewViewer && window.medviewViewer.ready()")
        w, h = page.evaluate("() => { const c = window.medviewViewer.viewer.panes[0].canvas; "
                             "return [c.width, c.height]; }")
        print(f"512×512 int16 slice shown on a {w}×{h} canvas, {args.frames} frames per run")
        for run in range(args.runs):
            ours = summary(page.evaluate(OURS, args.frames))
            bare_page = browser.new_page(viewport=VIEWPORT)
            bare = summary(bare_page.evaluate(BARE, [args.frames, w, h]))
            bare_page.close()
            print(f"run {run + 1}: ours {ours[0]:.2f} ms/frame (p95 {ours[1]:.2f}) · bare {bare[0]:.2f} ms "
                  f"(p95 {bare[1]:.2f}) · ours/bare {ours[0] / bare[0]:.2f} · target < 8 ms: "
                  f"{'met' if ours[0] < 8 else 'MISSED'}")
        browser.close()


if __name__ == "__main__":
    main()
