"""`medview demo --no-serve` generates the sample in the real layout, indexes it, and is repeatable."""

from __future__ import annotations

import csv

from fastapi.testclient import TestClient

from app.cli import main as cli_main
from app.config import Settings
from app.datasets.registry import available_kinds
from app.main import create_app
from tests.helpers.auth import signed_in


def test_demo_generates_and_indexes(monkeypatch, tmp_path, database_url):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDVIEW_DATABASE_URL", database_url)
    monkeypatch.setenv("MEDVIEW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MEDVIEW_DATA_ROOTS", raising=False)
    assert cli_main(["demo", "--no-serve"]) == 0
    root = tmp_path / "data" / "demo" / "deeplesion"
    with (root / "DL_info.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 10
    assert cli_main(["demo", "--no-serve"]) == 0  # a second run re-uses the data and duplicates nothing
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
        assert set(models) == {"demo-pcam-darkness", "demo-bis5k-pale-lumen"}
        for name, dataset, key in (("demo-pcam-darkness", "demo-pcam", "accuracy"),
                                   ("demo-bis5k-pale-lumen", "demo-bis5k", "dice")):
            ev = client.get(f"/api/models/{models[name]['id']}/evaluation",
                            params={"dataset_id": datasets[dataset]["id"]}).json()
            assert ev["n"] == datasets[dataset]["item_count"] and 0.0 < ev[key] <= 1.0, ev
        item = client.get(f"/api/datasets/{datasets['demo-bis5k']['id']}/items", params={"limit": 1}).json()
        detail = client.get(f"/api/items/{item['items'][0]['id']}").json()
        mask = client.get(detail["predictions"][0]["outputs"]["mask"])
        assert mask.status_code == 200 and mask.headers["content-type"] == "image/png"
