"""A stored predicted mask, one view at a time, for the viewer (`GET /api/items/{id}/predictions/{model}/mask`).

Split in two so a conditional request costs one query and a `stat`: `find_predicted_mask` locates the file
and says what identifies this view's bytes (`key`, hashed into the ETag by the API); `read` cuts the plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.volumes import VolumeCache
from app.db.models import Item, Model, Prediction
from app.errors import InvalidInput, NotFound
from app.inference.masks import mask_path, mask_plane


@dataclass(frozen=True)
class PredictedMaskView:
    """One view of a predicted mask file: 2-D masks have only the item's own image (its slice number is
    `item_slice`), 3-D masks any plane and slice of the canonical volume."""

    path: Path
    three_d: bool
    plane: str | None
    slice: int | None
    item_slice: int | None
    key: tuple[str, int, int, str, int | None]

    def read(self, volumes: VolumeCache) -> tuple[np.ndarray, str, int | None]:
        """(labels, plane shown, slice shown) — the label image has the size of `/raw` for the same view."""
        labels, plane, index = mask_plane(self.path, self.plane, self.slice if self.three_d else None, volumes)
        return labels, plane, index if self.three_d else self.item_slice


def find_predicted_mask(session: Session, settings: Settings, item_id: int, model_id: int, plane: str | None,
                        slice_number: int | None) -> PredictedMaskView:
    """The mask of `model_id`'s prediction for `item_id`; NotFound / InvalidInput naming what is missing."""
    row = session.execute(select(Prediction.outputs, Model.task, Item.location_index)
                          .join(Model, Model.id == Prediction.model_id).join(Item, Item.id == Prediction.item_id)
                          .where(Prediction.item_id == item_id, Prediction.model_id == model_id)).first()
    if row is None:
        raise NotFound(f"item {item_id} has no prediction from model {model_id}")
    outputs, task, item_slice = row
    if not isinstance(outputs, dict) or "mask" not in outputs:
        raise NotFound(f"the prediction of model {model_id} for item {item_id} is a {task} prediction, not a mask")
    three_d = task == "segment3d"
    if not three_d and slice_number is not None and slice_number != item_slice:
        raise InvalidInput(f"this prediction is a 2-D mask of the item's image (slice {item_slice}); "
                           f"slice {slice_number} has none")
    path = mask_path(settings, model_id, item_id, three_d)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise NotFound(f"the predicted mask file {path.name} is missing; predict the item again") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size, plane or "axial", slice_number)
    return PredictedMaskView(path, three_d, plane, slice_number, item_slice, key)
