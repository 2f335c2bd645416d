"""Versioned annotations over HTTP on the generated DeepLesion sample: create (validated per kind by the adapter),
edit a dataset annotation into a user version, stale edits answer 409 naming who and when, retire, history, the
audit trail, roles, and two threads editing the same version at once (exactly one wins) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import threading

import pytest
from fastapi.testclient import TestClient

from app.datasets.annotation_rules import AnnotationTarget, segments_intersect
from app.datasets.registry import get_adapter
from app.review import annotations as versions
from tests.helpers.auth import api_token


def _as(settings, name: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, name, role)}"}


@pytest.fixture
def lesion(client, ingested) -> dict:
    """An item of the sample with its first dataset RECIST annotation."""
    page = client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 50}).json()["items"]
    for summary in page:
        item = client.get(f"/api/items/{summary['id']}").json()
        recist = [a for a in item["annotations"] if a["kind"] == "recist"]
        if recist:
            return {"item": item, "annotation": recist[0]}
    raise AssertionError("no RECIST annotation in the sample")


def _recist(cx: float, cy: float, half_long: float = 20, half_short: float = 8) -> dict:
    return {"long": [[cx - half_long, cy], [cx + half_long, cy]],
            "short": [[cx, cy - half_short], [cx, cy + half_short]]}


def test_create_validates_per_kind_and_recomputes_measurements(client, settings, lesion):
    item, ann = lesion["item"], lesion["annotation"]
    annotator = _as(settings, "ann", "annotator")
    url = f"/api/items/{item['id']}/annotations"
    body = {"kind": "recist", "label": ann["label"], "geometry": _recist(100, 120), "slice": item["slice"]}
    r = client.post(url, json=body, headers=annotator)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["version"] == 1 and made["source"] == "user:ann" and made["created_by"] == "ann" and made["current"]
    spacing = item["spacing"][0]
    assert made["meta"]["long_px"] == 40 and math.isclose(made["meta"]["long_mm"], round(40 * spacing, 2))
    assert math.isclose(made["meta"]["short_mm"], round(16 * spacing, 2))
    listed = client.get(f"/api/items/{item['id']}").json()
    assert made["id"] in {a["id"] for a in listed["annotations"]}

    width = item["width"]
    bad = [  # (body change, field the 400 names)
        ({"geometry": _recist(width - 5, 120)}, "geometry.long[1]"),
        ({"geometry": {"long": [[10, 10], [50, 10]], "short": [[60, 0], [60, 8]]}}, "does not cross"),
        ({"geometry": {"long": [[10, 10], [12, 10]], "short": [[11, 0], [11, 20]]}}, "longer than the long"),
        ({"geometry": {"long": [[10, 10]]}}, "geometry.long"),
        ({"label": "99"}, "label"),
        ({"kind": "bbox", "geometry": {"bbox": [10, 10, 5, 20]}}, "geometry.bbox"),
        ({"kind": "bbox", "geometry": {"bbox": [10, 10, width + 40, 20]}}, "geometry.bbox"),
        ({"kind": "mask", "geometry": {"mask": "x.png"}}, "kind"),
        ({"kind": "centroid", "geometry": {"point": [1, 2, 3]}}, "kind"),
    ]
    for change, named in bad:
        r = client.post(url, json={**body, **change}, headers=annotator)
        assert r.status_code == 400 and named in r.json()["detail"], (change, r.text)
    assert client.post(url, json={**body, "kind": "bbox", "geometry": {"bbox": [10, 10, 40, 30]}},
                       headers=annotator).status_code == 201
    assert client.post("/api/items/999999/annotations", json=body, headers=annotator).status_code == 404
    assert client.post(url, json=body, headers=_as(settings, "vera", "viewer")).status_code == 403


def test_adapter_rules_per_kind():
    target = AnnotationTarget(100, 80, 40, (0.5, 0.5, 2.0))
    assert get_adapter("bis5k").validate_annotation("mask", {"mask": "m.png"}, None, target, ()) == []
    assert "geometry.png" in get_adapter("bis5k").validate_annotation("mask", {}, None, target, ())[0]
    verse = get_adapter("verse")
    assert verse.validate_annotation("centroid", {"point": [10, 20, 30]}, "20", target, ()) == []
    assert "geometry.point" in verse.validate_annotation("centroid", {"point": [10, 20, 45]}, "20", target, ())[0]
    assert "label" in verse.validate_annotation("centroid", {"point": [1, 2, 3]}, "31", target, ())[0]
    folder = get_adapter("imagefolder")
    assert folder.validate_annotation("label", {}, "cat", target, ("cat", "dog")) == []
    assert folder.validate_annotation("label", {}, "cow", target, ("cat", "dog"))[0].startswith("label:")
    assert segments_intersect([[0, 0], [10, 0]], [[5, -3], [5, 3]])
    assert segments_intersect([[0, 0], [10, 0]], [[10, -3], [10, 3]])  # touching at an end point
    assert not segments_intersect([[0, 0], [10, 0]], [[11, -3], [11, 3]])


def test_edit_stale_retire_history_and_audit(client, settings, lesion):
    item, ann = lesion["item"], lesion["annotation"]
    assert ann["source"] == "dataset" and ann["version"] == 1
    ann_h, bob_h = _as(settings, "ann", "annotator"), _as(settings, "bob", "annotator")
    moved = _recist(150, 150, 30, 10)
    r = client.put(f"/api/annotations/{ann['id']}", json={"version": 1, "geometry": moved}, headers=ann_h)
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["source"] == "user:ann" and v2["lineage_id"] == ann["id"] and v2["current"]
    assert v2["label"] == ann["label"] and v2["meta"]["long_px"] == 60
    assert v2["meta"]["lesion_number"] == ann["meta"]["lesion_number"]  # unchanged fields carry over
    current = client.get(f"/api/items/{item['id']}").json()["annotations"]
    assert v2["id"] in {a["id"] for a in current} and ann["id"] not in {a["id"] for a in current}

    stale = client.put(f"/api/annotations/{ann['id']}", json={"version": 1, "label": ann["label"]}, headers=bob_h)
    assert stale.status_code == 409
    body = stale.json()
    assert "ann" in body["detail"] and body["changed_by"] == "ann" and body["changed_at"] == v2["created_at"]
    assert body["current"]["id"] == v2["id"] and body["current"]["version"] == 2

    r = client.put(f"/api/annotations/{v2['id']}", json={"version": 2, "label": ann["label"]}, headers=bob_h)
    v3 = r.json()
    assert r.status_code == 200 and v3["version"] == 3 and v3["created_by"] == "bob"
    assert client.put(f"/api/annotations/{v3['id']}", json={"version": 3, "geometry": {"long": []}},
                      headers=bob_h).status_code == 400
    assert client.delete(f"/api/annotations/{v3['id']}", params={"version": 2}, headers=ann_h).status_code == 409
    retired = client.delete(f"/api/annotations/{v3['id']}", params={"version": 3}, headers=ann_h)
    assert retired.status_code == 200 and retired.json()["retired_by"] == "ann" and not retired.json()["current"]
    again = client.delete(f"/api/annotations/{v3['id']}", params={"version": 3}, headers=ann_h)
    assert again.status_code == 409 and "retired" in again.json()["detail"]
    assert v3["id"] not in {a["id"] for a in client.get(f"/api/items/{item['id']}").json()["annotations"]}

    for any_version in (ann["id"], v2["id"], v3["id"]):
        history = client.get(f"/api/annotations/{any_version}/history").json()
        assert [h["version"] for h in history] == [1, 2, 3]
        assert [h["created_by"] for h in history] == [None, "ann", "bob"]
    assert history[0]["source"] == "dataset" and history[0]["superseded_by"] == v2["id"]  # the dataset's own stays
    assert history[0]["geometry"] == ann["geometry"] and history[2]["retired_at"]
    assert client.get("/api/annotations/999999/history").status_code == 404

    events = client.get("/api/audit", params={"action": "annotation.*"}).json()["events"]
    assert [e["action"] for e in events] == ["annotation.retire", "annotation.edit", "annotation.edit"]
    assert events[2]["before"]["geometry"] == ann["geometry"] and events[2]["after"]["geometry"] == moved
    assert {e["target_id"] for e in events} == {str(ann["id"])}


def test_two_threads_editing_one_version_exactly_one_wins(app, client, settings, lesion, monkeypatch):
    """Both requests pass the read (a barrier holds them there) before either writes: the conditional UPDATE
    decides, on SQLite and PostgreSQL alike."""
    ann = lesion["annotation"]
    barrier = threading.Barrier(2, timeout=10)
    checked = versions._checked

    def both_read_first(*args, **kwargs):
        out = checked(*args, **kwargs)
        barrier.wait()
        return out

    monkeypatch.setattr(versions, "_checked", both_read_first)
    clients = [TestClient(app, headers=_as(settings, name, "annotator")) for name in ("amy", "ben")]
    answers: dict[str, object] = {}

    def edit(c: TestClient, name: str, x: float) -> None:
        answers[name] = c.put(f"/api/annotations/{ann['id']}", json={"version": 1, "geometry": _recist(x, 150)})

    threads = [threading.Thread(target=edit, args=(c, n, x)) for c, n, x in zip(clients, ("amy", "ben"), (100, 200),
                                                                                     strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(r.status_code for r in answers.values())  # type: ignore[attr-defined]
    assert codes == [200, 409], [r.text for r in answers.values()]  # type: ignore[attr-defined]
    winner = next(n for n, r in answers.items() if r.status_code == 200)  # type: ignore[attr-defined]
    loser = next(r for r in answers.values() if r.status_code == 409).json()  # type: ignore[attr-defined]
    assert loser["changed_by"] == winner and loser["current"]["version"] == 2
    history = client.get(f"/api/annotations/{ann['id']}/history").json()
    assert [h["version"] for h in history] == [1, 2] and history[1]["created_by"] == winner
    current = client.get(f"/api/items/{lesion['item']['id']}").json()["annotations"]
    assert [a["version"] for a in current if a["id"] in {h["id"] for h in history}] == [2]
