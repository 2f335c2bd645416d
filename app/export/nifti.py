"""`nifti`, two layouts:

- VerSe (`write_verse`): the CT copied as it is (`rawdata/…_ct.nii.gz`, or beside the masks in the flat layout),
  `…_seg-vert_msk.nii.gz` holding the current vertebra labels on the CT's own voxel grid, in the CT file's own
  axis order, with the CT's affine; and `…_seg-subreg_ctd.json` with the current centroids in the axis
  convention of the item's own centroid file (its `direction`), or of the CT file when it had none, X/Y/Z in
  voxels of that frame (app.datasets.verse.centroids describes the frame). `medview ingest` reads it back. A
  derivatives-only item (no CT) writes its mask under its own name and its centroids beside it.
- plain NIfTI pairs (`write_pairs`, the `nifti` kind): nnU-Net's layout, `imagesTr/<key>_0000.nii.gz` (the image
  file copied as it is; `imagesTs/` for test items) and `labelsTr/<key>.nii.gz` holding the current label map on
  the image's own grid, axis order and affine. `medview ingest` reads it back as `nifti`.
- volumes (`write_volumes`, DICOM series): each as `<key>.nii.gz`, canonical RAS+ int16 HU with its affine.
- DeepLesion lesion sub-volumes (`write_lesion_subvolumes`): for each exported lesion, the slices of its
  `Slice_range` present in `Images_png/` stacked into `<series>_<first>-<last>.nii.gz` (rows × columns × slices),
  int16 HU (the PNG value − 32768), with the affine the dataset's own `DL_save_nifti.py` writes:
  `[[0, −sy, 0, 0], [−sx, 0, 0, 0], [0, 0, −sz, 0], [0, 0, 0, 1]]` from `Spacing_mm_px_` (x, y, z). Lesions of
  one series with the same range share one file. `lesions.csv` lists each lesion's file, key slice index in it,
  and RECIST.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

from app.datasets.base import View
from app.datasets.verse.centroids import frame_to_canonical
from app.datasets.verse.layout import nifti_stem
from app.datasets.verse.nifti import RAS, read_header
from app.db.models import Item
from app.export.context import ExportContext, inside_out
from app.export.masks import MaskUnavailable, is_volume_mask, mask_array
from app.export.selection import item_chunks
from app.export.writer import atomic_save, atomic_text

log = logging.getLogger(__name__)

CT_SUFFIX = "_ct"
MASK_NAME = "{base}_seg-vert_msk.nii.gz"
CTD_NAME = "{base}_seg-subreg_ctd.json"
SUBVOLUME_NAME = "{series}_{first:03d}-{last:03d}.nii.gz"
LESIONS_CSV = "lesions.csv"


def _copy(source: Path, out: Path) -> None:
    def save(tmp: Path) -> None:
        with source.open("rb") as src, tmp.open("wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    atomic_save(out, save)


def _derived_folder(ct_rel: PurePosixPath) -> PurePosixPath:
    """`rawdata/sub-X/…` → `derivatives/sub-X/…`; a flat layout keeps masks beside the CT."""
    parts = ct_rel.parent.parts
    if "rawdata" in parts:
        n = parts.index("rawdata")
        return PurePosixPath(*parts[:n], "derivatives", *parts[n + 1:])
    return ct_rel.parent


def to_file_order(canonical: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """A canonical (RAS+) array back in the axis order and directions of the file whose affine this is."""
    return apply_orientation(canonical, ornt_transform(RAS, io_orientation(affine)))


def write_verse(ctx: ExportContext) -> list[Path]:
    written: list[Path] = []
    limits = ctx.pixels.limits
    for ref, mine in ctx.images(size=10):
        ct_rel = inside_out(ref.location)
        ct_path = ref.file(ref.location)
        header = read_header(ct_path, limits)
        base = (nifti_stem(ct_rel.name) or ct_rel.name).removesuffix(CT_SUFFIX)
        folder = ctx.out / _derived_folder(ct_rel)
        mask_name = MASK_NAME.format(base=base)
        if ref.meta.get("label_only"):  # derivatives only: the item is its mask, written back under its own name
            base, mask_name = base.removesuffix("_msk").replace("_seg-vert", ""), ct_rel.name
        else:
            _copy(ct_path, ctx.out / ct_rel)
            written.append(ctx.wrote(ctx.out / ct_rel))
        masks = [a for a in mine if a.kind == "mask" and is_volume_mask(a)]
        mask_out = _write_labels(ref, masks, header, folder / mask_name) if masks else None
        if mask_out is not None:
            written.append(ctx.wrote(mask_out))
        centroids = [a for a in mine if a.kind == "centroid" and (a.geometry or {}).get("point")]
        if centroids:
            path = folder / CTD_NAME.format(base=base)
            direction = tuple(ref.meta.get("ctd_direction") or header.axcodes)
            with atomic_text(path) as fh:
                json.dump(centroid_entries(centroids, direction, header), fh, indent=1)
            written.append(ctx.wrote(path))
    return written


def _write_labels(ref: Any, masks: Sequence[Any], header: Any, out: Path) -> Path | None:
    """The item's vertebra labels on its CT's grid; None (logged) when no mask can be read or none lies on the
    CT's grid (as the viewer, which does not show such a mask either)."""
    combined: np.ndarray | None = None
    for a in masks:
        try:
            labels = mask_array(ref, a)
        except MaskUnavailable as exc:
            log.warning("export: %s", exc)
            continue
        if tuple(labels.shape) != tuple(header.canonical_shape):
            log.warning("export: the mask of item %d is %s, its CT %s; not written", ref.id, labels.shape,
                        header.canonical_shape)
            continue
        combined = labels if combined is None else np.where(labels > 0, labels, combined)
    if combined is None:
        return None
    data = np.ascontiguousarray(to_file_order(combined, header.affine)).astype(np.uint8)
    img = nib.Nifti1Image(data, header.affine)
    img.set_qform(header.affine, code=1)
    img.set_sform(header.affine, code=1)
    _save_nifti(img, out)
    return out


def _save_nifti(img: Any, out: Path) -> None:
    def save(tmp: Path) -> None:
        nib.save(img, str(tmp))
    atomic_save(out, save)


def centroid_entries(centroids: Sequence[Any], direction: tuple[str, ...], header: Any) -> list[dict[str, Any]]:
    """VerSe's centroid JSON: `[{"direction": [...]}, {"label": n, "X": x, "Y": y, "Z": z}, …]`, the points
    (canonical voxels) mapped into the frame `direction` names."""
    to_frame = np.linalg.inv(frame_to_canonical((direction[0], direction[1], direction[2]), header))
    entries: list[dict[str, Any]] = [{"direction": list(direction)}]
    for a in sorted(centroids, key=lambda a: int(a.label) if (a.label or "").isdigit() else 999):
        x, y, z = (to_frame @ np.array([*map(float, a.geometry["point"]), 1.0]))[:3]
        entries.append({"label": int(a.label), "X": round(float(x), 4), "Y": round(float(y), 4),
                        "Z": round(float(z), 4)})
    return entries


def dl_affine(spacing: Sequence[float]) -> np.ndarray:
    """The affine DeepLesion's DL_save_nifti.py gives a sub-volume (rows, columns, slices) of this spacing."""
    sx, sy, sz = (float(v) for v in spacing[:3])
    return np.array([[0, -sy, 0, 0], [-sx, 0, 0, 0], [0, 0, -sz, 0], [0, 0, 0, 1]], dtype=float)


def contiguous_run(numbers: Sequence[int], key: int) -> list[int]:
    """The run of consecutive slice numbers that holds the key slice (DL_save_nifti groups by continuity)."""
    present = sorted(set(numbers) | {key})
    at = present.index(key)
    low = high = at
    while low > 0 and present[low - 1] == present[low] - 1:
        low -= 1
    while high < len(present) - 1 and present[high + 1] == present[high] + 1:
        high += 1
    return present[low:high + 1]


def write_lesion_subvolumes(ctx: ExportContext) -> list[Path]:
    written: list[Path] = []
    lesion_rows: list[list[Any]] = []
    done: set[str] = set()
    for ref, anns in ctx.images(size=50, meta=True):
        key = ref.location_index
        series = str(ref.meta.get("series_dir") or "")
        available = [int(n) for n in ref.meta.get("slices") or []]
        for a in anns:
            if a.kind != "recist" or key is None:
                continue
            low, high = ((a.meta or {}).get("slice_range") or ref.meta.get("slice_range") or [key, key])[:2]
            run = contiguous_run([n for n in available if low <= n <= high], key)
            name = SUBVOLUME_NAME.format(series=series, first=run[0], last=run[-1])
            if name not in done:
                images = [ctx.adapter.read_image(ref, View("axial", n), ctx.pixels.volumes).pixels
                          for n in run]
                volume = np.stack(images, axis=-1).astype(np.int16, copy=False)
                img = nib.Nifti1Image(volume, dl_affine(ref.spacing or (1.0, 1.0, 1.0)))
                _save_nifti(img, ctx.out / name)
                written.append(ctx.wrote(ctx.out / name))
                done.add(name)
            g = a.geometry or {}
            points = [v for p in (*g.get("long", []), *g.get("short", [])) for v in p]
            lesion_rows.append([name, ref.meta.get("series_dir", ""), key, run.index(key), a.id, a.label,
                                ", ".join(f"{v:g}" for v in points)])
    path = ctx.out / LESIONS_CSV
    with atomic_text(path, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["file", "series", "key_slice", "key_slice_z", "annotation_id", "lesion_type",
                         "measurement_coordinates"])
        writer.writerows(lesion_rows)
    written.append(ctx.wrote(path))
    return written


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._") or "volume"


def write_volumes(ctx: ExportContext) -> list[Path]:
    """A volume item (a DICOM series) as `<key>.nii.gz`: the volume as the viewer shows it — canonical RAS+,
    int16 HU — with its affine (voxel → patient RAS mm, qform and sform "scanner"), so any NIfTI reader places
    it where the scanner did."""
    written: list[Path] = []
    names: set[str] = set()
    for rows in item_chunks(ctx.session, ctx.selection, (Item.id, Item.key), size=4):
        keys = {item_id: key for item_id, key in rows}
        for target in ctx.pixels.targets(ctx.session, list(keys), False):
            volume = ctx.pixels.volume(target)
            name = _file_name(keys[target.ref.id])
            name = f"{name}-{target.ref.id}" if name in names else name
            names.add(name)
            img = nib.Nifti1Image(np.asarray(volume.data), volume.affine)
            img.set_qform(volume.affine, code=1)
            img.set_sform(volume.affine, code=1)
            _save_nifti(img, ctx.out / f"{name}.nii.gz")
            written.append(ctx.wrote(ctx.out / f"{name}.nii.gz"))
        ctx.advance(len(rows))
    return written


def write_pairs(ctx: ExportContext) -> list[Path]:
    from app.export.selection import annotations_of

    written: list[Path] = []
    limits = ctx.pixels.limits
    for rows in item_chunks(ctx.session, ctx.selection, (Item.id, Item.key, Item.split), size=10):
        named = {item_id: (_file_name(key), "Ts" if split == "test" else "Tr") for item_id, key, split in rows}
        anns = annotations_of(ctx.session, list(named), ctx.mode)
        for target in ctx.pixels.targets(ctx.session, list(named), False):
            ref = target.ref
            name, tail = named[ref.id]
            header = read_header(ref.file(ref.location), limits)
            gz = ".gz" if ref.location.endswith(".gz") else ""
            image_out = ctx.out / f"images{tail}" / f"{name}_0000.nii{gz}"
            _copy(ref.file(ref.location), image_out)
            written.append(ctx.wrote(image_out))
            masks = [a for a in anns.get(ref.id, []) if a.kind == "mask" and is_volume_mask(a)]
            label_out = _write_labels(ref, masks, header, ctx.out / f"labels{tail}" / f"{name}.nii.gz") \
                if masks else None
            if label_out is not None:
                written.append(ctx.wrote(label_out))
        ctx.advance(len(rows))
    return written
