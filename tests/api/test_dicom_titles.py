"""DICOM series are named by number, description and date, not by their 60-digit UIDs: the grid listing's
`title`, the item page's heading, tab title, breadcrumb and study line (each checked against the headers read
with pydicom); the UIDs stay visible in small print; a series without a description falls back to its modality;
kinds with readable keys get no title."""

from __future__ import annotations

import html
import re
import shutil

import pydicom
import pytest

from app.datasets.dicom.synth import generate_dicom
from app.datasets.ingest import ingest_path


@pytest.fixture(scope="module")
def dicom_tree(tmp_path_factory):
    return generate_dicom(tmp_path_factory.mktemp("dicom-titles") / "export", seed=5).root


def _headers(root) -> dict[str, pydicom.Dataset]:
    """One header per image series (SeriesInstanceUID → dataset), read with pydicom."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue
        if ds.get("Modality") != "RTSTRUCT":
            out.setdefault(ds.SeriesInstanceUID, ds)
    return out


def _date(da: str) -> str:
    return f"{da[:4]}-{da[4:6]}-{da[6:]}"


def test_listing_titles_each_series_from_its_headers(client, engine, settings, dicom_tree):
    report = ingest_path(engine, settings, dicom_tree, kind="dicom", name="titles")
    items = client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"]
    headers = _headers(dicom_tree)
    assert len(items) == len(headers) >= 3
    for item in items:
        ds = headers[item["key"]]
        expected = f"{ds.SeriesDescription} · {_date(ds.StudyDate)} · #{ds.SeriesNumber}"
        assert item["title"] == expected


def test_item_page_heading_and_study_line(client, engine, settings, dicom_tree):
    report = ingest_path(engine, settings, dicom_tree, kind="dicom", name="titles")
    item = client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"][0]
    ds = _headers(dicom_tree)[item["key"]]
    page = client.get(f"/items/{item['id']}").text
    text = html.unescape(page)
    assert re.search(r"<title>([^<]*)</title>", text).group(1).startswith(item["title"])
    assert f'<h1 class="item-title">{item["title"]}</h1>' in text
    assert 'class="item-key' not in page  # the UID is no heading…
    assert f'<div class="item-uid mono small muted" title="the item\'s key">{item["key"]}</div>' in text  # …but shown
    study = f"{_date(ds.StudyDate)} · {ds.StudyDescription}"
    assert f"<dd>{study}<div" in text and ds.StudyInstanceUID in text
    assert f"Study {ds.StudyInstanceUID}" not in text  # the viewport corner names the study too


def test_series_without_description_or_number_falls_back_to_its_modality(client, engine, settings, dicom_tree,
                                                                         tmp_path):
    root = tmp_path / "export"
    shutil.copytree(dicom_tree, root)
    uid, first = next(iter(_headers(root).items()))
    for path in (p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            continue
        if ds.SeriesInstanceUID == uid:
            del ds.SeriesDescription, ds.SeriesNumber, ds.StudyDate
            ds.save_as(path)
    report = ingest_path(engine, settings, root, kind="dicom", name="bare")
    items = client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"]
    bare = next(i for i in items if i["key"] == uid)
    assert bare["title"] == {"CT": "CT", "MR": "MRI"}[first.Modality]
    page = html.unescape(client.get(f"/items/{bare['id']}").text)
    assert "date unknown · " in page  # the study line says what is missing instead of showing the UID


@pytest.mark.parametrize("kind", ["deeplesion", "pcam", "imagefolder"])
def test_kinds_with_readable_keys_have_no_title(kind, demo_samples, engine, settings, client):
    report = ingest_path(engine, settings, demo_samples / kind, kind=kind, name=kind)
    items = client.get(f"/api/datasets/{report.dataset_id}/items", params={"limit": 5}).json()["items"]
    assert items and all("title" not in i for i in items)
    page = client.get(f"/items/{items[0]['id']}").text
    assert '<h1 class="item-key mono">' in page
