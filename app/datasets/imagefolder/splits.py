"""Split files in the sparsam format, found by their header rather than their name.

The real files (sparsam's `splits/<dataset>/<split>.csv`, see shared/realdata/sparsam/SOURCES.md) are
pandas `to_csv` output: header `,image,label` (an unnamed index column first), `image` = path relative
to the dataset root, `label` = class name; unlabeled split files have only `,image`. The split name is
the file's stem (`test`, `labeled_train`, `unlabeled_train`). They may sit in the root, in `splits/`,
or one folder deeper (`splits/<dataset>/`). Line numbers are physical lines, the header being line 1.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.datasets.roots import DatasetFiles

from app.datasets.base import FileRefused, Problem

SPLITS_DIR = "splits"
IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class SplitFile:
    rel: str  # path relative to the dataset root
    split: str  # the file's stem
    header: tuple[str, ...]
    image_col: int
    label_col: int | None


@dataclass(frozen=True)
class SplitRow:
    file: str
    split: str
    line: int
    image: str  # normalised POSIX path relative to the root
    label: str | None


def candidate_csvs(root: Path) -> list[Path]:
    found = sorted(root.glob("*.csv"))
    splits = root / SPLITS_DIR
    if splits.is_dir():
        found += sorted(splits.glob("*.csv")) + sorted(splits.glob("*/*.csv"))
    return [p for p in found if p.is_file() and not p.name.startswith(".")]


def read_header(path: Path) -> tuple[str, ...] | None:
    """The first row's cells (stripped), or None when the file is not readable text."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            first = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return tuple(cell.strip() for cell in first)


def find_split_files(root: Path, files: DatasetFiles | None = None, refused: list[FileRefused] | None = None,
                     ) -> tuple[list[SplitFile], list[tuple[str, tuple[str, ...] | None]]]:
    """(split files with an `image` column, other CSVs with their header) in the candidate places. With `files`,
    a CSV that links outside the data roots is not opened (it goes to `refused`)."""
    found: list[SplitFile] = []
    others: list[tuple[str, tuple[str, ...] | None]] = []
    for path in candidate_csvs(root):
        rel = path.relative_to(root).as_posix()
        if files is not None:
            try:
                path = files.path(rel)
            except FileRefused as exc:
                if refused is not None:
                    refused.append(exc)
                continue
        header = read_header(path)
        lowered = [c.lower() for c in header] if header else []
        if IMAGE_COLUMN in lowered:
            label_col = lowered.index(LABEL_COLUMN) if LABEL_COLUMN in lowered else None
            found.append(SplitFile(rel, path.stem, header or (), lowered.index(IMAGE_COLUMN), label_col))
        else:
            others.append((rel, header))
    return found, others


def normalise_image_path(text: str) -> str | None:
    """The CSV's image path as a clean relative POSIX path, or None if it is absolute or leaves the root."""
    text = text.strip().replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def read_split_rows(root: Path, split_file: SplitFile, problems: list[Problem]) -> Iterator[SplitRow]:
    """The file's usable rows; each unusable one becomes a Problem naming the file, line and field."""
    rel = split_file.rel
    try:
        with (root / rel).open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            end = reader.line_num
            for cells in reader:
                line, end = end + 1, reader.line_num  # where the row starts (a quoted field may span lines)
                if not cells or not any(c.strip() for c in cells):
                    continue
                row = _row(split_file, cells, line, problems)
                if row is not None:
                    yield row
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(Problem(rel, f"reading stopped: {exc}"))


def _row(sf: SplitFile, cells: list[str], line: int, problems: list[Problem]) -> SplitRow | None:
    raw = cells[sf.image_col].strip() if sf.image_col < len(cells) else ""
    if not raw:
        problems.append(Problem(sf.rel, "empty image path; row skipped", row=line, field=IMAGE_COLUMN))
        return None
    image = normalise_image_path(raw)
    if image is None:
        problems.append(Problem(sf.rel, f"path {raw!r} is absolute or leaves the dataset folder; row skipped",
                                row=line, field=IMAGE_COLUMN, item=raw))
        return None
    label = None
    if sf.label_col is not None:
        label = cells[sf.label_col].strip() if sf.label_col < len(cells) else ""
        if not label:
            problems.append(Problem(sf.rel, "empty label; indexed as unlabeled", row=line, field=LABEL_COLUMN,
                                    item=image))
            label = None
    return SplitRow(sf.rel, sf.split, line, image, label)
