"""The PCam sample the API job and model tests share (tests/api/conftest.py's `pcam_root`) and the real ONNX
classifier they run on it: logits = mean(normalised centre 32×32, all channels) · W + B."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from sqlalchemy import select

from app.db.models import Item, Prediction
from app.db.session import make_session_factory
from tests.onnx_models import centre_mean_classifier

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
