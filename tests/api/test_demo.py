"""`medview demo --no-serve` generates the sample in the real layout, indexes it, and is repeatable."""

from __future__ import annotations

import csv
import shutil

from fastapi.testclient import TestClient

from app.cli import main as cli_main
from app.config import Settings
from app.datasets.registry import available_kinds
from app.main import create_app
from tests.helpers.auth import signed_in


def test_demo_generates_and_indexes(monkeypatch, tmp_path, database_url, capsys, demo_samples):
    if not database_url.startswith("sqlite"):  # SQLite's run generates; the others index the same samples
        shutil.copytree(demo_samples, tmp_path / "data" / "demo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDVIEW_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDVIEW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MEDVIEW_DATA_ROOTS", raising=False)
    assert cli_main(["demo", "--no-serve"]) == 0
    printed = capsys.readouterr()
    link = printed.out.strip().splitlines()[-1]
    assert link.startswith("Sign in with one click: http://127.0.0.1:8000/login/link?t=")
    passwords = {line.split()[0]: line.split()[3] for line in printed.err.splitlines() if "(shown once)" in line}
    assert set(passwords) == {"demo-viewer", "demo-annotator", "demo-reviewer", "demo-admin"}
    # each problem the samples carry on purpose is named under its dataset's line, counted in words
    assert "indexed demo-verse: 4 items, 31 annotations, 1 problem\n" in printed.err, printed.err
    assert "  problem (kept in the sample on purpose): 03_test/derivatives/sub-verse006/" in printed.err
    assert "1 problems" not in printed.err and "indexed demo-pcam: 384 items, 0 annotations, no problems" in printed.err
    root = tmp_path / "data" / "demo" / "deeplesion"
    with (root / "DL_info.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 10
    assert cli_main(["demo", "--no-serve"]) == 0  # a second run re-uses the data and duplicates nothing
    again = capsys.readouterr()
    assert "(shown once)" not in again.err and "login/link?t=" in again.out  # accounts kept, a fresh link
    settings = Settings(_env_file=None, database_url=database_url, data_dir=tmp_path / "data",
                        allowed_hosts="testserver")
    with signed_in(TestClient(create_app(settings)), settings) as client:
        datasets = {d["name"]: d for d in client.get("/api/datasets").json()}
        assert sorted(datasets) == sorted(f"demo-{kind}" for kind in available_kinds())
        assert all(d["status"] == "ready" and d["item_count"] > 0 for d in datasets.values())
        assert datasets["demo-deeplesion"]["annotation_count"] == len(rows)
        for d in datasets.values():  # every kind's first thumbnail renders
            item = client.get(f"/api/datasets/{d['id']}/items", params={"limit": 1}).json()["items"][0]
            r = client.get(item["thumbnail_url"])
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", (d["name"], r.text[:200])
        # the demo models are registered once and have predicted every item of their dataset, with metrics
        models = {m["name"]: m for m in client.get("/api/models").json()}
        assert set(models) == {"demo-pcam-darkness", "demo-bis5k-pale-lumen", "demo-pcam-pooled-projection",
                               "demo-deeplesion-lesion-projection", "demo-deeplesion-blobs",
                               "demo-verse-bone-threshold"}
        # every task has a demo model whose evaluation page has numbers: the detector finds some lesions (a FROC),
        # the 3-D bone threshold overlaps the vertebrae (scored on foreground: it has no vertebra numbers)
        froc = client.get(f"/api/models/{models['demo-deeplesion-blobs']['id']}/evaluation",
                          params={"dataset_id": datasets["demo-deeplesion"]["id"]}).json()
        assert froc["n"] == datasets["demo-deeplesion"]["item_count"] and froc["sensitivity_at_fp"]["8"] > 0, froc
        bone = client.get(f"/api/models/{models['demo-verse-bone-threshold']['id']}/evaluation",
                          params={"dataset_id": datasets["demo-verse"]["id"]}).json()
        assert bone["n"] >= 3 and 0.3 < bone["dice_foreground"] < 1.0, bone
        # the DeepLesion demo embedder's lesion vectors link the patients' lesions across studies
        lesion = client.get(f"/api/datasets/{datasets['demo-deeplesion']['id']}/items", params={"limit": 1}).json()
        patient = client.get(f"/api/items/{lesion['items'][0]['id']}").json()["patient"]
        timeline = client.get(f"/api/datasets/{datasets['demo-deeplesion']['id']}/patients/{patient}").json()
        assert timeline["tracks_model"]["name"] == "demo-deeplesion-lesion-projection", timeline.get("tracks_model")
        # the demo embedder's vectors are there: every PCam item has similar items, itself not among them
        pcam_items = client.get(f"/api/datasets/{datasets['demo-pcam']['id']}/items", params={"limit": 2}).json()
        first = pcam_items["items"][0]["id"]
        similar = client.get(f"/api/items/{first}/similar",
                             params={"model": models["demo-pcam-pooled-projection"]["id"], "k": 5}).json()
        assert len(similar["items"]) == 5 and first not in [s["id"] for s in similar["items"]], similar
        # and its map: the PCam page links it, and it holds every PCam item
        embedder, pcam = models["demo-pcam-pooled-projection"]["id"], datasets["demo-pcam"]
        assert f"/datasets/{pcam['id']}/map?model={embedder}" in client.get(f"/datasets/{pcam['id']}").text
        points = client.get(f"/api/datasets/{pcam['id']}/map", params={"model": embedder})
        assert points.status_code == 200 and int.from_bytes(points.content[:4], "little") > 0
        header = points.content[4:4 + int.from_bytes(points.content[:4], "little")]
        assert f'"count":{pcam["item_count"]}'.encode() in header
        for name, dataset, key in (("demo-pcam-darkness", "demo-pcam", "accuracy"),
                                   ("demo-bis5k-pale-lumen", "demo-bis5k", "dice")):
            ev = client.get(f"/api/models/{models[name]['id']}/evaluation",
                            params={"dataset_id": datasets[dataset]["id"]}).json()
            assert ev["n"] == datasets[dataset]["item_count"] and 0.0 < ev[key] <= 1.0, ev
        item = client.get(f"/api/datasets/{datasets['demo-bis5k']['id']}/items", params={"limit": 1}).json()
        detail = client.get(f"/api/items/{item['items'][0]['id']}").json()
        mask = client.get(detail["predictions"][0]["outputs"]["mask"])
        assert mask.status_code == 200 and mask.headers["content-type"] == "image/png"


def test_demo_link_and_passwords_sign_in(monkeypatch, tmp_path, database_url, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDVIEW_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDVIEW_DATA_DIR", str(tmp_path / "data"))
    from app.demo import DEMO_SAMPLES

    monkeypatch.setattr("app.demo.DEMO_SAMPLES", {"pcam": DEMO_SAMPLES["pcam"]})  # one kind is enough here
    assert cli_main(["demo", "--no-serve"]) == 0
    printed = capsys.readouterr()
    token = printed.out.strip().splitlines()[-1].split("?t=")[1]
    password = next(line.split()[3] for line in printed.err.splitlines() if line.strip().startswith("demo-viewer"))
    settings = Settings(_env_file=None, database_url=database_url, data_dir=tmp_path / "data",
                        allowed_hosts="testserver")
    with TestClient(create_app(settings)) as client:
        r = client.get("/login/link", params={"t": token}, follow_redirects=False)
        assert r.status_code == 303 and "medview_session=" in r.headers["set-cookie"]
        assert client.get("/api/auth/me").json() == {"username": "demo-admin", "role": "admin"}
        client.cookies.clear()
        assert client.get("/login/link", params={"t": token + "x"}).status_code == 401
        r = client.post("/api/auth/login", json={"username": "demo-viewer", "password": password})
        assert r.status_code == 200 and r.json()["role"] == "viewer"


def test_serve_refuses_a_weak_key_off_loopback_and_names_the_first_step(monkeypatch, tmp_path, database_url,
                                                                         capsys):
    monkeypatch.setenv("MEDVIEW_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDVIEW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDVIEW_SECRET_KEY", "changeme")
    assert cli_main(["serve", "--host", "0.0.0.0"]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(k["host"]))
    monkeypatch.delenv("MEDVIEW_SECRET_KEY")
    assert cli_main(["serve"]) == 0 and started == ["127.0.0.1"]
    assert "medview users add NAME --role admin" in capsys.readouterr().err  # a fresh database: no account yet
