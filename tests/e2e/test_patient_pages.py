"""Each kind's patient page in chromium: every thumbnail loads, each card opens the viewer, nothing of DeepLesion's
wording on other kinds. Screenshots go to $MEDVIEW_SHOTS_DIR when set (to look at), else the test's tmp dir."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from app.datasets.dicom.synth import generate_dicom
from app.datasets.ingest import ingest_path
from tests.api.test_patient_pages import DEEPLESION_WORDS, _sessions_tree
from tests.helpers.live import live_get

pytestmark = pytest.mark.browser

THUMBS_LOADED = """() => { const imgs = [...document.querySelectorAll('.entry img, .card img')];
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }"""


def _shot(page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("MEDVIEW_SHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"patient-{name}.png"), full_page=True)


def _open(page, url: str) -> str:
    page.goto(url)
    page.wait_for_function(THUMBS_LOADED)
    return page.inner_text("main")


@pytest.mark.realdata
def test_each_kind_patient_page(page, live_server, engine, settings, ingested, realdata, tmp_path):
    verse = ingest_path(engine, settings, _sessions_tree(realdata("verse"), tmp_path / "verse"), kind="verse",
                        name="verse sessions").dataset_id
    sample = generate_dicom(tmp_path / "dicom", seed=2)
    dicom = ingest_path(engine, settings, sample.root, kind="dicom", name="dicom").dataset_id
    real = tmp_path / "real-dicom"
    shutil.copytree(realdata("dicom_ct"), real)
    real_dicom = ingest_path(engine, settings, real, kind="dicom", name="real dicom").dataset_id

    text = _open(page, f"{live_server}/datasets/{verse}/patients/sub-ct")
    assert "Session 01" in text and "Without a session" in text and "2 sessions · 3 CT volumes" in text
    assert not DEEPLESION_WORDS.search(text)
    _shot(page, tmp_path, "verse")
    with page.expect_navigation():
        page.locator(".entry").first.click()
    assert re.search(r"/items/\d+", page.url)

    single = ingest_path(engine, settings, realdata("verse"), kind="verse", name="verse").dataset_id
    text = _open(page, f"{live_server}/datasets/{single}/patients/sub-ct")
    assert "CT volumes" in text and "CT L2–L4" in text and not DEEPLESION_WORDS.search(text)
    _shot(page, tmp_path, "verse-real")

    anonymous = next(p for p in (live_get(f"{live_server}/api/items/{i['id']}").json()["patient"]
                                 for i in live_get(f"{live_server}/api/datasets/{real_dicom}/items").json()["items"])
                     if p.startswith("anonymous-"))
    for ds, patient, name, heading in (
            (dicom, sample.patients[0], "dicom", "2019-09-12 · CT CHEST FOLLOW-UP"),
            (dicom, sample.patients[1], "dicom-2", "2020-05-05 · CT ABDOMEN + MR"),
            (real_dicom, "PHANTOM_EXAMPLE", "dicom-real", "2020-11-12 · no study description"),
            (real_dicom, anonymous, "dicom-real-anonymous", "2022-12-08 · no study description")):
        text = _open(page, f"{live_server}/datasets/{ds}/patients/{patient}")
        assert heading in text and not DEEPLESION_WORDS.search(text), name
        for h2 in page.locator("section h2").all_inner_texts():
            assert not re.search(r"\d+\.\d+\.\d+\.\d+\.\d+", h2), h2  # UIDs only as small print
        _shot(page, tmp_path, name)

    item = live_get(f"{live_server}/api/datasets/{ingested.dataset_id}/items?limit=1").json()["items"][0]
    patient = live_get(f"{live_server}/api/items/{item['id']}").json()["patient"]
    text = _open(page, f"{live_server}/datasets/{ingested.dataset_id}/patients/{patient}")
    assert "Lesion size over studies" in text
    _shot(page, tmp_path, "deeplesion")
