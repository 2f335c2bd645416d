"""The client-side viewer in Debian chromium on DeepLesion key slices: displayed canvas pixels against the window
formula with HU read independently from the slice PNG (W/L drag, presets, invert), zoom about the pointer, slice
scrolling, the RECIST overlay as SVG at the annotation's coordinates, measurements in mm against the item's pixel
spacing, the URL round trip, and a screenshot that is not blank."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
from PIL import Image

from tests.e2e.deeplesion_items import pick_item, slice_hu
from tests.helpers.browser import flush_view_url, viewer_redrawn

pytestmark = pytest.mark.browser

READY = "() => window.medviewViewer && window.medviewViewer.ready()"


def grey(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip(np.rint(np.clip((hu - low) / (high - low), 0, 1) * 255), 0, 255)


def sample_points(hu: np.ndarray, n: int = 60) -> list[tuple[int, int]]:
    """Points spread over the body (not background air), deterministic."""
    rng = np.random.default_rng(0)
    ys, xs = np.nonzero(hu > -500)
    pick = rng.choice(len(xs), size=n, replace=False)
    return [(int(xs[i]), int(ys[i])) for i in pick]


def shown(page, pts, pane: int = 0) -> np.ndarray:
    return np.array(page.evaluate("([n, pts]) => pts.map(([x, y]) => window.medviewViewer.pixel(n, x, y))",
                                  [pane, [list(p) for p in pts]]), dtype=np.float64)


def state(page) -> dict:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.medviewViewer.state))")


def open_item(page, base: str, item_id: int, query: str = "") -> None:
    page.goto(f"{base}/items/{item_id}{query}")
    page.wait_for_function(READY)


def to_screen(page, x: float, y: float, pane: int = 0) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) of a pane."""
    left, top, _, _ = page.evaluate("(n) => window.medviewViewer.paneBox(n)", pane)
    sx, sy = page.evaluate("([n, x, y]) => window.medviewViewer.screen(n, x, y)", [pane, x, y])
    return left + sx, top + sy


def test_window_level_drag_presets_and_invert(page, live_server, ingested, deeplesion_sample):
    item = pick_item(live_server, ingested.dataset_id)
    hu = slice_hu(deeplesion_sample.root, item["key"], item["slice"])
    pts = sample_points(hu)
    values = np.array([hu[y, x] for x, y in pts])
    open_item(page, live_server, item["id"], "?zoom=1")  # 1:1: one canvas pixel per stored pixel
    # the canvas replaced the server-rendered first paint
    assert page.is_hidden("#slice-image") and page.is_visible(".pane-canvas")
    got = shown(page, pts)
    assert np.all(got[:, 0] == got[:, 1]) and np.all(got[:, 1] == got[:, 2])  # grey
    assert np.max(np.abs(got[:, 0] - grey(values, -175, 275))) <= 1

    # drag: right widens the window, down raises the level; a known number of HU per pixel (width / 256)
    x0, y0 = to_screen(page, 256, 256)
    with viewer_redrawn(page):
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + 60, y0 + 20, steps=4)
        page.mouse.move(x0 + 100, y0 + 40, steps=4)
        page.mouse.up()
    k = 450 / 256  # then whole numbers, as a radiologist reads them: the level rounded, the width to an even number
    width, level = 2 * round((450 + 100 * k) / 2), round(50 + 40 * k)
    low, high = state(page)["window"]
    assert (low, high) == (level - width // 2, level + width // 2) == (-193, 433)
    got = shown(page, pts)[:, 0]
    assert np.max(np.abs(got - grey(values, low, high))) <= 1
    assert np.mean(np.abs(got - grey(values, -175, 275))) > 5  # the drag did change the pixels
    readout = page.inner_text("#window-readout")
    assert re.search(rf"W {width}\s+L {level}\b", readout), readout
    assert f"{low} to {high} HU · custom" in readout
    page.wait_for_function("() => location.search.includes('window=')")
    assert f"window={low}%2C{high}" in page.url

    # a preset key, then invert
    with viewer_redrawn(page):
        page.keyboard.press("6")  # lung
    lung = shown(page, pts)[:, 0]
    assert np.max(np.abs(lung - grey(values, -1350, 150))) <= 1
    with viewer_redrawn(page):
        page.keyboard.press("i")
    assert np.max(np.abs(shown(page, pts)[:, 0] - (255 - grey(values, -1350, 150)))) <= 1
    assert "inverted" in page.inner_text("#window-readout")
    page.wait_for_function("() => location.search.includes('invert=1') && location.search.includes('preset=lung')")


def test_zoom_fit_native_and_slice_scrolling(page, live_server, ingested, deeplesion_sample):
    item = pick_item(live_server, ingested.dataset_id)
    key = item["slice"]
    open_item(page, live_server, item["id"])
    fit = page.evaluate("() => window.medviewViewer.panes()[0].view.zoom")
    assert 0.5 < fit < 3 and "(fit)" in page.inner_text("#view-readout")
    # Ctrl+wheel zooms about the pointer: the image point under it stays put
    px, py = to_screen(page, 300, 200)
    page.mouse.move(px, py)
    with viewer_redrawn(page):
        page.keyboard.down("Control")
        page.mouse.wheel(0, -300)
        page.keyboard.up("Control")
    zoom = page.evaluate("() => window.medviewViewer.panes()[0].view.zoom")
    assert zoom > fit * 1.5
    qx, qy = to_screen(page, 300, 200)
    assert abs(qx - px) < 1.0 and abs(qy - py) < 1.0
    page.wait_for_function("() => location.search.includes('zoom=') && location.search.includes('pan=')")
    # n = 1:1, f = fit again (and the URL forgets zoom and pan)
    with viewer_redrawn(page):
        page.keyboard.press("n")
    assert page.evaluate("() => window.medviewViewer.panes()[0].view.zoom") == 1
    with viewer_redrawn(page):
        page.keyboard.press("f")
    assert page.evaluate("() => window.medviewViewer.panes()[0].view.zoom") == pytest.approx(fit)
    page.wait_for_function("() => !location.search.includes('zoom=')")

    # the wheel without Ctrl scrolls slices: the next slice's own HU, windowed in the browser
    with viewer_redrawn(page):
        page.keyboard.press("n")
    page.mouse.move(*to_screen(page, 256, 256))
    with viewer_redrawn(page):
        page.mouse.wheel(0, 120)
        page.wait_for_function("k => window.medviewViewer.panes()[0].slice === k + 1", arg=key)
    nxt = slice_hu(deeplesion_sample.root, item["key"], key + 1)
    pts = sample_points(nxt)
    got = shown(page, pts)[:, 0]
    assert np.max(np.abs(got - grey(np.array([nxt[y, x] for x, y in pts]), -175, 275))) <= 1
    assert page.inner_text("#slice-readout").startswith(f"slice {key + 1} /")
    page.wait_for_function("k => location.search.includes(`slice=${k + 1}`)", arg=key)
    # the neighbours were prefetched: going back shows at once, without a new /raw request
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/raw" in r.url else None)
    with viewer_redrawn(page):
        page.keyboard.press("ArrowLeft")
    assert page.evaluate("() => window.medviewViewer.panes()[0].slice") == key and not requests


def test_recist_overlay_is_vector_and_toggles(page, live_server, ingested):
    item = pick_item(live_server, ingested.dataset_id)
    ann = max(item["annotations"], key=lambda a: a["meta"]["long_px"])
    open_item(page, live_server, item["id"], "?zoom=5&pan=" + ",".join(
        f"{v:g}" for v in np.mean(ann["geometry"]["long"], axis=0)))
    here = [a for a in item["annotations"] if a["kind"] == "recist" and a["slice_index"] in (None, item["slice"])]
    for name in ("long", "short"):
        assert page.locator(f'.pane-svg line[data-id="{name}"]').count() == len(here)
        line = page.locator(f'.pane-svg line[data-id="{name}"]').nth(here.index(ann))
        (ax, ay), (bx, by) = ann["geometry"][name]
        want = page.evaluate("([a, b]) => [window.medviewViewer.screen(0, ...a), window.medviewViewer.screen(0, ...b)]",
                             [[ax, ay], [bx, by]])
        got = [[float(line.get_attribute("x1")), float(line.get_attribute("y1"))],
               [float(line.get_attribute("x2")), float(line.get_attribute("y2"))]]
        assert np.allclose(got, want, atol=0.01)
        # at 5× the line is 5× longer on screen than in the image, still 2 px wide
        assert math.dist(*got) == pytest.approx(5 * math.dist((ax, ay), (bx, by)), rel=1e-6)
        assert line.get_attribute("stroke-width") == "2"
    assert page.locator('.pane-svg rect[data-layer="gt"]').count() >= 1
    # v hides the shapes only, o all ground truth; both come back
    with viewer_redrawn(page):
        page.keyboard.press("v")
    assert page.locator('.pane-svg [data-layer="gt"]').count() == 0
    page.wait_for_function("() => location.search.includes('hide=shapes')")
    with viewer_redrawn(page):
        page.keyboard.press("v")
        page.keyboard.press("o")
    assert page.locator('.pane-svg [data-layer="gt"]').count() == 0
    page.wait_for_function("() => location.search.includes('overlays=none') && !location.search.includes('hide=')")
    with viewer_redrawn(page):
        page.keyboard.press("o")
    assert page.locator('.pane-svg line[data-id="long"]').count() == len(here)


def test_measurements_in_mm(page, live_server, ingested):
    item = pick_item(live_server, ingested.dataset_id)
    mm = item["spacing"][0]
    open_item(page, live_server, item["id"], "?zoom=2&pan=256,256")
    page.keyboard.press("l")
    a, b = (200, 230), (290, 290)  # image pixels: 108.17 px apart
    page.mouse.move(*to_screen(page, *a))
    with viewer_redrawn(page):
        page.mouse.down()
        page.mouse.move(*to_screen(page, *b), steps=6)
        page.mouse.up()
    m = page.evaluate("() => window.medviewViewer.measurements()")
    assert len(m) == 1 and m[0]["kind"] == "line"
    want = math.dist(a, b) * mm
    assert m[0]["lengths"][0]["unit"] == "mm" and m[0]["lengths"][0]["value"] == pytest.approx(want, abs=0.02)
    assert f"{want:.1f} mm" in page.inner_text("#measurement-list")
    assert page.locator('.pane-svg text[data-layer="measure"]').text_content() == f"{want:.1f} mm"

    # bidirectional: a long axis, then a drag across it gives the perpendicular short axis
    page.keyboard.press("b")
    long_a, long_b = (150, 150), (250, 150)
    page.mouse.move(*to_screen(page, *long_a))
    page.mouse.down()
    page.mouse.move(*to_screen(page, *long_b), steps=5)
    page.mouse.up()
    page.mouse.move(*to_screen(page, 200, 130))
    with viewer_redrawn(page):
        page.mouse.down()
        page.mouse.move(*to_screen(page, 215, 170), steps=5)  # 40 px across, 15 px along: only the 40 count
        page.mouse.up()
    m = page.evaluate("() => window.medviewViewer.measurements()")
    assert len(m) == 2 and m[1]["kind"] == "bidir"
    (la, lb), (sa, sb) = m[1]["segments"]
    assert m[1]["lengths"][0]["value"] == pytest.approx(100 * mm, abs=0.02)
    assert m[1]["lengths"][1]["value"] == pytest.approx(40 * mm, abs=0.02)
    long_v, short_v = np.subtract(lb, la), np.subtract(sb, sa)
    assert abs(np.dot(long_v, short_v)) < 1e-6 * np.linalg.norm(long_v) * np.linalg.norm(short_v)
    # Delete removes the last one; measurements are only drawn on their own slice
    with viewer_redrawn(page):
        page.keyboard.press("Delete")
    assert len(page.evaluate("() => window.medviewViewer.measurements()")) == 1
    with viewer_redrawn(page):
        page.keyboard.press("ArrowRight")
    assert page.locator('.pane-svg [data-layer="measure"]').count() == 0


def test_url_round_trip_and_screenshot(page, live_server, ingested, deeplesion_sample):
    item = pick_item(live_server, ingested.dataset_id)
    key = item["slice"]
    query = f"?window=-100%2C200&slice={key + 1}&invert=1&zoom=3&pan=240.5%2C250&layout=side&hide=measure"
    open_item(page, live_server, item["id"], query)
    s = state(page)
    assert s["window"] == [-100, 200] and s["preset"] is None and s["invert"] is True
    assert s["zoom"] == 3 and s["pan"] == [240.5, 250] and s["layout"] == "side" and s["hide"] == ["measure"]
    panes = page.evaluate("() => window.medviewViewer.panes()")
    assert [p["role"] for p in panes] == ["gt", "pred"]
    assert all(p["slice"] == key + 1 and p["view"] == {"zoom": 3, "cx": 240.5, "cy": 250} for p in panes)
    hu = slice_hu(deeplesion_sample.root, item["key"], key + 1)
    pts = [(x, y) for x, y in sample_points(hu, 400) if abs(x - 240) < 65 and abs(y - 250) < 110][:20]
    assert len(pts) >= 10  # inside both half-width panes at 3×
    want = 255 - grey(np.array([hu[y, x] for x, y in pts]), -100, 200)
    for n in (0, 1):  # both panes show the same windowed slice
        assert np.max(np.abs(shown(page, pts, n)[:, 0] - want)) <= 1
    # the page writes back exactly what it was given (same order), so the link survives a reload unchanged
    assert flush_view_url(page).endswith(query)
    page.reload()
    page.wait_for_function(READY)
    assert state(page)["zoom"] == 3 and page.url.endswith(query)
    # a screenshot of the viewer is an image, not a blank canvas
    png = page.locator("#viewport").screenshot()
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    assert pixels.std() > 20 and len(np.unique(pixels)) > 50


def test_raw_failure_shows_the_detail(page, live_server, ingested):
    item = pick_item(live_server, ingested.dataset_id)
    page.route("**/raw?*", lambda route: route.fulfill(status=404, content_type="application/json",
                                                       body='{"detail": "image file Images_png/x.png is missing"}'))
    page.goto(f"{live_server}/items/{item['id']}")
    page.wait_for_selector("#image-error:not([hidden])")
    assert page.inner_text("#image-error") == "image file Images_png/x.png is missing"
    assert page.is_visible("#slice-image")  # the server-rendered first paint stays
