"""Patient pages of every kind with patients (issue 14): each shows what its kind has, in its own words.

VerSe: the subject's sessions and CT volumes (a subject whose files name no session used to show "0 studies" and
nothing else); DICOM: studies by date and description with their series, UIDs only as small print (they used to
be the headings, under DeepLesion's "key slice" and "Noisy"); DeepLesion keeps its lesion follow-up. The JSON twin
is checked against its OpenAPI schema."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.dicom.synth import generate_dicom
from app.datasets.ingest import ingest_path
from app.db.models import Patient
from tests.api.test_openapi_schemas import schema_errors

DEEPLESION_WORDS = re.compile(r"key slice|noisy|lesion", re.I)


def _page(client, ds: int, patient: str) -> tuple[dict, str]:
    """The patient's JSON (valid against the documented schema) and its HTML page."""
    r = client.get(f"/api/datasets/{ds}/patients/{patient}")
    assert r.status_code == 200, r.text
    doc = client.get("/openapi.json").json()
    schema = doc["paths"]["/api/datasets/{dataset_id}/patients/{patient}"]["get"]["responses"]["200"]
    assert schema_errors(doc, schema["content"]["application/json"]["schema"], r.json()) == []
    page = client.get(f"/datasets/{ds}/patients/{patient}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    return r.json(), page.text


def _headings(body: str) -> list[str]:
    """Each section's heading, without its muted details."""
    return [html.unescape(re.sub(r'<span class="muted">.*?</span>', "", h)).strip()
            for h in re.findall(r"<h2>(.*?)</h2>", body, re.S)]


def _visible_text(body: str) -> str:
    """The page's text without tags, attributes, scripts and style (what a reader sees)."""
    body = re.sub(r"<(script|style)\b.*?</\1>", "", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def _thumbs_and_links(client, body: str, item_ids: list[int]) -> None:
    """Every item has a link to its viewer and a thumbnail the server renders."""
    for item_id in item_ids:
        assert re.search(f'class="entry" href="[^"]*/items/{item_id}"', body), item_id
    thumbs = re.findall(r'<img [^>]*src="([^"]+)"', body)
    assert len(thumbs) == len(item_ids)
    for url in thumbs:
        r = client.get(html.unescape(url))
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/"), url


def _sessions_tree(real: Path, root: Path) -> Path:
    """The real VerSe case as two sessions of one subject, plus a session-less CT of the same subject."""
    for ses in ("01", "02"):
        for rel in ("rawdata/sub-ct/sub-ct_label-22_ct.nii.gz",
                    "derivatives/sub-ct/sub-ct_seg-vert_label-22_msk.nii.gz"):
            dst = root / rel.replace("sub-ct_", f"sub-ct_ses-{ses}_")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(real / rel, dst)
    shutil.copy(real / "rawdata/sub-ct/sub-ct_label-22_ct.nii.gz", root / "rawdata/sub-ct/sub-ct_ct.nii.gz")
    return root


@pytest.mark.realdata
def test_verse_subject_without_sessions_lists_its_volume(engine, settings, client, realdata):
    ds = ingest_path(engine, settings, realdata("verse"), kind="verse", name="verse").dataset_id
    data, body = _page(client, ds, "sub-ct")
    assert data["studies"] == [] and data["summary"] == ["1 CT volume"]
    [section] = data["sections"]
    assert section["title"] == "CT volumes" and section["details"][0] == "1 CT volume"
    [volume] = section["items"]
    assert volume["title"] == "CT L2–L4" and volume["uid"] == "sub-ct"
    assert volume["details"][:2] == ["3 vertebrae", "vertebra mask"]
    assert "73×73×47 voxels, 1.5 mm" in volume["details"]
    assert "Subject <span class=\"mono\">sub-ct</span>" in body and "1 CT volume" in body
    assert "0 studies" not in body and "sex unknown" not in body
    assert not DEEPLESION_WORDS.search(_visible_text(body))
    _thumbs_and_links(client, body, [volume["id"]])


@pytest.mark.realdata
def test_verse_subject_sessions_with_counts(engine, settings, client, realdata, tmp_path):
    root = _sessions_tree(realdata("verse"), tmp_path / "verse")
    ds = ingest_path(engine, settings, root, kind="verse", name="sessions").dataset_id
    data, body = _page(client, ds, "sub-ct")
    assert data["summary"] == ["2 sessions", "3 CT volumes"]
    assert [(s["title"], s["details"][0], [i["uid"] for i in s["items"]]) for s in data["sections"]] == [
        ("Session 01", "1 CT volume", ["sub-ct_ses-01"]), ("Session 02", "1 CT volume", ["sub-ct_ses-02"]),
        ("Without a session", "1 CT volume", ["sub-ct"])]
    no_mask = data["sections"][2]["items"][0]
    assert "no ground truth" in no_mask["details"]
    assert _headings(body) == ["Session 01", "Session 02", "Without a session"]
    assert "2 sessions · 3 CT volumes" in body
    assert not DEEPLESION_WORDS.search(_visible_text(body))
    _thumbs_and_links(client, body, [i["id"] for s in data["sections"] for i in s["items"]])


def test_dicom_studies_by_date_and_description_with_series(engine, settings, client, tmp_path):
    sample = generate_dicom(tmp_path / "dicom", seed=3)
    ds = ingest_path(engine, settings, sample.root, kind="dicom", name="dicom").dataset_id
    alice, bob = sample.patients
    data, body = _page(client, ds, alice)
    assert data["summary"] == ["female", "2 studies", "2 series", "age 54"]
    assert [s["title"] for s in data["sections"]] == ["2019-03-01 · CT ABDOMEN W CONTRAST",
                                                      "2019-09-12 · CT CHEST FOLLOW-UP"]
    assert [[i["title"] for i in s["items"]] for s in data["sections"]] == [["Series 2 · AX ABD 5mm"],
                                                                           ["Series 5 · CHEST ENHANCED MF"]]
    first = data["sections"][0]
    assert first["details"] == ["age 54", "1 series", "CT"]
    assert first["items"][0]["details"] == ["axial CT", "30 slices", "5 mm thick", "abdomen"]
    assert _headings(body) == [s["title"] for s in data["sections"]]
    # UIDs are small print, never headings or titles
    for s in data["sections"]:
        assert s["uid"] == s["study"] and len(s["uid"]) > 20
        assert f'<p class="uid mono" title="identifier">{s["uid"]}</p>' in body
        for i in s["items"]:
            assert i["uid"] == i["key"] and f'<span class="uid mono" title="{i["uid"]}">' in body
            assert i["uid"] not in i["title"]
    for heading in _headings(body):
        assert not re.search(r"\d+\.\d+\.\d+\.\d+", heading), heading
    assert not DEEPLESION_WORDS.search(_visible_text(body))
    _thumbs_and_links(client, body, [i["id"] for s in data["sections"] for i in s["items"]])

    # one study, two series (CT then MR, by series number)
    data, body = _page(client, ds, bob)
    [study] = data["sections"]
    assert study["title"] == "2020-05-05 · CT ABDOMEN + MR" and study["details"] == ["age 67", "2 series", "CT, MRI"]
    assert [i["title"] for i in study["items"]] == ["Series 3 · AX TILT 15", "Series 4 · SAG T1"]
    assert study["items"][1]["details"][0] == "sagittal MR"
    assert not DEEPLESION_WORDS.search(_visible_text(body))


@pytest.mark.realdata
def test_real_dicom_patients_without_age_date_or_description(engine, settings, client, realdata):
    """The real files: "000Y" ages (unknown, not 0), an empty study description, an empty PatientID."""
    ds = ingest_path(engine, settings, realdata("dicom_ct"), kind="dicom", name="real").dataset_id
    with Session(engine) as s:
        patients = sorted(s.scalars(select(Patient.external_id).where(Patient.dataset_id == ds)))
    assert patients[:2] == ["1CT1", "PHANTOM_EXAMPLE"] and patients[2].startswith("anonymous-")
    data, body = _page(client, ds, "PHANTOM_EXAMPLE")
    assert data["summary"] == ["male", "1 study", "1 series"]  # no age: the files say "000Y"
    [study] = data["sections"]
    assert study["title"] == "2020-11-12 · no study description" and study["details"] == ["1 series", "CT"]
    assert study["items"][0]["title"] == "Series 3 · PHANTOM_EXAMPLE"
    assert " age " not in _visible_text(body) and "0 y" not in body
    data, body = _page(client, ds, patients[2])
    assert data["sections"][0]["items"][0]["title"] == "CT Body 3.0"
    assert data["sections"][0]["items"][0]["details"] == ["axial CT", "20 slices", "3 mm thick", "partialbody"]
    assert not DEEPLESION_WORDS.search(_visible_text(body))


def test_deeplesion_page_keeps_its_lesion_follow_up(client, ingested):
    ds = ingested.dataset_id
    item = client.get(f"/api/datasets/{ds}/items", params={"limit": 1}).json()["items"][0]
    patient = client.get(f"/api/items/{item['id']}").json()["patient"]
    data, body = _page(client, ds, patient)
    assert data["tracks"] and [s["study"] for s in data["sections"]] == [s["study"] for s in data["studies"]]
    assert "Lesion size over studies" in body and "key slice" in body and ">Noisy<" in body
    assert "Patient <span class=\"mono\">" in body and "all key slices of this patient in" in body
    for s in data["studies"]:
        assert f'id="study-{s["study"]}"' in body



@pytest.mark.realdata
def test_item_page_says_follow_up_only_for_a_kind_that_follows_lesions(engine, settings, client, realdata, ingested):
    """The item page's patient link: "follow-up" only where the patient page tracks lesions (DeepLesion)."""
    ds = ingest_path(engine, settings, realdata("verse"), kind="verse", name="verse").dataset_id
    verse_item = client.get(f"/api/datasets/{ds}/items", params={"limit": 1}).json()["items"][0]["id"]
    dl_item = client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]["id"]
    verse_page, dl_page = client.get(f"/items/{verse_item}").text, client.get(f"/items/{dl_item}").text
    assert "subject sub-ct</a>" in verse_page and "follow-up" not in verse_page
    assert "follow-up</a>" in dl_page
