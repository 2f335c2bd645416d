"""The mask controls in a real browser, on a BIS5k item: canvas pixels (the client-side viewer at 1:1) inside the
ground-truth mask (found in the mask PNG with OpenCV) against the image PNG and the alpha-blend formula of
overlay.blend_mask, out = px·(1−a) + amber·a, as `m` switches fill / contour and the opacity slider moves; the state
survives a reload through the page URL."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path
from tests.helpers.live import live_get

pytestmark = pytest.mark.browser

TOLERANCE = 3  # per channel, on the mean of a 5×5 patch (canvas alpha compositing and the fitted zoom round)
AMBER = np.array((255, 200, 0), np.float64)  # overlay.MASK_DEFAULT
READY = "() => window.medviewViewer && window.medviewViewer.ready()"
# The page URL has these parameters (None: absent).
SHOWS = """(want) => { const p = new URLSearchParams(location.search);
  return Object.entries(want).every(([k, v]) => v === null ? !p.has(k) : p.get(k) === v); }"""


@pytest.fixture(scope="module")
def bis5k_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_bis5k(tmp_path_factory.mktemp("bis5k-e2e") / "BIS5k", n_train=2, n_test=1, seed=0)


@pytest.fixture
def bis5k_item(live_server, engine, settings, bis5k_tree) -> tuple[int, Path, Path]:
    """(item id, image PNG, mask PNG) of the sample tile with the largest mask, indexed into the live server's
    database."""

    report = ingest_path(engine, settings, bis5k_tree.root, kind="bis5k", name="bis5k")
    tile = max(bis5k_tree.images, key=lambda i: i.foreground)
    page = live_get(f"{live_server}/api/datasets/{report.dataset_id}/items", params={"key": tile.image}).json()
    assert page["total"] == 1
    return page["items"][0]["id"], bis5k_tree.root / tile.image, bis5k_tree.root / tile.mask


def interior_patch(image_png: Path, mask_png: Path) -> tuple[int, int, np.ndarray]:
    """Centre (x, y) of the flattest 5×5 patch lying well inside the mask (≥ 12 px from its outline, so neither
    the contour nor JPEG ringing around it reaches the patch), and the image's RGB values there."""
    mask = cv2.imread(str(mask_png), cv2.IMREAD_GRAYSCALE) > 0
    rgb = cv2.cvtColor(cv2.imread(str(image_png), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float64)
    inside = cv2.erode(mask.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    mean = cv2.blur(rgb, (5, 5))
    spread = np.sqrt(np.maximum(cv2.blur(rgb * rgb, (5, 5)) - mean * mean, 0)).max(axis=2)
    spread[~inside] = np.inf
    y, x = np.unravel_index(int(np.argmin(spread)), spread.shape)
    assert np.isfinite(spread[y, x]), "no interior patch in the mask"
    return int(x), int(y), rgb[y - 2:y + 3, x - 2:x + 3]


def blended(patch: np.ndarray, opacity: float) -> np.ndarray:
    """overlay.blend_mask's fill, per pixel (with its rounding), averaged over the patch."""
    return np.floor(patch * (1 - opacity) + AMBER * opacity + 0.5).reshape(-1, 3).mean(axis=0)


def shown(page, x: int, y: int) -> np.ndarray:
    pts = [[x + dx, y + dy] for dy in range(-2, 3) for dx in range(-2, 3)]
    got = page.evaluate("(pts) => pts.map(([x, y]) => window.medviewViewer.pixel(0, x, y))", pts)
    return np.array(got, dtype=np.float64).mean(axis=0)


def near(got: np.ndarray, want: np.ndarray) -> bool:
    return bool(np.max(np.abs(got - want)) <= TOLERANCE)


def wait_shown(page, **params: str | None) -> None:
    if params.get("overlays") == "gt":  # the default: not in the page URL
        params["overlays"] = None
    # The URL is written a moment after the change that started the redraw (static/js/viewer/url.js), so once
    # it shows the change, the viewer's ready() says whether that redraw is done.
    page.wait_for_function(SHOWS, arg=params)
    page.wait_for_function(READY)


def pressed(page) -> dict[str, str | None]:
    return {m: page.get_attribute(f'button[data-mask-mode="{m}"]', "aria-pressed") for m in ("fill", "contour")}


def test_mask_mode_and_opacity_follow_the_blend_formula(page, live_server, bis5k_item):
    item_id, image_png, mask_png = bis5k_item
    x, y, patch = interior_patch(image_png, mask_png)
    plain = patch.reshape(-1, 3).mean(axis=0)
    renders: list[str] = []  # the mask is drawn in the browser: no server render after the first paint
    page.goto(f"{live_server}/items/{item_id}")
    page.on("request", lambda r: renders.append(r.url) if "/render?" in r.url else None)
    page.wait_for_function(READY)

    # (a) default: fill at 40 %, nothing about the mask in either URL
    assert near(shown(page, x, y), blended(patch, 0.4)), (shown(page, x, y), blended(patch, 0.4))
    assert np.max(np.abs(blended(patch, 0.4) - plain)) > 40  # the check below can tell fill from plain
    assert pressed(page) == {"fill": "true", "contour": "false"}
    assert page.inner_text("#mask-opacity-value") == "40%"
    assert "?" not in page.url

    # (b) `m` switches to contour: the interior returns to the image's own colour; the slider is disabled
    page.keyboard.press("m")
    wait_shown(page, mask_mode="contour")
    assert near(shown(page, x, y), plain), (shown(page, x, y), plain)
    assert pressed(page) == {"fill": "false", "contour": "true"}
    assert page.is_disabled("#mask-opacity")
    assert re.search(r"\?mask_mode=contour$", page.url)
    assert page.get_attribute("button[data-mask-mode=contour]", "class") == "mask-mode active"

    # (c) `m` again: back to fill, and to the default URL
    page.keyboard.press("m")
    wait_shown(page, mask_mode=None)
    assert near(shown(page, x, y), blended(patch, 0.4))
    assert pressed(page) == {"fill": "true", "contour": "false"} and "?" not in page.url

    # (d) dragging the slider: readout and image follow at once, drawn in the browser (no server render)
    readout = page.evaluate("""(values) => { const s = document.getElementById('mask-opacity');
      for (const v of values) { s.value = v; s.dispatchEvent(new Event('input', {bubbles: true})); }
      return document.getElementById('mask-opacity-value').textContent; }""", ["0.5", "0.6", "0.75"])
    assert readout == "75%"
    wait_shown(page, opacity="0.75")
    assert not renders, renders
    assert near(shown(page, x, y), blended(patch, 0.75)), (shown(page, x, y), blended(patch, 0.75))
    assert page.url.endswith("?opacity=0.75")
    # the slider by keyboard (one 0.05 step) and by Playwright's fill (input + change events)
    page.focus("#mask-opacity")
    page.keyboard.press("ArrowLeft")
    wait_shown(page, opacity="0.7")
    assert near(shown(page, x, y), blended(patch, 0.7))
    page.fill("#mask-opacity", "0.15")
    wait_shown(page, opacity="0.15")
    assert near(shown(page, x, y), blended(patch, 0.15)), (shown(page, x, y), blended(patch, 0.15))
    assert page.inner_text("#mask-opacity-value") == "15%"
    page.fill("#mask-opacity", "0.7")
    wait_shown(page, opacity="0.7")
    fill70 = shown(page, x, y)
    assert near(fill70, blended(patch, 0.7)), (fill70, blended(patch, 0.7))
    # letters still reach the viewer while the slider has focus (arrows stay the slider's)
    page.focus("#mask-opacity")
    page.keyboard.press("m")
    wait_shown(page, mask_mode="contour")
    assert near(shown(page, x, y), plain)

    # (e) the page URL holds both; a reload restores the view
    assert "mask_mode=contour" in page.url and "opacity=0.7" in page.url
    page.reload()
    page.wait_for_function(READY)
    assert page.evaluate("() => window.medviewViewer.state.mask_mode") == "contour"
    assert pressed(page) == {"fill": "false", "contour": "true"} and page.is_disabled("#mask-opacity")
    assert page.input_value("#mask-opacity") == "0.7" and page.inner_text("#mask-opacity-value") == "70%"
    assert near(shown(page, x, y), plain)
    page.click("button[data-mask-mode=fill]")
    wait_shown(page, mask_mode=None)
    assert near(shown(page, x, y), blended(patch, 0.7)) and page.url.endswith("?opacity=0.7")


def test_mask_controls_show_a_hidden_overlay_and_keep_an_off_step_opacity(page, live_server, bis5k_item):
    item_id, image_png, mask_png = bis5k_item
    x, y, patch = interior_patch(image_png, mask_png)
    # 0.62 is between the slider's 0.05 steps: the thumb shows 0.6, the state (and image) keep 0.62
    page.goto(f"{live_server}/items/{item_id}?overlays=none&opacity=0.62")
    page.wait_for_function(READY)
    plain = patch.reshape(-1, 3).mean(axis=0)
    assert near(shown(page, x, y), plain)
    assert page.inner_text("#mask-opacity-value") == "62%" and page.input_value("#mask-opacity") == "0.6"
    # choosing how to draw the mask shows it
    page.click("button[data-mask-mode=fill]")
    wait_shown(page, overlays="gt", opacity="0.62")
    assert near(shown(page, x, y), blended(patch, 0.62))
    assert page.get_attribute("#toggle-overlays", "aria-pressed") == "true"
    assert page.url.endswith("?opacity=0.62")
    # `o` hides it again; `m` shows it as contour, and back to fill: the opacity never moved to the thumb's step
    page.keyboard.press("o")
    wait_shown(page, overlays="none")
    assert near(shown(page, x, y), plain) and "opacity=0.62" in page.url
    page.keyboard.press("m")
    wait_shown(page, overlays="gt", mask_mode="contour", opacity="0.62")
    page.keyboard.press("m")
    wait_shown(page, overlays="gt", mask_mode=None, opacity="0.62")
    assert near(shown(page, x, y), blended(patch, 0.62)) and page.url.endswith("?opacity=0.62")
