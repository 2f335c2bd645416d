"""`masks-png`: the BIS5k layout — `formal_<split>/images/<name>.png` (the image, copied as it is) and
`formal_<split>/masks/<name>.png` (the current mask as an 8-bit 0/255 PNG; the dataset's own mask file is copied
byte for byte while it is unedited). An item without a mask gets its image only, as in the source."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from app.db.models import Item
from app.export.context import ExportContext
from app.export.masks import MaskUnavailable, mask_array, mask_path
from app.export.selection import SOURCE_DATASET, annotations_of, item_chunks
from app.export.writer import atomic_bytes

MASKS_DIR = "masks"


def _safe(rel: str) -> PurePosixPath:
    """A dataset-relative path that stays inside the output folder (no absolute part, no `..`)."""
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{rel!r} is not a relative path inside the dataset")
    return path


def write(ctx: ExportContext) -> list[Path]:
    written: list[Path] = []
    for rows in item_chunks(ctx.session, ctx.selection, (Item.id,), size=200):
        ids = [r[0] for r in rows]
        anns = annotations_of(ctx.session, ids, ctx.mode)
        for target in ctx.pixels.targets(ctx.session, ids, False):
            ref = target.ref
            image_rel = _safe(ref.location)
            image_out = ctx.out / image_rel
            atomic_bytes(image_out, ref.file(ref.location).read_bytes())
            written.append(ctx.wrote(image_out))
            masks = [a for a in anns.get(ref.id, []) if a.kind == "mask"]
            if not masks:
                continue
            mask_out = ctx.out / image_rel.parent.parent / MASKS_DIR / f"{image_rel.stem}.png"
            written.append(ctx.wrote(_write_mask(ref, masks, mask_out)))
        ctx.advance(len(rows))
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
