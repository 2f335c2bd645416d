"""`GET /api/items/{id}?neighbours=1&<grid query>`: the item's place in the grid's filtered, sorted list and the
ids before and after it agree with the grid's own pages, on the facet-index path (id and facet sorts) and the
SQL path (expression sorts, filters the index does not cover), at both ends and for an item not in the list."""

from __future__ import annotations

import pytest


def _order(client, ds: int, params: dict) -> list[int]:
    out: list[int] = []
    cursor = None
    while True:
        r = client.get(f"/api/datasets/{ds}/items", params={**params, "limit": 7, **({"cursor": cursor} if cursor
                                                                                       else {})})
        assert r.status_code == 200, r.text
        out += [i["id"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return out


@pytest.mark.parametrize("params", [
    {}, {"sort": "-id"}, {"sort": "split"}, {"sort": "-sex", "split": ["train", "valid"]}, {"sort": "key"},
    {"sort": "-key"}, {"sort": "review_status"}, {"sort": "-edited"}, {"sort": "-key", "patient": "P0"},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()) or "default")
def test_neighbours_follow_the_grid(client, ingested, params):
    ds = ingested.dataset_id
    if "patient" in params:
        params = {**params, "patient": client.get(f"/api/datasets/{ds}/items", params={"limit": 1}).json()
                  ["items"][0]["key"].split("_")[0]}
    order = _order(client, ds, params)
    assert len(order) >= 3
    for n, item_id in enumerate(order):
        r = client.get(f"/api/items/{item_id}", params={**params, "neighbours": 1})
        assert r.status_code == 200, r.text
        assert r.json()["neighbours"] == {"position": n + 1, "total": len(order),
                                          "previous": order[n - 1] if n else None,
                                          "next": order[n + 1] if n + 1 < len(order) else None}, (n, order)


def test_neighbours_outside_the_list_and_bad_queries(client, ingested):
    ds = ingested.dataset_id
    ids = _order(client, ds, {})
    splits = {i["id"]: i["split"] for i in client.get(f"/api/datasets/{ds}/items", params={"limit": 100}
                                                      ).json()["items"]}
    other = next(s for s in splits.values() if s != splits[ids[0]])
    r = client.get(f"/api/items/{ids[0]}", params={"neighbours": 1, "split": other})
    assert r.status_code == 200 and r.json()["neighbours"] is None
    assert "neighbours" not in client.get(f"/api/items/{ids[0]}").json()
    bad = client.get(f"/api/items/{ids[0]}", params={"neighbours": 1, "sort": "nope"})
    assert bad.status_code == 400 and "sort" in bad.json()["detail"]
    bad = client.get(f"/api/items/{ids[0]}", params={"neighbours": 1, "colour": "red"})
    assert bad.status_code == 400 and "unknown filter 'colour'" in bad.json()["detail"]
