"""Malformed input that reached the database before issue 13 (schemathesis found it): ids beyond the databases'
integers (2^31 on PostgreSQL, 2^63 on SQLite) and NUL characters (which PostgreSQL stores in no text) are refused
at the edge with a 4xx naming the parameter, on both databases; a 405 lists every method of the path; a
date-time parameter takes ISO 8601 only."""

from __future__ import annotations

import pytest

from app.api.schemas.fields import MAX_ID

BIG_IDS = [MAX_ID + 1, 2**63, 2**80]


@pytest.fixture
def item_id(client, ingested) -> int:
    return client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]["id"]


def test_ids_beyond_the_database_integer_are_422_naming_the_parameter(client):
    for method, url, name in [
        ("GET", "/api/items/{big}", "item_id"),
        ("GET", "/api/datasets/{big}/charts", "dataset_id"),
        ("GET", "/api/items/1/predictions/{big}/mask", "model_id"),
        ("POST", "/api/review/queues/{big}/undo", "queue_id"),
        ("DELETE", "/api/tokens/{big}", "token_id"),
        ("GET", "/api/jobs?dataset_id={big}", "dataset_id"),
        ("GET", "/api/items/1?queue={big}", "queue"),
    ]:
        for big in BIG_IDS:
            r = client.request(method, url.format(big=big))
            assert r.status_code == 422, (url, big, r.text)
            assert r.json()["detail"].startswith(f"{name}: Input should be less than or equal to {MAX_ID}")


def test_ids_beyond_the_database_integer_in_bodies_are_422(client):
    for url, body, name in [
        ("/api/jobs", {"kind": "predict", "model_id": 2**63, "dataset_id": 1}, "model_id"),
        ("/api/exports", {"dataset_id": 2**40, "format": "csv"}, "dataset_id"),
        ("/api/review/queues", {"name": "q", "dataset_id": 1, "item_ids": [1, 2**64]}, "item_ids.1"),
    ]:
        r = client.post(url, json=body)
        assert r.status_code == 422, (url, r.text)
        assert r.json()["detail"].startswith(f"{name}: Input should be less than or equal to {MAX_ID}")


def test_nul_in_path_or_query_is_400(client, item_id):
    for url in ["/api/datasets?key=a%00b", "/api/datasets/1/items?split=train%00",
                "/api/datasets/1/patients/a%00b", f"/api/items/{item_id}/render?preset=%00"]:
        r = client.get(url)
        assert r.status_code == 400, (url, r.text)
        assert "NUL character" in r.json()["detail"]
        assert r.headers["content-security-policy"]  # answered inside the app's security headers


@pytest.mark.parametrize(("url", "body", "where"), [
    ("/api/items/{item}/comments", {"text": "bad\x00text"}, "text"),
    ("/api/items/{item}/annotations", {"kind": "bbox", "geometry": {"bbox": [1, 2, 3, 4]}, "meta": {"no\x00te": 1}},
     "meta.no\\0te"),
    ("/api/items/{item}/reviews", {"verdict": "accept", "comment": ["fine"][0] + "\x00"}, "comment"),
    ("/api/auth/login", {"username": "ad\x00min", "password": "x"}, "username"),
])
def test_nul_in_a_body_field_is_400_naming_it_and_nothing_is_written(client, item_id, url, body, where):
    r = client.post(url.format(item=item_id), json=body)
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith(f"{where} contains a NUL character")
    assert client.get(f"/api/items/{item_id}/comments").json() == []
    assert client.get(f"/api/items/{item_id}").json()["review_status"] == "unreviewed"


def test_nul_in_a_key_the_body_does_not_declare_is_ignored_like_the_key(client, item_id):
    r = client.post(f"/api/items/{item_id}/comments", json={"text": "fine", "ex\x00tra": "ignored"})
    assert r.status_code == 201, r.text
    assert r.json()["text"] == "fine"


def test_405_lists_every_method_of_the_path(client):
    for method, url, allow in [("TRACE", "/api/jobs", "GET, HEAD, POST"), ("PUT", "/api/jobs/1", "DELETE, GET, HEAD"),
                               ("OPTIONS", "/api/annotations/1", "DELETE, PUT"), ("PATCH", "/api/health", "GET, HEAD"),
                               # a literal path beside a {model_id} one: only its own methods
                               ("OPTIONS", "/api/models/fewshot", "POST")]:
        r = client.request(method, url)
        assert r.status_code == 405, (method, url)
        assert r.headers["allow"] == allow
        assert r.json() == {"detail": "Method Not Allowed"}


def test_date_time_parameters_take_iso_8601_only(client):
    for value in ["0.5", "1700000000", "yesterday"]:
        r = client.get("/api/audit", params={"until": value})
        assert r.status_code == 422, value
        assert r.json()["detail"].startswith("until: Value error, expected an ISO 8601 date")
    assert client.get("/api/audit", params={"until": "2030-01-01T00:00:00"}).status_code == 200


def test_huge_integers_inside_opaque_values_are_400_not_500(client, ingested):
    """Integers the edge cannot see (inside a cursor, a sort, a filter value) that the database refuses: 2^40 is
    beyond PostgreSQL's integer, 2^70 beyond what SQLite's driver binds. Never a 500: a 400 (or the service's own
    4xx) where the database cannot hold it, and nothing written."""
    ds = ingested.dataset_id
    for big in (2**40, 2**70):
        for method, url, kwargs in [
            ("GET", f"/api/audit?cursor={big}", {}),
            ("GET", f"/api/datasets/{ds}/items?sort=metric:{big}:nll", {}),
            ("POST", "/api/exports", {"json": {"format": "csv", "dataset_id": ds, "filters": {"id": [str(big)]}}}),
        ]:
            r = client.request(method, url, **kwargs)
            assert r.status_code < 500, (url, big, r.text)
            if big == 2**70:
                assert 400 <= r.status_code < 500 and isinstance(r.json()["detail"], str), (url, r.text)
    assert client.get("/api/exports").json() == []
