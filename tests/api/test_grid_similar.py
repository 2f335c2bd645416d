"""The grid's "similar" filter (`similar=ITEM&similar_model=MODEL` on /api/datasets/{id}/items and the dataset
page) on the PCam sample with a real ONNX embedder: the list is /similar's answer in the same order, paged by
cursor and offset, under the other filters; the page shows the chip and per-item thumbnails; bad input is a 4xx."""

from __future__ import annotations

import pytest

from tests.helpers.api import wait_finished
from tests.helpers.pcam import item_ids, register_embedder

ALL = 20


def embedder(client, tmp_path, name: str = "grid-embedder") -> int:
    return register_embedder(client, tmp_path, name)


@pytest.fixture
def embedded(client, tmp_path, pcam_dataset_id) -> int:
    model_id = embedder(client, tmp_path)
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": model_id, "dataset_id": pcam_dataset_id})
    assert wait_finished(client, r.json()["id"])["status"] == "done"
    return model_id


def test_similar_filter_lists_the_nearest_in_order(client, engine, pcam_dataset_id, embedded):
    url = f"/api/datasets/{pcam_dataset_id}/items"
    query = item_ids(engine, pcam_dataset_id)[4]
    nearest = client.get(f"/api/items/{query}/similar", params={"model": embedded, "k": 200}).json()["items"]
    assert len(nearest) == ALL - 1
    got, cursor = [], None
    while True:  # pages of 7 by cursor, as the grid scrolls
        r = client.get(url, params={"similar": query, "similar_model": embedded, "limit": 7,
                                    **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == ALL - 1 and page["sort"] == "similar"
        assert page["similar"] == {"item_id": query, "model_id": embedded, "model_name": "grid-embedder", "k": 200}
        got += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [(i["id"], i["similarity"]) for i in got] == [(x["id"], x["score"]) for x in nearest]
    # a jump by offset; the default model is the newest with vectors; k bounds the list
    jump = client.get(url, params={"similar": query, "offset": 14, "limit": 50}).json()
    assert [i["id"] for i in jump["items"]] == [x["id"] for x in nearest[14:]]
    assert jump["similar"]["model_id"] == embedded
    five = client.get(url, params={"similar": query, "similar_k": 5}).json()
    assert [i["id"] for i in five["items"]] == [x["id"] for x in nearest[:5]] and five["total"] == 5
    # the other filters still apply, in the same order
    train = set(item_ids(engine, pcam_dataset_id, "train"))
    r = client.get(url, params={"similar": query, "split": "train", "limit": 500}).json()
    assert [i["id"] for i in r["items"]] == [x["id"] for x in nearest if x["id"] in train]
    # the item page's previous/next steps through the similar list
    third = nearest[2]["id"]
    nav = client.get(f"/api/items/{third}", params={"neighbours": 1, "similar": query,
                                                    "similar_model": embedded}).json()["neighbours"]
    assert nav == {"position": 3, "total": ALL - 1, "previous": nearest[1]["id"], "next": nearest[3]["id"]}
    assert client.get(f"/api/items/{query}", params={"neighbours": 1, "similar": query}).json()["neighbours"] is None
    # without similar the listing is what it was
    plain = client.get(url, params={"limit": 500}).json()
    assert plain["sort"] == "id" and "similar" not in plain and len(plain["items"]) == ALL


def test_similar_filter_refusals(client, engine, pcam_dataset_id, pcam_model_id, tmp_path):
    url = f"/api/datasets/{pcam_dataset_id}/items"
    query = item_ids(engine, pcam_dataset_id)[0]
    r = client.get(url, params={"similar": query})
    assert r.status_code == 404 and "no embedding model has vectors for this dataset" in r.json()["detail"]
    model_id = embedder(client, tmp_path)
    r = client.get(url, params={"similar": query, "similar_model": model_id})
    assert r.status_code == 404 and "has no embedding from model 'grid-embedder' yet" in r.json()["detail"]
    r = client.get(url, params={"similar": query, "similar_model": pcam_model_id})
    assert r.status_code == 400 and "is a classify model" in r.json()["detail"]
    assert client.get(url, params={"similar": 10**6}).status_code == 404
    assert client.get(url, params={"similar": query, "similar_k": 201}).status_code == 422
    for params, words in (({"cursor": "abc"}, "not a cursor of a similar list"),
                          ({"sort": "-id"}, "similarity order"),
                          ({"nonsense": "1"}, "unknown filter 'nonsense'")):
        r = client.get(url, params={"similar": query, "similar_model": model_id, **params})
        assert r.status_code == 400 and words in r.json()["detail"], r.text


def test_dataset_page_similar_chip(client, engine, pcam_dataset_id, embedded):
    query = item_ids(engine, pcam_dataset_id)[2]
    page = client.get(f"/datasets/{pcam_dataset_id}", params={"similar": query, "similar_model": embedded})
    assert page.status_code == 200, page.text
    html = page.text
    assert f"similar to</span> item {query}" in html and 'id="similar-chip"' in html
    assert 'data-sheet=""' in html  # one thumbnail per card: the list is not a contact-sheet page
    nearest = client.get(f"/api/items/{query}/similar", params={"model": embedded, "k": 200}).json()["items"]
    first = html.index('data-id="', html.index('id="grid"'))
    assert html[first:].startswith(f'data-id="{nearest[0]["id"]}"')
    assert f"similar={query}" in html and f"similar_model={embedded}" in html  # the grid's API and item links
    # the plain page offers "More like this" with the newest embedding model
    plain = client.get(f"/datasets/{pcam_dataset_id}").text
    assert f'data-similar-model="{embedded}"' in plain and 'id="more-like-this"' in plain
