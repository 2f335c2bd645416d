"""A DICOM PatientAge of "000Y" (the anonymisers' placeholder) is an unknown age: no "0-9" in the age facet, no
age on the item, the study or the patient page; and a dataset indexed before this was fixed is corrected by a
re-ingest (the DICOM fingerprints carry a format version, and study ages are refreshed)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.dicom import records
from app.datasets.dicom.synth import generate_dicom
from app.datasets.ingest import ingest_path
from app.db.models import Item, Patient, Study


def _placeholder_ages(root: Path, patient: str) -> int:
    """Rewrite every file of `patient` with PatientAge "000Y" and no birth date, as anonymisers leave them."""
    n = 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            continue
        if ds.get("PatientID") == patient:
            ds.PatientAge, ds.PatientBirthDate = "000Y", ""
            ds.save_as(path)
            n += 1
    return n


def _old_parse_age(age: str, birth_date: str = "", study_date: str = "") -> float | None:
    """The reader before issue 14: "000Y" → 0.0 years."""
    age = age.strip().upper()
    if len(age) == 4 and age[:3].isdigit() and age[3] in "YMWD":
        return round(int(age[:3]) / {"Y": 1, "M": 12, "W": 52.1775, "D": 365.25}[age[3]], 2)
    return None


def _ages(engine, ds: int, patient: str) -> tuple[list, list]:
    with Session(engine) as s:
        pid = s.scalar(select(Patient.id).where(Patient.dataset_id == ds, Patient.external_id == patient))
        return (s.scalars(select(Item.age).where(Item.patient_id == pid)).all(),
                s.scalars(select(Study.age).where(Study.patient_id == pid)).all())


def test_placeholder_age_is_unknown_in_facets_items_studies_and_page(engine, settings, client, tmp_path):
    sample = generate_dicom(tmp_path / "dicom", seed=5)
    alice, bob = sample.patients
    assert _placeholder_ages(sample.root, bob) > 0
    ds = ingest_path(engine, settings, sample.root, kind="dicom", name="anon").dataset_id
    detail = client.get(f"/api/datasets/{ds}").json()
    assert detail["facets"]["age"] == {"50-59": 2}  # Alice's two series; Bob's have no age
    assert _ages(engine, ds, bob) == ([None, None], [None])
    assert client.get(f"/api/datasets/{ds}/items", params={"age": "0-9"}).json()["total"] == 0
    page = client.get(f"/datasets/{ds}/patients/{bob}").text
    assert "age" not in client.get(f"/api/datasets/{ds}/patients/{bob}").json()["summary"][-1]
    assert " age 0" not in page and "0 y" not in page
    item = client.get(f"/api/datasets/{ds}/items", params={"patient": bob}).json()["items"][0]
    assert item["age"] is None and " 0 y" not in client.get(f"/items/{item['id']}").text


def test_a_reingest_fixes_ages_indexed_before(engine, settings, client, tmp_path, monkeypatch):
    sample = generate_dicom(tmp_path / "dicom", seed=6)
    _alice, bob = sample.patients
    _placeholder_ages(sample.root, bob)
    with monkeypatch.context() as old:  # the dataset as the previous version indexed it
        old.setattr(records, "parse_age", _old_parse_age)
        old.setattr(records, "FORMAT_VERSION", "dicom-1")
        first = ingest_path(engine, settings, sample.root, kind="dicom", name="old")
    ds = first.dataset_id
    assert client.get(f"/api/datasets/{ds}").json()["facets"]["age"] == {"0-9": 2, "50-59": 2}
    assert _ages(engine, ds, bob) == ([0.0, 0.0], [0.0])

    again = ingest_path(engine, settings, sample.root, kind="dicom", name="old")
    assert again.dataset_id == ds and again.updated == first.items and again.added == again.removed == 0
    assert client.get(f"/api/datasets/{ds}").json()["facets"]["age"] == {"50-59": 2}
    assert client.get(f"/api/datasets/{ds}/facets").json()["facets"]["age"] == {"50-59": 2}
    assert _ages(engine, ds, bob) == ([None, None], [None])
    assert client.get(f"/api/datasets/{ds}/patients/{bob}").json()["studies"][0]["age"] is None
