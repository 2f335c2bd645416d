"""Image-folder adapter (the sparsam datasets: bone-marrow cytology, HyperKvasir, ISIC).

Two layouts: split CSVs in the sparsam format (found by their `image` column, see `splits.py`) win
when present; otherwise one sub-folder per class (see `folders.py`). Every image is an item keyed by
its path relative to the root, its class is the item label and one `label` annotation, and its split
comes from the CSV's name (or a train/val/test top folder).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.datasets.base import (
    AnnotationRecord,
    DatasetAdapter,
    FileRefused,
    Image2D,
    IngestError,
    ItemRecord,
    ItemRef,
    OverlayLayer,
    PixelError,
    Problem,
    ProgressFn,
    ScanResult,
    View,
    no_progress,
)
from app.datasets.declarations import LENGTH_ONLY_VIEWER, MODEL_DISAGREES
from app.datasets.imagefolder.files import ImageFileError, ImageHeader, has_images, image_header, read_rgb
from app.datasets.imagefolder.folders import scan_class_folders, top_folders
from app.datasets.imagefolder.splits import IMAGE_COLUMN, find_split_files, read_split_rows
from app.datasets.roots import DatasetFiles
from app.datasets.volumes import VolumeCache
from app.imaging.overlay import TEXT, Label


@dataclass(frozen=True)
class Entry:
    """One image to index, wherever it was listed."""

    rel: str
    split: str | None
    label: str | None
    csv: str | None = None  # the split file and line that listed it
    line: int | None = None
    folder: str | None = None  # or the class folder it lies in


def _check(files: DatasetFiles, rel: str) -> tuple[str, ImageHeader | None, str | None]:
    """(size:mtime stamp, header, problem) of one image: its real path checked against the data roots, a stat
    and a header read (size checked against the limits), no decoding."""
    try:
        path = files.path(rel)
    except FileRefused as exc:
        return "", None, exc.reason
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "", None, "not found"
    except OSError as exc:
        return "", None, f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return "", None, "is not a file"
    try:
        return f"{st.st_size}:{st.st_mtime_ns}", image_header(path, rel, files.limits), None
    except ImageFileError as exc:
        return "", None, str(exc)
    except FileRefused as exc:
        return "", None, exc.reason


class ImageFolderAdapter(DatasetAdapter):
    kind = "imagefolder"
    export_formats = {"csv": "table", "coco": "coco"}  # docs/export.md
    facet_fields = ("split", "label")
    editable_annotations = ("label",)
    viewer = LENGTH_ONLY_VIEWER
    queue_suggestions = (MODEL_DISAGREES,)
    filter_fields = ()
    facet_labels = {}

    def detect(self, root: Path) -> bool:
        if find_split_files(root)[0]:
            return True
        try:
            return any(has_images(folder) for folder in top_folders(root)[:64])
        except OSError:
            return False

    def scan(self, root: Path, progress: ProgressFn = no_progress, work_dir: Path | None = None,
             files: DatasetFiles | None = None) -> ScanResult:
        files = files or DatasetFiles.confined_to(root)
        problems: list[Problem] = []
        refused: list[FileRefused] = []
        split_files, others = find_split_files(root, files, refused)
        problems += [Problem(r.rel, f"{r.reason} (split file)") for r in refused]
        if split_files:
            for rel, csv_header in others:
                shown = ",".join(csv_header) if csv_header else "unreadable"
                problems.append(Problem(rel, f"no '{IMAGE_COLUMN}' column (header: {shown}); file not used"))
            entries = self._csv_entries(root, split_files, problems)
            options: dict[str, Any] = {"layout": "csv", "split_files": [f.rel for f in split_files]}
            where = f"the split files ({', '.join(f.rel for f in split_files)})"
        else:
            try:
                images, split_layout = scan_class_folders(root, problems, files)
            except OSError as exc:
                raise IngestError(f"{root}: cannot list the folder ({exc})") from None
            entries = [Entry(i.rel, i.split, i.label, folder=i.folder) for i in images]
            options = {"layout": "split_folders" if split_layout else "folders"}
            where = "any sub-folder"
        if not entries:
            raise IngestError(f"{root}: no images listed in {where}", problems)
        found: list[ItemRecord] = []
        total = len(entries)
        # Sequential on purpose: a stat + header read is ~40 µs of mostly Python (GIL-bound) work; thread
        # pools of 2–8 measured 10–100% slower on 51k warm files (the real bone-marrow test split).
        for n, entry in enumerate(entries, 1):
            stamp, header, bad = _check(files, entry.rel)
            if header is None:
                problems.append(self._file_problem(entry, bad or "unreadable"))
            else:
                found.append(self._item(entry, stamp, header))
            if n % 2000 == 0 or n == total:
                progress("reading image headers", n, total)
        if not found:
            raise IngestError(f"{root}: none of the {total} listed images could be read", problems)
        return ScanResult(items=found, problems=problems, options=options)

    @staticmethod
    def _csv_entries(root: Path, split_files: Iterable[Any], problems: list[Problem]) -> list[Entry]:
        """Rows of every split file, in file order; an image listed twice keeps its first listing."""
        first: dict[str, Entry] = {}
        for split_file in split_files:
            for row in read_split_rows(root, split_file, problems):
                seen = first.get(row.image)
                if seen is not None:
                    differs = f"; labels differ: {seen.label!r} there, {row.label!r} here" \
                        if seen.label != row.label else ""
                    problems.append(Problem(
                        row.file, f"already listed in {seen.csv} line {seen.line} (split {seen.split}){differs}; "
                        "the first listing is kept", row=row.line, field=IMAGE_COLUMN, item=row.image))
                    continue
                first[row.image] = Entry(row.image, row.split, row.label, csv=row.file, line=row.line)
        return list(first.values())

    @staticmethod
    def _file_problem(entry: Entry, reason: str) -> Problem:
        if entry.csv is not None:
            text = f"image file {entry.rel} not found" if reason == "not found" else f"{entry.rel}: {reason}"
            return Problem(entry.csv, text + "; row skipped", row=entry.line, field=IMAGE_COLUMN, item=entry.rel)
        return Problem(entry.rel, f"{reason}; skipped", item=entry.rel)

    @staticmethod
    def _item(entry: Entry, stamp: str, header: ImageHeader) -> ItemRecord:
        source: dict[str, Any] = ({"csv": entry.csv, "csv_line": entry.line} if entry.csv is not None
                                  else {"folder": entry.folder})
        meta: dict[str, Any] = {"format": header.format, "mode": header.mode, **source}
        if header.orientation != 1:
            meta["exif_orientation"] = header.orientation
        annotations = [AnnotationRecord(kind="label", label=entry.label, geometry={}, meta=source)] \
            if entry.label is not None else []
        facets = {field: [value] for field, value in (("split", entry.split), ("label", entry.label)) if value}
        fingerprint = hashlib.blake2b("|".join(
            [entry.rel, stamp, entry.split or "", entry.label or "", entry.csv or entry.folder or ""]).encode(),
            digest_size=16).hexdigest()
        return ItemRecord(key=entry.rel, kind="image", location=entry.rel, fingerprint=fingerprint,
                          split=entry.split, label=entry.label, width=header.width, height=header.height,
                          depth=1, meta=meta, annotations=annotations, facets=facets)

    # -- pixels -----------------------------------------------------------------------------
    def slices(self, item: ItemRef, plane: str) -> list[int]:
        if plane != "axial":
            raise ValueError(f"folder images are 2-D; plane {plane!r} is not available")
        return []

    def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
        path = item.file(item.location)  # OutsideRoots (a PixelError) when it links outside the data roots
        if not path.is_file():
            raise PixelError(f"image file {item.location} is missing")
        try:
            return Image2D(read_rgb(path, item.location, item.access.limits))
        except ImageFileError as exc:
            raise PixelError(f"{item.location}: {exc}") from None

    def overlay(self, item: ItemRef, annotations: Sequence[Any], view: View, image: Image2D,
                volumes: VolumeCache) -> OverlayLayer:
        """The class name in the top-left corner (one line per label annotation)."""
        height, width = image.pixels.shape[:2]
        x, y, step = 0.02 * width, 0.02 * height + 14, 0.06 * height + 8
        texts = [a.label for a in annotations if a.kind == "label" and a.label]
        return OverlayLayer([Label(x, y + i * step, text) for i, text in enumerate(texts)])

    def viewer_shapes(self, item: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The class name as text in the corner, as `overlay` draws it."""
        return [{"type": "text", "text": a["label"], "colour": "rgb({},{},{})".format(*TEXT)}
                for a in item.get("annotations") or () if a["kind"] == "label" and a.get("label")]
