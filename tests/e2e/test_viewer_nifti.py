"""A plain NIfTI item (nnU-Net layout) in the real viewer: its label map drawn in each label's colour where the
mask PNG says (canvas pixels against the overlay's alpha blend), nothing drawn outside it; and a VerSe release with
derivatives but no CT, its vertebrae coloured on black. Screenshots go to MEDVIEW_SHOTS_DIR when set (for a person
to look at)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.datasets.ingest import ingest_path
from app.datasets.nifti.colours import colour
from app.datasets.nifti.synth import generate_nifti
from app.datasets.verse.labels import PALETTE
from app.datasets.verse.synth import generate_verse
from tests.helpers.browser import settle_grid
from tests.helpers.live import live_get

pytestmark = pytest.mark.browser

READY = "() => window.medviewViewer && window.medviewViewer.ready()"
SHOTS = os.environ.get("MEDVIEW_SHOTS_DIR")


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def _item(live_server: str, dataset_id: int, key: str) -> dict:
    listing = live_get(f"{live_server}/api/datasets/{dataset_id}/items", params={"key": key}).json()["items"]
    return live_get(f"{live_server}/api/items/{listing[0]['id']}").json()


def _mask(live_server: str, item_id: int, plane: str, index: int) -> np.ndarray:
    r = live_get(f"{live_server}/api/items/{item_id}/mask", params={"plane": plane, "slice": index})
    assert r.status_code == 200, r.text
    return cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)


def _interior(labels: np.ndarray, value: int) -> tuple[int, int]:
    """A pixel of `value` farthest from any other value (so zoom smoothing cannot reach it): (x, y)."""
    inside = (labels == value).astype(np.uint8)
    distance = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    assert distance[y, x] >= 1.5, f"label {value} has no interior pixel in this plane"
    return int(x), int(y)


def _pixel(page, x: int, y: int) -> np.ndarray:
    return np.array(page.evaluate("([x, y]) => window.medviewViewer.pixel(0, x, y)", [x + 0.5, y + 0.5])[:3],
                    np.float64)


def test_nifti_item_with_its_label_map(page, live_server, engine, settings, tmp_path):
    sample = generate_nifti(tmp_path / "nnunet", layout="nnunet", seed=5)
    report = ingest_path(engine, settings, sample.root, name="nnunet-viewer")
    assert report.kind == "nifti"
    item = _item(live_server, report.dataset_id, "case_000")
    index = item["meta"]["planes"]["axial"] // 2
    page.set_viewport_size({"width": 1100, "height": 800})
    page.goto(f"{live_server}/items/{item['id']}?plane=axial&slice={index}&opacity=1")
    page.wait_for_function(READY)
    state = page.evaluate("() => window.medviewViewer.state")
    assert state["has_mask"] and state["plane"] == "axial" and state["slice"] == index
    labels = _mask(live_server, item["id"], "axial", index)
    for value in (1, 2):  # organ, lesion: each in its own colour at full opacity
        x, y = _interior(labels, value)
        assert np.abs(_pixel(page, x, y) - colour(value)).max() <= 6, value
    x, y = _interior(labels, 0)
    assert all(np.abs(_pixel(page, x, y) - colour(v)).max() > 40 for v in (1, 2))  # background not coloured
    _shot(page, "nifti-item-axial-mask.png")
    page.goto(f"{live_server}/items/{item['id']}?layout=three")
    page.wait_for_function(READY)
    _shot(page, "nifti-item-three-planes.png")
    page.goto(f"{live_server}/datasets/{report.dataset_id}")
    settle_grid(page)
    facets = page.locator("body").inner_text()
    assert "has_labels" in facets.replace(" ", "_").lower() or "has labels" in facets.lower()
    assert "organ" in facets and "lesion" in facets
    _shot(page, "nifti-dataset-page.png")


def test_verse_derivatives_only_in_the_viewer(page, live_server, engine, settings, tmp_path):
    sample = generate_verse(tmp_path / "verse", subjects=1, seed=4)
    import shutil

    shutil.rmtree(sample.root / "rawdata")
    report = ingest_path(engine, settings, sample.root, name="verse-labels-viewer")
    truth = sample.subjects[0]
    item = _item(live_server, report.dataset_id, truth.key)
    index = item["width"] // 2
    page.set_viewport_size({"width": 1100, "height": 800})
    page.goto(f"{live_server}/items/{item['id']}?plane=sagittal&slice={index}&opacity=1")
    page.wait_for_function(READY)
    labels = _mask(live_server, item["id"], "sagittal", index)
    shown = [int(v) for v in np.unique(labels) if v and (labels == v).sum() > 30]
    assert shown
    for value in shown[:3]:
        x, y = _interior(labels, value)
        assert np.abs(_pixel(page, x, y) - PALETTE[value]).max() <= 6, value
    x, y = _interior(labels, 0)
    assert _pixel(page, x, y).max() <= 10  # black where there is no vertebra
    _shot(page, "verse-derivatives-only-sagittal.png")


@pytest.mark.realdata
def test_real_ct_in_the_viewer(page, live_server, engine, settings, realdata):
    """The real TotalSegmentator CT, ingested without --kind: the abdomen window, the body grey on black."""
    report = ingest_path(engine, settings, realdata("nifti_ct"), name="real-ct-viewer")
    item = _item(live_server, report.dataset_id, "example_ct")
    page.set_viewport_size({"width": 1100, "height": 800})
    page.goto(f"{live_server}/items/{item['id']}?plane=coronal")
    page.wait_for_function(READY)
    state = page.evaluate("() => window.medviewViewer.state")
    assert state["window"] == [-175, 275] and state["plane"] == "coronal"
    corner = _pixel(page, 1, 1)
    assert corner.max() <= 5  # air outside the body: black
    _shot(page, "nifti-real-ct-coronal.png")
