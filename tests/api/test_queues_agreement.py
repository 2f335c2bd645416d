"""Queue agreement beyond kappa, adjudication, sign-off, blinded queue readings, review mode's reader state and
undo, and the built-in queue suggestions, on the generated DeepLesion sample (SQLite and PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from app.datasets.declarations import LOWEST_DICE, MODEL_DISAGREES, POSSIBLY_NOISY
from app.review.agreement import bland_altman, long_axis_agreement, mask_dice
from app.review.suggestions import applicable
from tests.helpers.auth import api_token


def _as(settings, name: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, name, role)}"}


def _recist(cx: float, cy: float, half_long: float, half_short: float = 5) -> dict:
    return {"long": [[cx - half_long, cy], [cx + half_long, cy]],
            "short": [[cx, cy - half_short], [cx, cy + half_short]]}


@pytest.mark.parametrize("seed", range(4))
def test_bland_altman_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    first = rng.uniform(5, 80, n)
    second = first + rng.normal(0.5, 2.0, n)
    ours = long_axis_agreement([{"item_id": i, "first": a, "second": b}
                                for i, (a, b) in enumerate(zip(first, second, strict=True))])
    d = first - second
    sd = np.sqrt(np.sum((d - d.mean()) ** 2) / (n - 1))  # by hand, not np.std
    assert ours["n"] == n and ours["bias_mm"] == pytest.approx(d.mean())
    assert ours["sd_mm"] == pytest.approx(sd)
    assert ours["limits_mm"] == pytest.approx([d.mean() - 1.96 * sd, d.mean() + 1.96 * sd])
    assert [p["mean_mm"] for p in ours["pairs"]] == pytest.approx(list((first + second) / 2))
    assert bland_altman([]) == {"n": 0, "bias_mm": None, "sd_mm": None, "limits_mm": None}
    assert bland_altman([(10.0, 8.0)])["sd_mm"] is None  # one pair: no SD, no limits


def test_mask_dice_with_a_loader():
    masks = {"a": np.zeros((8, 8), np.uint8), "b": np.zeros((8, 8), np.uint8), "e1": np.zeros((4, 4), np.uint8)}
    masks["a"][:4, :4] = 1  # 16 pixels
    masks["b"][2:6, :4] = 2  # 16 pixels, 8 shared
    out = mask_dice([(1, "a", "b"), (2, "e1", "e1")], masks.__getitem__)
    assert out["pairs"] == [{"item_id": 1, "dice": pytest.approx(0.5)}, {"item_id": 2, "dice": 1.0}]
    assert out["n"] == 2 and out["mean"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="shapes"):
        mask_dice([(1, "a", "e1")], masks.__getitem__)


def test_suggestions_apply_only_when_their_facet_or_metric_exists():
    counts = {"noisy": {"0": 5, "1": 2}}
    metrics = [("metric:3:dice", "unet: dice"), ("metric:3:iou", "unet: iou"), ("metric:4:nll", "cls: nll")]
    got = applicable((POSSIBLY_NOISY, LOWEST_DICE, MODEL_DISAGREES), counts, metrics)
    assert [(s["name"], s["filters"], s["sort"]) for s in got] == [
        ("Lesions marked Possibly_noisy", {"noisy": ["1"]}, None),
        ("Lowest Dice first (unet)", {}, "metric:3:dice"),
        ("Model disagrees with the label, most confident first (cls)", {}, "-metric:4:nll")]
    assert applicable((POSSIBLY_NOISY, LOWEST_DICE), {"noisy": {"0": 5}}, []) == []


def test_two_readers_agreement_adjudication_sign_off(client, settings, ingested):
    ds = ingested.dataset_id
    rita, rob, ann = (_as(settings, "rita", "reviewer"), _as(settings, "rob", "reviewer"),
                      _as(settings, "ann", "annotator"))
    _as(settings, "ray", "reviewer")
    assert [s["name"] for s in client.get("/api/review/suggestions", params={"dataset_id": ds}).json()] == [
        "Lesions marked Possibly_noisy"]  # no model has run: the metric suggestion does not apply
    r = client.post("/api/review/queues", json={"name": "double", "dataset_id": ds, "filters": {}, "sort": "id",
                                                "limit": 3, "readers_per_item": 2, "assignees": ["rita", "rob"]},
                    headers=rita)
    assert r.status_code == 201, r.text
    qid = r.json()["id"]
    assert r.json()["progress"]["items"] == 3 and r.json()["signed_off_by"] is None
    order = [client.get(f"/api/review/queues/{qid}/next", headers=rita).json()["item"]["id"]]
    state = client.get(f"/api/review/queues/{qid}/reader", headers=rita).json()
    assert state["mine"] == [] and state["next"]["item"]["id"] == order[0] and state["can_sign_off"] is False

    # queue readings: a RECIST each (rita longer by 2 px per item), blinded until both have read the item
    lengths = {"rita": [22, 31, 15], "rob": [20, 30, 18]}
    verdicts = {"rita": ["accept", "reject", "corrected"], "rob": ["accept", "accept", "corrected"]}
    items = []
    for n in range(3):
        item_id = client.get(f"/api/review/queues/{qid}/next", headers=rita).json()["item"]["id"]
        items.append(item_id)
        item = client.get(f"/api/items/{item_id}").json()
        origin = next(a["id"] for a in item["annotations"] if a["kind"] == "recist")
        for name, headers in (("rita", rita), ("rob", rob)):
            body = {"kind": "recist", "label": None, "geometry": _recist(120, 120, lengths[name][n]),
                    "slice": item["slice"], "meta": {"derived_from": origin}, "queue_id": qid}
            made = client.post(f"/api/items/{item_id}/annotations", json=body, headers=headers)
            assert made.status_code == 201, made.text
            assert made.json()["meta"]["queue_id"] == qid and made.json()["meta"]["derived_from"] == origin
            if name == "rita":  # rob has not read it: rita's reading is hidden from rob, not from rita
                seen = client.get(f"/api/items/{item_id}", params={"queue": qid}, headers=rob).json()
                assert all(a.get("meta", {}).get("queue_id") != qid for a in seen["annotations"])
                mine = client.get(f"/api/items/{item_id}", params={"queue": qid}, headers=rita).json()
                assert any(a["id"] == made.json()["id"] for a in mine["annotations"])
                # the viewer's shapes on the page too: rita's reading is drawn for her, not for rob
                shapes = {name: client.get(f"/items/{item_id}", params={"queue": qid}, headers=h).text
                          .count('"type": "recist"') for name, h in (("rita", rita), ("rob", rob))}
                assert shapes["rita"] == shapes["rob"] + 1, shapes
                offered = client.get(f"/api/review/queues/{qid}/next", headers=rob).json()
                assert "derived_from" not in str(offered) and "queue_id\": " not in str(offered)
        first = client.post(f"/api/items/{item_id}/reviews", json={"verdict": verdicts["rita"][n], "queue_id": qid},
                            headers=rita)
        assert first.json()["readers"] is None
        seen = client.get(f"/api/items/{item_id}", params={"queue": qid}, headers=rob).json()
        assert [a for a in seen["annotations"] if (a.get("meta") or {}).get("queue_id") == qid and
                a["source"] == "user:rita"] == []  # read by one: still hidden
        both = client.post(f"/api/items/{item_id}/reviews", json={"verdict": verdicts["rob"][n], "queue_id": qid},
                           headers=rob)
        assert len(both.json()["readers"]) == 2
        seen = client.get(f"/api/items/{item_id}", params={"queue": qid}, headers=rob).json()
        assert {a["source"] for a in seen["annotations"] if (a.get("meta") or {}).get("queue_id") == qid} == {
            "user:rita", "user:rob"}  # both have read it: visible
    # a queue reading needs the reviewer role and an item of the queue
    bad = {"kind": "recist", "geometry": _recist(100, 100, 10), "queue_id": qid}
    assert client.post(f"/api/items/{items[0]}/annotations", json=bad, headers=ann).status_code == 403
    outside = client.get(f"/api/datasets/{ds}/items", params={"sort": "-id", "limit": 1}).json()["items"][0]["id"]
    r = client.post(f"/api/items/{outside}/annotations", json=bad, headers=rita)
    assert r.status_code == 400 and "queue_id" in r.json()["detail"]

    detail = client.get(f"/api/review/queues/{qid}", headers=rita).json()
    agreement = detail["agreement"]
    assert agreement["n"] == 3 and agreement["disputed_items"] == [items[1]]
    assert agreement["mask_dice"] == {"n": 0, "mean": None, "pairs": []}  # RECIST readings only here
    spacing = [client.get(f"/api/items/{i}").json()["spacing"][0] for i in items]
    first_mm = np.round(np.array([2 * x for x in lengths["rita"]]) * spacing, 2)
    second_mm = np.round(np.array([2 * x for x in lengths["rob"]]) * spacing, 2)
    d = first_mm - second_mm
    long_axis = agreement["long_axis"]
    assert long_axis["n"] == 3 and [p["item_id"] for p in long_axis["pairs"]] == items
    assert long_axis["bias_mm"] == pytest.approx(d.mean()) and long_axis["sd_mm"] == pytest.approx(d.std(ddof=1))

    # adjudication: a 1-reader queue of the disputed items
    assert client.post(f"/api/review/queues/{qid}/adjudication", json={}, headers=ann).status_code == 403
    adj = client.post(f"/api/review/queues/{qid}/adjudication", json={"assignees": ["ray"]}, headers=rita)
    assert adj.status_code == 201, adj.text
    assert adj.json()["readers_per_item"] == 1 and adj.json()["source_queue_id"] == qid
    assert adj.json()["progress"]["items"] == 1 and adj.json()["name"] == "Adjudication: double"
    adj_next = client.get(f"/api/review/queues/{adj.json()['id']}/next", headers=_as(settings, "ray", "reviewer"))
    assert adj_next.json()["item"]["id"] == items[1]

    # sign-off: only the lead (creator or admin), once, then no verdicts
    r = client.post(f"/api/review/queues/{qid}/sign-off", headers=rob)
    assert r.status_code == 403 and "rita" in r.json()["detail"]
    assert client.get(f"/api/review/queues/{qid}/reader", headers=rita).json()["can_sign_off"] is True
    r = client.post(f"/api/review/queues/{qid}/sign-off", headers=rita)
    assert r.status_code == 200 and r.json()["signed_off_by"] == "rita" and r.json()["signed_off_at"]
    assert client.post(f"/api/review/queues/{qid}/sign-off", headers=rita).status_code == 409
    late = client.post(f"/api/items/{items[0]}/reviews", json={"verdict": "reject", "queue_id": qid}, headers=rob)
    assert late.status_code == 409 and "signed off by rita" in late.json()["detail"]
    assert client.post(f"/api/review/queues/{qid}/undo", headers=rob).status_code == 409
    event = client.get("/api/audit", params={"action": "queue.sign_off"}).json()["events"][0]
    assert event["actor"] == "rita" and event["after"]["signed_off_by"] == "rita"
    # an incomplete queue cannot be signed off
    r = client.post(f"/api/review/queues/{adj.json()['id']}/sign-off")
    assert r.status_code == 409 and "not complete" in r.json()["detail"]
    assert client.post("/api/review/queues/9999/sign-off").status_code == 404
    assert client.post("/api/review/queues/9999/adjudication", json={}).status_code == 404


def test_reader_state_and_undo(client, settings, ingested):
    rita = _as(settings, "rita", "reviewer")
    r = client.post("/api/review/queues", json={"name": "one", "dataset_id": ingested.dataset_id, "filters": {},
                                                "sort": "id", "limit": 3}, headers=rita)
    qid = r.json()["id"]
    assert client.post(f"/api/review/queues/{qid}/undo", headers=rita).status_code == 400  # nothing to undo
    ids = []
    for verdict in ("accept", "reject"):
        item_id = client.get(f"/api/review/queues/{qid}/next", headers=rita).json()["item"]["id"]
        ids.append(item_id)
        client.post(f"/api/items/{item_id}/reviews", json={"verdict": verdict, "queue_id": qid}, headers=rita)
    again = client.post(f"/api/items/{ids[1]}/reviews", json={"verdict": "accept", "queue_id": qid}, headers=rita)
    assert again.json()["review_status"] == "accepted"
    undo = client.post(f"/api/review/queues/{qid}/undo", headers=rita).json()
    assert undo["item_id"] == ids[1] and undo["undone"]["verdict"] == "accept"
    assert undo["review"]["verdict"] == "reject" and undo["review_status"] == "rejected"  # the one before it
    first = client.post(f"/api/items/{ids[0]}/reviews", json={"verdict": "corrected", "queue_id": qid}, headers=rita)
    assert first.status_code == 201
    client.post(f"/api/review/queues/{qid}/undo", headers=rita)  # back to accept on item 0
    state = client.get(f"/api/review/queues/{qid}/reader", headers=rita).json()
    assert state["mine"] == [{"position": 0, "item_id": ids[0], "verdict": "accept"},
                             {"position": 1, "item_id": ids[1], "verdict": "reject"}]
    assert state["counts"] == {"accept": 1, "reject": 1} and state["next"]["position"] == 2
    solo = client.post("/api/review/queues", json={"name": "u", "dataset_id": ingested.dataset_id, "filters": {},
                                                   "sort": "id", "limit": 1}, headers=rita).json()["id"]
    only = client.get(f"/api/review/queues/{solo}/next", headers=rita).json()["item"]["id"]
    client.post(f"/api/items/{only}/reviews", json={"verdict": "reject", "queue_id": solo}, headers=rita)
    undone = client.post(f"/api/review/queues/{solo}/undo", headers=rita).json()
    assert undone["review"]["verdict"] == "uncertain" and undone["review"]["comment"] == "undo of reject"
    assert undone["review_status"] == "in_review"


def test_review_pages_per_role(client, settings, ingested):
    rita, viewer = _as(settings, "rita", "reviewer"), _as(settings, "vic", "viewer")
    qid = client.post("/api/review/queues", json={"name": "pages", "dataset_id": ingested.dataset_id,
                                                  "filters": {}, "sort": "id", "limit": 2}, headers=rita).json()["id"]
    mine = client.get("/review", headers=rita)
    assert mine.status_code == 200 and f'/review/queues/{qid}/start"' in mine.text and ">Review</a>" in mine.text
    theirs = client.get("/review", headers=viewer)
    assert theirs.status_code == 200 and "/start" not in theirs.text and ">Review</a>" not in theirs.text
    start = client.get(f"/review/queues/{qid}/start", headers=rita, follow_redirects=False)
    first = client.get(f"/api/review/queues/{qid}/next", headers=rita).json()["item"]["id"]
    assert start.status_code == 303 and start.headers["location"] == f"/items/{first}?queue={qid}"
    nope = client.get(f"/review/queues/{qid}/start", headers=viewer, follow_redirects=False)
    assert nope.status_code == 303 and nope.headers["location"] == f"/review/queues/{qid}"
    page = client.get(f"/review/queues/{qid}", headers=viewer)
    assert page.status_code == 200 and "pages" in page.text and 'id="sign-off"' not in page.text
    assert client.get("/review/queues/999", headers=rita).status_code == 404
    assert client.get(f"/items/{first}", params={"queue": 999}, headers=rita).status_code == 404
    assert client.get(f"/api/items/{first}", params={"queue": 999}, headers=rita).status_code == 404
    review_mode = client.get(f"/items/{first}", params={"queue": qid}, headers=rita)
    assert 'id="review-bar"' in review_mode.text and "Shift</kbd>+<kbd>A" in review_mode.text
    assert 'id="review-bar"' not in client.get(f"/items/{first}", headers=rita).text


def test_queue_of_a_selection_keeps_the_grid_order(client, ingested):
    ds = ingested.dataset_id
    grid = client.get(f"/api/datasets/{ds}/items", params={"sort": "-id", "limit": 10}).json()
    ids = [i["id"] for i in grid["items"]]
    chosen = [ids[5], ids[1], ids[3]]
    r = client.post("/api/review/queues", json={"name": "picked", "dataset_id": ds, "filters": {}, "sort": "-id",
                                                "item_ids": chosen})
    assert r.status_code == 201 and r.json()["progress"]["items"] == 3
    order = []
    for _ in range(3):
        item_id = client.get(f"/api/review/queues/{r.json()['id']}/next").json()["item"]["id"]
        order.append(item_id)
        client.post(f"/api/items/{item_id}/reviews", json={"verdict": "accept", "queue_id": r.json()["id"]})
    assert order == [ids[1], ids[3], ids[5]]  # the grid's order, not the selection's
    r = client.post("/api/review/queues", json={"name": "none", "dataset_id": ds, "filters": {}, "item_ids": [99999]})
    assert r.status_code == 400 and "filters" in r.json()["detail"]
