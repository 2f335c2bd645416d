"""The class-folder layout: `root/<class>/**/<image>`, or `root/<split>/<class>/**/<image>` when every top
folder holding images is named like a split (train, val, test, …). The class is the first folder level
below the root (or below the split folder); deeper folders only organise files (the bone-marrow
dataset's `LYT/16001-17000/…`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.datasets.base import FileRefused, Problem
from app.datasets.imagefolder.files import SPLIT_FOLDERS, is_image_name, natural_key, walk_images

if TYPE_CHECKING:
    from app.datasets.roots import DatasetFiles


@dataclass(frozen=True)
class FolderImage:
    rel: str  # POSIX path relative to the root
    split: str | None
    label: str | None
    folder: str | None  # the class folder, relative to the root


def top_folders(root: Path) -> list[Path]:
    with os.scandir(root) as entries:
        names = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    return [root / n for n in sorted(names, key=natural_key)]


def loose_images(directory: Path) -> list[str]:
    with os.scandir(directory) as entries:
        names = [e.name for e in entries if e.is_file() and is_image_name(e.name)]
    return sorted(names, key=natural_key)


def scan_class_folders(root: Path, problems: list[Problem], files: DatasetFiles | None = None,
                       ) -> tuple[list[FolderImage], bool]:
    """(images with their class and split, whether the top folders are splits). With `files`, a top folder that
    links outside the data roots is reported once and not listed (each file is checked again when read)."""
    per_top: dict[str, list[str]] = {}
    for d in top_folders(root):
        if files is not None:
            try:
                files.path(d.name)
            except FileRefused as exc:
                problems.append(Problem(f"{exc.rel}/", f"{exc.reason} (class folder); its images are skipped"))
                continue
        per_top[d.name] = list(walk_images(d))
    with_images = [name for name, files in per_top.items() if files]
    split_layout = bool(with_images) and all(name.lower() in SPLIT_FOLDERS for name in with_images)
    found: list[FolderImage] = []
    for name in loose_images(root):
        problems.append(Problem(name, "image is not inside a class folder; indexed without a label", item=name))
        found.append(FolderImage(name, None, None, None))
    for top in with_images:
        for rel in per_top[top]:
            path = f"{top}/{rel}"
            if not split_layout:
                found.append(FolderImage(path, None, top, top))
                continue
            cls, _, rest = rel.partition("/")
            if rest:
                found.append(FolderImage(path, top, cls, f"{top}/{cls}"))
            else:
                problems.append(Problem(path, f"image is in the split folder {top}/ but not inside a class folder; "
                                              "indexed without a label", item=path))
                found.append(FolderImage(path, top, None, None))
    return found, split_layout
