"""`masks-png`: the BIS5k layout — `formal_<split>/images/<name>.png` (the image, copied as it is) and
`formal_<split>/masks/<name>.png` (the current mask as an 8-bit 0/255 PNG; the dataset's own mask file is copied
byte for byte while it is unedited). An item without a mask gets its image only, as in the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.export.context import ExportContext, inside_out
from app.export.masks import MaskUnavailable, mask_array, mask_path
from app.export.selection import SOURCE_DATASET
from app.export.writer import atomic_bytes

MASKS_DIR = "masks"


def write(ctx: ExportContext) -> list[Path]:
    written: list[Path] = []
    for ref, anns in ctx.images(size=200):
        image_rel = inside_out(ref.location)
        image_out = ctx.out / image_rel
        atomic_bytes(image_out, ref.file(ref.location).read_bytes())
        written.append(ctx.wrote(image_out))
        masks = [a for a in anns if a.kind == "mask"]
        if not masks:
            continue
        mask_out = ctx.out / image_rel.parent.parent / MASKS_DIR / f"{image_rel.stem}.png"
        written.append(ctx.wrote(_write_mask(ref, masks, mask_out)))
    return written


def _write_mask(ref: Any, masks: list[Any], out: Path) -> Path:
    first = masks[0]
    rel = mask_path(first)
    if len(masks) == 1 and first.source == SOURCE_DATASET and rel is not None:
        atomic_bytes(out, ref.file(rel).read_bytes())
        return out
    union: np.ndarray | None = None
    for a in masks:
        try:
            labels = mask_array(ref, a)
        except MaskUnavailable:
            continue
        union = labels > 0 if union is None else union | (labels > 0)
    if union is None:
        raise MaskUnavailable(f"no mask of item {ref.id} could be read")
    ok, encoded = cv2.imencode(".png", np.where(union, np.uint8(255), np.uint8(0)))
    if not ok:
        raise MaskUnavailable(f"the mask of item {ref.id} could not be encoded")
    atomic_bytes(out, encoded.tobytes())
    return out
