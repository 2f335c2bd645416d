"""What a format writer is handed: the dataset, its adapter, the selection, the output folder, the pixel layer
(images and volumes read as the viewer reads them, confined to the data roots) and a progress callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Select
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.base import DatasetAdapter
from app.db.models import Dataset
from app.export.params import ExportParams

if TYPE_CHECKING:
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
    given_pixels: PixelStore | None  # the app's or worker's pixel layer; made on first use when None
    advance: Callable[[int], None] = field(default=lambda n: None)  # n more items written; may raise Cancelled
    files: list[Path] = field(default_factory=list)  # written so far, in order

    @cached_property
    def pixels(self) -> PixelStore:
        """Images, volumes and confined file access (imported on first use: table formats never need it)."""
        if self.given_pixels is not None:
            return self.given_pixels
        from app.pixels import PixelStore

        return PixelStore.from_settings(self.settings)

    @property
    def mode(self) -> str:
        return self.params.annotations

    def wrote(self, path: Path) -> Path:
        self.files.append(path)
        return path
