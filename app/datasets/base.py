"""The adapter contract: what every dataset format provides to the ingest driver and the renderer.

An adapter scans a dataset root *without decoding pixels* into plain records (`ScanResult`), and
later reads one 2-D image for rendering. The ingest driver (`app.datasets.ingest`) owns all
database writing, so adapters stay easy to test on files alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # volumes.py builds on the types below
    from app.datasets.volumes import Volume, VolumeCache

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)


def no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located precisely enough for a user to fix it."""

    file: str
    message: str
    row: int | None = None  # CSV line number (the header is line 1)
    field: str | None = None
    item: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" line {self.row}"
        if self.item:
            where += f" ({self.item})"
        what = f"{self.field}: {self.message}" if self.field else self.message
        return f"{where}: {what}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "field": self.field, "item": self.item,
                "message": self.message, "text": str(self)}


class IngestError(Exception):
    """Nothing usable can be indexed from this input; the message is the one-line reason."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass
class AnnotationRecord:
    kind: str
    label: str | None
    geometry: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    slice_index: int | None = None


@dataclass(slots=True)
class ItemRecord:
    key: str
    kind: str
    location: str
    fingerprint: str
    split: str | None = None
    label: str | None = None
    sex: str | None = None
    age: float | None = None
    width: int | None = None
    height: int | None = None
    depth: int | None = None
    spacing: list[float] | None = None
    window: list[float] | None = None
    location_index: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    patient: str | None = None
    study: str | None = None
    series: str | None = None
    annotations: list[AnnotationRecord] = field(default_factory=list)
    facets: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PatientRecord:
    external_id: str
    sex: str | None = None


@dataclass
class StudyRecord:
    external_id: str
    patient: str
    order: int | None = None
    age: float | None = None


@dataclass
class SeriesRecord:
    external_id: str
    study: str | None  # None: a series on its own (e.g. a PCam whole-slide image)
    meta: dict[str, Any] = field(default_factory=dict)


class LazyItems(Sequence):
    """Item records made on demand, part by part, with a known count: an adapter whose input is already
    validated (PCam: shapes, labels, meta) hands the ingest driver this instead of a list, and the records are
    built while earlier batches are being written instead of all before the first write."""

    def __init__(self) -> None:
        self._parts: list[tuple[int, Callable[[], Iterator[ItemRecord]]]] = []

    def add(self, count: int, make: Callable[[], Iterator[ItemRecord]]) -> None:
        """A part of `count` records; `make()` yields them (called once per iteration)."""
        self._parts.append((count, make))

    def __len__(self) -> int:
        return sum(count for count, _ in self._parts)

    def __iter__(self) -> Iterator[ItemRecord]:
        for _, make in self._parts:
            yield from make()

    def __getitem__(self, index):  # a Sequence for type checks; random access materialises (tests only)
        return list(self)[index]


@dataclass
class ScanResult:
    items: Sequence[ItemRecord]
    problems: list[Problem] = field(default_factory=list)
    patients: list[PatientRecord] = field(default_factory=list)
    studies: list[StudyRecord] = field(default_factory=list)
    series: list[SeriesRecord] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemRef:
    """What the renderer knows of an item: enough to find its pixels."""

    id: int
    dataset_root: Path
    location: str
    location_index: int | None
    meta: dict[str, Any]
    width: int = 0
    height: int = 0
    depth: int = 1
    spacing: tuple[float, ...] | None = None
    label: str | None = None  # the item's own label (ground truth kept on the item, e.g. PCam's y)


PLANES = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class View:
    """Which 2-D image of an item: a plane and a slice along its normal (None = the item's default)."""

    plane: str = "axial"
    slice: int | None = None


@dataclass
class Image2D:
    """One displayable image.

    pixels: int16 HU for CT (windowed by the renderer), uint8 HxW grey or HxWx3 RGB otherwise.
    Pixels are square in millimetres (volume planes are resampled by the adapter), x right, y down.
    """

    pixels: np.ndarray
    slice: int | None = None
    pixel_mm: float | None = None


@dataclass
class OverlayLayer:
    """Ground truth drawn over an Image2D: vector shapes and/or a label mask of the same size."""

    shapes: list[Any] = field(default_factory=list)  # app.imaging.overlay shapes, in image pixels
    mask: np.ndarray | None = None  # integer labels, 0 = background, same HxW as the image
    palette: dict[int, tuple[int, int, int]] | None = None  # label → RGB (default: one colour)


class PixelError(Exception):
    """The item's pixel file is missing or unreadable; the message names the file and the reason."""


class NotAVolume(PixelError):
    """The item is a 2-D image: it has no volume to cut planes from or to run a 3-D model on."""


class DatasetAdapter(Protocol):
    kind: str
    facet_fields: tuple[str, ...]  # shown on the dataset page, in this order
    filter_fields: tuple[str, ...]  # accepted as filters but not counted (e.g. patient)
    facet_labels: dict[str, dict[str, str]]  # human names of coded facet values
    # Optional: `link_facets = {"slide": "series"}` — a facet read from the item's patient/study/series
    # external id instead of facet rows; `facet_order`.
    cache_images: bool  # False when the adapter reads from whole cached volumes (planes are cheap to cut again)

    def detect(self, root: Path) -> bool: ...

    def scan(self, root: Path, progress: ProgressFn = no_progress, work_dir: Path | None = None) -> ScanResult:
        """Index `root` without decoding pixels. `work_dir` is a private, writable folder under the data
        dir (e.g. for a once-decompressed copy of a .h5.gz); adapters that read in place ignore it."""
        ...

    def slices(self, item: ItemRef, plane: str) -> Sequence[int]:
        """The slice numbers that can be shown in `plane` (raises PixelError/ValueError if the plane
        does not exist for this item); an empty sequence for a plain 2-D image."""
        ...

    def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
        """The image for one view; raises PixelError naming the file when it cannot be read. `volumes` is the
        app's volume cache, for adapters whose items are volumes (others ignore it)."""
        ...

    def read_images(self, items: Sequence[ItemRef]) -> list[Image2D | None]:
        """The default views of many items at once where the format allows a batched read (consecutive HDF5
        rows); None where one could not be read (it is then read alone and reports its own problem)."""
        ...

    def overlay(self, item: ItemRef, annotations: Sequence[Any], view: View, image: Image2D,
                volumes: VolumeCache) -> OverlayLayer:
        """Ground-truth annotations (rows with kind, geometry, meta, slice_index) for this view."""
        ...

    def volume(self, item: ItemRef, volumes: VolumeCache) -> Volume:
        """The item's canonical (RAS+) volume through `volumes`; NotAVolume for a 2-D item."""
        ...

    def label_volume(self, item: ItemRef, annotations: Sequence[Any], volumes: VolumeCache) -> Volume | None:
        """The ground-truth label volume in the grid of `volume`, or None (no mask, unreadable, other grid)."""
        ...


class PixelDefaults:
    """Defaults of the read side of the contract for adapters whose items are plain 2-D images."""

    kind: str
    cache_images: bool = True

    def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
        raise NotImplementedError

    def read_images(self, items: Sequence[ItemRef]) -> list[Image2D | None]:
        return [None] * len(items)  # no batched read: each item is read (and cached) alone

    def volume(self, item: ItemRef, volumes: VolumeCache) -> Volume:
        raise NotAVolume(f"{self.kind} items are 2-D images, not volumes")

    def label_volume(self, item: ItemRef, annotations: Sequence[Any], volumes: VolumeCache) -> Volume | None:
        return None
