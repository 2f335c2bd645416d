"""Model registration (API and CLI) and synchronous prediction on PCam items with a real ONNX classifier,
checked against numpy on the patch read with h5py."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from sqlalchemy import func, select

from app.cli import main as cli_main
from app.datasets.pcam.synth import file_name
from app.db.models import Item, Model, Prediction
from app.db.session import make_session_factory
from tests.helpers.api import register
from tests.helpers.pcam import MEAN, SCALE, STD, B, W, card, card_yaml, classifier_onnx


def expected_probabilities(patch: np.ndarray) -> np.ndarray:
    x = (patch.astype(np.float32) * np.float32(SCALE) - np.float32(MEAN)) / np.float32(STD)
    m = float(x[32:64, 32:64, :].astype(np.float64).mean())
    logits = m * W[0].astype(np.float64) + B
    e = np.exp(logits - logits.max())
    return e / e.sum()


@pytest.fixture
def onnx_file(tmp_path) -> Path:
    return classifier_onnx(tmp_path / "pcam_baseline.onnx")


def items(engine, dataset_id: int) -> list[Item]:
    with make_session_factory(engine)() as session:
        return list(session.scalars(select(Item).where(Item.dataset_id == dataset_id).order_by(Item.id)))


def h5_patch(root: Path, split: str, index: int) -> np.ndarray:
    with h5py.File(root / file_name(split, "x"), "r") as f:
        return f["x"][index]


def test_register_predict_and_show(client, engine, settings, pcam_dataset_id, onnx_file, pcam_root):
    r = register(client, onnx_file, card_yaml())
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["name"] == "pcam-baseline" and model["task"] == "classify" and model["runtime"] == "onnx"
    stored = Path(settings.data_dir) / "models" / str(model["id"]) / onnx_file.name
    assert stored.read_bytes() == onnx_file.read_bytes()
    assert [m["id"] for m in client.get("/api/models").json()] == [model["id"]]
    detail = client.get(f"/api/models/{model['id']}").json()
    assert detail["device"] == "cpu" == client.get("/api/health").json()["device"]
    assert detail["card"]["output"]["classes"] == ["normal", "tumor"]

    rows = items(engine, pcam_dataset_id)
    outcomes = set()
    for item in rows:
        r = client.post(f"/api/items/{item.id}/predict", json={"model_id": model["id"]})
        assert r.status_code == 200, r.text
        body = r.json()
        expected = expected_probabilities(h5_patch(pcam_root, item.split, item.location_index))
        np.testing.assert_allclose(body["outputs"]["probabilities"], expected, rtol=1e-5, atol=1e-6)
        index = int(np.argmax(expected))
        assert body["outputs"]["label"] == ["normal", "tumor"][index]
        assert body["metrics"]["correct"] == (index == int(item.label))
        assert body["metrics"]["nll"] == pytest.approx(-np.log(expected[int(item.label)]), rel=1e-5)
        outcomes.add(body["metrics"]["correct"])
        shown = client.get(f"/api/items/{item.id}").json()["predictions"]
        assert shown == [{"model_id": model["id"], "model_name": "pcam-baseline", "task": "classify",
                          "outputs": body["outputs"],
                          "metrics": body["metrics"], "created_at": shown[0]["created_at"]}]
    assert outcomes == {True, False}  # the sample exercises both outcomes of the metric

    # predicting again replaces the row
    item = rows[0]
    for _ in range(2):
        assert client.post(f"/api/items/{item.id}/predict", json={"model_id": model["id"]}).status_code == 200
    with make_session_factory(engine)() as session:
        count = session.scalar(select(func.count()).select_from(Prediction).where(Prediction.item_id == item.id))
        assert count == 1
        assert session.scalar(select(func.count()).select_from(Prediction)) == len(rows)


def test_card_as_text_field_and_json(client, onnx_file):
    r = client.post("/api/models", files={"file": (onnx_file.name, onnx_file.read_bytes())},
                    data={"card": card_yaml(name="as-text")})
    assert r.status_code == 201, r.text
    r = register(client, onnx_file, json.dumps(card(name="as-json")), "card.json")
    assert r.status_code == 201, r.text
    assert [m["name"] for m in client.get("/api/models").json()] == ["as-text", "as-json"]


def test_bad_models_and_cards(client, engine, settings, pcam_dataset_id, onnx_file, tmp_path):
    three = classifier_onnx(tmp_path / "three.onnx", classes=3)
    r = register(client, three, card_yaml())
    assert r.status_code == 400
    assert "3 scores per image" in r.json()["detail"] and "output.classes" in r.json()["detail"]

    bad = card(input={"layout": "NCHW", "channels": 3})
    r = register(client, onnx_file, yaml.safe_dump(bad))
    assert r.status_code == 400 and "input.size" in r.json()["detail"]
    r = register(client, onnx_file, "name: [unclosed\n")
    assert r.status_code == 400 and "YAML" in r.json()["detail"]

    renamed = tmp_path / "model.bin"
    renamed.write_bytes(onnx_file.read_bytes())
    r = register(client, renamed, card_yaml(name="wrong-suffix"))
    assert r.status_code == 400 and "'.bin'" in r.json()["detail"]
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    r = register(client, tmp_path / "junk.onnx", card_yaml(name="junk"))
    assert r.status_code == 400 and "not a loadable ONNX model" in r.json()["detail"]

    first = register(client, onnx_file, card_yaml())
    assert first.status_code == 201
    r = register(client, onnx_file, card_yaml())
    assert r.status_code == 409 and "pcam-baseline" in r.json()["detail"]
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Model)) == 1
    # refused uploads leave no files behind
    assert [p.name for p in (Path(settings.data_dir) / "models").iterdir()] == [str(first.json()["id"])]

    other = register(client, onnx_file, card_yaml(name="lesions-only", applies_to=("bis5k",))).json()
    item = items(engine, pcam_dataset_id)[0]
    r = client.post(f"/api/items/{item.id}/predict", json={"model_id": other["id"]})
    assert r.status_code == 400 and "bis5k" in r.json()["detail"] and "pcam" in r.json()["detail"]

    r = client.post(f"/api/items/{item.id}/predict", json={"model_id": 9999})
    assert r.status_code == 404 and "model 9999" in r.json()["detail"]
    assert client.get("/api/models/9999").status_code == 404
    r = client.post("/api/items/999999/predict", json={"model_id": other["id"]})
    assert r.status_code == 404 and "item 999999" in r.json()["detail"]
    assert client.post(f"/api/items/{item.id}/predict", json={}).status_code == 422
    assert client.get(f"/api/items/{item.id}").json()["predictions"] == []


def test_cli_models_add_and_list(monkeypatch, capsys, client, settings, onnx_file, tmp_path):
    monkeypatch.setenv("MEDVIEW_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MEDVIEW_DATA_ROOTS", settings.data_roots)
    monkeypatch.setenv("MEDVIEW_DATA_DIR", str(settings.data_dir))
    card_path = tmp_path / "card.yaml"
    card_path.write_text(card_yaml(name="cli-model"))
    assert cli_main(["models", "add", str(onnx_file), "--card", str(card_path)]) == 0
    model_id = int(capsys.readouterr().out.strip())
    assert client.get(f"/api/models/{model_id}").json()["name"] == "cli-model"
    assert cli_main(["models", "list"]) == 0
    assert capsys.readouterr().out.split() == [str(model_id), "cli-model", "classify", "onnx", "applies", "to:", "pcam"]
    assert cli_main(["models", "add", str(onnx_file), "--card", str(card_path)]) == 2
    assert "already registered" in capsys.readouterr().err
    bad_card = tmp_path / "bad.yaml"
    bad_card.write_text(card_yaml(name="bad", task="segment9"))
    assert cli_main(["models", "add", str(onnx_file), "--card", str(bad_card)]) == 2
    assert "task" in capsys.readouterr().err
