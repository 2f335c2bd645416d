"""Format names → the writer that makes them. Which formats a dataset offers is the adapter's declaration
(`DatasetAdapter.export_formats`: format name → writer name), so no kind name is compared here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import cast

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.datasets.base import DatasetAdapter
from app.db.models import Annotation
from app.errors import InvalidInput
from app.export.context import ExportContext
from app.export.params import FORMATS

Writer = Callable[[ExportContext], list[Path]]

# writer name → "module:function" of app.export, imported when used (a CSV export need not load nibabel,
# OpenCV or pycocotools: the command's start-up is part of every export's time)
WRITERS: dict[str, str] = {
    "table": "csv_table:write",
    "coco": "coco:write",
    "deeplesion-csv": "deeplesion_csv:write",
    "bis5k-masks": "masks_png:write",
    "verse-masks": "nifti:write_verse",
    "lesion-subvolumes": "nifti:write_lesion_subvolumes",
    "volume-nifti": "nifti:write_volumes",
    "nifti-pairs": "nifti:write_pairs",
    "dicom-seg": "dicom_seg:write",
    "dicom-sr": "dicom_sr:write",
}
NOT_YET: dict[str, str] = {}  # writer name → what it would write, for names reserved but not built
# writer name → (annotation kinds the selection must hold, what they are called): a selection without any is a 400
NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "dicom-seg": (("mask",), "mask annotations"),
    "dicom-sr": (("recist", "line"), "measurements (RECIST or line annotations)"),
}


def writer_for(adapter: DatasetAdapter, fmt: str) -> Writer:
    """The writer of `fmt` for this kind; InvalidInput (400) naming the format when it is unknown, does not fit
    the kind or is not built yet."""
    offered = dict(adapter.export_formats)
    if fmt not in FORMATS:
        raise InvalidInput(f"format: unknown format {fmt!r}; formats are {', '.join(FORMATS)}")
    if fmt not in offered:
        raise InvalidInput(f"format: {fmt!r} does not fit a {adapter.kind} dataset; it exports as "
                           f"{', '.join(sorted(offered))}")
    name = offered[fmt]
    if name in NOT_YET or name not in WRITERS:
        raise InvalidInput(f"format: {fmt} ({NOT_YET.get(name, name)}) is not available yet")
    module, _, function = WRITERS[name].partition(":")
    return cast(Writer, getattr(importlib.import_module(f"app.export.{module}"), function))


def check_fit(session: Session, adapter: DatasetAdapter, fmt: str, selection: Select[tuple[int]], mode: str) -> None:
    """InvalidInput (400) when the format writes annotations of kinds the selected items do not have (`mode`:
    current or the dataset's own), so nothing would be exported."""
    from app.export.selection import annotation_filter

    need = NEEDS.get(dict(adapter.export_formats).get(fmt, ""))
    if need is None:
        return
    kinds, what = need
    found = session.scalar(select(func.count()).select_from(
        select(Annotation.id).where(Annotation.item_id.in_(selection), Annotation.kind.in_(kinds),
                                    annotation_filter(mode)).limit(1).subquery()))
    if not found:
        which = "current" if mode == "current" else "dataset's own"
        raise InvalidInput(f"format: {fmt} writes {what}, and no selected item has any ({which} annotations); "
                           "nothing to export")
