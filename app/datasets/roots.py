"""The data roots (MEDVIEW_DATA_ROOTS): the only folders whose files MedView reads, ingests or serves, and the
size limits (MEDVIEW_MAX_*) every file is checked against from its header before anything is decoded.

One check for every caller, made on the *resolved* path, so a symbolic link or `..` inside a root that points
outside it is outside:

- `DataRoots`: the resolved roots; the ingest driver checks a dataset's root folder with it, the pixel layer
  (`app.pixels.targets`) a stored dataset's root, the demo its folder;
- `DatasetFiles`: one dataset's files as an adapter may open them. The ingest driver hands one to
  `DatasetAdapter.scan`, the pixel layer puts one on every `ItemRef` it builds (`ItemRef.file`); an adapter
  knows *which* files it opens, and opens each through `DatasetFiles.path(rel)`, which resolves it and raises
  `OutsideRoots` (a `PixelError` naming `rel`, never the server's absolute path) when it lies outside;
- `Limits`: MEDVIEW_MAX_IMAGE_PIXELS / MAX_VOLUME_VOXELS / MAX_DECOMPRESSED_MB, checked by the adapters from
  PNG/JPEG headers, NIfTI headers, DICOM Rows×Columns×frames and HDF5 shapes (`TooLarge`).

Resolving a path costs a `realpath` per *folder* (cached on the `DatasetFiles`) and one `lstat` per file, so a
50,000-image scan pays milliseconds, not a full path walk per file. A link swapped between this check and the
open is not caught (the check is on names, not on the opened descriptor): whoever can write inside a data root
can race it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.datasets.base import OutsideRoots, TooLarge
from app.errors import Forbidden

if TYPE_CHECKING:
    from app.config import Settings

MB = 1024 * 1024
OUTSIDE = "links outside the data roots; not read"


class DataRoots:
    """Resolved root folders; `contains` is a pure path comparison once the candidate is resolved."""

    def __init__(self, roots: Iterable[Path]):
        self.paths: tuple[Path, ...] = tuple(Path(r).expanduser().resolve() for r in roots)

    def contains(self, path: Path) -> bool:
        """True when `path`, with every link resolved, is a root or lies inside one."""
        real = Path(path).expanduser().resolve()
        return any(real == root or real.is_relative_to(root) for root in self.paths)

    def require(self, path: Path, what: str) -> Path:
        """`path` resolved, or Forbidden naming `what` (a dataset's name, never the server's folder layout)."""
        if not self.contains(path):
            raise Forbidden(f"{what} lies outside MEDVIEW_DATA_ROOTS; it is not read or served")
        return Path(path).expanduser().resolve()

    def __repr__(self) -> str:
        return f"DataRoots({[str(p) for p in self.paths]})"


@dataclass(frozen=True)
class Limits:
    """What a file's header may declare before MedView refuses to decode it (see app.config for the settings)."""

    image_pixels: int = 100_000_000
    volume_voxels: int = 1024 ** 3 // 2
    decompressed_bytes: int = 8192 * MB

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        limits = cls(settings.max_image_pixels, settings.max_volume_voxels, settings.max_decompressed_mb * MB)
        limits.align_pillow()
        return limits

    def align_pillow(self) -> None:
        """Pillow's own process-wide decompression-bomb guard refuses (without saying the size) from twice its
        MAX_IMAGE_PIXELS: raise it to this limit when the setting allows larger images, so the two agree.
        Never lowered (other code's images keep at least Pillow's protection)."""
        from PIL import Image

        if Image.MAX_IMAGE_PIXELS is not None and self.image_pixels > Image.MAX_IMAGE_PIXELS:
            Image.MAX_IMAGE_PIXELS = self.image_pixels

    def image_problem(self, width: int, height: int) -> str | None:
        if width * height > self.image_pixels:
            return f"{width}×{height} pixels exceeds MEDVIEW_MAX_IMAGE_PIXELS ({self.image_pixels})"
        return None

    def check_image(self, rel: str, width: int, height: int) -> None:
        """TooLarge naming `rel` when a width × height image is over MEDVIEW_MAX_IMAGE_PIXELS."""
        problem = self.image_problem(width, height)
        if problem:
            raise TooLarge(rel, problem + "; not decoded")

    def volume_problem(self, shape: Sequence[int]) -> str | None:
        if math.prod(int(n) for n in shape) > self.volume_voxels:
            return (f"{'×'.join(str(int(n)) for n in shape)} voxels exceeds MEDVIEW_MAX_VOLUME_VOXELS "
                    f"({self.volume_voxels})")
        return None

    def check_volume(self, rel: str, shape: Sequence[int]) -> None:
        problem = self.volume_problem(shape)
        if problem:
            raise TooLarge(rel, problem + "; not decoded")

    def decompressed_problem(self, nbytes: int) -> str | None:
        if nbytes > self.decompressed_bytes:
            return (f"decompresses to more than MEDVIEW_MAX_DECOMPRESSED_MB ({self.decompressed_bytes // MB} MB)")
        return None


class DatasetFiles:
    """One dataset's files, as its adapter may open them: inside the data roots (or the app's own `work` folder,
    where decompressed copies live), within `limits`."""

    def __init__(self, root: Path, roots: DataRoots, limits: Limits | None = None, work: Path | None = None):
        self.root = Path(root)
        self.roots = roots
        self.limits = limits or Limits()
        self.work = Path(os.path.realpath(work)) if work is not None else None
        allowed = [str(p) for p in roots.paths] + ([str(self.work)] if self.work is not None else [])
        self._allowed = tuple(a if a.endswith(os.sep) else a + os.sep for a in allowed)
        self._dirs: dict[str, str] = {}

    @classmethod
    def confined_to(cls, root: Path, limits: Limits | None = None) -> DatasetFiles:
        """Files of `root` only (what a scan or an ItemRef gets when no data roots are given: tests, tools)."""
        return cls(root, DataRoots([root]), limits)

    @classmethod
    def for_ingest(cls, root: Path, settings: Settings, work: Path | None = None) -> DatasetFiles:
        return cls(root, DataRoots(settings.allowed_roots), Limits.from_settings(settings), work)

    def inside(self, real: str) -> bool:
        """Whether an already resolved path is a root, or lies in one (or in the work folder)."""
        probe = real if real.endswith(os.sep) else real + os.sep
        return probe.startswith(self._allowed)

    def rel(self, relative: str | Path) -> str:
        """How a file is named to users: relative to the dataset root; an absolute path elsewhere (a work-folder
        copy) by its file name only."""
        text = str(relative)
        if not os.path.isabs(text):
            return Path(text).as_posix()
        try:
            return Path(text).relative_to(self.root).as_posix()
        except ValueError:
            return os.path.basename(text)

    def path(self, relative: str | Path) -> Path:
        """The real path of `relative` (to the dataset root; an absolute path is taken as is), checked to lie
        inside the data roots: OutsideRoots (naming `relative`) otherwise. A missing file is returned as it
        would resolve (opening it raises FileNotFoundError as before)."""
        joined = os.path.join(self.root, relative)
        parent, name = os.path.split(joined)
        if name in ("", ".", ".."):
            real = os.path.realpath(joined)
        else:
            real_parent = self._dirs.get(parent)
            if real_parent is None:
                real_parent = self._dirs[parent] = os.path.realpath(parent)
            real = os.path.join(real_parent, name)
            if os.path.islink(real):
                real = os.path.realpath(real)
        if not self.inside(real):
            raise OutsideRoots(self.rel(relative), OUTSIDE)
        return Path(real)

    def __repr__(self) -> str:
        return f"DatasetFiles({self.root}, {self.roots!r})"
