"""The atomic writer: every exported file is written under a temporary name in its own folder, flushed to disk
(fsync) and renamed over the final name, so an export interrupted mid-way (a crash, a cancel, a full disk) leaves
no file, or the previous complete one, under the final name — never half of one."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO, TextIO, cast

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
def _atomic_open(path: Path, mode: str, **open_args: object) -> Iterator[IO]:
    """The file object behind `atomic_text` / `atomic_binary`: written under a temporary name, synced, renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with tmp.open(mode, **open_args) as fh:  # type: ignore[call-overload]
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_text(path: Path, newline: str | None = None) -> contextlib.AbstractContextManager[TextIO]:
    """`with atomic_text(path) as fh:` — `path` appears, complete, when the block ends without an error."""
    return cast("contextlib.AbstractContextManager[TextIO]",
                _atomic_open(path, "w", encoding="utf-8", newline=newline))


def atomic_binary(path: Path) -> contextlib.AbstractContextManager[BinaryIO]:
    return cast("contextlib.AbstractContextManager[BinaryIO]", _atomic_open(path, "wb"))


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
