"""What the viewer used to decide from a kind name, now from the capabilities the page sends (the adapter's
declarations): PCam's centre box and imagefolder's class text (adapter.viewer_shapes), plane mapping by the voxel
spacing only where the adapter says the spacing maps planes (VerSe, not DICOM), three planes for any volume, and the
measuring tools the kind offers. The page's state carries no kind name."""

from __future__ import annotations

import pytest

from app.datasets.dicom.synth import generate_dicom
from app.datasets.imagefolder.synth import generate_imagefolder
from app.datasets.ingest import ingest_path
from app.datasets.pcam.adapter import CENTRE, LABEL_NAMES
from app.datasets.pcam.synth import generate_pcam
from app.datasets.verse.synth import generate_verse
from tests.helpers.live import live_get

pytestmark = pytest.mark.browser

READY = "() => window.medviewViewer && window.medviewViewer.ready()"


def _first_item(live_server: str, dataset_id: int, query: str = "") -> dict:
    listing = live_get(f"{live_server}/api/datasets/{dataset_id}/items?{query}").json()["items"]
    return live_get(f"{live_server}/api/items/{listing[0]['id']}").json()


def _open(page, live_server: str, item_id: int, query: str = "") -> dict:
    page.goto(f"{live_server}/items/{item_id}{query}")
    page.wait_for_function(READY)
    return page.evaluate("() => window.medviewViewer.state")


def test_pcam_centre_box_and_imagefolder_class_text(page, live_server, engine, settings, tmp_path):
    pcam = generate_pcam(tmp_path / "pcam", n_per_split=(4, 2, 2), seed=1, n_slides=2)
    ds = ingest_path(engine, settings, pcam.root, kind="pcam", name="pcam").dataset_id
    item = _first_item(live_server, ds)
    state = _open(page, live_server, item["id"])
    assert "kind" not in state and state["tools"] == ["line"]  # no RECIST on a pathology patch
    rect = page.locator('.pane rect[data-layer="gt"]')
    assert rect.count() == 1
    x1, y1, x2, y2 = CENTRE
    sx1, sy1 = page.evaluate("([x, y]) => window.medviewViewer.screen(0, x, y)", [x1 - 1, y1 - 1])
    sx2, sy2 = page.evaluate("([x, y]) => window.medviewViewer.screen(0, x, y)", [x2, y2])
    assert float(rect.get_attribute("x")) == pytest.approx(sx1, abs=1e-3)
    assert float(rect.get_attribute("y")) == pytest.approx(sy1, abs=1e-3)
    assert float(rect.get_attribute("width")) == pytest.approx(sx2 - sx1, abs=1e-3)
    assert float(rect.get_attribute("height")) == pytest.approx(sy2 - sy1, abs=1e-3)
    assert page.locator('.pane text[data-layer="gt"]').first.text_content() == LABEL_NAMES[item["label"]]

    folder = generate_imagefolder(tmp_path / "folder", per_class=2)
    ds = ingest_path(engine, settings, folder.root, kind="imagefolder", name="folder").dataset_id
    item = _first_item(live_server, ds)
    label = next(a["label"] for a in item["annotations"] if a["kind"] == "label")
    _open(page, live_server, item["id"])
    assert page.locator('.pane rect[data-layer="gt"]').count() == 0
    texts = page.locator('.pane text[data-layer="gt"]')
    assert texts.count() == 1 and texts.first.text_content() == label


def test_spacing_maps_planes_only_where_the_adapter_says(page, live_server, engine, settings, tmp_path):
    verse = generate_verse(tmp_path / "verse", subjects=1, layout="bids", seed=3)
    ds = ingest_path(engine, settings, verse.root, kind="verse", name="verse").dataset_id
    item = _first_item(live_server, ds)
    state = _open(page, live_server, item["id"], "?layout=three")
    assert state["spacing_maps_planes"] is True and state["spacing"] == pytest.approx(item["spacing"])
    assert [p["plane"] for p in page.evaluate("() => window.medviewViewer.panes()")] == \
        ["axial", "coronal", "sagittal"]

    dicom = generate_dicom(tmp_path / "dicom", seed=1)
    ds = ingest_path(engine, settings, dicom.root, kind="dicom", name="dicom").dataset_id
    volumes = [i for i in live_get(f"{live_server}/api/datasets/{ds}/items?limit=50").json()["items"]
               if live_get(f"{live_server}/api/items/{i['id']}").json()["meta"].get("planes")]
    assert volumes, "the generated DICOM folder holds a volume series"
    state = _open(page, live_server, volumes[0]["id"], "?layout=three")
    # DICOM planes map by the shown images' sizes: the page says so, the script drops the spacing
    assert state["spacing_maps_planes"] is False and state["spacing"] is None
    panes = page.evaluate("() => window.medviewViewer.panes()")
    assert [p["plane"] for p in panes] == ["axial", "coronal", "sagittal"]
    assert all(p["width"] > 0 and p["height"] > 0 for p in panes)
