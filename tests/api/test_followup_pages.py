"""The follow-up page (issue 14): prior | current of one patient, and the links that open it.

DeepLesion: the patient page's lesion tracks link each measurement to the same lesion's previous key slice, the item
page links its prior, and the page shows both studies, both measurements and the change. DICOM: two generated
studies of one patient (an abdomen CT in each, at different heights and slice spacings, and an MR in the second);
the CT of the later study links the earlier CT, nothing else has a prior, and each pane knows where its slices lie in
patient mm (what links the slices). Refusals: another patient or dataset, the item itself (400), unknown ids (404).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.catalog.followup import series_match, series_priors, track_priors
from app.datasets.dicom.synth import AXIAL_IOP, _axial_ct, _Writer
from app.datasets.ingest import ingest_path
from app.db.models import Item, Patient
from tests.api.test_pages_html import assert_html


def state_of(body: str) -> dict:
    return json.loads(html.unescape(re.search(r'id="followup-state">(.*?)</script>', body, re.S).group(1)))


def heads(body: str) -> list[str]:
    """The two pane headers' text (prior, current)."""
    found = re.findall(r'<div class="fu-head" data-role="(\w+)">(.*?)</div>\s*</div>', body, re.S)
    return [(role, " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())) for role, text in found]


def deeplesion_track(client, engine, ds: int) -> tuple[str, dict, list[str]]:
    """A patient with a lesion track over ≥ 2 studies: (patient, the track, the patient's studies in order)."""
    with Session(engine) as s:
        patients = s.scalars(select(Patient.external_id).where(Patient.dataset_id == ds)).all()
    for pid in patients:
        data = client.get(f"/api/datasets/{ds}/patients/{pid}").json()
        for track in data["tracks"]:
            if len(track["by_study"]) >= 2:
                return pid, track, [st["study"] for st in data["studies"]]
    raise AssertionError("the sample has no lesion over two studies")


def test_deeplesion_track_links_and_page(client, engine, ingested):
    ds = ingested.dataset_id
    pid, track, order = deeplesion_track(client, engine, ds)
    measured = sorted(track["by_study"].items(), key=lambda kv: order.index(kv[0]))
    (s0, before), (s1, after) = measured[0], measured[1]
    page = assert_html(client.get(f"/datasets/{ds}/patients/{pid}"), 200)
    href = f'/items/{after["item_id"]}/followup?prior={before["item_id"]}'
    assert f'{href}"' in html.unescape(page)
    # the first measurement of a track has nothing to compare with
    assert f'/items/{before["item_id"]}/followup?prior=' not in page

    item_page = assert_html(client.get(f"/items/{after['item_id']}"), 200)
    assert re.search(rf'id="compare-prior" href="[^"]*/items/{after["item_id"]}/followup\?prior=(\d+)"', item_page)

    body = assert_html(client.get(href), 200)
    (r0, h0), (r1, h1) = heads(body)
    assert (r0, r1) == ("prior", "current") and f"Study {s0}" in h0 and f"Study {s1}" in h1
    state = state_of(body)
    assert [v["id"] for v in state["sides"]] == [before["item_id"], after["item_id"]]
    assert all(v["positions"] is None and v["slices"] for v in state["sides"])  # key slices: offset linking
    change = next(c for c in state["changes"] if c["number"] == track["number"])
    assert change["change"] == pytest.approx(after["long_mm"] / before["long_mm"] - 1)
    assert f'{change["change"] * 100:+.0f}%' in body
    assert f'{before["long_mm"]:.1f} × {before["short_mm"]:.1f}' in body
    assert f'{after["long_mm"]:.1f} × {after["short_mm"]:.1f}' in body
    # the prior given as the later study: still the earlier study on the left
    swapped = state_of(assert_html(client.get(f'/items/{before["item_id"]}/followup?prior={after["item_id"]}'), 200))
    assert [v["id"] for v in swapped["sides"]] == [before["item_id"], after["item_id"]]
    # without prior: the item's own prior
    auto = state_of(assert_html(client.get(f'/items/{after["item_id"]}/followup'), 200))
    assert auto["sides"][1]["id"] == after["item_id"] and auto["sides"][0]["id"] != after["item_id"]


def test_refusals_name_why(client, engine, ingested, dicom_followup):
    ds = ingested.dataset_id
    with Session(engine) as s:
        rows = s.execute(select(Item.id, Item.patient_id).where(Item.dataset_id == ds).order_by(Item.id)).all()
    first = rows[0]
    stranger = next(r for r in rows if r.patient_id != first.patient_id)
    body = assert_html(client.get(f"/items/{first.id}/followup?prior={stranger.id}"), 400)
    assert "same patient" in html.unescape(body) and 'class="error-status">400<' in body
    body = assert_html(client.get(f"/items/{first.id}/followup?prior={first.id}"), 400)
    assert "another item" in body
    assert "not found" in assert_html(client.get(f"/items/{first.id}/followup?prior=999999"), 404)
    assert "not found" in assert_html(client.get(f"/items/999999/followup?prior={first.id}"), 404)
    assert_html(client.get(f"/items/{first.id}/followup?prior=abc"), 422)
    with Session(engine) as s:  # an item of another dataset (the DICOM one below)
        elsewhere = s.scalar(select(Item.id).where(Item.dataset_id == dicom_followup).order_by(Item.id))
    body = html.unescape(assert_html(client.get(f"/items/{first.id}/followup?prior={elsewhere}"), 400))
    assert "another dataset" in body


# -- DICOM -------------------------------------------------------------------------------------------------------

def two_studies(root: Path) -> None:
    """One patient: 2019 abdomen CT (10 × 5 mm from z 200) and 2020 abdomen CT (15 × 3 mm from z 190) + an MR."""
    w = _Writer(root, 11)
    patient = {"name": "Phantom^Carol", "id": "MV-FU-001", "sex": "F", "age": "061Y", "birth": "19580101"}
    studies = [{"uid": w.uid(name), "frame_uid": w.uid(name, "frame"), "date": date, "description": desc, "id": sid}
               for name, date, desc, sid in (("fu-a", "20190301", "CT ABDOMEN", "F1"),
                                             ("fu-b", "20200415", "CT ABDOMEN FOLLOW-UP", "F2"))]

    def series(name: str, number: int, modality: str, description: str) -> dict:
        return {"uid": w.uid("series", name), "number": number, "modality": modality, "description": description,
                "body_part": "ABDOMEN", "thickness": 5.0}

    corner = lambda n, z, half: [-half, -half, z]  # noqa: E731
    window = {"WindowCenter": 40, "WindowWidth": 400}
    _axial_ct(w, patient, studies[0], series("a-ct", 2, "CT", "AX ABD 5mm"), [200.0 + 5 * n for n in range(10)],
              64, 4.0, corner, AXIAL_IOP, window)
    _axial_ct(w, patient, studies[1], series("b-ct", 3, "CT", "AX ABD 3mm"), [190.0 + 3 * n for n in range(15)],
              64, 4.0, corner, AXIAL_IOP, window)
    _axial_ct(w, patient, studies[1], series("b-mr", 4, "MR", "AX T2"), [200.0 + 5 * n for n in range(4)],
              64, 4.0, corner, AXIAL_IOP, window)


@pytest.fixture
def dicom_followup(engine, settings, tmp_path) -> int:
    two_studies(tmp_path / "fu")
    return ingest_path(engine, settings, tmp_path / "fu", kind="dicom", name="followup").dataset_id


def test_dicom_compare_with_prior_links_and_positions(client, dicom_followup):
    ds = dicom_followup
    items = {i["key"]: i for i in client.get(f"/api/datasets/{ds}/items", params={"limit": 50}).json()["items"]}
    assert len(items) == 3
    ids = {}
    for i in items.values():
        meta = client.get(f"/api/items/{i['id']}").json()["meta"]
        ids[meta["series_description"]] = i["id"]
    old, new, mr = ids["AX ABD 5mm"], ids["AX ABD 3mm"], ids["AX T2"]
    page = html.unescape(assert_html(client.get(f"/datasets/{ds}/patients/MV-FU-001"), 200))
    assert page.count("compare with prior") == 1
    assert f'/items/{new}/followup?prior={old}"' in page
    assert f"/items/{new}/followup" in assert_html(client.get(f"/items/{new}"), 200)
    for lone in (old, mr):  # the first study's CT, and an MR with no earlier MR
        assert 'id="compare-prior"' not in assert_html(client.get(f"/items/{lone}"), 200)
    assert "no earlier study" in assert_html(client.get(f"/items/{mr}/followup"), 400)

    body = assert_html(client.get(f"/items/{new}/followup?prior={old}"), 200)
    (_, h0), (_, h1) = heads(body)
    assert "2019-03-01" in h0 and "CT ABDOMEN · AX ABD 5mm" in h0 and "age 61" in h0
    assert "2020-04-15" in h1 and "AX ABD 3mm" in h1
    prior, current = state_of(body)["sides"]
    # slice k of the axial plane lies at z = first + k × spacing (mm, patient S axis): what links the slices
    assert prior["positions"]["axial"] == pytest.approx([200.0, 5.0])
    assert current["positions"]["axial"] == pytest.approx([190.0, 3.0])
    assert prior["planes"]["axial"] == 10 and current["planes"]["axial"] == 15
    assert "slices by position (mm)" in body


def test_series_match_rule():
    ct = {"modality": "CT", "series_description": "AX ABD 5mm", "body_part": "ABDOMEN"}
    assert series_match(ct, {"modality": "CT", "series_description": "Ax abd 3mm"})
    assert series_match(ct, {"modality": "CT", "series_description": "PORTAL", "body_part": "abdomen"})
    assert not series_match(ct, {"modality": "CT", "series_description": "CHEST ENHANCED MF", "body_part": "CHEST"})
    assert not series_match(ct, {"modality": "MR", "series_description": "AX ABD"})


def test_series_priors_take_the_nearest_earlier_study_with_a_match():
    def item(n: int, description: str, modality: str = "CT", plane: str = "axial") -> dict:
        return {"id": n, "meta": {"modality": modality, "series_description": description, "orientation": plane}}

    studies = [{"study": "s1", "items": [item(1, "AX ABD 5mm"), item(2, "AX T2", "MR")]},
               {"study": "s2", "items": [item(3, "CHEST"), item(4, "ABD PORTAL", plane="coronal"),
                                         item(5, "AX ABD PORTAL")]},
               {"study": "s3", "items": [item(6, "AX ABD 3mm"), item(7, "COR T2", "MR", "coronal")]}]
    # s3's CT: s2 (nearest) has two abdomen CTs; "AX ABD PORTAL" shares two words; s3's MR skips s2 (no MR) for s1
    assert series_priors(studies) == {5: 1, 4: 1, 6: 5, 7: 2}
    track = {"number": 1, "by_study": {"s3": {"item_id": 6}, "s1": {"item_id": 1}, "s2": {"item_id": 4}}}
    assert track_priors([track], ["s1", "s2", "s3"]) == {4: 1, 6: 4}
