"""NIfTI access for VerSe: headers at ingest (no voxel decoding), whole volumes for rendering.

Ingest reads headers only (`nibabel.load` is lazy: for a .nii.gz it decompresses just the first few
hundred bytes). A truncated .nii.gz still has a readable header, so completeness is checked from the
gzip trailer (ISIZE, the uncompressed size mod 2³²) against the size the header implies; only when
they disagree (a truncated file, or a legitimately multi-member gzip) is the stream decompressed to
tell which. Volumes for display are decoded whole, once, into the per-process volume cache, in the
canonical RAS+ frame: CT as int16 HU, label masks as uint8 (real VerSe masks are often float64).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import FileBasedImage
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from app.datasets.roots import Limits
from app.datasets.volumes import Volume
from app.imaging.volume import to_canonical, voxel_spacing

RAS = axcodes2ornt(("R", "A", "S"))
SLAB_BYTES = 32 * 1024 * 1024  # label volumes are converted slab by slab (a float64 mask is 8× its uint8 form)


class NiftiError(Exception):
    """The file is not a usable NIfTI volume; the message says why (without the path)."""


@dataclass(frozen=True)
class Header:
    """Geometry of a NIfTI file from its header: the file's own array order and the canonical one."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    dtype: str
    axcodes: tuple[str, str, str]

    @property
    def to_canonical(self) -> np.ndarray:
        """nibabel orientation transform from the file's axes to RAS+."""
        return ornt_transform(io_orientation(self.affine), RAS)

    @property
    def canonical_affine(self) -> np.ndarray:
        return self.affine @ inv_ornt_aff(self.to_canonical, self.shape)

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        out = [0, 0, 0]
        for axis, (target, _flip) in enumerate(self.to_canonical):
            out[int(target)] = self.shape[axis]
        return out[0], out[1], out[2]

    @property
    def canonical_spacing(self) -> tuple[float, float, float]:
        return voxel_spacing(self.canonical_affine)

    def same_grid(self, other: Header, atol_mm: float = 1e-3) -> bool:
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, rtol=0, atol=atol_mm))


def read_header(path: Path, limits: Limits | None = None) -> Header:
    """Header geometry of a 3-D NIfTI file (a 4-D one with a single volume is accepted); raises NiftiError, also
    when the shape is over MEDVIEW_MAX_VOLUME_VOXELS (checked before the completeness check reads the data)."""
    try:
        img = _nifti(nib.load(str(path)))
        shape = tuple(int(n) for n in img.header.get_data_shape())
        dtype = img.header.get_data_dtype()
        affine = np.asarray(img.affine, dtype=np.float64)
        offset = int(getattr(img.dataobj, "offset", img.header.get_data_offset()))  # the header copy says 0
    except Exception as exc:  # nibabel raises many kinds (ImageFileError, BadGzipFile, EOFError, ValueError…)
        raise NiftiError(f"not a readable NIfTI file ({_reason(exc)})") from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3 or min(shape) < 1:
        raise NiftiError(f"expected a 3-D volume, the header says shape {'×'.join(map(str, shape))}")
    _check_voxels(shape, limits)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise NiftiError("the header's affine (voxel → mm) is not invertible")
    if dtype.fields is not None or dtype.kind not in "iuf":
        raise NiftiError(f"unsupported voxel type {dtype} (expected integers or floats)")
    _check_complete(path, offset + math.prod(shape) * dtype.itemsize)
    x, y, z = (str(c) for c in nib.aff2axcodes(affine))  # a 4×4 affine: three axes
    return Header(shape, affine, str(dtype), (x, y, z))


def _check_voxels(shape: tuple[int, ...], limits: Limits | None) -> None:
    problem = (limits or Limits()).volume_problem(shape[:3])
    if problem:
        raise NiftiError(f"the header says {problem}; not decoded")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _check_complete(path: Path, needed: int) -> None:
    size = path.stat().st_size
    if not path.name.endswith(".gz"):
        if size < needed:
            raise NiftiError(f"file is truncated: {size} bytes, the header needs {needed}")
        return
    with path.open("rb") as fh:
        fh.seek(max(0, size - 4))
        isize = int.from_bytes(fh.read(4), "little")
    if isize == needed % 2**32:
        return
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while total < needed and (chunk := stream.read(4 * 1024 * 1024)):  # enough is enough (no bomb)
                total += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise NiftiError(f"compressed data is truncated or corrupt ({_reason(exc)})") from None
    if total < needed:
        raise NiftiError(f"file is truncated: {total} bytes uncompressed, the header needs {needed}")


def _nifti(img: FileBasedImage) -> nib.Nifti1Image:
    """nib.load's image, checked to be NIfTI (-1 or -2, a subclass): what the VerSe file names promise."""
    if not isinstance(img, nib.Nifti1Image):
        raise TypeError(f"nibabel read it as {type(img).__name__}, not as NIfTI")
    return img


def _open(path: Path, keep_open: bool = False) -> nib.Nifti1Image:
    try:
        return _nifti(nib.load(str(path), keep_file_open=keep_open))
    except Exception as exc:
        raise NiftiError(f"not a readable NIfTI file ({_reason(exc)})") from None


def _as_3d(data: np.ndarray) -> np.ndarray:
    return data[..., 0] if data.ndim == 4 else data


def to_hu_int16(data: np.ndarray) -> np.ndarray:
    """Stored values (scl_slope/inter already applied by nibabel) as int16 HU; integers stay exact."""
    if data.dtype == np.int16:
        return data
    if data.dtype.kind == "f":
        data = np.nan_to_num(np.rint(data), nan=-1024.0)
    if data.dtype.kind == "f" or data.dtype.itemsize > 2 or data.dtype == np.uint16:
        data = np.clip(data, -32768, 32767)
    return data.astype(np.int16)


def load_ct(path: Path, limits: Limits | None = None) -> Volume:
    """The whole CT, canonical RAS+, int16 HU (never get_fdata: a float64 copy is 4× the memory); the header's
    shape is checked against `limits` before any voxel is decoded."""
    img = _open(path)
    _check_voxels(tuple(int(n) for n in img.shape), limits)
    try:
        data = to_hu_int16(_as_3d(np.asanyarray(img.dataobj)))
    except Exception as exc:
        raise NiftiError(f"voxel data cannot be read ({_reason(exc)})") from None
    canonical, affine = to_canonical(data, img.affine)
    return Volume(canonical, affine, voxel_spacing(affine))


def label_slabs(path: Path):
    """(file array slab as uint8 labels, first index along the file's last axis), in file order.

    Read through one open file so the gzip stream is decompressed once, front to back."""
    img = _open(path, keep_open=True)
    shape = img.shape[:3]
    itemsize = img.header.get_data_dtype().itemsize
    step = max(1, SLAB_BYTES // max(1, shape[0] * shape[1] * itemsize))
    try:
        for k in range(0, shape[2], step):
            raw = np.asarray(img.dataobj[:, :, k:k + step] if len(img.shape) == 3 else
                             img.dataobj[:, :, k:k + step, 0])
            if raw.dtype.kind == "f":
                raw = np.rint(np.nan_to_num(raw))
            yield np.clip(raw, 0, 255).astype(np.uint8), k
    except Exception as exc:
        raise NiftiError(f"voxel data cannot be read ({_reason(exc)})") from None
    finally:
        img.uncache()
        opener = getattr(img.dataobj, "_opener", None)
        if opener is not None:
            opener.close_if_mine()


def load_labels(path: Path, limits: Limits | None = None) -> Volume:
    """A label mask, canonical RAS+, uint8 (values outside 0–255 are clipped; VerSe uses 1–28); the header's
    shape is checked against `limits` first."""
    img = _open(path)
    _check_voxels(tuple(int(n) for n in img.shape), limits)
    out = np.empty(img.shape[:3], np.uint8, order="F")
    for slab, k in label_slabs(path):
        out[:, :, k:k + slab.shape[2]] = slab
    canonical, affine = to_canonical(out, img.affine)
    return Volume(canonical, affine, voxel_spacing(affine))


def label_centres(path: Path, header: Header) -> dict[int, tuple[list[float], int]]:
    """label → (centre of mass in canonical voxel coordinates, voxel count), decoding the whole mask."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for slab, k in label_slabs(path):
        nz = np.nonzero(slab)
        if not len(nz[0]):
            continue
        values = slab[nz]
        per = np.bincount(values, minlength=256)
        coords = [np.bincount(values, weights=axis.astype(np.float64), minlength=256) for axis in nz]
        coords[2] += k * per
        for found in np.flatnonzero(per):
            label = int(found)
            counts[label] = counts.get(label, 0) + int(per[label])
            sums[label] = sums.get(label, np.zeros(3)) + np.array([c[label] for c in coords])
    to_can = np.linalg.inv(header.canonical_affine) @ header.affine
    out: dict[int, tuple[list[float], int]] = {}
    for label, total in counts.items():
        centre = (to_can @ np.append(sums[label] / total, 1.0))[:3]
        out[label] = ([round(float(v), 2) for v in centre], total)
    return out


def file_signature(path: Path | None) -> str:
    """Size and mtime: enough to notice a replaced file on re-ingest without reading it."""
    if path is None:
        return "-"
    st = os.stat(path)
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"
