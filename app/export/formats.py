"""Format names → the writer that makes them. Which formats a dataset offers is the adapter's declaration
(`DatasetAdapter.export_formats`: format name → writer name), so no kind name is compared here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import cast

from app.datasets.base import DatasetAdapter
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
}
NOT_YET = {"dicom-seg": "DICOM SEG", "dicom-sr": "DICOM SR measurement reports"}


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
