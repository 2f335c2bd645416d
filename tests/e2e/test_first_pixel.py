"""First pixel (docs/viewer.md): the item page preloads the first slice's `/raw` and the viewer's modules, the
viewer's own fetch is answered by that preload (one request per URL, no second one), every module the page loads
was preloaded, and the server-rendered image shows until the canvas has drawn, then the canvas replaces it in the
same frame (never an empty canvas on screen). A DeepLesion key slice and a VerSe volume's three planes."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import pytest

from app.api.security import SESSION_COOKIE
from app.datasets.ingest import ingest_path
from app.datasets.verse.synth import generate_verse
from tests.e2e.conftest import VIEWPORT
from tests.e2e.deeplesion_items import pick_item
from tests.helpers.auth import session_cookie
from tests.helpers.live import live_get

pytestmark = pytest.mark.browser

READY = "() => window.medviewViewer && window.medviewViewer.ready()"
# Before any script runs (parsing done, deferred modules not yet run): is the server image laid out, the panes not?
# And when the viewer swaps (the viewport turns `live`, the first frame drawn in the same task): is the server image
# gone and the canvas already painted? A MutationObserver runs before the browser can paint that task's result.
WATCH = """
document.addEventListener("readystatechange", () => {
  if (document.readyState !== "interactive" || window.__firstPixel) return;
  const img = document.getElementById("slice-image");
  const viewport = document.getElementById("viewport");
  const shown = img.getBoundingClientRect().width > 0 && getComputedStyle(img).display !== "none";
  window.__firstPixel = { before: { img: shown, live: viewport.classList.contains("live") } };
  new MutationObserver((_, obs) => {
    if (!viewport.classList.contains("live")) return;
    obs.disconnect();
    const canvas = viewport.querySelector(".pane-canvas");
    const ctx = canvas.getContext("2d");
    const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let lit = 0;
    for (let n = 0; n < d.length; n += 4 * 97) if (d[n] || d[n + 1] || d[n + 2]) lit++;
    window.__firstPixel.swap = { img: getComputedStyle(img).display !== "none", lit,
                                 drawn: performance.getEntriesByName("medview:first-draw").length };
  }).observe(viewport, { attributes: true, attributeFilter: ["class"] });
});
"""


def open_recording(page, url: str) -> tuple[list[str], list[str]]:
    """Open `url` with the watcher installed; the /raw and /mask, and the static JS URLs the page requested, in
    order."""
    raws: list[str] = []
    scripts: list[str] = []
    page.add_init_script(WATCH)

    def seen(request) -> None:
        parts = urlsplit(request.url)
        if parts.path.endswith(("/raw", "/mask")):
            raws.append(f"{parts.path}?{parts.query}")
        elif parts.path.endswith(".js"):
            scripts.append(request.url)
    page.on("request", seen)
    page.goto(url)
    page.wait_for_function(READY)
    return raws, scripts


def preloads(page) -> tuple[list[str], set[str]]:
    raws = page.eval_on_selector_all('link[rel="preload"][as="fetch"]',
                                     "ls => ls.map(l => [l.getAttribute('href'), l.crossOrigin])")
    assert all(mode == "anonymous" for _, mode in raws)  # fetch()'s default credentials mode: same-origin
    modules = page.eval_on_selector_all('link[rel="modulepreload"]', "ls => ls.map(l => l.href)")
    return [href for href, _ in raws], set(modules)


def test_deeplesion_first_slice_comes_from_the_preload(page, live_server, ingested):
    item = pick_item(live_server, ingested.dataset_id)
    raws, scripts = open_recording(page, f"{live_server}/items/{item['id']}")
    preloaded, modules = preloads(page)
    assert preloaded == [f"/api/items/{item['id']}/raw?slice={item['slice']}&v={item['version']}"]
    # the key slice was asked once (the preload); the prefetch of its neighbours comes after it
    assert raws[0] == preloaded[0] and Counter(raws)[preloaded[0]] == 1, raws
    viewer = {u for u in scripts if "/js/viewer/" in u}  # the page's other scripts (item-nav.js) are not on its path
    later = {u.rsplit("/", 1)[1] for u in viewer - modules}
    assert len(viewer) > 5 and later == {"edit.js", "comments.js", "brush.js"}, later  # the rest was preloaded
    # the editing tools' modules are asked for only after the first frame: they are not on its path
    after = page.evaluate("""() => { const drawn = performance.getEntriesByName("medview:first-draw")[0].startTime;
        return performance.getEntriesByType("resource")
            .filter((e) => /viewer\\/(edit|comments|brush)\\.js/.test(e.name)).map((e) => e.startTime - drawn); }""")
    assert len(after) == 3 and min(after) > 0, after
    first = page.evaluate("() => window.__firstPixel")
    assert first["before"] == {"img": True, "live": False}  # the server image first, the canvas hidden
    swap = first["swap"]
    assert swap["img"] is False and swap["drawn"] == 1 and swap["lit"] > 50, swap  # replaced by a drawn canvas
    assert page.evaluate("() => document.documentElement.dataset.drawnItem") == str(item["id"])


def test_volume_three_planes_each_preloaded(page, live_server, engine, settings, tmp_path):
    tree = generate_verse(tmp_path / "verse", subjects=1, layout="bids", seed=3)
    report = ingest_path(engine, settings, tree.root, kind="verse", name="verse")
    item = live_get(f"{live_server}/api/datasets/{report.dataset_id}/items").json()["items"][0]
    raws, _ = open_recording(page, f"{live_server}/items/{item['id']}?layout=three&at=40,70,50")
    preloaded, _ = preloads(page)
    v = item["version"]
    views = [f"plane={p}&slice={s}&v={v}" for p, s in (("axial", 50), ("coronal", 70), ("sagittal", 40))]
    # each plane's raw values, then its vertebra mask: the first frame waits for both
    assert preloaded == [f"/api/items/{item['id']}/{what}?{view}" for what in ("raw", "mask") for view in views]
    counts = Counter(raws)
    assert all(counts[u] == 1 for u in preloaded), raws  # the viewer took each preloaded response, none twice
    assert set(raws[:6]) == set(preloaded), raws
    first = page.evaluate("() => window.__firstPixel")
    assert first["before"]["img"] and first["swap"]["img"] is False and first["swap"]["lit"] > 20


def test_editing_tools_that_cannot_load_are_said_not_hidden(browser, live_server, settings, ingested):
    """The editor's module refused (twice: the viewer tries once more a second later): the slice is still drawn,
    the viewport says the tools could not be loaded, the page reports the error, and `ready()` stays false."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_cookies([{"name": SESSION_COOKIE, "value": session_cookie(settings), "domain": "127.0.0.1",
                          "path": "/", "httpOnly": True, "sameSite": "Lax"}])
    page = context.new_page()
    refused: list[str] = []
    page.route("**/js/viewer/edit.js", lambda route: (refused.append(route.request.url), route.abort()))
    item = pick_item(live_server, ingested.dataset_id)
    try:
        with page.expect_event("pageerror") as reported:
            page.goto(f"{live_server}/items/{item['id']}")
        assert "edit.js" in str(reported.value)
        assert page.evaluate("() => document.documentElement.dataset.drawnItem") == str(item["id"])
        box = page.locator("#image-error")
        assert box.is_visible() and "editing tools could not be loaded" in box.inner_text()
        assert page.evaluate(READY) is False and len(refused) >= 1
    finally:
        context.close()
