"""The pages in a real browser: pixels of the viewer's image checked against the annotation geometry and the
window formula (HU read independently from the slice PNG), keyboard/URL state, facet filtering, infinite scroll."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from app.imaging.presets import PRESETS

pytestmark = pytest.mark.browser

JPEG_TOLERANCE = 6
READY = """() => { const i = document.getElementById('slice-image');
  return i.complete && i.naturalWidth > 0 && !document.getElementById('viewport').dataset.loading; }"""
# RGB of the shown image at natural-size pixel coordinates (drawn onto a canvas, read back).
PIXELS = """(pts) => { const img = document.getElementById('slice-image');
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d', {willReadFrequently: true}); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  return pts.map(([x, y]) => { const i = (y * c.width + x) * 4; return [d[i], d[i + 1], d[i + 2]]; }); }"""


def pick_item(base: str, dataset_id: int) -> dict:
    """The key slice with the longest RECIST axis among those with a next slice and the abdomen DICOM window."""
    with httpx.Client(base_url=base) as api:
        items = api.get(f"/api/datasets/{dataset_id}/items", params={"limit": 500}).json()["items"]
        details = [api.get(f"/api/items/{i['id']}").json() for i in items]
    usable = [d for d in details if d["window"] == [-175.0, 275.0] and d["slice"] + 1 in d["meta"]["slices"]]
    return max(usable, key=lambda d: max(a["meta"]["long_px"] for a in d["annotations"]))


def along(segment, ts) -> list[list[int]]:
    (x0, y0), (x1, y1) = segment
    return [[round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0))] for t in ts]


AXIS_TS = [*np.linspace(0.12, 0.35, 6), *np.linspace(0.65, 0.88, 6)]


def is_red(p) -> bool:  # overlay.LONG_AXIS (255, 70, 70)
    r, g, b = p
    return r > 180 and g < 140 and b < 140 and r - max(g, b) > 80


def is_light_blue(p) -> bool:  # overlay.SHORT_AXIS (60, 200, 255)
    r, g, b = p
    return b > 180 and g > 130 and r < 140 and b - r > 70


def is_grey(p) -> bool:
    return max(p) - min(p) <= 3


def fingerprint(page) -> np.ndarray:
    pts = [[x, y] for y in range(0, 512, 8) for x in range(0, 512, 8)]
    return np.array(page.evaluate(PIXELS, pts), dtype=np.float64)[:, 0]


def press(page, key: str) -> None:
    page.keyboard.press(key)
    page.wait_for_function(READY)


def slice_hu(root: Path, key: str, number: int) -> np.ndarray:
    png = root / "Images_png" / key[:12] / f"{number:03d}.png"
    return cv2.imread(str(png), cv2.IMREAD_UNCHANGED).astype(np.float64) - 32768


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


def patch_grey(page, x: int, y: int) -> float:
    pts = [[x + dx, y + dy] for dy in range(-2, 3) for dx in range(-2, 3)]
    return float(np.mean(np.array(page.evaluate(PIXELS, pts), dtype=np.float64)))


def test_viewer_overlays_windows_and_slices(page, live_server, ingested, deeplesion_sample):
    item = pick_item(live_server, ingested.dataset_id)
    ann = max(item["annotations"], key=lambda a: a["meta"]["long_px"])
    key_slice = item["slice"]
    page.goto(f"{live_server}/items/{item['id']}")
    page.wait_for_function(READY)

    # (a) RECIST axes in their colours, at the annotation's pixel coordinates
    long_pts, short_pts = along(ann["geometry"]["long"], AXIS_TS), along(ann["geometry"]["short"], AXIS_TS)
    long_px, short_px = page.evaluate(PIXELS, long_pts), page.evaluate(PIXELS, short_pts)
    assert sum(map(is_red, long_px)) >= 0.8 * len(long_px), long_px
    assert sum(map(is_light_blue, short_px)) >= 0.8 * len(short_px), short_px
    assert not any(map(is_red, short_px))

    # (b) `o` hides them: the same pixels are grey; the URL says so
    press(page, "o")
    assert all(map(is_grey, page.evaluate(PIXELS, long_pts + short_pts)))
    assert "overlays=none" in page.url
    assert page.get_attribute("#toggle-overlays", "aria-pressed") == "false"

    # (c) window presets follow grey = clip((HU − LOW) / (HIGH − LOW), 0, 1) · 255, HU from the PNG itself
    hu = slice_hu(deeplesion_sample.root, item["key"], key_slice)
    x, y = soft_tissue_patch(hu, ann["geometry"]["bbox"])
    patch = hu[y - 2:y + 3, x - 2:x + 3]
    own = patch_grey(page, x, y)
    assert abs(own - expected_grey(patch, -175, 275)) <= JPEG_TOLERANCE
    press(page, "6")  # lung
    lung = patch_grey(page, x, y)
    assert abs(lung - expected_grey(patch, *PRESETS["lung"])) <= JPEG_TOLERANCE
    assert lung - own > 50  # soft tissue is much brighter in a lung window
    assert "preset=lung" in page.url
    assert "-1350 to 150 HU" in page.inner_text("#window-readout")
    # a custom window typed in HU
    page.fill("#window-low", "0")
    page.fill("#window-high", "100")
    page.click("#apply-window")
    page.wait_for_function(READY)
    assert abs(patch_grey(page, x, y) - expected_grey(patch, 0, 100)) <= JPEG_TOLERANCE
    assert "window=0%2C100" in page.url

    # (d) → steps to the next slice: readout, URL and pixels change; a reload restores the view
    lo, hi = item["meta"]["slice_range"]
    assert page.inner_text("#slice-readout") == f"slice {key_slice} (key) / range {lo}–{hi}"
    before = fingerprint(page)
    press(page, "ArrowRight")
    assert page.inner_text("#slice-readout") == f"slice {key_slice + 1} / range {lo}–{hi}"
    assert f"slice={key_slice + 1}" in page.url
    after = fingerprint(page)
    assert np.mean(np.abs(after - before)) > 1.0
    shown = page.url
    page.reload()
    page.wait_for_function(READY)
    assert page.inner_text("#slice-readout") == f"slice {key_slice + 1} / range {lo}–{hi}"
    assert np.array_equal(fingerprint(page), after) and page.url == shown
    # the wheel over the image steps back to the key slice (same window, same pixels); ↓ then k likewise
    page.mouse.move(500, 500)
    page.mouse.wheel(0, -120)
    page.wait_for_function("k => document.getElementById('slice-readout').textContent.startsWith(`slice ${k} `)",
                           arg=key_slice)
    page.wait_for_function(READY)
    assert np.array_equal(fingerprint(page), before) and "slice=" not in page.url
    press(page, "ArrowDown")
    assert f"slice={key_slice + 1}" in page.url
    press(page, "k")
    assert page.inner_text("#slice-readout").startswith(f"slice {key_slice} (key)") and "slice=" not in page.url


def test_spinner_only_while_a_slow_image_loads(page, live_server, ingested):
    item = pick_item(live_server, ingested.dataset_id)
    page.goto(f"{live_server}/items/{item['id']}")
    page.wait_for_function(READY)
    held, released = [], []

    def hold(route):
        (route.continue_() if released else held.append(route))

    page.route("**/render?*preset=brain*", hold)
    shown_at_once = page.evaluate("""() => {
        document.dispatchEvent(new KeyboardEvent('keydown', {key: '8', bubbles: true}));
        return document.getElementById('viewport').classList.contains('loading'); }""")
    assert shown_at_once is False  # no flash for fast images
    page.wait_for_selector("#viewport.loading .spinner", state="visible")
    released.append(True)
    for route in held:
        route.continue_()
    page.wait_for_function(READY)
    assert not page.is_visible(".spinner")
    assert "preset=brain" in page.get_attribute("#slice-image", "src")


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
    with httpx.Client(base_url=live_server) as api:
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
    page.wait_for_function(f"() => document.querySelectorAll('#grid .card').length === {ingested.items}")
    ids = [int(i) for i in page.locator("#grid .card").evaluate_all("els => els.map(e => e.dataset.id)")]
    assert ids == sorted(set(ids)) and len(ids) == ingested.items
    page.wait_for_selector("#pager >> text=End of the list.")
    last = page.locator("#grid .card").last
    assert last.get_attribute("href") == f"/items/{ids[-1]}"
    last.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=last.locator("img").element_handle())
    assert last.locator(".card-key").inner_text().endswith(".png")
