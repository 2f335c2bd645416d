"""Who may do what: every state-changing route names its role; reads need a user (or MEDVIEW_PUBLIC_READ);
each role against each write route (allowed / 403 / 401); CSRF and cross-site refusals; cookie flags; tokens
revoked and users disabled are refused at once; the audit log records sign-ins and writes; no password or token
in clear in the database file or the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.api.security import SESSION_COOKIE, RequireRole
from app.main import create_app
from tests.helpers.auth import PASSWORD, api_token, ensure_user

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
OPEN_WRITES = {("POST", "/api/auth/login"), ("POST", "/login")}  # signing in is how one gets a role


def _routes(app) -> list[APIRoute]:
    """Every API route, walking into included routers (FastAPI ≥ 0.16x keeps each as one entry)."""
    try:
        from fastapi.routing import iter_route_contexts

        found = [ctx.route for ctx in iter_route_contexts(app.routes)]
    except ImportError:
        found = list(app.routes)
    return [r for r in found if isinstance(r, APIRoute)]


def _dependencies(route: APIRoute) -> list:
    stack, found = list(route.dependant.dependencies), []
    while stack:
        dep = stack.pop()
        found.append(dep.call)
        stack.extend(dep.dependencies)
    return found


def test_every_write_route_names_its_role(app):
    missing = []
    for route in _routes(app):
        for method in route.methods & UNSAFE:
            if (method, route.path) in OPEN_WRITES:
                continue
            if not any(isinstance(call, RequireRole) for call in _dependencies(route)):
                missing.append(f"{method} {route.path}")
    assert not missing, f"write routes without RequireRole: {missing}"
    assert len([r for r in _routes(app) if r.methods & UNSAFE]) >= 10  # the test sees the app's real routes


@pytest.mark.parametrize("path", ["/api/datasets", "/api/models", "/api/jobs", "/", "/models", "/docs",
                                  "/openapi.json", "/api/audit"])
def test_reads_need_a_user(anon_client, path):
    r = anon_client.get(path, follow_redirects=False, headers={"accept": "text/html"} if "api" not in path else {})
    if path.startswith("/api/"):
        assert r.status_code == 401 and r.json()["detail"]
    else:
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_open_paths_and_public_read(anon_client, make_settings):
    assert anon_client.get("/api/health").status_code == 200
    assert anon_client.get("/login").status_code == 200
    assert anon_client.get("/static/css/medview.css").status_code == 200
    public = make_settings(public_read=True)
    with TestClient(create_app(public)) as c:
        assert c.get("/api/datasets").status_code == 200
        r = c.post("/api/jobs", json={"kind": "predict", "model_id": 1, "dataset_id": 1})
        assert r.status_code == 401  # writes always need a user


def _as(settings, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, f'user-{role}', role)}"}


WRITES = [  # (method, path, body, least role)
    ("POST", "/api/jobs", {"kind": "predict", "model_id": 999, "dataset_id": 999}, "reviewer"),
    ("POST", "/api/jobs/999/cancel", None, "reviewer"),
    ("DELETE", "/api/jobs/999", None, "admin"),
    ("POST", "/api/items/999/predict", {"model_id": 999}, "reviewer"),
    ("DELETE", "/api/models/999", None, "admin"),
    ("POST", "/api/models/fewshot", {"embed_model_id": 999, "dataset_id": 999}, "admin"),
    ("POST", "/api/users", {"username": "x1", "role": "viewer", "password": "long enough pw"}, "admin"),
    ("PATCH", "/api/users/nobody", {"role": "viewer"}, "admin"),
    ("POST", "/api/users/nobody/tokens", {"name": "t"}, "admin"),
    ("DELETE", "/api/tokens/999", None, "admin"),
    ("GET", "/api/audit", None, "admin"),
    ("GET", "/api/users", None, "admin"),
    ("POST", "/api/items/999/annotations", {"kind": "bbox", "label": None, "geometry": {}}, "annotator"),
    ("PUT", "/api/annotations/999", {"version": 1}, "annotator"),
    ("DELETE", "/api/annotations/999?version=1", None, "annotator"),
    ("POST", "/api/items/999/comments", {"text": "x"}, "annotator"),
    ("POST", "/api/items/999/reviews", {"verdict": "accept"}, "reviewer"),
    ("POST", "/api/review/queues", {"name": "q", "dataset_id": 999, "filters": {}}, "reviewer"),
    ("GET", "/api/review/queues/999/next", None, "reviewer"),
    ("GET", "/api/review/queues/999/reader", None, "reviewer"),
    ("POST", "/api/review/queues/999/undo", None, "reviewer"),
    ("POST", "/api/review/queues/999/sign-off", None, "reviewer"),
    ("POST", "/api/review/queues/999/adjudication", {}, "reviewer"),
    ("POST", "/api/exports", {"dataset_id": 999, "format": "csv"}, "reviewer"),
    ("GET", "/api/exports/999/download", None, "reviewer"),
    ("POST", "/api/datasets", {"path": "/no/such/folder"}, "admin"),
]
ROLES = ["viewer", "annotator", "reviewer", "admin"]


@pytest.mark.parametrize(("method", "path", "body", "least"), WRITES)
def test_each_role_against_each_write_route(anon_client, settings, method, path, body, least):
    assert anon_client.request(method, path, json=body).status_code == 401
    for role in ROLES:
        r = anon_client.request(method, path, json=body, headers=_as(settings, role))
        allowed = ROLES.index(role) >= ROLES.index(least)
        if allowed:
            assert r.status_code not in (401, 403), (role, r.status_code, r.text)
        else:
            assert r.status_code == 403 and least in r.json()["detail"], (role, r.text)


def test_model_upload_needs_admin(anon_client, settings, tmp_path):
    files = {"file": ("m.onnx", b"not a model"), "card": (None, "name: x\ntask: classify\n")}
    assert anon_client.post("/api/models", files=files).status_code == 401
    assert anon_client.post("/api/models", files=files, headers=_as(settings, "reviewer")).status_code == 403
    r = anon_client.post("/api/models", files=files, headers=_as(settings, "admin"))
    assert r.status_code == 400  # admitted, then refused for what it is


def _sign_in(client: TestClient, name: str, password: str = PASSWORD, **headers: str):
    return client.post("/api/auth/login", json={"username": name, "password": password}, headers=headers)


def test_sign_in_cookie_flags_me_and_sign_out(anon_client, settings):
    ensure_user(settings, "rita", "reviewer")
    r = _sign_in(anon_client, "rita")
    assert r.status_code == 200 and r.json() == {"username": "rita", "role": "reviewer"}
    cookie = r.headers["set-cookie"].lower()
    assert f"{SESSION_COOKIE}=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "max-age=43200" in cookie and "secure" not in cookie  # plain http here; https adds Secure
    csrf = r.headers["x-csrf-token"]
    assert anon_client.get("/api/auth/me").json() == {"username": "rita", "role": "reviewer"}
    assert anon_client.post("/api/auth/logout").status_code == 403  # cookie write without CSRF token
    assert anon_client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    anon_client.cookies.clear()
    assert anon_client.get("/api/auth/me").status_code == 401


def test_wrong_password_and_unknown_user_look_alike_and_are_throttled(anon_client, settings):
    ensure_user(settings, "olga", "viewer")
    wrong, unknown = _sign_in(anon_client, "olga", "nope nope"), _sign_in(anon_client, "ghost", "nope nope")
    assert wrong.status_code == unknown.status_code == 401 and wrong.json() == unknown.json()
    codes = [_sign_in(anon_client, "olga", "nope nope").status_code for _ in range(6)]
    assert codes[-1] == 429 and 401 in codes
    refused = _sign_in(anon_client, "olga")  # even the right password waits now
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0


def test_csrf_and_cross_site_writes_are_refused(anon_client, settings):
    ensure_user(settings, "rev", "reviewer")
    csrf = _sign_in(anon_client, "rev").headers["x-csrf-token"]
    body = {"kind": "predict", "model_id": 999, "dataset_id": 999}
    assert anon_client.post("/api/jobs", json=body).status_code == 403  # no token
    evil = {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
    assert anon_client.post("/api/jobs", json=body, headers=evil).status_code == 403
    forged = anon_client.post("/api/jobs/1/cancel", data={"csrf_token": "forged"},
                              headers={"Origin": "http://testserver"})
    assert forged.status_code == 403
    ok = anon_client.post("/api/jobs", json=body, headers={"X-CSRF-Token": csrf, "Origin": "http://testserver"})
    assert ok.status_code == 404  # past the guard: the model does not exist
    assert _sign_in(anon_client, "rev", Origin="http://evil.example").status_code == 403


def test_revoked_token_and_disabled_user_are_refused_at_once(client, settings):
    token = api_token(settings, "vic", "viewer")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/datasets", headers=headers).status_code == 200
    token_id = client.get("/api/tokens", params={"user": "vic"}).json()[0]["id"]
    assert client.delete(f"/api/tokens/{token_id}").status_code == 200
    assert client.get("/api/datasets", headers=headers).status_code == 401
    second = {"Authorization": f"Bearer {api_token(settings, 'vic', 'viewer')}"}
    assert client.get("/api/datasets", headers=second).status_code == 200
    assert client.patch("/api/users/vic", json={"disabled": True}).json()["disabled"] is True
    assert client.get("/api/datasets", headers=second).status_code == 401


def test_audit_log_records_sign_ins_and_writes(client, anon_client, settings):
    ensure_user(settings, "amy", "viewer")
    _sign_in(anon_client, "amy", "wrong password")
    client.post("/api/users", json={"username": "newbie", "role": "annotator", "password": "a long password"})
    client.patch("/api/users/newbie", json={"role": "reviewer"})
    events = client.get("/api/audit", params={"limit": 50}).json()["events"]
    actions = [e["action"] for e in events]
    assert {"auth.login_failed", "user.add", "user.role", "token.create"} <= set(actions)
    role_change = next(e for e in events if e["action"] == "user.role")
    assert role_change["actor"] == "tester" and role_change["before"] == {"role": "annotator"}
    assert role_change["after"] == {"role": "reviewer"} and role_change["address"]
    only = client.get("/api/audit", params={"action": "user.*"}).json()["events"]
    assert only and all(e["action"].startswith("user.") for e in only)


def test_no_password_or_token_in_clear(client, anon_client, settings, caplog):
    caplog.set_level(logging.DEBUG)
    secret_pw = "sw0rdfish-unique-123"
    client.post("/api/users", json={"username": "carl", "role": "viewer", "password": secret_pw})
    token = client.post("/api/users/carl/tokens", json={"name": "ci"}).json()["token"]
    _sign_in(anon_client, "carl", secret_pw)
    _sign_in(anon_client, "carl", secret_pw + "x")
    db_file = Path(settings.database_url.removeprefix("sqlite:///"))
    if db_file.exists():
        blob = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
        assert secret_pw.encode() not in blob and token.encode() not in blob
    assert secret_pw not in caplog.text and token not in caplog.text


def test_security_headers_and_hosts(anon_client):
    r = anon_client.get("/login")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in r.text  # no inline script on pages
    rebinding = anon_client.get("/api/health", headers={"host": "attacker.example"})
    assert rebinding.status_code == 400 and "MEDVIEW_ALLOWED_HOSTS" in rebinding.json()["detail"]


def test_request_bodies_are_bounded(client):
    huge = {"kind": "predict", "model_id": 1, "dataset_id": 1, "filters": {"split": ["x" * 2_000_000]}}
    r = client.post("/api/jobs", json=huge)
    assert r.status_code == 413 and "too large" in r.json()["detail"]


def test_server_paths_are_shown_to_admins_only(client, anon_client, settings, ingested, tmp_path):
    as_admin = {d["id"]: d["root"] for d in client.get("/api/datasets").json()}
    as_viewer = {d["id"]: d["root"] for d in anon_client.get("/api/datasets", headers=_as(settings, "viewer")).json()}
    root = as_admin[ingested.dataset_id]
    assert Path(root).is_absolute()
    shown = as_viewer[ingested.dataset_id]
    assert not Path(shown).is_absolute() and shown.endswith(Path(root).name) and str(tmp_path) not in shown
    detail = anon_client.get(f"/api/datasets/{ingested.dataset_id}", headers=_as(settings, "viewer")).json()
    assert detail["root"] == shown
    bad = client.post("/api/models", files={"file": ("m.onnx", b"\x08\x01garbage"),
                                            "card": (None, "name: x\ntask: classify\ninput: {size: [8, 8], "
                                                     "channels: 1}\noutput: {kind: logits, classes: [a, b]}\n")})
    assert bad.status_code == 400 and "m.onnx" in bad.json()["detail"]
    assert str(settings.data_dir) not in bad.text and ".incoming" not in bad.text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:1"])
def test_sign_in_never_redirects_off_site(anon_client, settings, target):
    ensure_user(settings, "nora", "viewer")
    r = anon_client.post("/login", data={"username": "nora", "password": PASSWORD, "next": target},
                         headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    ok = anon_client.post("/login", data={"username": "nora", "password": PASSWORD, "next": "/models?x=1"},
                          headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert ok.headers["location"] == "/models?x=1"
