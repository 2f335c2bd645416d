"""`GET /api/items/{id}?neighbours=1&<grid query>`: the item's place in the grid's filtered, sorted list and the
ids before and after it agree with the grid's own pages, on the facet-index path (id and facet sorts) and the
SQL path (expression sorts, filters the index does not cover), at both ends and for an item not in the list."""

from __future__ import annotations


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


GRID_QUERIES = [  # one ingest for all of them (the suite's time): id, facet-index groups, SQL expression sorts
    {}, {"sort": "-id"}, {"sort": "split"}, {"sort": "-sex", "split": ["train", "valid"]}, {"sort": "key"},
    {"sort": "-key"}, {"sort": "review_status"}, {"sort": "-edited"}, {"sort": "-key", "patient": None}]


def test_neighbours_follow_the_grid(client, ingested):
    ds = ingested.dataset_id
    for params in GRID_QUERIES:
        if "patient" in params:  # a filter the facet index does not cover: the SQL path
            first = client.get(f"/api/datasets/{ds}/items", params={"limit": 1}).json()["items"][0]
            params = {**params, "patient": client.get(f"/api/items/{first['id']}").json()["patient"]}
        order = _order(client, ds, params)
        assert len(order) >= 2, params
        for n, item_id in enumerate(order):
            r = client.get(f"/api/items/{item_id}", params={**params, "neighbours": 1})
            assert r.status_code == 200, r.text
            assert r.json()["neighbours"] == {"position": n + 1, "total": len(order),
                                              "previous": order[n - 1] if n else None,
                                              "next": order[n + 1] if n + 1 < len(order) else None}, (params, n)


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
