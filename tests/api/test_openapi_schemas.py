"""Every JSON endpoint's real responses, on the generated demo data (every dataset kind, the demo models and a
detector and a 3-D segmenter added here), validate against the schema `/openapi.json` documents for that status:
keys the schema does not declare fail, so the documentation cannot fall behind the payloads. Error responses
are checked the same way (`{"detail": str}` for every declared 4xx, 422 included), and bytes endpoints must
answer in a media type their OpenAPI entry lists.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from httpx import Response

from app.api.deps import get_settings
from app.config import Settings
from app.demo import build_demo
from app.embeddings import ann
from app.inference import vectors
from app.main import create_app
from tests.api.test_models_predict import card_yaml, classifier_onnx, register
from tests.helpers.auth import signed_in
from tests.onnx_models import constant_detector, projection_embedder, threshold_segmenter_3d

Schema = dict[str, Any]
JSON_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
                                           "integer": (int,), "number": (int, float), "null": (type(None),)}


def schema_errors(doc: Schema, schema: Schema, value: Any, at: str = "$") -> list[str]:
    """Why `value` does not match `schema` (the subset of JSON Schema that pydantic emits), [] when it does.
    An object schema with `properties` and no `additionalProperties` is closed: an undocumented key is an error."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return schema_errors(doc, doc["components"]["schemas"][name], value, at)
    for combiner in ("anyOf", "oneOf"):
        if combiner in schema:
            passing = [s for s in schema[combiner] if not schema_errors(doc, s, value, at)]
            if not passing or (combiner == "oneOf" and len(passing) > 1):
                return [f"{at}: {len(passing)} of the {combiner} options match {str(value)[:80]!r}"]
            return []
    if "const" in schema and value != schema["const"]:
        return [f"{at}: {value!r} is not {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} is not one of {schema['enum']}"]
    kind = schema.get("type")
    if kind is None:
        return []
    if not isinstance(value, JSON_TYPES[kind]) or (isinstance(value, bool) and kind in ("integer", "number")):
        return [f"{at}: expected {kind}, got {type(value).__name__} {str(value)[:80]!r}"]
    out: list[str] = []
    if kind == "object":
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", not properties)
        out += [f"{at}: missing required {k!r}" for k in schema.get("required", []) if k not in value]
        for key, item in value.items():
            if key in properties:
                out += schema_errors(doc, properties[key], item, f"{at}.{key}")
            elif isinstance(extra, dict):
                out += schema_errors(doc, extra, item, f"{at}.{key}")
            elif not extra:
                out.append(f"{at}: key {key!r} is not in the schema")
    elif kind == "array":
        for i, item in enumerate(value):
            out += schema_errors(doc, schema.get("items", {}), item, f"{at}[{i}]")
    return out


def test_the_validator_catches_undocumented_keys_and_wrong_types() -> None:
    doc: Schema = {"components": {"schemas": {"A": {"type": "object", "required": ["n"], "properties": {
        "n": {"type": "integer"}, "s": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "m": {"type": "object", "additionalProperties": {"type": "number"}}}}}}}
    ref = {"$ref": "#/components/schemas/A"}
    assert schema_errors(doc, ref, {"n": 1, "s": None, "m": {"a": 1.5}}) == []
    assert schema_errors(doc, ref, {"n": 1, "extra": 2}) == ["$: key 'extra' is not in the schema"]
    assert schema_errors(doc, ref, {"n": True}) == ["$.n: expected integer, got bool 'True'"]
    assert schema_errors(doc, ref, {"s": 3})[0] == "$: missing required 'n'"
    assert schema_errors(doc, ref, {"n": 1, "m": {"a": "x"}}) == ["$.m.a: expected number, got str 'x'"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, demo_samples: Path
         ) -> Iterator[tuple[TestClient, dict]]:
    """The demo (every kind, two models with predictions, their jobs) plus a detector on the DeepLesion sample
    and a 3-D segmenter on VerSe, predicted; yields the client and the ids the requests need."""
    base = tmp_path_factory.mktemp("openapi-demo")
    shutil.copy(sqlite_template, base / "medview.db")
    shutil.copytree(demo_samples, base / "data" / "demo")  # generated once per session (tests/conftest.py)
    settings = Settings(_env_file=None, database_url=f"sqlite:///{base / 'medview.db'}", data_dir=base / "data",
                        data_roots=str(base), slice_cache_mb=64, render_cache_mb=16, allowed_hosts="testserver")
    settings = build_demo(settings)
    with signed_in(TestClient(create_app(settings)), settings) as client:
        datasets = {d["kind"]: d["id"] for d in client.get("/api/datasets").json()}
        models = {m["task"]: m["id"] for m in client.get("/api/models").json()
                  if m["name"] != "demo-deeplesion-lesion-projection"}  # "embed": the demo's PCam embedder
        boxes = np.array([[40, 40, 90, 90, 0.9, 0], [0, 0, 10, 10, 0.3, 0]], np.float32)
        detector = yaml.safe_dump({"name": "dl-constant", "task": "detect2d", "input": {
            "layout": "NCHW", "size": [256, 256], "channels": 3, "window": [-175.0, 275.0], "slices": 3},
            "output": {"kind": "boxes", "classes": ["lesion"]}, "applies_to": ["deeplesion"]})
        segmenter = yaml.safe_dump({"name": "bone", "task": "segment3d", "input": {
            "layout": "NCDHW", "size": [32, 64, 64], "channels": 1, "window": [-1000.0, 1000.0], "overlap": 0.25},
            "output": {"kind": "mask", "classes": ["background", "bone"]}, "applies_to": ["verse"]})
        for task, kind, path, card in (
                ("detect2d", "deeplesion", constant_detector(base / "det.onnx", boxes, (256, 256)), detector),
                ("segment3d", "verse", threshold_segmenter_3d(base / "bone.onnx", (32, 64, 64), 0.625, label=1),
                 segmenter)):
            r = register(client, path, card)
            assert r.status_code == 201, r.text
            models[task] = r.json()["id"]
            job = client.post("/api/jobs", json={"kind": "predict", "model_id": models[task],
                                                 "dataset_id": datasets[kind]})
            assert job.status_code == 202, job.text
            wait_done(client, job.json()["id"])
        yield client, {"datasets": datasets, "models": models, "base": base}


def wait_done(client: TestClient, job_id: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := client.get(f"/api/jobs/{job_id}").json()["status"]) in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job_id} still {status}"
        time.sleep(0.05)
    assert status == "done", client.get(f"/api/jobs/{job_id}").json()


def operation(doc: Schema, method: str, path: str) -> tuple[str, Schema]:
    """The OpenAPI path template a concrete /api path matches, and its operation."""
    parts = path.split("?")[0].strip("/").split("/")
    for template, ops in doc["paths"].items():
        names = template.strip("/").split("/")
        if method in ops and len(names) == len(parts) and all(
                n == p or n.startswith("{") for n, p in zip(names, parts, strict=True)):
            return template, ops[method]
    raise AssertionError(f"{method.upper()} {path} is not in /openapi.json")


def check(doc: Schema, seen: set[tuple[str, str]], r: Response, status: int | None = None) -> Any:
    """`r` answers with a status its operation declares, in a declared media type, and (JSON) a body that
    validates against that status's schema. Returns the decoded JSON body."""
    method, path = r.request.method.lower(), r.request.url.path
    template, op = operation(doc, method, path)
    seen.add((method, template))
    if status is not None:
        assert r.status_code == status, (path, r.status_code, r.text[:300])
    declared = op["responses"].get(str(r.status_code))
    assert declared is not None, f"{method.upper()} {template} answered {r.status_code}, not documented"
    media_type = r.headers["content-type"].split(";")[0]
    assert media_type in declared.get("content", {}), (template, r.status_code, media_type, declared)
    if media_type != "application/json":
        return None
    body = r.json()
    problems = schema_errors(doc, declared["content"]["application/json"]["schema"], body)
    assert not problems, f"{method.upper()} {path} → {r.status_code}:\n" + "\n".join(problems[:20])
    return body


def test_every_json_endpoint_matches_its_documented_schema(demo: tuple[TestClient, dict]) -> None:
    client, ids = demo
    doc = client.get("/openapi.json").json()
    seen: set[tuple[str, str]] = set()
    datasets, models = ids["datasets"], ids["models"]

    def get(url: str, status: int = 200, **params: Any) -> Any:
        return check(doc, seen, client.get(url, params=params), status)

    check(doc, seen, client.get("/api/health"), 200)
    assert {d["kind"] for d in get("/api/datasets")} == set(datasets)
    for kind, dataset_id in datasets.items():
        get(f"/api/datasets/{dataset_id}")
        get(f"/api/datasets/{dataset_id}/facets")
        get(f"/api/datasets/{dataset_id}/charts")
        page = get(f"/api/datasets/{dataset_id}/items", limit=3)
        assert page["items"], kind
        for item in page["items"][:2]:
            get(f"/api/items/{item['id']}")
    deeplesion, pcam = datasets["deeplesion"], datasets["pcam"]
    by_age = get(f"/api/datasets/{deeplesion}/items", sort="-age", limit=5)
    assert all("sort_value" in i for i in by_age["items"])  # the optional key, present
    worst = get(f"/api/datasets/{pcam}/items", sort=f"-metric:{models['classify']}:nll", limit=5, split="train")
    assert isinstance(worst["items"][0]["sort_value"], float)
    get(f"/api/datasets/{pcam}/facets", split="train", label=["0", "1"])
    ordered = get(f"/api/datasets/{pcam}/items", sort="-label", limit=3)["items"]
    near = get(f"/api/items/{ordered[1]['id']}", neighbours=1, sort="-label")["neighbours"]
    assert near["position"] == 2 and near["previous"] == ordered[0]["id"] and near["next"] == ordered[2]["id"]
    patient = get(f"/api/items/{get(f'/api/datasets/{deeplesion}/items', limit=1)['items'][0]['id']}")["patient"]
    timeline = get(f"/api/datasets/{deeplesion}/patients/{patient}")
    assert timeline["studies"] and timeline["tracks"]

    # every task's stored predictions, as items list them, and every task's evaluation
    for task, kind in (("classify", "pcam"), ("segment2d", "bis5k"), ("detect2d", "deeplesion"),
                       ("segment3d", "verse")):
        item_id = get(f"/api/datasets/{datasets[kind]}/items", limit=1)["items"][0]["id"]
        assert get(f"/api/items/{item_id}")["predictions"][0]["task"] == task
        evaluation = get(f"/api/models/{models[task]}/evaluation", dataset_id=datasets[kind])
        assert evaluation["task"] == task and evaluation["n"] > 0, evaluation
        assert get(f"/api/models/{models[task]}/evaluation", dataset_id=datasets[kind],
                   annotations="dataset")["annotations"] == "dataset"
    assert get(f"/api/models/{models['classify']}/evaluation", dataset_id=pcam, split="nope")["n"] == 0

    # models: register (201), list, one with its device; an on-demand prediction, done and still running
    get("/api/models")
    get(f"/api/models/{models['classify']}")
    r = register(client, classifier_onnx(ids["base"] / "extra.onnx"), card_yaml(name="extra"))
    check(doc, seen, r, 201)
    pcam_item = get(f"/api/datasets/{pcam}/items", limit=1)["items"][0]["id"]
    predict = f"/api/items/{pcam_item}/predict"
    check(doc, seen, client.post(predict, json={"model_id": models["classify"]}), 200)
    # an embedding model: two items embedded one by one, then each one's similar items (and the refusals)
    embed_card = yaml.safe_dump({"name": "embedder", "task": "embed", "input": {"size": [96, 96], "channels": 3},
                                 "output": {"kind": "embedding"}})
    r = register(client, projection_embedder(ids["base"] / "embed.onnx", (96, 96)), embed_card)
    embedder = check(doc, seen, r, 201)["id"]
    two = [i["id"] for i in get(f"/api/datasets/{pcam}/items", limit=2)["items"]]
    for item in two:
        check(doc, seen, client.post(f"/api/items/{item}/predict", json={"model_id": embedder}), 200)
    assert [i["id"] for i in get(f"/api/items/{two[0]}/similar", model=embedder, k=3)["items"]] == [two[1]]
    get(f"/api/items/{two[0]}/similar", 400, model=models["classify"])
    get(f"/api/items/{ordered[-1]['id']}/similar", 404, model=embedder)
    # few-shot classifiers on the demo embedder's vectors: the label curve, training, an uncertainty-first queue
    demo_embedder = models["embed"]
    get(f"/api/models/{demo_embedder}/fewshot-curve", dataset_id=pcam, draws=2)
    get(f"/api/models/{models['classify']}/fewshot-curve", 400, dataset_id=pcam)
    fewshot = check(doc, seen, client.post("/api/models/fewshot", json={
        "embed_model_id": demo_embedder, "dataset_id": pcam, "per_class": 5}), 201)
    check(doc, seen, client.post("/api/models/fewshot", json={
        "embed_model_id": embedder, "dataset_id": pcam, "per_class": 5}), 400)
    check(doc, seen, client.post("/api/review/queues", json={
        "name": "uncertain", "dataset_id": pcam, "limit": 10, "uncertainty": {"model_id": fewshot["model"]["id"]}}),
        201)
    # a 3-D prediction (seconds) against a wait of a nanosecond: 202, then stored in the background
    volume = get(f"/api/datasets/{datasets['verse']}/items", limit=1)["items"][0]["id"]

    def made_at() -> str | None:  # the test's own 3-D model's prediction (the demo's bone threshold has one too)
        return next((p["created_at"] for p in get(f"/api/items/{volume}")["predictions"]
                     if p["model_id"] == models["segment3d"]), None)

    before = made_at()
    slow = client.app.state.settings.model_copy(update={"predict_wait_seconds": 1e-9})

    async def impatient() -> Settings:
        return slow

    client.app.dependency_overrides[get_settings] = impatient
    try:
        pending = check(doc, seen, client.post(f"/api/items/{volume}/predict",
                                               json={"model_id": models["segment3d"]}), 202)
    finally:
        client.app.dependency_overrides.clear()
    assert pending["status"] == "running"
    deadline = time.monotonic() + 60
    while made_at() == before:
        assert time.monotonic() < deadline, "the background prediction was not stored"
        time.sleep(0.05)

    # jobs: create, read, list (of all and of one dataset), cancel a finished one (409)
    created = check(doc, seen, client.post("/api/jobs", json={
        "kind": "predict", "model_id": models["classify"], "dataset_id": pcam,
        "filters": {"split": "valid", "label": [0, 1]}}), 202)
    wait_done(client, created["id"])
    job = get(f"/api/jobs/{created['id']}")
    assert job["params"] == {"model_id": models["classify"], "dataset_id": pcam,
                             "filters": {"split": ["valid"], "label": ["0", "1"]}}
    assert len(get("/api/jobs")) >= 5 and get("/api/jobs", dataset_id=pcam)[0]["id"] == created["id"]
    check(doc, seen, client.post(f"/api/jobs/{created['id']}/cancel"), 409)

    # exports: start (202), follow, list; an export through the jobs API too; refusals (before the anonymous
    # client below: entering a second TestClient on this app runs its lifespan again and leaves a closed queue)
    started = check(doc, seen, client.post("/api/exports", json={
        "dataset_id": deeplesion, "format": "csv", "filters": {"split": "train"}}), 202)
    wait_done(client, started["id"])
    assert get(f"/api/exports/{started['id']}")["download_url"] and get("/api/exports")[0]["id"] == started["id"]
    assert get(f"/api/jobs/{started['id']}")["params"]["format"] == "csv"
    check(doc, seen, client.post("/api/exports", json={"dataset_id": deeplesion, "format": "tiff"}), 400)
    check(doc, seen, client.post("/api/exports", json={"dataset_id": 9999, "format": "csv"}), 404)
    check(doc, seen, client.post("/api/exports", json={"dataset_id": "x", "format": "csv"}), 422)
    get("/api/exports", 400, limit=0)
    get("/api/exports/9999", 404)

    # ingest as a job (admin): the demo's PCam folder again (a re-ingest: nothing changes), followed as a job;
    # refusals before any job
    pcam_root = ids["base"] / "data" / "demo" / "pcam"
    ingest = check(doc, seen, client.post("/api/datasets", json={"path": str(pcam_root)}), 202)
    wait_done(client, ingest["id"])
    ingested = get(f"/api/jobs/{ingest['id']}")
    assert ingested["params"]["result"]["dataset_id"] == pcam and ingested["params"]["phase"] == "done"
    check(doc, seen, client.post("/api/datasets", json={"path": "/etc"}), 400)
    check(doc, seen, client.post("/api/datasets", json={"path": str(pcam_root), "kind": "bis5k"}), 409)
    check(doc, seen, client.post("/api/datasets", json={"path": 5}), 422)

    # errors: each declared 4xx renders as the documented {"detail": str}
    get("/api/datasets/9999", 404)
    get(f"/api/datasets/{pcam}/items", 400, limit=0)
    get("/api/datasets/x/items", 422)
    get(f"/api/datasets/{pcam}/facets", 400, colour="red")
    get("/api/datasets/x/charts", 422)
    get(f"/api/datasets/{deeplesion}/patients/nobody", 404)
    get("/api/items/9999", 404)
    get("/api/models/9999", 404)
    get(f"/api/models/{models['classify']}/evaluation", 422)
    check(doc, seen, client.post(predict, json={"model_id": models["segment3d"]}), 400)
    check(doc, seen, client.post("/api/jobs", json={"kind": "predict", "model_id": 9999, "dataset_id": pcam}), 404)
    check(doc, seen, client.post("/api/jobs", json={"kind": "nope", "model_id": 1, "dataset_id": pcam}), 400)
    check(doc, seen, client.post("/api/jobs", json={"kind": "predict", "model_id": "x", "dataset_id": pcam}), 422)
    check(doc, seen, register(client, classifier_onnx(ids["base"] / "again.onnx"), card_yaml(name="extra")), 409)
    get("/api/jobs", 400, limit=0)
    get("/api/jobs/9999", 404)
    check(doc, seen, client.post("/api/jobs/9999/cancel"), 404)

    # accounts: users, tokens, the audit log, sign-in and who am I, deleting a model
    check(doc, seen, client.post("/api/users", json={"username": "schema-user", "role": "viewer",
                                                     "password": "a long password"}), 201)
    check(doc, seen, client.post("/api/users", json={"username": "schema-user", "role": "viewer",
                                                     "password": "a long password"}), 409)
    check(doc, seen, client.patch("/api/users/schema-user", json={"role": "reviewer"}), 200)
    get("/api/users")
    made = check(doc, seen, client.post("/api/users/schema-user/tokens", json={"name": "t"}), 201)
    get("/api/tokens", user="schema-user")
    check(doc, seen, client.delete(f"/api/tokens/{made['id']}"), 200)
    get("/api/audit", limit=5)
    get("/api/audit", 422, limit=0)
    check(doc, seen, client.get("/api/auth/me"), 200)
    with TestClient(client.app) as anonymous:
        check(doc, seen, anonymous.post("/api/auth/login", json={"username": "schema-user",
                                                                 "password": "a long password"}), 200)
        check(doc, seen, anonymous.post("/api/auth/login", json={"username": "schema-user", "password": "no"}), 401)
    check(doc, seen, client.delete(f"/api/models/{r.json()['id']}"), 200)
    check(doc, seen, client.delete("/api/models/9999"), 404)

    # review: versioned annotations (create, edit, stale edit, retire, history), comments, a verdict, a queue
    lesion = get(f"/api/items/{get(f'/api/datasets/{deeplesion}/items', limit=1)['items'][0]['id']}")
    cx, cy = lesion["width"] // 2, lesion["height"] // 2
    recist = {"long": [[cx - 20, cy], [cx + 20, cy]], "short": [[cx, cy - 5], [cx, cy + 5]]}
    dataset_annotation = lesion["annotations"][0]
    made = check(doc, seen, client.post(f"/api/items/{lesion['id']}/annotations", json={
        "kind": "recist", "label": dataset_annotation["label"], "geometry": recist}), 201)
    check(doc, seen, client.post(f"/api/items/{lesion['id']}/annotations", json={
        "kind": "recist", "label": dataset_annotation["label"], "geometry": {"long": []}}), 400)
    edited = check(doc, seen, client.put(f"/api/annotations/{made['id']}", json={"version": 1, "meta": {"a": 1}}),
                   200)
    check(doc, seen, client.put(f"/api/annotations/{made['id']}", json={"version": 1, "meta": {}}), 409)
    check(doc, seen, client.delete(f"/api/annotations/{edited['id']}", params={"version": 2}), 200)
    assert len(get(f"/api/annotations/{made['id']}/history")) == 2
    get("/api/annotations/999999/history", 404)
    check(doc, seen, client.post(f"/api/items/{lesion['id']}/comments", json={
        "text": "check", "annotation_id": dataset_annotation["id"]}), 201)
    assert get(f"/api/items/{lesion['id']}")["comments"] == 1 and get(f"/api/items/{lesion['id']}/comments")
    queue = check(doc, seen, client.post("/api/review/queues", json={
        "name": "schema", "dataset_id": deeplesion, "filters": {}, "readers_per_item": 2}), 201)
    nxt = get(f"/api/review/queues/{queue['id']}/next")
    check(doc, seen, client.post(f"/api/items/{nxt['item']['id']}/reviews", json={
        "verdict": "accept", "queue_id": queue["id"]}), 201)
    assert get("/api/review/queues")[0]["progress"]["per_reader"] == [{"reader": "tester", "read": 1}]
    assert get(f"/api/review/queues/{queue['id']}")["agreement"]["n"] == 0
    get("/api/review/queues/9999", 404)
    # review mode: reader state, undo, adjudication, sign-off, suggestions, a queue reading
    queue_id = queue["id"]
    get(f"/api/review/queues/{queue_id}/reader")
    check(doc, seen, client.post(f"/api/items/{lesion['id']}/annotations", json={
        "kind": "recist", "label": dataset_annotation["label"], "geometry": recist, "queue_id": 9999}), 404)
    check(doc, seen, client.post(f"/api/review/queues/{queue_id}/undo"), 200)
    check(doc, seen, client.post(f"/api/review/queues/{queue_id}/adjudication", json={}), 400)
    check(doc, seen, client.post(f"/api/review/queues/{queue_id}/sign-off"), 409)
    solo = check(doc, seen, client.post("/api/review/queues", json={
        "name": "solo", "dataset_id": deeplesion, "filters": {}, "limit": 1}), 201)
    only = get(f"/api/review/queues/{solo['id']}/next")["item"]["id"]
    client.post(f"/api/items/{only}/reviews", json={"verdict": "accept", "queue_id": solo["id"]})
    check(doc, seen, client.post(f"/api/review/queues/{solo['id']}/sign-off"), 200)
    check(doc, seen, client.post(f"/api/review/queues/{solo['id']}/adjudication", json={}), 400)
    get("/api/review/suggestions", dataset_id=deeplesion)
    get("/api/review/suggestions", 404, dataset_id=9999)

    json_operations = {(m, p) for p, ops in doc["paths"].items() for m, op in ops.items()
                       if "application/json" in op["responses"].get("200", op["responses"].get("201", op[
                           "responses"].get("202", {}))).get("content", {})}
    assert json_operations - seen == set(), "JSON endpoints without a checked response"


def test_bytes_endpoints_answer_in_their_documented_media_types(demo: tuple[TestClient, dict]) -> None:
    client, ids = demo
    doc = client.get("/openapi.json").json()
    seen: set[tuple[str, str]] = set()
    datasets, models = ids["datasets"], ids["models"]
    ct = client.get(f"/api/datasets/{datasets['deeplesion']}/items", params={"limit": 1}).json()["items"][0]["id"]
    volume = client.get(f"/api/datasets/{datasets['verse']}/items", params={"limit": 1}).json()["items"][0]["id"]
    for fmt in ("png", "webp", "jpeg"):
        check(doc, seen, client.get(f"/api/items/{ct}/render", params={"format": fmt, "overlays": "gt"}), 200)
    check(doc, seen, client.get(f"/api/items/{ct}/raw"), 200)
    check(doc, seen, client.get(f"/api/items/{volume}/mask", params={"plane": "sagittal"}), 200)
    mask = f"/api/items/{volume}/predictions/{models['segment3d']}/mask"
    first = check(doc, seen, client.get(mask, params={"plane": "coronal"}), 200)
    assert first is None
    etag = client.get(mask, params={"plane": "coronal"}).headers["etag"]
    assert client.get(mask, params={"plane": "coronal"}, headers={"If-None-Match": etag}).status_code == 304
    check(doc, seen, client.get(f"/api/datasets/{datasets['pcam']}/sheet", params={"limit": 8}), 200)
    # a finished export (the JSON test made one; a new job cannot run once that test's second TestClient has
    # closed the app's worker, so one is only made here when this test runs alone)
    finished = [e for e in client.get("/api/exports").json() if e["status"] == "done"]
    if not finished:
        made = client.post("/api/exports", json={"dataset_id": datasets["deeplesion"], "format": "coco"}).json()
        wait_done(client, made["id"])
        finished = [made]
    check(doc, seen, client.get(f"/api/exports/{finished[0]['id']}/download"), 200)
    check(doc, seen, client.get("/api/exports/9999/download"), 404)
    check(doc, seen, client.get(f"/api/items/{ct}/render", params={"format": "gif"}), 400)
    check(doc, seen, client.get("/api/items/9999/raw"), 404)
    check(doc, seen, client.get(f"/api/datasets/{datasets['pcam']}/sheet", params={"cols": 0}), 400)
    # the embedding map of the demo's embedded PCam patches, its colours, and UMAP "computing" (another process's
    # lock file stands for a build in progress, so none is started here)
    pcam_map = f"/api/datasets/{datasets['pcam']}/map"
    check(doc, seen, client.get(pcam_map, params={"model": models["embed"]}), 200)
    check(doc, seen, client.get(f"{pcam_map}/colors", params={"model": models["embed"], "field": "label"}), 200)
    check(doc, seen, client.get(f"{pcam_map}/colors", params={"model": models["embed"], "field": "x"}), 400)
    check(doc, seen, client.get(pcam_map, params={"model": models["embed"], "method": "tsne"}), 400)
    check(doc, seen, client.get(pcam_map, params={"model": models["classify"]}), 400)
    settings = client.app.state.settings
    embedded = vectors.load(settings, models["embed"], datasets["pcam"])
    assert embedded is not None
    folder = vectors.store_dir(settings, models["embed"], datasets["pcam"])
    lock = folder / f"map-umap-{ann.signature(embedded)}.lock"
    lock.touch()
    try:
        check(doc, seen, client.get(pcam_map, params={"model": models["embed"], "method": "umap"}), 202)
    finally:
        lock.unlink()
    for method, template in seen:
        ok = doc["paths"][template][method]["responses"]["200"]
        assert "application/json" not in ok["content"], template  # bytes, not documented as JSON


def test_errors_are_documented_as_detail_strings(demo: tuple[TestClient, dict]) -> None:
    """No operation keeps FastAPI's default 422 (an array of errors): the app's handler answers a string."""
    client, _ = demo
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["ErrorDetail"]["properties"]["detail"]["type"] == "string"
    for template, ops in doc["paths"].items():
        for method, op in ops.items():
            params = op.get("parameters") or op.get("requestBody")
            for status, response in op["responses"].items():
                if status.startswith("4"):
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorDetail"}, (method, template, status)
            if params and template.startswith("/api/"):
                assert "422" in op["responses"], (method, template)
