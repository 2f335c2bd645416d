"""Predicted label masks on disk, and the 2-D label image of one view for the viewer.

Files live under ``data_dir/predictions/<model_id>/<item_id>.png`` (2-D, a label PNG in the item image's
pixel grid, `app.imaging.labels`) or ``….npz`` (3-D: ``labels`` in the canonical RAS+ voxel grid of the item's
volume plus its ``spacing``). They are written atomically (a temporary file in the same folder, then
``os.replace``), so a reader never sees half a file and a re-prediction swaps the whole mask at once.

A 3-D mask's planes are cut with the same `display_plane` the VerSe and DICOM adapters use for their CT and
ground-truth mask planes (radiological display, square-mm pixels, nearest neighbour for labels), so a
predicted plane has exactly the width × height of `/raw` for the same plane and slice.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from app.config import Settings
from app.datasets.volumes import Volume, VolumeCache
from app.errors import InvalidInput, NotFound
from app.imaging.labels import decode_label_png, encode_label_png
from app.imaging.volume import PLANE_AXIS, display_plane, plane_count

MASK_SUFFIXES = (".png", ".npz")


def predictions_dir(settings: Settings, model_id: int) -> Path:
    return Path(settings.data_dir) / "predictions" / str(model_id)


def mask_path(settings: Settings, model_id: int, item_id: int, three_d: bool) -> Path:
    return predictions_dir(settings, model_id) / f"{item_id}{'.npz' if three_d else '.png'}"


def _atomic_write(path: Path, write) -> None:
    """Write through `write(file object)` to a temporary sibling, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _label_dtype(labels: np.ndarray) -> np.ndarray:
    top = int(labels.max(initial=0))
    if labels.size and int(labels.min()) < 0:
        raise ValueError("predicted labels must be non-negative")
    return labels.astype(np.uint8 if top <= 255 else np.uint16, copy=False)


def save_mask_2d(path: Path, labels: np.ndarray) -> None:
    """A (H, W) label mask as a label PNG (8-bit, 16-bit above 255)."""
    data = encode_label_png(_label_dtype(np.asarray(labels)))
    _atomic_write(path, lambda fh: fh.write(data))


def save_mask_3d(path: Path, labels: np.ndarray, spacing: tuple[float, float, float]) -> None:
    """A canonical (i, j, k) label volume and its voxel spacing, compressed npz."""
    array = _label_dtype(np.asarray(labels))
    _atomic_write(path, lambda fh: np.savez_compressed(fh, labels=array,
                                                       spacing=np.asarray(spacing, dtype=np.float64)))


def load_mask_2d(path: Path) -> np.ndarray:
    return decode_label_png(path.read_bytes())


def _load_volume(path: Path) -> Volume:
    with np.load(path) as data:
        labels, spacing = data["labels"], tuple(float(v) for v in data["spacing"])
    return Volume(labels, np.diag([*spacing, 1.0]), spacing)  # type: ignore[arg-type]


def load_mask_3d(path: Path, volumes: VolumeCache) -> Volume:
    """The stored volume through the app's volume cache (keyed by path, mtime and size: a re-prediction is a
    new file and is reloaded)."""
    try:
        return volumes.get(str(path), lambda: _load_volume(path), "predicted-labels")
    except FileNotFoundError:
        raise NotFound(f"the predicted mask file {path.name} is missing; predict the item again") from None


def mask_plane(path: Path, plane: str | None, slice_number: int | None,
               volumes: VolumeCache) -> tuple[np.ndarray, str, int | None]:
    """The label image of one view of a stored mask: (labels, plane, slice). 2-D masks have only the axial
    view (the item's own image); 3-D masks take any plane and slice (default: the middle one, as /raw)."""
    plane = plane or "axial"
    if plane not in PLANE_AXIS:
        raise InvalidInput(f"plane must be one of {', '.join(PLANE_AXIS)}, not {plane!r}")
    if path.suffix == ".png":
        if plane != "axial":
            raise InvalidInput(f"this prediction is a 2-D mask; plane {plane!r} is not available")
        try:
            return load_mask_2d(path), plane, slice_number
        except FileNotFoundError:
            raise NotFound(f"the predicted mask file {path.name} is missing; predict the item again") from None
    vol = load_mask_3d(path, volumes)
    count = plane_count(vol.data.shape, plane)
    index = count // 2 if slice_number is None else slice_number
    if not 0 <= index < count:
        raise InvalidInput(f"slice {index} is outside the {plane} range 0–{count - 1}")
    labels, _ = display_plane(vol.data, vol.spacing, plane, index, labels=True)
    return labels, plane, index
