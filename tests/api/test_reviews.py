"""Comments and review verdicts on the generated DeepLesion sample: the item's review_status follows each verdict,
`review_status` is a facet and a filter whose live counts change at once (and agree with a rebuilt index), roles,
and the audit trail."""

from __future__ import annotations

from tests.helpers.auth import api_token


def _as(settings, name: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, name, role)}"}


def _items(client, dataset_id: int, **params) -> list[dict]:
    return client.get(f"/api/datasets/{dataset_id}/items", params={"limit": 100, **params}).json()["items"]


def test_comments(client, settings, ingested):
    first, second = _items(client, ingested.dataset_id)[:2]
    annotator = _as(settings, "cora", "annotator")
    url = f"/api/items/{first['id']}/comments"
    assert client.get(f"/api/items/{first['id']}").json()["comments"] == 0
    r = client.post(url, json={"text": "margin looks off"}, headers=annotator)
    assert r.status_code == 201, r.text
    assert r.json()["author"] == "cora" and r.json()["annotation_id"] is None
    annotation = client.get(f"/api/items/{first['id']}").json()["annotations"][0]["id"]
    assert client.post(url, json={"text": "on the lesion", "annotation_id": annotation},
                       headers=annotator).status_code == 201
    other = client.get(f"/api/items/{second['id']}").json()["annotations"][0]["id"]
    wrong = client.post(url, json={"text": "x", "annotation_id": other}, headers=annotator)
    assert wrong.status_code == 400 and "annotation_id" in wrong.json()["detail"]
    for text in ("", "x" * 4001):
        assert client.post(url, json={"text": text}, headers=annotator).status_code == 422
    assert client.post(url, json={"text": "hi"}, headers=_as(settings, "vic", "viewer")).status_code == 403
    assert client.post("/api/items/999999/comments", json={"text": "x"}, headers=annotator).status_code == 404
    listed = client.get(url).json()
    assert [c["text"] for c in listed] == ["margin looks off", "on the lesion"]
    assert listed[1]["annotation_id"] == annotation
    detail = client.get(f"/api/items/{first['id']}").json()
    assert detail["comments"] == 2
    assert [(c["author"], c["text"], c["annotation_id"]) for c in detail["recent_comments"]] == [
        ("cora", "margin looks off", None), ("cora", "on the lesion", annotation)]  # in the item JSON too
    assert client.get(f"/api/items/{second['id']}").json()["recent_comments"] == []
    assert client.get("/api/items/999999/comments").status_code == 404
    events = client.get("/api/audit", params={"action": "comment.add"}).json()["events"]
    assert len(events) == 2 and events[0]["actor"] == "cora" and events[0]["target_id"] == str(first["id"])


def test_verdicts_set_the_status_and_the_live_facets_follow(app, client, settings, ingested):
    ds = ingested.dataset_id
    items = _items(client, ds)
    n = len(items)
    facets = client.get(f"/api/datasets/{ds}/facets").json()["facets"]
    assert facets["review_status"] == {"unreviewed": n}
    reviewer = _as(settings, "rex", "reviewer")
    cases = [("accept", "accepted"), ("reject", "rejected"), ("corrected", "corrected"), ("uncertain", "in_review")]
    for item, (verdict, status) in zip(items, cases, strict=False):
        r = client.post(f"/api/items/{item['id']}/reviews", json={"verdict": verdict, "comment": "seen"},
                        headers=reviewer)
        assert r.status_code == 201, r.text
        assert r.json()["review_status"] == status and r.json()["review"]["reviewer"] == "rex"
        assert r.json()["readers"] is None
        assert client.get(f"/api/items/{item['id']}").json()["review_status"] == status
    live = client.get(f"/api/datasets/{ds}/facets").json()
    expected = {"unreviewed": n - 4, "accepted": 1, "rejected": 1, "corrected": 1, "in_review": 1}
    assert live["facets"]["review_status"] == expected
    split = items[0]["split"]
    narrowed = client.get(f"/api/datasets/{ds}/facets", params={"review_status": "accepted"}).json()
    assert narrowed["total"] == 1 and narrowed["facets"]["split"][split] == 1
    listed = _items(client, ds, review_status=["accepted", "rejected"])
    assert [i["id"] for i in listed] == [items[0]["id"], items[1]["id"]]
    assert {i["review_status"] for i in _items(client, ds, sort="review_status")[:1]} == {"accepted"}
    app.state.catalog.forget()  # a rebuilt index agrees with the one updated in place
    assert client.get(f"/api/datasets/{ds}/facets").json()["facets"]["review_status"] == expected

    # a later verdict of the same reader replaces the status
    r = client.post(f"/api/items/{items[3]['id']}/reviews", json={"verdict": "accept"}, headers=reviewer)
    assert r.json()["review_status"] == "accepted"
    assert client.get(f"/api/datasets/{ds}/facets").json()["facets"]["review_status"]["accepted"] == 2

    annotator = _as(settings, "ann", "annotator")
    assert client.post(f"/api/items/{items[0]['id']}/reviews", json={"verdict": "accept"},
                       headers=annotator).status_code == 403
    assert client.post(f"/api/items/{items[0]['id']}/reviews", json={"verdict": "fine"},
                       headers=reviewer).status_code == 422
    assert client.post("/api/items/999999/reviews", json={"verdict": "accept"}, headers=reviewer).status_code == 404
    assert client.post(f"/api/items/{items[0]['id']}/reviews", json={"verdict": "accept", "queue_id": 999},
                       headers=reviewer).status_code == 404
    events = client.get("/api/audit", params={"action": "review.add"}).json()["events"]
    assert len(events) == 5 and events[0]["before"] == {"review_status": "in_review"}
    assert events[0]["after"]["review_status"] == "accepted" and events[0]["after"]["verdict"] == "accept"
