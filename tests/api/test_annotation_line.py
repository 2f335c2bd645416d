"""The `line` annotation kind (a length measurement saved from the viewer) on the generated DeepLesion sample:
created by an annotator with `length_px`/`length_mm` recomputed from the item's pixel spacing, edited into a new
version (the length follows), each kind of bad geometry a 400 naming the field, and the kinds that do not take
lines (VerSe, image folders) refuse it; the item page hands the editor its kinds, classes and write rights."""

from __future__ import annotations

import json
import math
import re

import pytest

from app.datasets.annotation_rules import AnnotationTarget
from app.datasets.registry import get_adapter
from tests.helpers.auth import api_token


def _as(settings, name: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, name, role)}"}


@pytest.fixture
def item(client, ingested) -> dict:
    first = client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]
    return client.get(f"/api/items/{first['id']}").json()


def test_line_create_edit_and_bad_geometry(client, settings, item):
    annotator = _as(settings, "lena", "annotator")
    url = f"/api/items/{item['id']}/annotations"
    body = {"kind": "line", "label": None, "geometry": {"line": [[10, 20], [40, 60]]}, "slice": item["slice"],
            "meta": {"plane": "axial"}}
    r = client.post(url, json=body, headers=annotator)
    assert r.status_code == 201, r.text
    made = r.json()
    spacing = item["spacing"][0]
    assert made["source"] == "user:lena" and made["version"] == 1 and made["slice_index"] == item["slice"]
    assert made["meta"]["length_px"] == 50 and math.isclose(made["meta"]["length_mm"], round(50 * spacing, 2))
    assert made["meta"]["plane"] == "axial"
    listed = client.get(f"/api/items/{item['id']}").json()["annotations"]
    assert made["id"] in {a["id"] for a in listed}

    r = client.put(f"/api/annotations/{made['id']}", json={"version": 1, "geometry": {"line": [[10, 20], [10, 50]]}},
                   headers=annotator)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["meta"]["length_px"] == 30 and r.json()["meta"]["plane"] == "axial"

    width = item["width"]
    bad = [  # geometry, the field the 400 names
        ({}, "geometry.line"),
        ({"line": [[10, 20]]}, "geometry.line"),
        ({"line": [[10, 20], [10, 20]]}, "the two points are the same"),
        ({"line": [[10, 20], [width + 5, 20]]}, "geometry.line[1]"),
        ({"line": [[10, "x"], [30, 20]]}, "geometry.line[0]"),
        ({"line": [[10, 20, 3], [30, 20]]}, "geometry.line[0]"),
        ({"line": "10,20,30,40"}, "geometry.line"),
    ]
    for geometry, named in bad:
        r = client.post(url, json={**body, "geometry": geometry}, headers=annotator)
        assert r.status_code == 400 and named in r.json()["detail"], (geometry, r.text)
    assert client.post(url, json=body, headers=_as(settings, "vic", "viewer")).status_code == 403


def test_kinds_without_lines_refuse_them():
    target = AnnotationTarget(100, 80, 40, (0.5, 0.5, 2.0))
    line = {"line": [[1, 2], [30, 40]]}
    for kind in ("verse", "imagefolder", "pcam"):
        assert get_adapter(kind).validate_annotation("line", line, None, target, ())[0].startswith("kind:")
    for kind in ("deeplesion", "dicom"):
        assert "line" in get_adapter(kind).editable_annotations
        assert get_adapter(kind).validate_annotation("line", line, None, target, ()) == []
    assert get_adapter("dicom").derived_meta("line", line, {}, AnnotationTarget(100, 80)) == {"length_px": 47.8}


def _edit_state(html: str) -> dict:
    state = re.search(r'<script type="application/json" id="viewer-state">(.*?)</script>', html, re.S)
    assert state is not None
    return json.loads(state.group(1))["edit"]


def test_item_page_hands_the_editor_its_rights(anon_client, settings, item):
    def page(role: str) -> str:
        r = anon_client.get(f"/items/{item['id']}", headers=_as(settings, f"u_{role}", role))
        assert r.status_code == 200
        return r.text

    annotator = page("annotator")
    edit = _edit_state(annotator)
    assert edit["can_edit"] and edit["kinds"] == ["recist", "bbox", "line"] and edit["user"] == "u_annotator"
    assert {a["kind"] for a in edit["annotations"]} == {"recist"} and all("version" in a for a in edit["annotations"])
    assert edit["urls"]["create"] == f"/api/items/{item['id']}/annotations"
    assert edit["urls"]["annotation"] == "/api/annotations/{id}"
    assert 'id="edit-tool"' in annotator and 'id="comment-form"' in annotator
    viewer = page("viewer")
    assert not _edit_state(viewer)["can_edit"]
    assert 'id="edit-tool"' not in viewer and 'id="comment-form"' not in viewer and 'id="edit-panel"' not in viewer
    assert 'id="comments-panel"' in viewer
