"""Can the server still read a dataset's files? A cheap check for the dataset page (issue 14).

A dataset is indexed once and read in place; when its folder is later moved, unmounted, made unreadable or left
out of MEDVIEW_DATA_ROOTS, every thumbnail silently broke. `files_warning` says so instead, in one sentence: it
checks the dataset's root (inside the data roots, a folder, listable) and the files of the first SAMPLE items
(exist, readable) — a handful of `stat`/`access` calls, no decoding — and keeps the answer for TTL seconds per
(dataset, root, data roots), so a page render or a busy grid costs a dictionary lookup.

The text names the root as the caller shows it (`shown`: the absolute folder to admins, relative to its data
root to others, see app.api.datasets.shown_root) and an item file only relative to the dataset root, never
another server path.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.roots import DataRoots
from app.db.models import Dataset, Item

SAMPLE = 3  # item files checked per dataset
TTL = 30.0  # seconds an answer is kept
_MAX_ENTRIES = 1024


@dataclass(frozen=True)
class _Finding:
    reason: str  # "outside", "missing", "not_folder", "unreadable", "files"
    bad: int = 0  # sampled item files that cannot be read …
    sampled: int = 0  # … of this many
    example: str = ""  # one of them, relative to the dataset root (or its file name)


_cache: dict[tuple, tuple[float, _Finding | None]] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def files_warning(session: Session, ds: Dataset, roots: DataRoots, shown: str) -> str | None:
    """One sentence saying why the dataset's files cannot be read (None when the root and the sampled items
    read fine). `shown` is how this user sees the root."""
    key = (ds.id, ds.root, roots.paths)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < TTL:
        finding = hit[1]
    else:
        finding = _check(session, ds, roots)
        with _lock:
            if len(_cache) >= _MAX_ENTRIES:
                _cache.clear()
            _cache[key] = (now, finding)
    return _text(finding, shown) if finding is not None else None


def _text(f: _Finding, shown: str) -> str:
    where = f"The dataset's folder {shown}"
    if f.reason == "outside":
        return f"{where} lies outside MEDVIEW_DATA_ROOTS, so its images are not read or served; " \
               "add its data root to MEDVIEW_DATA_ROOTS or re-index it from a folder inside one."
    if f.reason == "missing":
        return f"{where} no longer exists on the server (moved, renamed or unmounted?), so its images " \
               "cannot be shown; put it back or re-index the dataset from its new place."
    if f.reason == "not_folder":
        return f"{where} is no longer a folder, so its images cannot be shown."
    if f.reason == "unreadable":
        return f"{where} cannot be read by the server (permissions?), so its images cannot be shown."
    return f"{f.bad} of the {f.sampled} item files checked in {shown} cannot be read (e.g. {f.example}: " \
           "missing or not readable), so some images will not show; re-index the dataset if its files moved."


def _check(session: Session, ds: Dataset, roots: DataRoots) -> _Finding | None:
    root = Path(ds.root)
    if not roots.contains(root):
        return _Finding("outside")
    try:
        if not root.exists():
            return _Finding("missing")
        if not root.is_dir():
            return _Finding("not_folder")
        if not os.access(root, os.R_OK | os.X_OK):
            return _Finding("unreadable")
        with os.scandir(root) as entries:
            next(entries, None)
    except OSError:
        return _Finding("unreadable")
    locations = session.scalars(select(Item.location).where(Item.dataset_id == ds.id)
                                .order_by(Item.id).limit(SAMPLE)).all()
    bad = [loc for loc in dict.fromkeys(locations) if not _readable(root, loc, roots)]
    if not bad:
        return None
    example = bad[0] if not Path(bad[0]).is_absolute() else Path(bad[0]).name
    return _Finding("files", len(bad), len(dict.fromkeys(locations)), example)


def _readable(root: Path, location: str, roots: DataRoots) -> bool:
    """The item's file exists, is readable and (when relative to the dataset root) lies inside the data roots.
    An absolute location is a decompressed copy in the app's own work folder."""
    path = Path(location)
    if not path.is_absolute():
        path = root / path
        if not roots.contains(path):
            return False
    try:
        return path.is_file() and os.access(path, os.R_OK)
    except OSError:
        return False
