"""Issue 14 in a real browser: what a radiologist missed in the viewer.

- An MR series (generated with pydicom, Modality MR) shows no "HU" anywhere and no CT preset; its presets are the
  file's window and the auto-window; a W/L drag leaves whole numbers in the readout and in the URL.
- Orientation markers on the edges of all three planes of a volume, the letters the server computed from the
  affine; a scale bar in mm on every view whose pixel spacing is known, its length on screen = mm × zoom / mm-per-px;
  a 2-D image without geometry (PCam) shows neither, a DeepLesion key slice (spacing, no geometry) the bar only.
Screenshots (CT axial / coronal / sagittal, three planes, MR, DeepLesion): MEDVIEW_SHOTS or /tmp/shots-viewer14/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from app.datasets.dicom.synth import generate_dicom
from app.datasets.ingest import ingest_path
from app.datasets.pcam.synth import generate_pcam
from app.datasets.verse.synth import generate_verse
from app.imaging.presets import PRESETS
from tests.helpers.browser import flush_view_url, viewer_redrawn
from tests.helpers.live import live_get

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("MEDVIEW_SHOTS", "/tmp/shots-viewer14"))
READY = "() => window.medviewViewer && window.medviewViewer.ready()"
PLANES = ("axial", "coronal", "sagittal")
TEXTBOOK = {"axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
            "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
            "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"}}
MARKERS = """(plane) => Object.fromEntries([...document.querySelectorAll(
  plane ? `.pane[data-plane="${plane}"] text[data-kind="marker"]` : '.pane text[data-kind="marker"]')]
  .map((t) => [t.dataset.edge, t.textContent]))"""
BARS = """() => [...document.querySelectorAll('.pane g[data-kind="scalebar"]')].map((g) => ({
  mm: Number(g.dataset.mm), px: Number(g.dataset.px), text: g.textContent,
  drawn: g.querySelector('path:not(.halo)').getBBox().width, plane: g.closest('.pane').dataset.plane || null }))"""


def _open(page, base: str, item_id: int, query: str = "") -> dict:
    page.goto(f"{base}/items/{item_id}{query}")
    page.wait_for_function(READY)
    return page.evaluate("() => window.medviewViewer.state")


def _items(base: str, dataset_id: int) -> list[dict]:
    listing = live_get(f"{base}/api/datasets/{dataset_id}/items", params={"limit": 500}).json()["items"]
    return [live_get(f"{base}/api/items/{i['id']}").json() for i in listing]


def _pixel_mm(base: str, item_id: int, plane: str | None = None) -> float:
    r = live_get(f"{base}/api/items/{item_id}/raw", params={"plane": plane} if plane else {})
    return float(r.headers["x-pixel-spacing"])


def _check_bars(page, base: str, item_id: int) -> list[dict]:
    """Every pane's scale bar: a round length in mm, drawn as long as mm × zoom / (mm per image pixel)."""
    bars = page.evaluate(BARS)
    panes = page.evaluate("() => window.medviewViewer.panes()")
    assert len(bars) == len(panes)
    for bar, pane in zip(bars, panes, strict=True):
        assert re.fullmatch(r"\d+(\.\d+)? mm", bar["text"]) and bar["text"] == f"{bar['mm']:g} mm"
        expected = bar["mm"] * pane["view"]["zoom"] / _pixel_mm(base, item_id, pane["plane"])
        assert bar["px"] == pytest.approx(expected, abs=0.01) and bar["drawn"] == pytest.approx(expected, abs=0.5)
        assert 20 <= bar["px"] <= 120  # a bar one can read, never wider than its limit
    return bars


def test_mr_series_has_no_hu_and_no_ct_presets_and_a_drag_leaves_whole_numbers(page, live_server, engine,
                                                                                settings, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    tree = generate_dicom(tmp_path / "dcm", seed=2)
    report = ingest_path(engine, settings, tree.root, kind="dicom", name="dcm")
    mr = next(d for d in _items(live_server, report.dataset_id) if d["meta"]["modality"] == "MR")
    state = _open(page, live_server, mr["id"])
    assert (state["ct"], state["units"], state["plane"]) == (False, "", "sagittal")
    assert page.eval_on_selector_all("button[data-preset]", "bs => bs.map(b => b.dataset.preset)") == ["default",
                                                                                                       "auto"]
    assert not set(state["presets"]) & set(PRESETS)
    box = page.evaluate("() => window.medviewViewer.paneBox(0)")
    page.mouse.move(box[0] + box[2] / 2, box[1] + box[3] / 2)  # the hovered value: no unit for MR
    page.wait_for_function("() => document.getElementById('hover-readout').textContent !== ''")
    body = page.inner_text("body")
    assert not re.search(r"\bHU\b", body), re.findall(r".{30}\bHU\b.{30}", body)
    assert "0 to 1400 · MR · file's window" in page.inner_text("#window-readout")
    assert page.evaluate(MARKERS, "sagittal") == TEXTBOOK["sagittal"]
    _check_bars(page, live_server, mr["id"])
    page.screenshot(path=str(SHOTS / "mr-sagittal.png"))

    with viewer_redrawn(page):
        page.keyboard.press("2")  # the auto-window
    assert page.evaluate("() => window.medviewViewer.state.window") == state["presets"]["auto"]
    assert "auto (0.5–99.5 %)" in page.inner_text("#window-readout")
    page.wait_for_function("() => location.search.includes('preset=auto')")

    # a W/L drag: whole numbers in the readout and the URL, whatever the distance dragged
    x0, y0 = box[0] + box[2] / 2, box[1] + box[3] / 2
    with viewer_redrawn(page):
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + 37, y0 - 23, steps=5)
        page.mouse.up()
    low, high = page.evaluate("() => window.medviewViewer.state.window")
    assert low == int(low) and high == int(high) and (high - low) % 2 == 0
    readout = page.inner_text("#window-readout")
    assert re.search(rf"W {int(high - low)}\s+L {int((low + high) / 2)}\b", readout), readout
    assert f"{int(low)} to {int(high)} · MR · custom" in readout
    assert not re.search(r"\d\.\d", readout)
    assert f"window={int(low)}%2C{int(high)}" in flush_view_url(page)
    page.screenshot(path=str(SHOTS / "mr-after-drag.png"))


def test_volume_planes_show_their_orientation_letters_and_a_scale_bar(page, live_server, engine, settings, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    verse = generate_verse(tmp_path / "verse", subjects=1, seed=4)
    report = ingest_path(engine, settings, verse.root, kind="verse", name="verse")
    [item] = _items(live_server, report.dataset_id)
    _open(page, live_server, item["id"], "?layout=three")
    for plane in PLANES:
        assert page.evaluate(MARKERS, plane) == TEXTBOOK[plane], plane
    assert {b["plane"] for b in _check_bars(page, live_server, item["id"])} == set(PLANES)
    page.screenshot(path=str(SHOTS / "verse-three-planes.png"))
    for plane in PLANES:  # one plane at a time: the same letters, a bar that follows the zoom
        _open(page, live_server, item["id"], f"?plane={plane}")
        assert page.evaluate(MARKERS, None) == TEXTBOOK[plane]
        fitted = _check_bars(page, live_server, item["id"])[0]
        with viewer_redrawn(page):
            page.keyboard.press("n")  # 1:1: a different zoom, another bar
        assert _check_bars(page, live_server, item["id"])[0]["px"] != fitted["px"]


def test_two_d_images_show_a_scale_bar_only_with_a_spacing(page, live_server, ingested, engine, settings, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    lesion = _items(live_server, ingested.dataset_id)[0]  # DeepLesion: mm per pixel known, no patient geometry
    _open(page, live_server, lesion["id"])
    assert page.evaluate(MARKERS, None) == {}
    [bar] = _check_bars(page, live_server, lesion["id"])
    assert _pixel_mm(live_server, lesion["id"]) == pytest.approx(lesion["spacing"][0], rel=1e-3)
    page.screenshot(path=str(SHOTS / "deeplesion-generated.png"))

    pcam = generate_pcam(tmp_path / "pcam", n_per_split=(2, 1, 1), seed=1, n_slides=1)
    ds = ingest_path(engine, settings, pcam.root, kind="pcam", name="pcam").dataset_id
    patch = _items(live_server, ds)[0]
    state = _open(page, live_server, patch["id"])
    assert not state["windowed"] and page.locator("button[data-preset]").count() == 0
    assert page.evaluate(MARKERS, None) == {} and page.evaluate(BARS) == []


@pytest.mark.realdata
def test_real_ct_planes_deeplesion_and_dicom_screenshots(page, live_server, engine, settings, realdata):
    """The real samples: the TotalSegmentator CT (NIfTI) in its three planes with their letters, a real DeepLesion
    key slice with its scale bar, the real CT DICOM series; screenshots of each."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    report = ingest_path(engine, settings, realdata("nifti_ct"), kind="verse", name="real-ct")
    [ct] = _items(live_server, report.dataset_id)
    for plane in PLANES:
        _open(page, live_server, ct["id"], f"?plane={plane}")
        assert page.evaluate(MARKERS, None) == TEXTBOOK[plane]
        _check_bars(page, live_server, ct["id"])
        page.screenshot(path=str(SHOTS / f"ct-{plane}.png"))
    report = ingest_path(engine, settings, realdata("deeplesion"), kind="deeplesion", name="real-dl")
    lesion = next(d for d in _items(live_server, report.dataset_id)
                  if live_get(f"{live_server}/api/items/{d['id']}/raw").status_code == 200)
    _open(page, live_server, lesion["id"])
    assert page.evaluate(MARKERS, None) == {}
    _check_bars(page, live_server, lesion["id"])
    page.screenshot(path=str(SHOTS / "deeplesion-key-slice.png"))
    report = ingest_path(engine, settings, realdata("dicom_ct"), kind="dicom", name="real-dicom")
    series = max(_items(live_server, report.dataset_id), key=lambda d: d["depth"])
    state = _open(page, live_server, series["id"])
    assert state["units"] == "HU" and page.evaluate(MARKERS, None) == TEXTBOOK[state["plane"]]
    _check_bars(page, live_server, series["id"])
    page.screenshot(path=str(SHOTS / "dicom-ct-real.png"))
