"""User-edited masks, stored by the app under its data dir (`<data_dir>/masks/`), never in a dataset's folder.

A user's mask version is a file named by the SHA-256 of its bytes (content-addressed: two identical masks are one
file), referenced from the annotation's geometry as `{"stored": "<sha>.png"}` (a 2-D label PNG, the image's size)
or `{"stored": "<sha>.npz"}` (a 3-D label volume in the canonical RAS+ grid of the item's CT: `labels`
uint8/uint16, `affine`, `spacing`, compressed). Files are written atomically (a temp file in the same folder, then
rename), so a reader never sees half a mask. Every read goes through `MaskStore.path`, which accepts only such
names and resolves inside the folder: a geometry cannot name any other file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.datasets.base import PixelError
from app.datasets.roots import Limits
from app.datasets.volumes import Volume, VolumeCache
from app.imaging.labels import decode_label_png, encode_label_png

STORED_NAME = re.compile(r"^[0-9a-f]{64}\.(png|npz)$")


class StoredMaskError(PixelError):
    """A stored mask that cannot be read: a bad name, a missing file, or content that is not a label mask."""


def is_stored_name(name: object) -> bool:
    return isinstance(name, str) and STORED_NAME.match(name) is not None


@dataclass(frozen=True)
class Written:
    """A stored file: its name, and whether this call created it (a failed upload removes only what it made)."""

    name: str
    created: bool


class MaskStore:
    """The folder of stored masks (made on first write)."""

    def __init__(self, folder: Path, limits: Limits | None = None):
        self.folder = Path(folder)
        self.limits = limits or Limits()

    def path(self, name: str) -> Path:
        """The file of a stored mask: `name` must be `<sha256>.png|npz` and the file must lie in the folder."""
        if not is_stored_name(name):
            raise StoredMaskError(f"stored mask name {str(name)[:80]!r} is not <sha256>.png or <sha256>.npz")
        folder = Path(os.path.realpath(self.folder))
        path = Path(os.path.realpath(folder / name))
        if path.parent != folder:
            raise StoredMaskError(f"stored mask {name} leaves the masks folder")
        return path

    # -- writing ----------------------------------------------------------------------------------------
    @staticmethod
    def encode_image(labels: np.ndarray) -> bytes:
        """A 2-D label image (H×W, 0 = background) as a label PNG."""
        return encode_label_png(labels)

    @staticmethod
    def encode_volume(labels: np.ndarray, affine: np.ndarray, spacing: tuple[float, float, float]) -> bytes:
        """A 3-D canonical label volume (uint8, or uint16 above 255), its affine and spacing, compressed."""
        dtype = np.uint16 if labels.size and int(labels.max()) > 255 else np.uint8
        buffer = io.BytesIO()
        np.savez_compressed(buffer, labels=np.ascontiguousarray(labels, dtype=dtype),
                            affine=np.asarray(affine, np.float64), spacing=np.asarray(spacing, np.float64))
        return buffer.getvalue()

    @staticmethod
    def name_for(data: bytes, suffix: str) -> str:
        return hashlib.sha256(data).hexdigest() + suffix

    def put(self, data: bytes, suffix: str) -> Written:
        """Store `data` under its SHA-256 name: a temp file in the folder, fsync, rename."""
        name = self.name_for(data, suffix)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(name)
        if target.is_file():
            return Written(name, False)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=suffix, dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Written(name, True)

    def discard(self, written: Written | None) -> None:
        """Undo a write this request made (its row was not stored)."""
        if written is not None and written.created:
            self.path(written.name).unlink(missing_ok=True)

    # -- reading ----------------------------------------------------------------------------------------
    def _existing(self, name: str) -> Path:
        path = self.path(name)
        if not path.is_file():
            raise StoredMaskError(f"stored mask {name} is missing")
        return path

    def read_image(self, name: str) -> np.ndarray:
        """A stored 2-D label image (uint8/uint16 H×W)."""
        if not name.endswith(".png"):
            raise StoredMaskError(f"stored mask {name} is a volume, not a 2-D image")
        path = self._existing(name)
        try:
            return decode_label_png(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise StoredMaskError(f"stored mask {name} cannot be read ({exc})") from None

    def read_volume(self, name: str, volumes: VolumeCache | None = None) -> Volume:
        """A stored 3-D label volume (canonical), through the app's volume cache when given."""
        if not name.endswith(".npz"):
            raise StoredMaskError(f"stored mask {name} is a 2-D image, not a volume")
        path = self._existing(name)

        def load() -> Volume:
            try:
                with np.load(path, allow_pickle=False) as npz:
                    labels = npz["labels"]
                    affine = npz["affine"]
                    spacing = tuple(float(v) for v in npz["spacing"])
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                raise StoredMaskError(f"stored mask {name} cannot be read ({exc})") from None
            if labels.ndim != 3 or labels.size > self.limits.volume_voxels:
                raise StoredMaskError(f"stored mask {name} is not a 3-D label volume within the limits")
            return Volume(labels, affine, (spacing[0], spacing[1], spacing[2]))

        if volumes is None:
            return load()
        return volumes.get(str(path), load, "stored-labels")


def _nearest_index(source: int, shown: int) -> np.ndarray:
    """For each of `shown` display pixels, the source pixel `square_pixels` (cv2 INTER_NEAREST) drew it from."""
    import cv2

    ramp = np.arange(source, dtype=np.float32).reshape(1, source)
    return cv2.resize(ramp, (shown, 1), interpolation=cv2.INTER_NEAREST)[0].astype(np.int64)


def _picks(source: int, shown: int) -> np.ndarray:
    """For each source pixel, the display pixel in the middle of those drawn from it (every source pixel has one:
    the display only ever enlarges the coarser axis)."""
    owner = _nearest_index(source, shown)
    first = np.searchsorted(owner, np.arange(source), side="left")
    last = np.searchsorted(owner, np.arange(source), side="right") - 1
    return np.clip((first + last) // 2, 0, shown - 1)


def paste_plane(labels: np.ndarray, spacing: tuple[float, float, float], plane: str, index: int,
                shown: np.ndarray) -> np.ndarray:
    """A copy of the canonical label volume `labels` whose slice `index` of `plane` is `shown`, a label image in
    the viewer's display orientation and size (app.imaging.volume.display_plane with labels=True): each voxel
    takes the value of the display pixel it is drawn at, so the edit lands exactly on the voxels shown and
    display_plane of the result gives `shown` back wherever `shown` is constant over each voxel's pixels."""
    from app.imaging.volume import extract_plane

    out = np.array(labels, copy=True)
    target = extract_plane(out, plane, index)  # a writable view into `out`, display-oriented
    rows = _picks(target.shape[0], shown.shape[0])
    cols = _picks(target.shape[1], shown.shape[1])
    target[...] = shown[np.ix_(rows, cols)].astype(out.dtype, copy=False)
    return out


def shown_plane(vol: Volume, plane: str, index: int) -> np.ndarray:
    """One plane of a label volume as the viewer shows it (display orientation, square-mm pixels)."""
    from app.imaging.volume import display_plane

    return display_plane(vol.data, vol.spacing, plane, index, labels=True)[0]


def plane_slices(vol: Volume, plane: str) -> int:
    from app.imaging.volume import plane_count

    return plane_count(vol.data.shape, plane)
