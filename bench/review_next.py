"""Review mode's verdict → next item: the time from the verdict key press (Shift+A) on one item to the first pixels
of the next item on screen, over ~20 generated DeepLesion key slices in headless chromium (target: p50 under 150 ms
on this machine). Baseline in the same run and browser: a bare page that fetches the same next item's raw slice (no
cache) and draws it on a canvas (window + putImageData, then one animation frame), the floor any viewer pays.

A verdict normally swaps the prefetched next item into the page (static/js/viewer/review.js): then "on screen" is
the animation frame after the viewer's `medview:first-draw` mark for that item (a mark per item, its
`detail.item`); when it navigates instead (the fallback), the new page's mark, as before. Both are counted and
timed separately. `--navigate` turns the swap off (sessionStorage `medview.reviewSwap` = `off`): every verdict
navigates, the full page load the swap replaced, for a comparison under the same load.

    python bench/review_next.py [--items 20] [--workdir /tmp/medview-bench/review-next]

The app runs as `medview serve` in a subprocess (SQLite, the generated sample ingested), the reviewer signed in by
cookie. The next item's first pixels: the viewer marks `performance.mark("medview:first-draw")` (and
`data-drawn-item` on the root element) on its first frame with pixels; the key press time is taken right before
the press (same clock: performance.timeOrigin + the mark's startTime is epoch ms). `--phases` prints each item's
timeline (swapped: the mark and the frame; navigated: verdict sent, HTML, DOM, raw slice, first draw).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_MS = 150.0
CHROMIUM = "/usr/bin/chromium"
DRAWN = "(id) => document.documentElement.dataset.drawnItem === String(id) && " \
        "document.getElementById('review-bar')?.dataset.ready === '1'"
FIRST_DRAW_EPOCH = "() => performance.timeOrigin + performance.getEntriesByName('medview:first-draw').at(-1).startTime"
# before the press: the animation frame after the next item's first-draw mark (the swap keeps the page, so this
# observer sees it; a navigation loses it and the new page's mark is used)
WATCH = """(id) => { window.__benchPainted = null;
  new PerformanceObserver((list, obs) => {
    for (const e of list.getEntries()) {
      if (e.name === "medview:first-draw" && e.detail?.item === id) {
        obs.disconnect();
        requestAnimationFrame(() => { window.__benchPainted = performance.timeOrigin + performance.now(); });
      }
    }
  }).observe({ type: "mark" }); }"""
SWAPS = "() => Number(document.getElementById('review-bar')?.dataset.swaps || 0)"
PHASES = """() => { const n = performance.getEntriesByType("navigation")[0];
  const raw = performance.getEntriesByType("resource").find((r) => r.name.includes("/raw"));
  return { origin: performance.timeOrigin, response: n.responseStart, html_from_cache: n.transferSize === 0,
           dom: n.domInteractive, raw_start: raw ? raw.startTime : null, raw_end: raw ? raw.responseEnd : null,
           raw_cached: raw ? raw.transferSize === 0 : null,
           draw: performance.getEntriesByName("medview:first-draw").at(-1).startTime }; }"""
BARE = """async ([url, low, high]) => {
  const t0 = performance.now();
  const r = await fetch(url, { cache: "no-store", headers: { accept: "application/octet-stream" } });
  const [h, w] = r.headers.get("x-shape").split(",").map(Number);
  const values = new Int16Array(await r.arrayBuffer());
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  document.body.replaceChildren(canvas);
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const scale = 255 / (high - low);
  for (let n = 0; n < values.length; n++) {
    const g = Math.max(0, Math.min(255, (values[n] - low) * scale));
    img.data[4 * n] = img.data[4 * n + 1] = img.data[4 * n + 2] = g; img.data[4 * n + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  await new Promise(requestAnimationFrame);
  return performance.now() - t0;
}"""


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def serve(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`medview serve` (this checkout's app) in a subprocess on the bench's database: the browser's process and
    the server's do not share a GIL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **ENV(work), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start:\n" + (proc.stderr.read() if proc.stderr else b"").decode()[-2000:])


def ENV(work: Path) -> dict[str, str]:  # noqa: N802 - the environment of the bench's app
    return {"MEDVIEW_DATABASE_URL": f"sqlite:///{work / 'medview.db'}", "MEDVIEW_DATA_DIR": str(work / "data"),
            "MEDVIEW_DATA_ROOTS": str(work), "MEDVIEW_ALLOWED_HOSTS": "127.0.0.1,localhost"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=20, help="verdicts timed (the queue holds one more)")
    ap.add_argument("--phases", action="store_true", help="print each item's timeline")
    ap.add_argument("--navigate", action="store_true", help="no swap: every verdict loads the next page")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/medview-bench/review-next"))
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from app.api.security import SESSION_COOKIE
    from app.config import Settings
    from app.datasets.deeplesion.synth import generate_deeplesion
    from app.datasets.ingest import ingest_path
    from app.db.migrate import upgrade
    from app.db.session import make_engine
    from tests.helpers.auth import api_token, session_cookie

    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sample = generate_deeplesion(work / "DeepLesion", patients=max(8, args.items // 2), seed=11)
    settings = Settings(_env_file=None, database_url=f"sqlite:///{work / 'medview.db'}", data_dir=work / "data",
                        data_roots=str(work), allowed_hosts="127.0.0.1,localhost")
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    report = ingest_path(engine, settings, sample.root, kind="deeplesion", name="bench")
    engine.dispose()
    token = {"Authorization": f"Bearer {api_token(settings, 'rev', 'reviewer')}"}
    cookie = session_cookie(settings, "rev", "reviewer")
    server, base = serve(work)
    try:
        with httpx.Client(base_url=base, headers=token) as api:
            r = api.post("/api/review/queues", json={"name": "bench", "dataset_id": report.dataset_id,
                                                     "filters": {}, "sort": "id", "limit": args.items + 1})
            r.raise_for_status()
            qid, total = r.json()["id"], r.json()["progress"]["items"]
            ids = [i["id"] for i in api.get(f"/api/datasets/{report.dataset_id}/items",
                                            params={"sort": "id", "limit": total}).json()["items"]]
            details = {i: api.get(f"/api/items/{i}").json() for i in ids}
        if total < 3:
            raise SystemExit(f"the sample has only {total} items")
        review: list[float] = []
        bare: list[float] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "domain": "127.0.0.1", "path": "/"}])
            if args.navigate:
                context.add_init_script("sessionStorage.setItem('medview.reviewSwap', 'off')")
            page = context.new_page()
            page.goto(f"{base}/review/queues/{qid}/start")
            page.wait_for_function(DRAWN, arg=ids[0], timeout=20000)
            swapped: list[float] = []
            navigated: list[float] = []
            for n in range(1, total):
                # the reader looks at the item while its next one is prefetched
                page.wait_for_selector(f"#review-bar[data-prefetched='{ids[n]}']", state="attached")
                page.evaluate(WATCH, ids[n])
                swaps = page.evaluate(SWAPS)
                pressed = time.time() * 1000
                page.keyboard.press("Shift+A")
                page.wait_for_function(DRAWN, arg=ids[n], timeout=20000)
                if page.evaluate(SWAPS) > swaps:  # swapped in: the frame after its first-draw mark
                    page.wait_for_function("() => window.__benchPainted !== null")
                    drawn = page.evaluate(FIRST_DRAW_EPOCH) - pressed
                    review.append(page.evaluate("() => window.__benchPainted") - pressed)
                    swapped.append(review[-1])
                    if args.phases:
                        print(f"  item {ids[n]}: swapped, drawn {drawn:.0f} ms, on screen {review[-1]:.0f} ms")
                    continue
                review.append(page.evaluate(FIRST_DRAW_EPOCH) - pressed)
                navigated.append(review[-1])
                if args.phases:
                    ph = page.evaluate(PHASES)
                    print(f"  item {ids[n]}: {review[-1]:.0f} ms = leave {ph['origin'] - pressed:.0f} (verdict POST) + "
                          f"HTML {ph['response']:.0f} (cache {ph['html_from_cache']}) · DOM {ph['dom']:.0f} · raw "
                          f"{ph['raw_start'] or 0:.0f}–{ph['raw_end'] or 0:.0f} (cache {ph['raw_cached']}) · "
                          f"drawn {ph['draw']:.0f}")
            bare_page = context.new_page()
            bare_page.goto(f"{base}/api/health")
            for i in ids[1:]:
                d = details[i]
                url = f"{base}/api/items/{i}/raw?slice={d['slice']}&v={d['version']}"
                low, high = d["window"] or [-1000, 1000]
                bare.append(bare_page.evaluate(BARE, [url, low, high]))
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    p50, p95 = statistics.median(review), pct(review, 95)
    b50, b95 = statistics.median(bare), pct(bare, 95)
    print(f"{len(review)} verdicts ({len(swapped)} swapped in, {len(navigated)} navigated), DeepLesion 512×512 int16 "
          f"key slices, headless chromium, load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<44}{'p50 ms':>9}{'p95 ms':>9}")
    print(f"{'verdict key → next item first pixels':<44}{p50:>9.1f}{p95:>9.1f}")
    print(f"{'bare: fetch raw slice + draw on a canvas':<44}{b50:>9.1f}{b95:>9.1f}")
    print(f"ratio p50 {p50 / b50:.1f}×, p95 {p95 / b95:.1f}×; target p50 < {TARGET_MS:.0f} ms: "
          f"{'met' if p50 < TARGET_MS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
