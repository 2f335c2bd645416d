"""What a format writer is handed: the dataset, its adapter, the selection, the output folder, the pixel layer
(images and volumes read as the viewer reads them, confined to the data roots) and a progress callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Select
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.base import DatasetAdapter
from app.db.models import Dataset
from app.export.params import ExportParams
from app.pixels import PixelStore


class Cancelled(Exception):
    """The export's job was cancelled (or its process is stopping): stop writing, leave no final file."""


@dataclass
class ExportContext:
    session: Session
    settings: Settings
    params: ExportParams
    dataset: Dataset
    adapter: DatasetAdapter
    selection: Select[tuple[int]]  # ids of the exported items
    total: int  # how many items
    out: Path  # the folder the files go into (created)
    pixels: PixelStore
    advance: Callable[[int], None] = field(default=lambda n: None)  # n more items written; may raise Cancelled
    files: list[Path] = field(default_factory=list)  # written so far, in order

    @property
    def mode(self) -> str:
        return self.params.annotations

    def wrote(self, path: Path) -> Path:
        self.files.append(path)
        return path
