"""The PCam sample the API job and model tests share (tests/api/conftest.py's `pcam_root`) and the real ONNX
classifier they run on it: logits = mean(normalised centre 32×32, all channels) · W + B."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from onnx import TensorProto, helper
from sqlalchemy import select

from app.db.models import Item, Prediction
from app.db.session import make_session_factory
from tests.helpers.api import register
from tests.onnx_models import centre_mean_classifier, const, projection_embedder, save

TRAIN, VALID, TEST = 12, 4, 4  # patches per split of the sample
BATCH = 5  # MEDVIEW_INFERENCE_BATCH of the job tests: the train split runs in 3 batches

W = np.array([[2.0, -3.0]], dtype=np.float32)
B = np.array([0.5, 1.0], dtype=np.float32)
SCALE, MEAN, STD = 1 / 255, [0.5, 0.4, 0.3], [0.25, 0.2, 0.5]


def classifier_onnx(path: Path, classes: int = 2) -> Path:
    """[N, 3, 96, 96] → logits [N, classes] from the mean of the centre 32×32 region."""
    return centre_mean_classifier(path, W, B, classes, name="pcam-classifier")


def card(name: str = "pcam-baseline", applies_to: tuple[str, ...] = ("pcam",), **changes) -> dict:
    data = {"name": name, "task": "classify",
            "input": {"layout": "NCHW", "size": [96, 96], "channels": 3, "scale": SCALE, "mean": MEAN, "std": STD},
            "output": {"kind": "logits", "classes": ["normal", "tumor"]}, "applies_to": list(applies_to)}
    data.update(changes)
    return data


def card_yaml(**kw) -> str:
    return yaml.safe_dump(card(**kw), sort_keys=False)


def embed_card_yaml(name: str = "pcam-embedder") -> str:
    """The card of a PCam embedder (task embed, one vector per patch), normalised as the classifier's."""
    return yaml.safe_dump({"name": name, "task": "embed", "input": {
        "layout": "NCHW", "size": [96, 96], "channels": 3, "scale": SCALE, "mean": MEAN, "std": STD},
        "output": {"kind": "embedding"}, "applies_to": ["pcam"]})


def register_embedder(client, folder: Path, name: str = "pcam-embedder", dim: int = 16) -> int:
    """A real ONNX projection embedder (tests.onnx_models) registered through the API; its model id."""
    r = register(client, projection_embedder(folder / f"{name}.onnx", (96, 96), dim=dim), embed_card_yaml(name))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def item_ids(engine, dataset_id: int, split: str | None = None) -> list[int]:
    stmt = select(Item.id).where(Item.dataset_id == dataset_id).order_by(Item.id)
    if split:
        stmt = stmt.where(Item.split == split)
    with make_session_factory(engine)() as session:
        return list(session.scalars(stmt))


def predictions(engine, model_id: int) -> dict[int, Prediction]:
    with make_session_factory(engine)() as session:
        rows = session.scalars(select(Prediction).where(Prediction.model_id == model_id)).all()
        session.expunge_all()
    return {p.item_id: p for p in rows}


def slow_classifier_onnx(path: Path) -> Path:
    """pcam's centre-mean classifier plus 0 × a few GFLOP of matrix products on the input per item (each batch
    of one item takes a noticeable time; the logits are exactly the plain classifier's)."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((96, 1024)).astype(np.float32) / 10
    w2 = rng.standard_normal((1024, 1024)).astype(np.float32) / 32
    heavy = [helper.make_node("Reshape", ["image", "rows"], ["r"]), helper.make_node("MatMul", ["r", "w1"], ["h0"])]
    for i in range(3):
        heavy.append(helper.make_node("MatMul", [f"h{i}", "w2"], [f"h{i + 1}"]))
    heavy += [helper.make_node("ReduceMean", ["h3"], ["hm"], keepdims=1),
              helper.make_node("Reshape", ["hm", "one"], ["hs"]), helper.make_node("Mul", ["hs", "zero"], ["z"])]
    w = W.astype(np.float32)
    nodes = [
        helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["centre"]),
        helper.make_node("ReduceMean", ["centre"], ["m4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["m4", "col"], ["m"]),
        helper.make_node("MatMul", ["m", "w"], ["wm"]),
        helper.make_node("Add", ["wm", "b"], ["plain"]),
        *heavy,
        helper.make_node("Add", ["plain", "z"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "slow-pcam-classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 96, 96])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        initializer=[const("starts", np.array([32, 32], np.int64)), const("ends", np.array([64, 64], np.int64)),
                     const("axes", np.array([2, 3], np.int64)), const("col", np.array([-1, 1], np.int64)),
                     const("w", w), const("b", B.astype(np.float32)),
                     const("rows", np.array([-1, 96], np.int64)), const("one", np.array([1, 1], np.int64)),
                     const("w1", w1), const("w2", w2), const("zero", np.zeros(1, np.float32))],
    )
    return save(graph, path)
