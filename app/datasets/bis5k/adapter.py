"""BIS5k adapter: every H&E image is an item; its binary mask (same file stem) is one `mask` annotation.

The mask's foreground fraction is measured at ingest (see `files.py` for the cost: masks are small
binary PNGs, decoded on a thread pool) because it is what a user sorts and filters segmentation data
by: empty masks, tiny lesions, images that are mostly tumour. It is stored exactly, as a count and a
fraction in the item's meta, and as a band facet.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.datasets.base import (
    AnnotationRecord,
    ChartSpec,
    DatasetAdapter,
    FileRefused,
    Image2D,
    IngestError,
    ItemRecord,
    ItemRef,
    NumericSort,
    OverlayLayer,
    PixelError,
    Problem,
    ProgressFn,
    ScanResult,
    View,
    no_progress,
)
from app.datasets.bis5k.area_cache import AreaCache, MaskMeasure
from app.datasets.bis5k.files import (
    IMAGES_DIR,
    MASKS_DIR,
    PngError,
    PngHeader,
    SplitListing,
    list_split,
    png_header,
    read_mask,
    read_rgb,
    split_folders,
)
from app.datasets.declarations import LENGTH_ONLY_VIEWER, LOWEST_DICE
from app.datasets.roots import DatasetFiles
from app.datasets.volumes import VolumeCache
from app.imaging.overlay import MASK_DEFAULT, Label

MASK_LABEL = 1
MASK_COLOUR = MASK_DEFAULT  # amber: readable on pink stroma and purple nuclei alike
ERROR_COLOUR = (255, 255, 255)  # white on its black halo: readable on pink and purple
AREA_BANDS = (("0-10%", 0.10), ("10-25%", 0.25), ("25-50%", 0.50), ("50-100%", float("inf")))


def area_band(pixels: int, fraction: float) -> str:
    """The mask-area facet value: "0" for an empty mask, else the band the foreground fraction falls in."""
    if pixels == 0:
        return "0"
    return next(name for name, upper in AREA_BANDS if fraction < upper)


@dataclass
class PairCheck:
    """What the scan learnt about one image and its mask (run on worker threads)."""

    header: PngHeader | None = None
    image_stamp: str = ""
    image_problem: str | None = None
    mask_stamp: str = ""
    mask: MaskMeasure | None = None  # set when the mask is usable
    mask_problem: str | None = None


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def check_pair(files: DatasetFiles, image_rel: str, mask_rel: str | None,
               cache: AreaCache | None = None) -> PairCheck:
    """Header-check the image; measure the mask (from the cache when its file is unchanged). Both are opened
    through `files` (real path inside the data roots, header size within the limits) or not at all."""
    check = PairCheck()
    limits = files.limits
    try:
        image = files.path(image_rel)
        check.image_stamp = _stamp(image)
        check.header = png_header(image, image_rel, limits)
    except FileRefused as exc:
        check.image_problem = exc.reason
        return check
    except (PngError, OSError) as exc:
        check.image_problem = str(exc)
        return check
    if mask_rel is None:
        return check
    try:
        mask = files.path(mask_rel)
        check.mask_stamp = stamp = _stamp(mask)
        measure = cache.get(mask_rel, stamp) if cache else None
        if measure is None:
            header = png_header(mask, mask_rel, limits)
            measure = MaskMeasure(stamp, header.width, header.height, header.mode, -1)
        size, wanted = (measure.width, measure.height), (check.header.width, check.header.height)
        if size != wanted:
            check.mask_problem = f"mask is {size[0]}×{size[1]} but the image is {wanted[0]}×{wanted[1]}"
            return check
        if measure.pixels < 0:
            pixels = int(np.count_nonzero(read_mask(mask, mask_rel, limits)))
            measure = MaskMeasure(stamp, measure.width, measure.height, measure.mode, pixels)
        check.mask = measure
    except FileRefused as exc:
        check.mask_problem = exc.reason
    except (PngError, OSError) as exc:
        check.mask_problem = str(exc)
    return check


class Bis5kAdapter(DatasetAdapter):
    kind = "bis5k"
    export_formats = {"csv": "table", "coco": "coco", "masks-png": "bis5k-masks"}  # docs/export.md
    facet_fields = ("split", "mask_area", "has_mask")
    editable_annotations = ("mask",)
    viewer = LENGTH_ONLY_VIEWER
    queue_suggestions = (LOWEST_DICE,)
    mask_labels = {MASK_LABEL: "gland"}  # binary: a 0/255 PNG upload means 0/1
    filter_fields = ()
    numeric_sorts = {"mask_area": NumericSort(meta="mask_area")}  # foreground share of the image, 0–1
    charts = (ChartSpec("histogram", "Mask area (share of the image)", value="mask_area", group="split",
                        scale=100.0, bins=(0.0, 105.0, 5.0), unit="%"),)
    facet_labels = {
        "mask_area": {"0": "empty (0%)", "0-10%": "under 10%", "10-25%": "10–25%", "25-50%": "25–50%",
                      "50-100%": "50% or more"},
        "has_mask": {"yes": "with mask", "no": "no usable mask"},
    }

    def detect(self, root: Path) -> bool:
        return any((folder / IMAGES_DIR).is_dir() for folder in split_folders(root))

    def scan(self, root: Path, progress: ProgressFn = no_progress, work_dir: Path | None = None,
             files: DatasetFiles | None = None) -> ScanResult:
        files = files or DatasetFiles.confined_to(root)
        folders = split_folders(root)
        if not folders:
            raise IngestError(f"{root}: no formal_train/ or formal_test/ folder with {IMAGES_DIR}/ and "
                              f"{MASKS_DIR}/ (the BIS5k layout)")
        problems: list[Problem] = []
        pairs: list[tuple[SplitListing, str, str | None]] = []
        for listing in (list_split(root, folder, problems) for folder in folders):
            for stem, image_rel in listing.images.items():
                pairs.append((listing, image_rel, listing.masks.get(stem)))
            for stem, orphan_rel in listing.masks.items():
                if stem not in listing.images:
                    problems.append(Problem(orphan_rel, f"mask without an image (no {listing.folder}/{IMAGES_DIR}/"
                                                      f"{stem}.png); ignored"))
        if not pairs:
            raise IngestError(f"{root}: no PNG images in any formal_*/{IMAGES_DIR}/ folder", problems)
        cache = AreaCache(work_dir, root)
        checks = self._check_all(files, pairs, cache, progress)
        cache.save({rel: c.mask for (_, _, rel), c in zip(pairs, checks, strict=True)
                    if rel and c.mask})
        found: list[ItemRecord] = []
        for (listing, image_rel, mask_of), check in zip(pairs, checks, strict=True):
            item = self._item(listing, image_rel, mask_of, check, problems)
            if item is not None:
                found.append(item)
        if not found:
            raise IngestError(f"{root}: none of the {len(pairs)} images is a readable PNG", problems)
        return ScanResult(items=found, problems=problems,
                          options={"splits": {lst.folder: lst.split for lst, _, _ in pairs}})

    @staticmethod
    def _check_all(files: DatasetFiles, pairs: list[tuple[SplitListing, str, str | None]], cache: AreaCache,
                   progress: ProgressFn) -> list[PairCheck]:
        """Header checks and mask decoding on a thread pool (OpenCV's PNG decoder releases the GIL)."""
        total = len(pairs)
        checks: list[PairCheck] = []
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for n, check in enumerate(pool.map(lambda p: check_pair(files, p[1], p[2], cache), pairs), 1):
                checks.append(check)
                if n % 250 == 0 or n == total:
                    progress("checking images and measuring masks", n, total)
        return checks

    @staticmethod
    def _item(listing: SplitListing, image_rel: str, mask_rel: str | None, check: PairCheck,
              problems: list[Problem]) -> ItemRecord | None:
        if check.image_problem or check.header is None:
            problems.append(Problem(image_rel, f"{check.image_problem}; image skipped", item=image_rel))
            return None
        width, height = check.header.width, check.header.height
        stem = os.path.splitext(os.path.basename(image_rel))[0]
        if mask_rel is None:
            problems.append(Problem(image_rel, f"no mask ({listing.folder}/{MASKS_DIR}/{stem}.png is missing); "
                                               "indexed without one", item=image_rel))
        elif check.mask_problem:
            problems.append(Problem(mask_rel, f"{check.mask_problem}; mask not used", item=image_rel))
        measure = check.mask if mask_rel is not None else None
        meta: dict[str, Any] = {"folder": listing.folder, "image_mode": check.header.mode, "mask": mask_rel}
        facets = {"split": [listing.split], "has_mask": ["yes" if measure else "no"]}
        annotations = []
        if measure is not None:
            pixels = measure.pixels
            fraction = pixels / (width * height) if width and height else 0.0
            meta.update(mask_pixels=pixels, mask_area=round(fraction, 6), mask_mode=measure.mode)
            facets["mask_area"] = [area_band(pixels, fraction)]
            annotations.append(AnnotationRecord(
                kind="mask", label=str(MASK_LABEL), geometry={"mask": mask_rel},
                meta={"area": round(fraction, 6), "pixels": pixels, "mode": measure.mode}))
        elif check.mask_problem:
            meta["mask_problem"] = check.mask_problem
        fingerprint = hashlib.blake2b(
            "|".join([image_rel, check.image_stamp, mask_rel or "", check.mask_stamp,
                      check.mask_problem or ""]).encode(), digest_size=16).hexdigest()
        return ItemRecord(key=image_rel, kind="image", location=image_rel, fingerprint=fingerprint,
                          split=listing.split, width=width, height=height, depth=1, meta=meta,
                          annotations=annotations, facets=facets)

    # -- pixels -----------------------------------------------------------------------------
    def slices(self, item: ItemRef, plane: str) -> list[int]:
        if plane != "axial":
            raise ValueError(f"BIS5k images are 2-D; plane {plane!r} is not available")
        return []

    def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
        path = item.file(item.location)  # OutsideRoots (a PixelError) when it links outside the data roots
        if not path.is_file():
            raise PixelError(f"image file {item.location} is missing")
        rgb = read_rgb(path, item.location, item.access.limits)  # TooLarge before decoding
        if rgb is None:
            raise PixelError(f"{item.location}: PNG could not be decoded (corrupt or truncated)")
        return Image2D(rgb)

    def overlay(self, item: ItemRef, annotations: Sequence[Any], view: View, image: Image2D,
                volumes: VolumeCache) -> OverlayLayer:
        """The mask as label 1 (the renderer blends it as fill or contour); a file gone bad since ingest
        is said in a corner instead of failing the whole image."""
        height, width = image.pixels.shape[:2]
        labels: np.ndarray | None = None
        shapes: list[Any] = []
        for a in annotations:
            geometry = (a.geometry or {}) if a.kind == "mask" else {}
            stored, rel = geometry.get("stored"), geometry.get("mask")
            if isinstance(stored, str):
                rel = f"stored mask {stored[:12]}…"
            if not isinstance(rel, str):
                continue
            try:
                if isinstance(stored, str):
                    foreground = self._stored(item, stored) > 0
                else:
                    foreground = read_mask(self._inside(item, rel), rel, item.access.limits)
            except FileRefused as exc:  # outside the data roots, or too large: not read, said in the corner
                shapes.append(Label(4, 16, f"mask {exc}", ERROR_COLOUR))
                continue
            except (PngError, OSError, PixelError) as exc:
                shapes.append(Label(4, 16, f"mask {rel}: {exc}", ERROR_COLOUR))
                continue
            if foreground.shape != (height, width):
                shapes.append(Label(4, 16, f"mask {rel} is {foreground.shape[1]}x{foreground.shape[0]}, "
                                           f"image {width}x{height}", ERROR_COLOUR))
                continue
            if labels is None:
                labels = np.zeros((height, width), np.uint8)
            labels[foreground] = MASK_LABEL
        return OverlayLayer(shapes, labels, {MASK_LABEL: MASK_COLOUR} if labels is not None else None)

    @staticmethod
    def _stored(item: ItemRef, name: str) -> np.ndarray:
        """A user's mask version, from the app's mask store (never the dataset's folder)."""
        if item.masks is None:
            raise PixelError("no mask store to read user masks from")
        return item.masks.read_image(name)

    @staticmethod
    def _inside(item: ItemRef, rel: str) -> Path:
        path = item.file(rel)  # resolved; OutsideRoots when it links outside the data roots
        if not path.is_relative_to(item.access.path("")):
            raise PngError("path leaves the dataset folder")
        if not path.is_file():
            raise PngError("file is missing")
        return path
