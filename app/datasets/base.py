"""The adapter contract: what every dataset format provides to the ingest driver, the renderer, the catalog,
the pages and the model checks.

An adapter scans a dataset root *without decoding pixels* into plain records (`ScanResult`), and
later reads one 2-D image for rendering. The ingest driver (`app.datasets.ingest`) owns all
database writing, so adapters stay easy to test on files alone.

`DatasetAdapter` is an explicit base class (in the manner of MONAI Label's `interfaces/datastore.py`): five
abstract methods every format must implement, and *declarations* with defaults — facets, sorts, charts, viewer
capabilities, wording, which model inputs apply — so the rest of the app asks the adapter instead of comparing
kind names, and never probes for an optional attribute. Declarations are plain data (no SQL, no HTTP): the
catalog turns a `NumericSort` into SQL, a `ChartSpec` into a chart; the item page a `ViewerSpec` into state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from app.datasets import annotation_rules
from app.datasets.annotation_rules import AnnotationTarget
from app.datasets.declarations import (  # noqa: F401 - re-exported: adapters declare their kind with these
    CHART_KINDS,
    LABEL_BALANCE,
    MEASURING_TOOLS,
    ChartKind,
    ChartSpec,
    NumericSort,
    QueueSuggestion,
    ViewerSpec,
    Wording,
)
from app.datasets.patients import PatientPage

if TYPE_CHECKING:  # volumes.py and roots.py build on the types of this module
    from app.datasets.roots import DatasetFiles
    from app.datasets.stored_masks import MaskStore
    from app.datasets.volumes import Volume, VolumeCache

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)
REVIEW_FACET = "review_status"  # a facet (and filter) of every kind: unreviewed, in_review, accepted, …
# Every kind's review facets, in this order at the end of its facet_fields: the status column, then the derived
# `reviewer` (who gave a verdict) and `edited` (yes/no: ground truth corrected) of app.datasets.facets.
REVIEW_FACETS = (REVIEW_FACET, "reviewer", "edited")


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
    """Item records made on demand, part by part, with a known count (PCam, input already validated): built while
    earlier batches are written, not all before the first write; a part may be columns (`add_columns`)."""

    def __init__(self) -> None:
        self._parts: list[tuple[int, Callable[[], Iterator[ItemRecord]]]] = []
        self._columns: dict[int, Callable[[], Any]] = {}

    def add(self, count: int, make: Callable[[], Iterator[ItemRecord]]) -> None:
        """A part of `count` records; `make()` yields them (called once per iteration)."""
        self._parts.append((count, make))

    def add_columns(self, count: int, make: Callable[[], Any]) -> None:  # make() -> columns.ItemColumns
        self._columns[len(self._parts)] = make
        self._parts.append((count, lambda: make().records()))

    def parts(self) -> Iterator[Iterator[ItemRecord] | Any]:  # record iterators, or a columns part's ItemColumns
        return (make() if (n not in self._columns) else self._columns[n]() for n, (_, make) in enumerate(self._parts))

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
    files: DatasetFiles | None = field(default=None, compare=False, repr=False)  # how its files may be opened
    masks: MaskStore | None = field(default=None, compare=False, repr=False)  # the app's stored (user) masks

    def file(self, relative: str) -> Path:
        """The real path of one of the item's files (`relative` to the dataset root, or an absolute path in
        the app's work dir), checked by `DatasetFiles.path`: raises `FileRefused` (a PixelError naming
        `relative`) when it links outside the data roots. Every adapter read goes through here. An ItemRef made
        without `files` (tests, benchmarks) is confined to its own dataset root with the default limits."""
        return self.access.path(relative)

    @property
    def access(self) -> DatasetFiles:
        if self.files is not None:
            return self.files
        from app.datasets.roots import DatasetFiles

        return DatasetFiles.confined_to(self.dataset_root)


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


class FileRefused(PixelError):
    """A file MedView will not open: it resolves outside the data roots (`OutsideRoots`), or its header declares
    more than the configured limits (`TooLarge`). `rel` is the file relative to the dataset root (never the
    server's absolute path), `reason` what is wrong; a scan reports them as a Problem, a read as a PixelError."""

    def __init__(self, rel: str, reason: str):
        super().__init__(f"{rel}: {reason}")
        self.rel = rel
        self.reason = reason


class OutsideRoots(FileRefused):
    """The file (or a folder on its way) is a symbolic link whose target lies outside MEDVIEW_DATA_ROOTS."""


class TooLarge(FileRefused):
    """The file's header declares more pixels, voxels or bytes than MEDVIEW_MAX_* allow: not decoded."""


def mask_geometry_problems(geometry: Mapping[str, Any]) -> list[str]:
    """A mask annotation's geometry names its label image: `stored` (the app's stored mask, made from an upload by
    app.review.masks) or `mask` (a file of the dataset, relative to its root, as the dataset's own annotation)."""
    from app.datasets.stored_masks import is_stored_name

    stored, rel = geometry.get("stored"), geometry.get("mask")
    if stored is not None:
        return [] if is_stored_name(stored) else ["geometry.stored: not the name of a stored mask"]
    if isinstance(rel, str) and rel and not rel.startswith("/") and ".." not in Path(rel).parts:
        return []
    return ["geometry: a mask is uploaded as geometry.png (a base64 label PNG)"]


class DatasetAdapter(ABC):
    """One dataset format. Subclasses implement the five abstract methods and override the declarations that
    differ from the defaults below; nothing else in the app compares kind names or probes for attributes."""

    kind: ClassVar[str]
    # -- facets --
    facet_fields: ClassVar[tuple[str, ...]] = ()  # shown on the dataset page, in this order
    filter_fields: ClassVar[tuple[str, ...]] = ()  # accepted as filters but not counted (e.g. patient)
    facet_labels: ClassVar[Mapping[str, Mapping[str, str]]] = {}  # human names of coded facet values
    facet_order: ClassVar[Mapping[str, Sequence[str]]] = {}  # preferred value order (VerSe: C1…L6), else by value
    link_facets: ClassVar[Mapping[str, str]] = {}  # facet read from the item's patient/study/series external id
    label_facet: ClassVar[str] = "label"  # whose value names name item labels (DeepLesion: lesion_type)
    # -- grid --
    numeric_sorts: ClassVar[Mapping[str, NumericSort]] = {}  # extra sort fields beyond id, key and column facets
    charts: ClassVar[tuple[ChartSpec, ...]] = (LABEL_BALANCE,)  # charts built only when their facets exist
    sheet_page_size: ClassVar[int | None] = None  # grid pages fetched as one contact sheet of this many tiles
    wording: ClassVar[Wording] = Wording()
    patient_page: ClassVar[PatientPage] = PatientPage()  # how the patient page groups and names items (patients.py)
    # -- viewer and models --
    viewer: ClassVar[ViewerSpec] = ViewerSpec()
    values_are_hu: ClassVar[bool] = False  # pixels can be Hounsfield units (a model's CT window applies)
    has_volumes: ClassVar[bool] = False  # items can be 3-D volumes (a segment3d model can run)
    volume_only: ClassVar[bool] = False  # every item is a volume (2-D models cannot run)
    # -- review --
    editable_annotations: ClassVar[tuple[str, ...]] = ()  # annotation kinds users may create and edit here
    queue_suggestions: ClassVar[tuple[QueueSuggestion, ...]] = ()  # ready-made review queues (dataset page)
    mask_labels: ClassVar[Mapping[int, str]] = {}  # label → name a user's mask may hold besides 0 (BIS5k 1)
    # -- export (app.export, docs/export.md) --
    export_formats: ClassVar[Mapping[str, str]] = {"csv": "table"}  # format name → the export writer for this kind
    # -- pixels --
    cache_images: ClassVar[bool] = True  # False: views are cut from whole cached volumes (cheaper than keeping them)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every kind's facets end with the review facets (the review workflow's, not the dataset's own)."""
        super().__init_subclass__(**kwargs)
        missing = tuple(f for f in REVIEW_FACETS if f not in cls.facet_fields)
        if missing:
            cls.facet_fields = (*cls.facet_fields, *missing)

    @abstractmethod
    def detect(self, root: Path) -> bool:
        """Whether `root` looks like a dataset of this kind (cheap: a few files, no full scan)."""

    @abstractmethod
    def scan(self, root: Path, progress: ProgressFn = no_progress, work_dir: Path | None = None,
             files: DatasetFiles | None = None) -> ScanResult:
        """Index `root` without decoding pixels. `work_dir` is a private, writable folder under the data
        dir (e.g. for a once-decompressed copy of a .h5.gz); adapters that read in place ignore it. `files`
        (the ingest driver's: data roots and size limits from the settings; default: confined to `root`) is how
        every file is opened: `files.path(rel)` for its checked real path, `files.limits` for header checks; a
        `FileRefused` becomes a Problem naming the file, and its neighbours are still indexed."""

    @abstractmethod
    def slices(self, item: ItemRef, plane: str) -> Sequence[int]:
        """The slice numbers that can be shown in `plane` (raises PixelError/ValueError if the plane
        does not exist for this item); an empty sequence for a plain 2-D image."""

    @abstractmethod
    def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
        """The image for one view; raises PixelError naming the file when it cannot be read. `volumes` is the
        app's volume cache (app.pixels owns it), for kinds whose items are volumes; others ignore it."""

    @abstractmethod
    def overlay(self, item: ItemRef, annotations: Sequence[Any], view: View, image: Image2D,
                volumes: VolumeCache) -> OverlayLayer:
        """Ground-truth annotations (rows with kind, geometry, meta, slice_index) for this view."""

    def read_images(self, items: Sequence[ItemRef]) -> list[Image2D | None]:
        """The default views of many items at once (a contact sheet's page, a model batch) where the format can
        read several in one go (PCam's consecutive HDF5 rows). The default reads none (all None): the pixel layer
        then reads each alone through its decoded-image cache. Raises PixelError when the batch cannot be read
        (each is then read alone to find which)."""
        return [None] * len(items)

    def volume(self, item: ItemRef, volumes: VolumeCache) -> Volume:
        """The item's canonical (RAS+) volume, through `volumes`, as the viewer's planes are cut from it and a 3-D
        model reads it. Kinds with volumes (`has_volumes`) override it; the default says the item is 2-D."""
        raise NotAVolume(f"{self.kind} items are 2-D images, not volumes")

    def label_volume(self, item: ItemRef, annotations: Sequence[Any], volumes: VolumeCache) -> Volume | None:
        """The item's ground-truth label volume on the grid of `volume` (3-D metrics), or None when it has none,
        it cannot be read or lies on another grid."""
        return None

    def label_names(self) -> Mapping[str, str]:
        """Display names of item labels (the grid's card captions)."""
        return self.facet_labels.get("label") or self.facet_labels.get(self.label_facet, {})

    def viewer_shapes(self, item: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Kind-specific vector shapes the client-side viewer draws besides the annotations' own (RECIST, boxes,
        centroids), in image pixels: the same marks `overlay` draws server-side (PCam's centre box, a folder
        image's class name). `item` is the item detail (app.catalog.queries.item_detail)."""
        return []

    def validate_annotation(self, kind: str, geometry: Mapping[str, Any], label: str | None,
                            item: AnnotationTarget, classes: Collection[str]) -> list[str]:
        """Why a user's annotation of `kind` cannot be stored on `item` (empty: it can), each problem naming the
        field. `classes` are the label values the dataset has (facet values of `label_facet`). The default
        checks the kind is one of `editable_annotations` and the geometry per annotation kind
        (app.datasets.annotation_rules); a kind with stricter rules extends it."""
        if kind not in self.editable_annotations:
            allowed = ", ".join(self.editable_annotations) or "none"
            return [f"kind: {self.kind} items do not take {kind!r} annotations (editable here: {allowed})"]
        if kind == "mask":
            return mask_geometry_problems(geometry)
        return annotation_rules.check(kind, geometry, label, item, classes)

    def derived_meta(self, kind: str, geometry: Mapping[str, Any], meta: Mapping[str, Any],
                     item: AnnotationTarget) -> dict[str, Any]:
        """`meta` of a valid user annotation with its measurements recomputed from the geometry (RECIST
        diameters in mm from the pixel spacing)."""
        return annotation_rules.derived_meta(kind, geometry, meta, item)
