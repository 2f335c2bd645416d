"""The pages in a real browser: pixels of the viewer's image checked against the annotation geometry and the
window formula (HU read independently from the slice PNG), keyboard/URL state, facet filtering, infinite scroll."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from app.imaging.presets import PRESETS
from tests.e2e.deeplesion_items import pick_item, slice_hu
from tests.helpers.browser import flush_view_url, viewer_redrawn
from tests.helpers.live import live_client

pytestmark = pytest.mark.browser

VIEWER_READY = "() => window.medviewViewer && window.medviewViewer.ready()"


def press_viewer(page, key: str) -> None:
    with viewer_redrawn(page):
        page.keyboard.press(key)


def canvas_grey(page, x: int, y: int) -> float:
    """Mean grey of the 5×5 canvas pixels around image pixel (x, y) (the viewer at 1:1)."""
    pts = [[x + dx, y + dy] for dy in range(-2, 3) for dx in range(-2, 3)]
    return float(np.mean(page.evaluate("(pts) => pts.map(([x, y]) => window.medviewViewer.pixel(0, x, y))", pts)))


def soft_tissue_patch(hu: np.ndarray, avoid: list[float]) -> tuple[int, int]:
    """Centre of a flat 5×5 patch of soft tissue (20–80 HU) away from the annotations, nearest the image centre."""
    mean = cv2.blur(hu, (5, 5))
    std = np.sqrt(np.maximum(cv2.blur(hu * hu, (5, 5)) - mean * mean, 0))
    ok = (mean > 20) & (mean < 80) & (std < 20)
    x1, y1, x2, y2 = avoid
    ok[max(0, int(y1) - 30):int(y2) + 30, max(0, int(x1) - 30):int(x2) + 30] = False
    ok[:10], ok[-10:], ok[:, :10], ok[:, -10:] = False, False, False, False
    ys, xs = np.nonzero(ok)
    assert len(xs), "no soft-tissue patch in the slice"
    h, w = hu.shape
    i = int(np.argmin((xs - w / 2) ** 2 + (ys - h / 2) ** 2))
    return int(xs[i]), int(ys[i])


def expected_grey(hu_patch: np.ndarray, low: float, high: float) -> float:
    return float(np.mean(np.clip((hu_patch - low) / (high - low), 0, 1) * 255))


def test_viewer_overlays_windows_and_slices(page, live_server, ingested, deeplesion_sample):
    """The item page's client-side viewer (static/js/viewer/): canvas pixels at 1:1 against the window formula,
    the RECIST axes as SVG at the annotation's coordinates, keys and the URL (tests/e2e/test_viewer.py goes further)."""
    item = pick_item(live_server, ingested.dataset_id)
    ann = max(item["annotations"], key=lambda a: a["meta"]["long_px"])
    key_slice = item["slice"]
    page.goto(f"{live_server}/items/{item['id']}?zoom=1")
    page.wait_for_function(VIEWER_READY)

    # (a) RECIST axes in their colours, at the annotation's pixel coordinates (SVG over the canvas)
    for name, colour in (("long", "rgb(255,70,70)"), ("short", "rgb(60,200,255)")):
        line = page.locator(f'.pane-svg line[data-id="{name}"]').first
        assert line.get_attribute("stroke") == colour
    (ax, ay), _ = ann["geometry"]["long"]
    sx, sy = page.evaluate("([x, y]) => window.medviewViewer.screen(0, x, y)", [ax, ay])
    xs = [float(page.locator('.pane-svg line[data-id="long"]').nth(n).get_attribute("x1"))
          for n in range(page.locator('.pane-svg line[data-id="long"]').count())]
    assert any(abs(x - sx) < 0.01 for x in xs)

    # (b) `o` hides them; the URL says so
    press_viewer(page, "o")
    assert page.locator('.pane-svg [data-layer="gt"]').count() == 0
    page.wait_for_function("() => location.search.includes('overlays=none')")
    assert page.get_attribute("#toggle-overlays", "aria-pressed") == "false"

    # (c) window presets follow grey = clip((HU − LOW) / (HIGH − LOW), 0, 1) · 255, HU from the PNG itself
    hu = slice_hu(deeplesion_sample.root, item["key"], key_slice)
    x, y = soft_tissue_patch(hu, ann["geometry"]["bbox"])
    patch = hu[y - 2:y + 3, x - 2:x + 3]
    assert abs(canvas_grey(page, x, y) - expected_grey(patch, -175, 275)) <= 1
    press_viewer(page, "6")  # lung
    assert abs(canvas_grey(page, x, y) - expected_grey(patch, *PRESETS["lung"])) <= 1
    page.wait_for_function("() => location.search.includes('preset=lung')")
    assert "-1350 to 150 HU" in page.inner_text("#window-readout")
    page.fill("#window-low", "0")
    page.fill("#window-high", "100")
    page.click("#apply-window")
    page.wait_for_function(VIEWER_READY)
    assert abs(canvas_grey(page, x, y) - expected_grey(patch, 0, 100)) <= 1
    page.wait_for_function("() => location.search.includes('window=0%2C100')")

    # (d) → steps to the next slice; a reload restores the view; k goes back to the key slice
    lo, hi = item["meta"]["slice_range"]
    assert page.inner_text("#slice-readout") == f"slice {key_slice} (key) / range {lo}–{hi}"
    press_viewer(page, "ArrowRight")
    assert page.inner_text("#slice-readout") == f"slice {key_slice + 1} / range {lo}–{hi}"
    page.wait_for_function("k => location.search.includes(`slice=${k + 1}`)", arg=key_slice)
    nxt = slice_hu(deeplesion_sample.root, item["key"], key_slice + 1)
    assert abs(canvas_grey(page, x, y) - expected_grey(nxt[y - 2:y + 3, x - 2:x + 3], 0, 100)) <= 1
    shown = flush_view_url(page)
    page.reload()
    page.wait_for_function(VIEWER_READY)
    assert page.inner_text("#slice-readout") == f"slice {key_slice + 1} / range {lo}–{hi}" and page.url == shown
    press_viewer(page, "k")
    assert page.inner_text("#slice-readout").startswith(f"slice {key_slice} (key)")
    page.wait_for_function("() => !location.search.includes('slice=')")


def test_spinner_only_while_a_slow_slice_loads(page, live_server, ingested):
    item = pick_item(live_server, ingested.dataset_id)
    page.goto(f"{live_server}/items/{item['id']}")
    page.wait_for_function(VIEWER_READY)
    held, released = [], []

    def hold(route):
        (route.continue_() if released else held.append(route))

    page.route(f"**/raw?slice={item['slice'] + 3}*", hold)  # beyond the prefetched neighbours
    shown_at_once = page.evaluate("""(k) => { window.medviewViewer.viewer.goToSlice(k);
        return document.getElementById('viewport').classList.contains('loading'); }""", item["slice"] + 3)
    assert shown_at_once is False  # no flash for fast slices
    page.wait_for_selector("#viewport.loading .spinner", state="visible")
    released.append(True)
    for route in held:
        route.continue_()
    page.wait_for_function(VIEWER_READY)
    assert not page.is_visible(".spinner")


def test_facet_click_filters_the_grid(page, live_server, ingested):
    page.goto(f"{live_server}/datasets/{ingested.dataset_id}")
    assert int(page.get_attribute("#total", "data-total")) == ingested.items
    link = page.locator('.facet-value[data-field="split"]').first
    value, count = link.get_attribute("data-value"), int(link.get_attribute("data-count"))
    assert count < ingested.items
    link.click()
    page.wait_for_url(re.compile(rf"split={value}"))
    assert int(page.get_attribute("#total", "data-total")) == count
    assert page.locator("#grid .card").count() == count
    assert page.locator(f'.facet-value.active[data-value="{value}"]').count() == 1
    with live_client(live_server) as api:
        expected = [i["id"] for i in api.get(f"/api/datasets/{ingested.dataset_id}/items",
                                             params={"split": value}).json()["items"]]
    assert [int(i) for i in page.locator("#grid .card").evaluate_all("els => els.map(e => e.dataset.id)")] == expected
    img = page.locator("#grid .card img").first
    img.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    assert img.evaluate("img => img.naturalWidth") > 0
    page.click(".chip >> text=" + value)  # remove the filter again
    page.wait_for_url(re.compile(r"/datasets/\d+\?$"))
    assert int(page.get_attribute("#total", "data-total")) == ingested.items


def test_infinite_scroll_appends_every_page(page, live_server, ingested):
    response = page.goto(f"{live_server}/datasets/{ingested.dataset_id}?limit=4")
    served = [i for i in re.findall(r'class="card" href="[^"]*" data-id="(\d+)"', response.text()) if i != "0"]
    assert len(served) == 4 < ingested.items  # the server sends one page; the rest comes from the API
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(f"() => document.querySelectorAll('#grid .card:not(.pending)').length === {ingested.items}")
    ids = [int(i) for i in page.locator("#grid .card").evaluate_all("els => els.map(e => e.dataset.id)")]
    assert ids == sorted(set(ids)) and len(ids) == ingested.items
    assert page.locator("#grid .card.pending").count() == 0  # the virtual grid loaded every page
    last = page.locator("#grid .card").last
    assert (last.get_attribute("href") or "").split("?")[0] == f"/items/{ids[-1]}"  # ?list= carries the grid query
    last.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=last.locator("img").element_handle())
    assert last.locator(".card-key").inner_text().endswith(".png")
