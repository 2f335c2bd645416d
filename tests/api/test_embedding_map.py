"""The embedding map's routes (issue 15) on the PCam sample with a real ONNX embedder, on both databases: the binary
points are the stored vectors' ids with their PCA coordinates (sklearn's, normalised), colours per facet field and
per classifier prediction agree with the items, UMAP answers 202 until its background build is saved, and what
cannot be answered is refused by name. Also the `id` filter that hands a lasso selection to the grid, and a review
queue made from explicit item ids."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sqlalchemy import select

from app.db.models import Item
from app.embeddings import projection
from app.inference import vectors
from tests.helpers.api import wait_finished
from tests.helpers.pcam import BATCH, register_embedder

ALL = 20


@pytest.fixture
def settings(make_settings):
    return make_settings(inference_batch=BATCH)


@pytest.fixture
def embedder(client, tmp_path) -> int:
    return register_embedder(client, tmp_path)


@pytest.fixture
def embedded(client, pcam_dataset_id, embedder) -> tuple[int, int]:
    job = client.post("/api/jobs", json={"kind": "predict", "model_id": embedder, "dataset_id": pcam_dataset_id})
    assert wait_finished(client, job.json()["id"])["status"] == "done"
    return pcam_dataset_id, embedder


def unpack(body: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The map binary as the page reads it (static/js/map_gl.js parseMapBinary)."""
    n = int.from_bytes(body[:4], "little")
    assert (4 + n) % 8 == 0
    header = json.loads(body[4:4 + n])
    arrays = {a["name"]: np.frombuffer(body, np.dtype(a["dtype"]).newbyteorder("<"), a["length"], 4 + n + a["offset"])
              for a in header["arrays"]}
    return header, arrays


def test_points_are_the_vectors_pca_and_cached(client, settings, embedded):
    dataset_id, model_id = embedded
    r = client.get(f"/api/datasets/{dataset_id}/map", params={"model": model_id, "method": "pca"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    header, arrays = unpack(r.content)
    stored = vectors.load(settings, model_id, dataset_id)
    assert stored is not None
    assert (header["count"], header["method"], header["model_id"]) == (ALL, "pca", model_id)
    assert arrays["ids"].dtype == np.int32 and arrays["ids"].tolist() == stored.ids.tolist()
    xy = arrays["xy"].reshape(-1, 2)
    assert xy.dtype == np.float32 and np.abs(xy).max() <= 1.0 and np.isclose(np.abs(xy).max(), 1.0)
    expected = PCA(n_components=2).fit_transform(stored.vectors.astype(np.float32))
    np.testing.assert_allclose(xy, projection.normalised(expected), atol=1e-4)
    # the file beside the vectors, keyed by their signature; an unchanged map answers 304 to its ETag
    folder = vectors.store_dir(settings, model_id, dataset_id)
    assert [p.name for p in folder.glob("map-pca-*.npy")] == [f"map-pca-{header['signature']}.npy"]
    again = client.get(f"/api/datasets/{dataset_id}/map", params={"model": model_id},
                       headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    # new vectors (an item embedded again) make a new map, and the old file goes
    item = int(stored.ids[0])
    assert client.post(f"/api/items/{item}/predict", json={"model_id": model_id}).status_code == 200
    vectors.append(settings, model_id, dataset_id, [item], -stored.vectors[:1].astype(np.float32))
    newer, _ = unpack(client.get(f"/api/datasets/{dataset_id}/map", params={"model": model_id}).content)
    assert newer["signature"] != header["signature"]
    assert [p.name for p in folder.glob("map-pca-*.npy")] == [f"map-pca-{newer['signature']}.npy"]


def test_colours_by_facet_and_prediction(client, engine, embedded, pcam_model_id):
    dataset_id, model_id = embedded
    ids = unpack(client.get(f"/api/datasets/{dataset_id}/map", params={"model": model_id}).content)[1]["ids"]
    with engine.connect() as conn:
        rows = dict(conn.execute(select(Item.id, Item.label).where(Item.dataset_id == dataset_id)).all())
        splits = dict(conn.execute(select(Item.id, Item.split).where(Item.dataset_id == dataset_id)).all())
    for field, truth in (("label", rows), ("split", splits)):
        r = client.get(f"/api/datasets/{dataset_id}/map/colors", params={"model": model_id, "field": field})
        assert r.status_code == 200, r.text
        header, arrays = unpack(r.content)
        values = [v["value"] for v in header["values"]]
        got = [values[c] for c in arrays["codes"].tolist()]
        assert got == [str(truth[i]) for i in ids.tolist()], field
        counts = [v["count"] for v in header["values"]]
        assert counts == sorted(counts, reverse=True) and sum(counts) == ALL and header["missing"] == 0
    header, arrays = unpack(client.get(f"/api/datasets/{dataset_id}/map/colors",
                                       params={"model": model_id, "field": "review_status"}).content)
    assert [v["value"] for v in header["values"]] == ["unreviewed"] and set(arrays["codes"].tolist()) == {0}

    # a classifier's predicted class: none before its job (every point "no value"), then each item's
    field = f"pred:{pcam_model_id}"
    header, arrays = unpack(client.get(f"/api/datasets/{dataset_id}/map/colors",
                                       params={"model": model_id, "field": field}).content)
    assert header["values"] == [] and header["missing"] == ALL and set(arrays["codes"].tolist()) == {0xFFFF}
    job = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id, "dataset_id": dataset_id})
    assert wait_finished(client, job.json()["id"])["status"] == "done"
    header, arrays = unpack(client.get(f"/api/datasets/{dataset_id}/map/colors",
                                       params={"model": model_id, "field": field}).content)
    predicted = {i: client.get(f"/api/items/{i}").json() for i in ids.tolist()[:4]}
    values = [v["value"] for v in header["values"]]
    for n, item in enumerate(predicted.values()):
        labels = [p["outputs"]["label"] for p in item["predictions"] if p["model_id"] == pcam_model_id]
        assert values[int(arrays["codes"][n])] == labels[0]
    assert header["missing"] == 0
    # its right / wrong, as the grid's badges show them
    header, arrays = unpack(client.get(f"/api/datasets/{dataset_id}/map/colors",
                                       params={"model": model_id, "field": f"verdict:{pcam_model_id}"}).content)
    badges = {i["id"]: i["prediction"]["verdict"] for i in client.get(
        f"/api/datasets/{dataset_id}/items", params={"model": pcam_model_id, "limit": 100}).json()["items"]}
    values = [v["value"] for v in header["values"]]
    assert set(values) <= {"right", "wrong"} and header["missing"] == 0
    assert [values[c] for c in arrays["codes"].tolist()] == [badges[i] for i in ids.tolist()]


def test_refusals(client, settings, pcam_dataset_id, embedder, pcam_model_id):
    page = client.get(f"/datasets/{pcam_dataset_id}/map")
    assert page.status_code == 404 and "has no embeddings yet" in page.text
    assert "map-link" not in client.get(f"/datasets/{pcam_dataset_id}").text
    url = f"/api/datasets/{pcam_dataset_id}/map"
    r = client.get(url, params={"model": embedder})
    assert r.status_code == 404 and "has no embeddings from model 'pcam-embedder' yet" in r.json()["detail"]
    r = client.get(url, params={"model": pcam_model_id})
    assert r.status_code == 400 and "is a classify model" in r.json()["detail"]
    r = client.get(url, params={"model": embedder, "method": "tsne"})
    assert r.status_code == 400 and "method must be one of pca, umap" in r.json()["detail"]
    assert client.get("/api/datasets/9999/map", params={"model": embedder}).status_code == 404
    assert client.get(url, params={"model": 9999}).status_code == 404
    assert client.get(url).status_code == 422  # model is required
    vectors.append(settings, embedder, pcam_dataset_id, [1], np.ones((1, 4), np.float32))
    colors = f"/api/datasets/{pcam_dataset_id}/map/colors"
    r = client.get(colors, params={"model": embedder, "field": "colour"})
    assert r.status_code == 400 and "colour by one of split, label" in r.json()["detail"]
    r = client.get(colors, params={"model": embedder, "field": "pred:x"})
    assert r.status_code == 400 and "pred:MODEL_ID" in r.json()["detail"]
    r = client.get(colors, params={"model": embedder, "field": f"pred:{embedder}"})
    assert r.status_code == 400 and "is a embed model" in r.json()["detail"]
    r = client.get(colors, params={"model": embedder, "field": f"verdict:{embedder}"})
    assert r.status_code == 400 and "verdicts are a classifier's right / wrong" in r.json()["detail"]


def test_umap_is_computed_in_the_background(client, settings, embedded):
    import umap  # noqa: F401  (a dependency: its absence is a failure, not a skip)
    dataset_id, model_id = embedded
    url = f"/api/datasets/{dataset_id}/map"
    r = client.get(url, params={"model": model_id, "method": "umap"})
    assert r.status_code == 202 and r.json()["status"] == "computing", r.text
    folder = vectors.store_dir(settings, model_id, dataset_id)
    assert projection.wait_for(folder, "umap", 300)
    r = client.get(url, params={"model": model_id, "method": "umap"})
    assert r.status_code == 200, r.text
    header, arrays = unpack(r.content)
    assert header["method"] == "umap" and header["count"] == ALL
    xy = arrays["xy"].reshape(-1, 2)
    assert np.isfinite(xy).all() and np.abs(xy).max() <= 1.0 and len(np.unique(xy, axis=0)) > 1
    assert not list(folder.glob("map-umap-*.lock"))


def test_id_filter_and_a_queue_of_explicit_ids(client, engine, pcam_dataset_id):
    with engine.connect() as conn:
        ids = sorted(conn.scalars(select(Item.id).where(Item.dataset_id == pcam_dataset_id)).all())
    picked = [ids[1], ids[7], ids[12]]
    r = client.get(f"/api/datasets/{pcam_dataset_id}/items", params={"id": picked})
    assert r.status_code == 200 and [i["id"] for i in r.json()["items"]] == picked and r.json()["total"] == 3
    r = client.get(f"/api/datasets/{pcam_dataset_id}/items", params={"id": ["3", "x"]})
    assert r.status_code == 400 and "filter id: 'x' is not an item id" in r.json()["detail"]
    # the grid's selection of these items exports just them (jobs and exports take `id` the same way)
    made = client.post("/api/exports", json={"dataset_id": pcam_dataset_id, "format": "csv",
                                              "filters": {"id": [str(i) for i in picked]}})
    assert made.status_code == 202, made.text
    page = client.get(f"/datasets/{pcam_dataset_id}", params={"id": picked})
    assert page.status_code == 200 and "3 items" in page.text
    made = client.post("/api/review/queues", json={"name": "map", "dataset_id": pcam_dataset_id, "filters": {},
                                                   "item_ids": picked[::-1]})
    assert made.status_code == 201, made.text
    assert made.json()["progress"]["items"] == 3
