"""The patient-page declarations on plain dicts (app.datasets.patients and each kind's): what a file without a date,
description, series number or session becomes, and that only DeepLesion speaks of lesions."""

from __future__ import annotations

from app.datasets.dicom.patient import study_date
from app.datasets.patients import LESION_FOLLOWUP, PatientPage, years
from app.datasets.registry import available_kinds, get_adapter


def _item(n: int, key: str, **meta) -> dict:
    return {"id": n, "key": key, "split": None, "label": None, "width": 64, "height": 64, "depth": meta.pop("depth", 1),
            "spacing": [1.0, 1.0, 2.5], "meta": meta}


def test_only_deeplesion_follows_lesions_and_every_kind_has_a_page():
    for kind in available_kinds():
        page = get_adapter(kind).patient_page
        assert isinstance(page, PatientPage) and page.unit and page.units
        assert page.followup == (kind == "deeplesion")
    assert get_adapter("deeplesion").patient_page is LESION_FOLLOWUP


def test_dicom_study_without_date_or_description_and_series_order():
    page = get_adapter("dicom").patient_page
    items = [_item(1, "1.2.3.10", series_number="10", modality="CT", orientation="axial", depth=40),
             _item(2, "1.2.3.9", series_number="9", series_description="  ", modality="MR", orientation="unknown"),
             _item(3, "1.2.3.x", modality="XX")]
    [section] = page.sections([{"study": "1.2.3", "order": 1, "age": None, "items": items}], [])
    assert section.title == "date unknown · no study description" and section.uid == "1.2.3"
    assert section.details == ("3 series", "CT, MRI, XX")
    assert [e.title for e in section.entries] == ["Series 9 · MRI", "Series 10 · CT", "XX"]  # numeric order
    assert section.entries[0].details == ("MR", "1 image") and section.entries[1].details == ("axial CT", "40 slices")
    assert all(e.uid.startswith("1.2.3.") for e in section.entries)
    assert page.summary(None, [{"age": None}], [section]) == ["sex unknown", "1 study", "3 series"]


def test_verse_sessions_in_order_then_volumes_without_one():
    page = get_adapter("verse").patient_page
    studies = [{"study": f"sub-1_ses-{s}", "order": None, "age": None,
                "items": [_item(n, f"sub-1_ses-{s}", session=s, vertebrae=["L1"], mask_shown=True,
                                vertebrae_source="ctd")]} for n, s in ((1, "02"), (2, "01"))]
    sections = page.sections(studies, [_item(3, "sub-1", session=None)])
    assert [(s.title, s.details[0]) for s in sections] == [("Session 01", "1 CT volume"), ("Session 02", "1 CT volume"),
                                                           ("Without a session", "1 CT volume")]
    assert sections[0].entries[0].details[:2] == ("1 vertebra", "vertebra mask + centroids")
    assert page.summary("F", studies, sections) == ["female", "2 sessions", "3 CT volumes"]


def test_default_page_keeps_items_in_no_study():
    page = PatientPage()
    sections = page.sections([], [_item(1, "a"), _item(2, "b")])
    assert [(s.title, [e.title for e in s.entries]) for s in sections] == [("Items in no study", ["a", "b"])]


def test_small_helpers():
    assert study_date("20190301") == "2019-03-01" and study_date("2019") == "2019" and study_date(None) == ""
    assert years(54.0) == "54" and years(0.5) == "0.5" and years(0.03) == "0.03" and years(None) == ""
