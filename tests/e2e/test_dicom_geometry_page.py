"""Issue 14 in a real browser (SQLite): a gantry-tilted, unevenly spaced CT's item page says on the image which
geometry it shows, and its sagittal plane is the straightened one the API serves. The real tilted Philips phantom
too. Screenshots: MEDVIEW_SHOTS or /tmp/shots-tilt14/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.datasets.ingest import ingest_path
from tests.helpers.browser import VIEWER_READY
from tests.helpers.live import live_get
from tests.helpers.tilted_dicom import GAPS, write_sphere_series

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("MEDVIEW_SHOTS", "/tmp/shots-tilt14"))


@pytest.fixture
def ingested(engine, settings, tmp_path):
    """This module's live server serves a tilted (18.5°), unevenly spaced sphere series."""
    write_sphere_series(tmp_path / "sphere", GAPS, tilt_deg=18.5)
    return ingest_path(engine, settings, tmp_path / "sphere", kind="dicom", name="sphere")


def _open(page, live_server, dataset_id: int, query: str) -> dict:
    [item] = live_get(f"{live_server}/api/datasets/{dataset_id}/items").json()["items"]
    detail = live_get(f"{live_server}/api/items/{item['id']}").json()
    page.goto(f"{live_server}/items/{item['id']}{query}")
    page.wait_for_function(VIEWER_READY)
    return detail


def test_page_says_the_series_is_shown_straightened(page, live_server, ingested):
    SHOTS.mkdir(parents=True, exist_ok=True)
    detail = _open(page, live_server, ingested.dataset_id, "?plane=sagittal")
    label = page.locator("#geometry-label")
    assert label.is_visible()
    assert label.inner_text() == detail["meta"]["geometry"] == (
        "Tilt-corrected 18.5°, uneven slice gaps 1.08–7 mm, resampled to even 1.96 mm spacing")
    assert "resampled" in (label.get_attribute("class") or "")
    assert page.locator(".side dl.dicom").inner_text().count("Tilt-corrected 18.5°") == 1
    pane = page.evaluate("() => window.medviewViewer.panes()")[0]
    assert pane["plane"] == "sagittal"
    page.screenshot(path=str(SHOTS / "sphere-sagittal.png"))


@pytest.mark.realdata
def test_real_tilted_phantom_page(page, live_server, engine, settings, realdata):
    SHOTS.mkdir(parents=True, exist_ok=True)
    ds = ingest_path(engine, settings, realdata("dicom_ct_tilt", "philips_tilt_phantom"), kind="dicom", name="tilt")
    _open(page, live_server, ds.dataset_id, "?plane=sagittal")
    assert page.locator("#geometry-label").inner_text() == "Tilt-corrected 18.5°, resampled to even 2.37 mm spacing"
    page.screenshot(path=str(SHOTS / "phantom-sagittal.png"))
    for plane in ("axial", "coronal"):
        page.goto(page.url.split("?")[0] + f"?plane={plane}")
        page.wait_for_function(VIEWER_READY)
        assert page.evaluate("() => window.medviewViewer.panes()")[0]["plane"] == plane
        page.screenshot(path=str(SHOTS / f"phantom-{plane}.png"))
