"""What a format writer is handed: the dataset, its adapter, the selection, the output folder, the pixel layer
(images and volumes read as the viewer reads them, confined to the data roots) and a progress callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.base import DatasetAdapter
from app.db.models import Dataset, Item
from app.export.params import ExportParams
from app.export.selection import annotations_of, item_chunks

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

    def images(self, size: int, meta: bool = False) -> Iterator[tuple[Any, list[Any]]]:
        """Each selected item's pixel reference with its annotations (`annotations_of`), `size` items per query,
        progress advanced after each chunk (where a cancel is raised)."""
        for rows in item_chunks(self.session, self.selection, (Item.id,), size=size):
            ids = [r[0] for r in rows]
            anns = annotations_of(self.session, ids, self.mode, meta=meta)
            for target in self.pixels.targets(self.session, ids, False):
                yield target.ref, anns.get(target.ref.id, [])
            self.advance(len(rows))


def inside_out(rel: str) -> PurePosixPath:
    """A dataset-relative path that stays inside the output folder (no absolute part, no `..`)."""
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{rel!r} is not a relative path inside the dataset")
    return path
