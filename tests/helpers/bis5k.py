"""The BIS5k sample of the 2-D segmentation tests (tests/api/conftest.py's `bis_root`) and the real ONNX
segmenter they run on it: it thresholds the channel mean at THRESHOLD with logits GAIN · (mean − THRESHOLD)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml
from sqlalchemy import select

from app.db.models import Item
from app.db.session import make_session_factory

SIZE = 256
THRESHOLD = 0.86  # near-white lumens (≈0.96) above, stroma and nuclei below
GAIN = 50.0
NO_MASK = "formal_train/masks/bis_he_id2.png"  # deleted: that image is indexed without ground truth


def card(name: str = "bis-threshold", **changes) -> str:
    data = {"name": name, "task": "segment2d",
            "input": {"layout": "NCHW", "size": [SIZE, SIZE], "channels": 3, "scale": 1 / 255},
            "output": {"kind": "mask_logits", "classes": ["background", "gland"]}, "applies_to": ["bis5k"]}
    data.update(changes)
    return yaml.safe_dump(data, sort_keys=False)


def items(engine, dataset_id: int) -> list[Item]:
    with make_session_factory(engine)() as session:
        rows = list(session.scalars(select(Item).where(Item.dataset_id == dataset_id).order_by(Item.id)))
        session.expunge_all()
    return rows


def gt_mask(root: Path, item: Item) -> np.ndarray | None:
    path = root / item.location.replace("/images/", "/masks/")
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0 if path.exists() else None
