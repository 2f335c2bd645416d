"""Review queues on the generated DeepLesion sample: items materialised in the grid's order, the next item per
reader (two different readers per item, blinded), progress, 204 when done, disputes, Cohen's kappa against
scikit-learn, assignees and roles."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from app.review.agreement import cohen_kappa
from tests.helpers.auth import api_token


def _as(settings, name: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, name, role)}"}


@pytest.mark.parametrize("seed", range(6))
def test_kappa_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    verdicts = np.array(["accept", "reject", "uncertain", "corrected"])
    n = int(rng.integers(5, 200))
    first = verdicts[rng.integers(0, 4, n)]
    second = np.where(rng.random(n) < 0.6, first, verdicts[rng.integers(0, 4, n)])
    ours = cohen_kappa(list(first), list(second))
    assert ours["n"] == n and ours["kappa"] == pytest.approx(cohen_kappa_score(first, second), abs=1e-12)


def test_kappa_edge_cases():
    assert cohen_kappa([], [])["kappa"] is None
    assert cohen_kappa(["accept"] * 3, ["accept"] * 3)["kappa"] is None  # undefined: pe = 1
    assert cohen_kappa(["accept", "reject"], ["accept", "reject"])["kappa"] == pytest.approx(1.0)


def test_two_reader_queue(client, settings, ingested):
    ds = ingested.dataset_id
    rita, rob = _as(settings, "rita", "reviewer"), _as(settings, "rob", "reviewer")
    _as(settings, "ann", "annotator")
    grid = client.get(f"/api/datasets/{ds}/items", params={"split": "train", "sort": "-age", "limit": 100}).json()
    order = [i["id"] for i in grid["items"]]
    assert len(order) >= 3
    body = {"name": "train by age", "dataset_id": ds, "filters": {"split": "train"}, "sort": "-age",
            "readers_per_item": 2, "assignees": ["rita", "rob"]}
    assert client.post("/api/review/queues", json=body, headers=_as(settings, "ann", "annotator")).status_code == 403
    assert client.post("/api/review/queues", json={**body, "assignees": ["ann"]}).status_code == 400
    assert client.post("/api/review/queues", json={**body, "assignees": ["nobody"]}).status_code == 404
    assert client.post("/api/review/queues", json={**body, "filters": {"colour": "red"}}).status_code == 400
    assert client.post("/api/review/queues", json={**body, "dataset_id": 9999}).status_code == 404
    r = client.post("/api/review/queues", json=body, headers=rita)
    assert r.status_code == 201, r.text
    queue = r.json()
    assert queue["filters"] == {"split": ["train"]} and queue["progress"]["items"] == len(order)
    assert queue["progress"]["reads_left"] == 2 * len(order) and queue["created_by"] == "rita"
    qid = queue["id"]

    def next_for(headers) -> dict | None:
        r = client.get(f"/api/review/queues/{qid}/next", headers=headers)
        assert r.status_code in (200, 204), r.text
        return r.json() if r.status_code == 200 else None

    first = next_for(rita)
    assert first["item"]["id"] == order[0] and first["position"] == 0 and first["next_item_id"] == order[1]
    assert next_for(rob)["item"]["id"] == order[0]  # the same item goes to a second, different reader
    read = client.post(f"/api/items/{order[0]}/reviews", json={"verdict": "accept", "queue_id": qid}, headers=rita)
    assert read.status_code == 201 and read.json()["review_status"] == "in_review"
    assert read.json()["readers"] is None  # blinded until both have read it
    assert next_for(rita)["item"]["id"] == order[1]
    offered = next_for(rob)
    assert offered["item"]["id"] == order[0] and "accept" not in str(offered)  # no verdict in the answer
    both = client.post(f"/api/items/{order[0]}/reviews", json={"verdict": "reject", "queue_id": qid}, headers=rob)
    assert both.json()["review_status"] == "disputed"
    assert {(v["reviewer"], v["verdict"]) for v in both.json()["readers"]} == {("rita", "accept"), ("rob", "reject")}
    third = client.post(f"/api/items/{order[0]}/reviews", json={"verdict": "accept", "queue_id": qid},
                        headers=_as(settings, "ray", "reviewer"))
    assert third.status_code == 403  # not an assignee
    assert client.get(f"/api/review/queues/{qid}/next", headers=_as(settings, "ray", "reviewer")).status_code == 403

    plan = {"rita": ["accept", "reject", "accept", "uncertain", "accept", "accept"],
            "rob": ["reject", "reject", "accept", "accept", "accept", "corrected"]}
    for n, item_id in enumerate(order[1:], start=1):
        for name, headers in (("rita", rita), ("rob", rob)):
            assert next_for(headers)["item"]["id"] == item_id
            verdict = plan[name][n % len(plan[name])]
            assert client.post(f"/api/items/{item_id}/reviews", json={"verdict": verdict, "queue_id": qid},
                               headers=headers).status_code == 201
    assert next_for(rita) is None and next_for(rob) is None
    detail = client.get(f"/api/review/queues/{qid}", headers=rita).json()
    progress = detail["progress"]
    assert progress["complete"] == len(order) and progress["reads_left"] == 0 and progress["left_for_me"] == 0
    assert progress["per_reader"] == [{"reader": "rita", "read": len(order)}, {"reader": "rob", "read": len(order)}]
    first_reads = ["accept"] + [plan["rita"][n % 6] for n in range(1, len(order))]
    second_reads = ["reject"] + [plan["rob"][n % 6] for n in range(1, len(order))]
    agreement = detail["agreement"]
    assert agreement["n"] == len(order)
    assert agreement["kappa"] == pytest.approx(cohen_kappa_score(first_reads, second_reads))
    disputed = [i for i, a, b in zip(order, first_reads, second_reads, strict=True) if a != b]
    assert agreement["disputed_items"] == disputed  # in queue order
    statuses = client.get(f"/api/datasets/{ds}/facets", params={"split": "train"}).json()["facets"]["review_status"]
    assert statuses["disputed"] == len(disputed)
    listed = client.get("/api/review/queues", headers=rita).json()
    assert [q["id"] for q in listed] == [qid] and listed[0]["progress"]["left_for_me"] == 0
    assert client.get("/api/review/queues/9999").status_code == 404
    assert client.get("/api/review/queues/9999/next", headers=rita).status_code == 404
    events = client.get("/api/audit", params={"action": "queue.create"}).json()["events"]
    assert events[0]["actor"] == "rita" and events[0]["after"]["items"] == len(order)


def test_one_reader_queue_shares_items_between_readers(client, settings, ingested):
    ds = ingested.dataset_id
    rita, rob = _as(settings, "rita", "reviewer"), _as(settings, "rob", "reviewer")
    r = client.post("/api/review/queues", json={"name": "all", "dataset_id": ds, "filters": {}})
    assert r.status_code == 201 and r.json()["assignees"] == [] and r.json()["created_by"] == "tester"
    qid, total = r.json()["id"], r.json()["progress"]["items"]
    first = client.get(f"/api/review/queues/{qid}/next", headers=rita).json()["item"]["id"]
    done = client.post(f"/api/items/{first}/reviews", json={"verdict": "accept", "queue_id": qid}, headers=rita)
    assert done.json()["review_status"] == "accepted" and len(done.json()["readers"]) == 1
    assert client.get(f"/api/review/queues/{qid}/next", headers=rob).json()["item"]["id"] != first
    again = client.post(f"/api/items/{first}/reviews", json={"verdict": "reject", "queue_id": qid}, headers=rob)
    assert again.status_code == 400 and "already has its 1 reader" in again.json()["detail"]
    detail = client.get(f"/api/review/queues/{qid}", headers=rob).json()
    assert detail["progress"]["left_for_me"] == total - 1 and detail["agreement"]["n"] == 0
    assert detail["agreement"]["kappa"] is None
