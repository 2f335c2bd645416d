"""Adapters by kind, and kind detection from a folder's content.

Adapters are named by import path and loaded on first use, so a command that touches one kind
does not import every format library (h5py, nibabel, pydicom) at start-up.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

from app.datasets.base import DatasetAdapter
from app.errors import InvalidInput

ADAPTER_PATHS: dict[str, str] = {
    "deeplesion": "app.datasets.deeplesion.adapter:DeepLesionAdapter",
    "pcam": "app.datasets.pcam.adapter:PCamAdapter",
    "bis5k": "app.datasets.bis5k.adapter:Bis5kAdapter",
    "verse": "app.datasets.verse.adapter:VerseAdapter",
    "imagefolder": "app.datasets.imagefolder.adapter:ImageFolderAdapter",
    "dicom": "app.datasets.dicom.adapter:DicomAdapter",
    "nifti": "app.datasets.nifti.adapter:NiftiAdapter",
}
# Detection order: the most specific layouts first (a DICOM folder may also hold images, etc.).
# A folder of NIfTI files that is not in VerSe's layout is plain `nifti`.
DETECTION_ORDER = ("deeplesion", "pcam", "verse", "bis5k", "dicom", "nifti", "imagefolder")


def available_kinds() -> list[str]:
    """Kinds whose adapter module is present in this installation."""
    return [k for k in ADAPTER_PATHS if _load(k) is not None]


def adapters() -> dict[str, DatasetAdapter]:
    """Every available adapter by kind (what model cards' `applies_to` is checked against)."""
    return {k: adapter for k in ADAPTER_PATHS if (adapter := _load(k)) is not None}


@cache
def _load(kind: str) -> DatasetAdapter | None:
    module_name, _, class_name = ADAPTER_PATHS[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None  # this kind is not part of this build
        raise
    adapter_class = vars(module)[class_name]
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, DatasetAdapter)):
        raise TypeError(f"{ADAPTER_PATHS[kind]} is not a DatasetAdapter subclass")
    adapter = adapter_class()
    if adapter.kind != kind:
        raise TypeError(f"{ADAPTER_PATHS[kind]} declares kind {adapter.kind!r}, registered as {kind!r}")
    return adapter


def get_adapter(kind: str) -> DatasetAdapter:
    adapter = _load(kind) if kind in ADAPTER_PATHS else None
    if adapter is None:
        raise InvalidInput(f"unknown dataset kind {kind!r}; known: {', '.join(available_kinds())}")
    return adapter


def detect_kind(root: Path) -> str:
    """The first kind (in DETECTION_ORDER) whose adapter recognises the folder, or a clear error."""
    for kind in DETECTION_ORDER:
        adapter = _load(kind)
        if adapter is not None and adapter.detect(root):
            return kind
    raise InvalidInput(f"{root}: not a dataset MedView recognises (kinds: {', '.join(available_kinds())}); "
                       "pass --kind to say which")
