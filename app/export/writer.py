"""The atomic writer: every exported file is written under a temporary name in its own folder, flushed to disk
(fsync) and renamed over the final name, so an export interrupted mid-way (a crash, a cancel, a full disk) leaves
no file, or the previous complete one, under the final name — never half of one."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

PART_SUFFIX = ".part"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # no directory handles on this platform: the rename is atomic all the same
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """A fresh hidden name beside `path` (same folder: the final rename never crosses file systems); it keeps
    the final name's suffixes at its end, which libraries that choose a format by name (nibabel) read."""
    return path.with_name(f".{secrets.token_hex(4)}{PART_SUFFIX}.{path.name}")


def _commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_text(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """`with atomic_text(path) as fh:` — `path` appears, complete, when the block ends without an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with tmp.open("w", encoding="utf-8", newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_binary(path: Path) -> Iterator[BinaryIO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with tmp.open("wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_bytes(path: Path, data: bytes) -> None:
    with atomic_binary(path) as fh:
        fh.write(data)


def atomic_save(path: Path, save: Callable[[Path], None]) -> None:
    """A file a library writes to a path it is given (nibabel): saved under the temporary name, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        save(tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
