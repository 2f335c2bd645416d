"""The mask brush in a real browser (SQLite): an annotator brushes a stroke on a generated BIS5k item, the stroke is
saved as a new mask version whose label PNG (through the API) has foreground where the stroke went and changes
nothing far from it; undo saves the previous mask again. On VerSe the brush paints the chosen vertebra label on
the sagittal plane. Screenshots: /tmp/shots-masks/."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path
from app.datasets.verse.synth import generate_verse
from app.imaging.labels import decode_label_png
from tests.e2e.conftest import signed_in_page
from tests.helpers.auth import api_token
from tests.helpers.live import live_get

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("MEDVIEW_SHOTS", "/tmp/shots-masks"))
READY = "() => window.medviewViewer && window.medviewViewer.ready()"
SAVES = "(n) => Number(document.getElementById('viewport').dataset.brushSaves || 0) >= n"


@pytest.fixture(scope="module")
def bis5k_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_bis5k(tmp_path_factory.mktemp("bis5k-brush") / "BIS5k", n_train=2, n_test=1, seed=2)


@pytest.fixture
def ingested(engine, settings, bis5k_tree):
    """This module's live server serves the BIS5k sample (not the DeepLesion one)."""
    return ingest_path(engine, settings, bis5k_tree.root, kind="bis5k", name="bis5k")


@pytest.fixture
def annotator_page(browser, settings, live_server):
    yield from signed_in_page(browser, settings, "ann", "annotator")


def b64png(labels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(labels.astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def current_mask(base: str, item_id: int) -> dict:
    item = live_get(f"{base}/api/items/{item_id}").json()
    return next(a for a in item["annotations"] if a["kind"] == "mask")


def version_labels(base: str, annotation_id: int, **params) -> np.ndarray:
    r = live_get(f"{base}/api/annotations/{annotation_id}/mask", params=params)
    assert r.status_code == 200, r.text
    return decode_label_png(r.content)


def screen(page, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) of the first pane."""
    sx, sy = page.evaluate("([x, y]) => window.medviewViewer.screen(0, x, y)", [x, y])
    left, top, _, _ = page.evaluate("() => window.medviewViewer.paneBox(0)")
    return left + sx, top + sy


def stroke(page, points: list[tuple[float, float]], shot: Path | None = None) -> None:
    page.mouse.move(*screen(page, *points[0]))
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(*screen(page, x, y), steps=4)
    if shot is not None:
        page.screenshot(path=str(shot))
    page.mouse.up()


def test_brush_stroke_saves_a_version_and_undo_restores(annotator_page, live_server, ingested, settings):
    bob = {"Authorization": f"Bearer {api_token(settings, 'bob', 'annotator')}"}
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = annotator_page
    listing = live_get(f"{live_server}/api/datasets/{ingested.dataset_id}/items").json()["items"]
    item_id = listing[0]["id"]
    before = current_mask(live_server, item_id)
    original = version_labels(live_server, before["id"])
    page.goto(f"{live_server}/items/{item_id}")
    page.wait_for_function(READY)
    page.keyboard.press("y")
    assert page.get_attribute("#brush-paint", "aria-pressed") == "true"
    size = int(page.evaluate("() => window.medviewViewer.viewer.brush.size"))
    h, w = original.shape
    y = h // 2
    xs = [w // 5 + n * (3 * w // 5) // 6 for n in range(7)]
    path = [(x, y) for x in xs]
    stroke(page, path, SHOTS / "bis5k-mid-stroke.png")
    page.wait_for_function(SAVES, arg=1)
    page.wait_for_function(READY)
    page.screenshot(path=str(SHOTS / "bis5k-after-save.png"))

    saved = current_mask(live_server, item_id)
    assert saved["version"] == before["version"] + 1 and saved["source"] == "user:ann"
    assert saved["geometry"]["stored"].endswith(".png")
    labels = version_labels(live_server, saved["id"])
    for x, yy in path:  # foreground under every point of the stroke
        assert labels[yy, x] == 1, (x, yy)
    near = np.zeros((h, w), np.uint8)
    cv2.line(near, (xs[0], y), (xs[-1], y), 1, thickness=size + 6)
    changed = labels != original
    assert changed.any() and not (changed & (near == 0)).any()  # nothing changed far from the stroke
    history = live_get(f"{live_server}/api/annotations/{saved['id']}/history").json()
    assert [v["version"] for v in history][-2:] == [before["version"], saved["version"]]

    page.keyboard.press("z")
    page.wait_for_function(SAVES, arg=2)
    undone = current_mask(live_server, item_id)
    assert undone["version"] == saved["version"] + 1
    assert np.array_equal(version_labels(live_server, undone["id"]), original)

    # someone else saves first: the next stroke's save is a 409, the dialog names them; "keep mine" saves over it
    theirs = original.copy()
    theirs[:20, :20] = 1
    r = httpx.put(f"{live_server}/api/annotations/{undone['id']}", headers=bob,
                  json={"version": undone["version"], "geometry": {"png": b64png(theirs)}})
    assert r.status_code == 200, r.text
    stroke(page, [(xs[0], y + 40), (xs[-1], y + 40)])
    page.wait_for_selector("#brush-conflict[open]")
    assert "bob" in page.text_content("#brush-conflict-text")
    page.screenshot(path=str(SHOTS / "bis5k-conflict-dialog.png"))
    page.click("#brush-mine")
    page.wait_for_function(SAVES, arg=3)
    mine = current_mask(live_server, item_id)
    assert mine["version"] == r.json()["version"] + 1 and mine["source"] == "user:ann"
    kept = version_labels(live_server, mine["id"])
    assert kept[y + 40, xs[3]] == 1 and kept[5, 5] == original[5, 5]  # my stroke on my copy, not theirs


def test_brush_paints_a_vertebra_on_the_sagittal_plane(annotator_page, live_server, engine, settings,
                                                       tmp_path_factory):
    SHOTS.mkdir(parents=True, exist_ok=True)
    sample = generate_verse(tmp_path_factory.mktemp("verse-brush") / "verse", subjects=1, layout="flat", seed=3)
    report = ingest_path(engine, settings, sample.root, kind="verse", name="verse")
    item_id = live_get(f"{live_server}/api/datasets/{report.dataset_id}/items").json()["items"][0]["id"]
    before = current_mask(live_server, item_id)
    page = annotator_page
    page.goto(f"{live_server}/items/{item_id}?plane=sagittal")
    page.wait_for_function(READY)
    panes = page.evaluate("() => window.medviewViewer.panes()")
    pane = panes[0]
    assert pane["plane"] == "sagittal"
    page.select_option("#brush-label", "20")  # L1
    page.keyboard.press("y")
    for _ in range(4):
        page.keyboard.press("}")  # 12 → 20 px
    assert page.evaluate("() => window.medviewViewer.viewer.brush.size") == 20
    w, h = pane["width"], pane["height"]
    path = [(w * 0.55, h * 0.15 + n * h * 0.1) for n in range(7)]  # between the bodies and the arches
    stroke(page, path)
    page.wait_for_function(SAVES, arg=1)
    page.wait_for_function(READY)
    page.screenshot(path=str(SHOTS / "verse-sagittal-painted.png"))
    saved = current_mask(live_server, item_id)
    assert saved["version"] == before["version"] + 1
    assert saved["geometry"]["plane"] == "sagittal" and saved["geometry"]["slice"] == pane["slice"]
    shown = version_labels(live_server, saved["id"], plane="sagittal", slice=pane["slice"])
    for x, y in path:
        assert shown[round(y), round(x)] == 20, (x, y)
