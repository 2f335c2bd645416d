"""Bad requests get a 4xx with {"detail": "<what is wrong>"}, never a 500 or a traceback."""

from __future__ import annotations

import pytest

from app.datasets.ingest import ingest_path
from tests.helpers.auth import signed_in


@pytest.fixture
def item_id(client, ingested):
    """A key slice of the generated DeepLesion sample."""
    return client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]["id"]


def test_health(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["device"] == "cpu"
    assert body["database"] in ("sqlite", "postgresql")


def test_unknown_ids_are_404_json(client):
    for url in ("/api/datasets/999", "/api/datasets/999/items", "/api/items/999", "/api/items/999/render",
                "/api/datasets/999/patients/000001"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert r.headers["content-type"] == "application/json"
        assert set(r.json()) == {"detail"} and "999" in r.json()["detail"]


@pytest.mark.parametrize(("params", "status", "fragment"), [
    ({"window": "275,-175"}, 400, "HIGH must be greater"),
    ({"window": "abc"}, 400, "LOW,HIGH"),
    ({"preset": "nope"}, 400, "unknown preset 'nope'"),
    ({"format": "gif"}, 400, "format must be one of"),
    ({"overlays": "everything"}, 400, "overlays must be one of"),
    ({"size": "0"}, 400, "size must be between"),
    ({"size": "big"}, 422, "size"),
    ({"slice": "9999"}, 400, "slice 9999 is not available"),
    ({"plane": "sagittal"}, 400, "plane 'sagittal' is not available"),
    ({"opacity": "2"}, 400, "opacity must be between 0 and 1"),
    ({"mask_mode": "glow"}, 400, "mask_mode must be one of"),
    ({"plane": "oblique"}, 422, "plane"),
])
def test_bad_render_parameters(client, item_id, params, status, fragment):
    r = client.get(f"/api/items/{item_id}/render", params=params)
    assert r.status_code == status
    detail = r.json()["detail"]
    assert isinstance(detail, str) and fragment in detail


@pytest.mark.parametrize(("params", "fragment"), [
    ({"limit": "501"}, "limit must be between 1 and 500"),
    ({"limit": "0"}, "limit must be between"),
    ({"cursor": "%%%"}, "cursor"),
    ({"colour": "blue"}, "unknown filter 'colour'"),
])
def test_bad_item_queries(client, item_id, params, fragment):
    ds = client.get(f"/api/items/{item_id}").json()["dataset_id"]
    r = client.get(f"/api/datasets/{ds}/items", params=params)
    assert r.status_code == 400 and fragment in r.json()["detail"]


def test_pixel_file_gone_is_a_clear_404(client, engine, settings, tmp_path, deeplesion_sample):
    import shutil

    root = tmp_path / "dl"
    shutil.copytree(deeplesion_sample.root, root)
    report = ingest_path(engine, settings, root, kind="deeplesion", name="copy")
    item = client.get(f"/api/datasets/{report.dataset_id}/items", params={"limit": 1}).json()["items"][0]
    (root / "Images_png" / item["key"][:12] / item["key"][13:]).unlink()
    r = client.get(f"/api/items/{item['id']}/render")
    assert r.status_code == 404 and "missing" in r.json()["detail"]


def test_etag_and_immutable_caching(client, item_id):
    url = f"/api/items/{item_id}/render"
    first = client.get(url, params={"format": "jpeg", "preset": "lung"})
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = client.get(url, params={"format": "jpeg", "preset": "lung"}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other = client.get(url, params={"format": "jpeg", "preset": "bone"})
    assert other.headers["etag"] != etag and other.content != first.content
    pinned = client.get(url, params={"format": "jpeg", "v": "1"})
    assert "immutable" in pinned.headers["cache-control"]


def test_dataset_outside_data_roots_is_not_served(engine, make_settings, item_id, tmp_path):
    from fastapi.testclient import TestClient

    from app.main import create_app

    narrowed = make_settings(data_roots=str(tmp_path / "only-here"))
    with signed_in(TestClient(create_app(narrowed)), narrowed) as other:
        r = other.get(f"/api/items/{item_id}/render")
        assert r.status_code == 403 and "outside MEDVIEW_DATA_ROOTS" in r.json()["detail"]
        assert other.get(f"/api/items/{item_id}/raw").status_code == 403
