"""The mask brush on a DICOM series in a real browser (SQLite): an annotator paints a lesion on an axial slice of a
generated CT that has no mask yet; the stroke is saved as a new 3-D mask annotation, shown as the viewer's mask
layer, and `dicom-seg` exports it on the source instance of that slice. Screenshots: /tmp/shots-dicom/."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from app.datasets.dicom.synth import generate_dicom
from app.datasets.ingest import ingest_path
from app.imaging.labels import decode_label_png
from tests.e2e.test_brush import READY, SAVES, annotator_page, stroke  # noqa: F401 (fixture)
from tests.helpers.api import wait_finished
from tests.helpers.auth import api_token
from tests.helpers.live import live_get

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("MEDVIEW_SHOTS", "/tmp/shots-dicom"))


@pytest.fixture(scope="module")
def dicom_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_dicom(tmp_path_factory.mktemp("dicom-brush") / "dcm", seed=4)


@pytest.fixture
def ingested(engine, settings, dicom_tree):
    """This module's live server serves the generated DICOM folder."""
    return ingest_path(engine, settings, dicom_tree.root, kind="dicom", name="dcm")


def test_brush_paints_a_dicom_series_and_dicom_seg_exports_it(annotator_page, live_server, ingested,  # noqa: F811
                                                               dicom_tree, settings):
    SHOTS.mkdir(parents=True, exist_ok=True)
    items = live_get(f"{live_server}/api/datasets/{ingested.dataset_id}/items").json()["items"]
    ct = next(d for d in (live_get(f"{live_server}/api/items/{i['id']}").json() for i in items)
              if d["meta"]["series_description"] == "AX ABD 5mm")
    page = annotator_page
    page.goto(f"{live_server}/items/{ct['id']}")
    page.wait_for_function(READY)
    page.screenshot(path=str(SHOTS / "dicom-item-before.png"))
    pane = page.evaluate("() => window.medviewViewer.panes()")[0]
    assert pane["plane"] == "axial"
    page.keyboard.press("y")
    assert page.get_attribute("#brush-paint", "aria-pressed") == "true"
    path = [(80 + 10 * n, 100) for n in range(6)]
    stroke(page, path)
    page.wait_for_function(SAVES, arg=1)
    page.wait_for_function(READY)
    page.screenshot(path=str(SHOTS / "dicom-item-painted.png"))

    item = live_get(f"{live_server}/api/items/{ct['id']}").json()
    (mask,) = [a for a in item["annotations"] if a["kind"] == "mask"]
    assert mask["source"] == "user:ann" and mask["geometry"]["stored"].endswith(".npz")
    assert mask["geometry"]["plane"] == "axial" and mask["geometry"]["slice"] == pane["slice"]
    shown = decode_label_png(live_get(f"{live_server}/api/items/{ct['id']}/mask",
                                      params={"plane": "axial", "slice": pane["slice"]}).content)
    for x, y in path:
        assert shown[y, x] == 1, (x, y)

    reviewer = {"Authorization": f"Bearer {api_token(settings, 'rev', 'reviewer')}"}
    import httpx

    r = httpx.post(f"{live_server}/api/exports", headers=reviewer,
                   json={"dataset_id": ingested.dataset_id, "format": "dicom-seg"})
    assert r.status_code == 202, r.text
    with httpx.Client(base_url=live_server, headers=reviewer) as client:
        assert wait_finished(client, r.json()["id"])["status"] == "done"
        summary = client.get(f"/api/exports/{r.json()['id']}").json()
        body = client.get(summary["download_url"]).content
    data = body if body[:2] != b"PK" else zipfile.ZipFile(io.BytesIO(body)).read(
        zipfile.ZipFile(io.BytesIO(body)).namelist()[0])
    seg = hd.seg.segread(io.BytesIO(data))
    sources = sorted((pydicom.dcmread(dicom_tree.root / f) for f in dicom_tree.series[ct["key"]]),
                     key=lambda d: float(d.ImagePositionPatient[2]))
    on = sources[pane["slice"]]  # axial slices count from inferior; this series' pixels are the display's
    got = seg.get_pixels_by_source_instance([on.SOPInstanceUID], segment_numbers=[1], combine_segments=True)[0]
    assert np.array_equal(got, shown)
    assert seg.get_segment_description(1).segment_label == "lesion"
