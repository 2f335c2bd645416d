"""Adapters by kind, and kind detection from a folder's content."""

from __future__ import annotations

from pathlib import Path

from app.datasets.base import DatasetAdapter
from app.datasets.deeplesion.adapter import DeepLesionAdapter
from app.errors import InvalidInput

ADAPTERS: dict[str, DatasetAdapter] = {a.kind: a for a in (DeepLesionAdapter(),)}


def get_adapter(kind: str) -> DatasetAdapter:
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise InvalidInput(f"unknown dataset kind {kind!r}; known: {', '.join(sorted(ADAPTERS))}") from None


def detect_kind(root: Path) -> str:
    """The kind whose adapter recognises the folder; a clear error when none or several do."""
    found = [kind for kind, adapter in ADAPTERS.items() if adapter.detect(root)]
    if not found:
        raise InvalidInput(f"{root}: not a dataset MedView recognises (kinds: {', '.join(sorted(ADAPTERS))}); "
                           "pass --kind to say which")
    if len(found) > 1:
        raise InvalidInput(f"{root}: looks like several kinds ({', '.join(found)}); pass --kind")
    return found[0]
