"""PatchCamelyon adapter: every row of a split's x/y HDF5 pair is one 96×96 patch item.

Ingest reads the y arrays whole and only the header of x (shape, dtype, chunk layout): no patch is
decoded, so the 327,680 patches index in seconds. The ground truth is the item's own label ("0"
normal / "1" tumor, as in y; a patch is tumor when its centre 32×32 region holds tumor): no annotation
row per patch (a reviewer's correction becomes one). Each slide (`wsi`) is a series, so the slide facet
is counted from the item's series rather than from 327,680 facet rows. Meta (slide, coordinates, tumor
flags) comes from `…_meta.csv` when present and usable.

`.h5.gz` files are decompressed once into the scan's `work_dir` (`<data dir>/work/pcam/<hash>/…h5`,
given by the ingest driver) unless an uncompressed copy lies next to them; those items point at the
decompressed file (an absolute location).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.datasets.base import (
    LABEL_BALANCE,
    ChartSpec,
    DatasetAdapter,
    FileRefused,
    Image2D,
    IngestError,
    ItemRef,
    LazyItems,
    OverlayLayer,
    PixelError,
    Problem,
    ProgressFn,
    ScanResult,
    SeriesRecord,
    View,
    Wording,
    no_progress,
)
from app.datasets.columns import ItemColumns
from app.datasets.declarations import LENGTH_ONLY_VIEWER, MODEL_DISAGREES
from app.datasets.pcam import files, pixels
from app.datasets.pcam import files as pcam_files
from app.datasets.pcam.meta import MetaColumns, read_meta_columns
from app.datasets.roots import DatasetFiles
from app.datasets.volumes import VolumeCache
from app.imaging.overlay import Box, Label

log = logging.getLogger(__name__)

LABEL_NAMES = {"0": "normal", "1": "tumor"}
LABEL_COLOURS = {"1": (90, 235, 90), "0": (90, 200, 255)}  # tumor green, normal light blue
CENTRE = (32, 32, 64, 64)  # x1, y1, x2, y2 (exclusive) of the 32×32 region that defines the label
MAX_LABEL_PROBLEMS = 100
MAX_BARS = 40  # per-slide label bars: the largest slides


class PCamAdapter(DatasetAdapter):
    kind = "pcam"
    export_formats = {"csv": "table", "coco": "coco"}  # docs/export.md
    facet_fields = ("split", "label", "slide")
    queue_suggestions = (MODEL_DISAGREES,)
    viewer = LENGTH_ONLY_VIEWER
    link_facets = {"slide": "series"}
    filter_fields = ()
    facet_labels = {"label": dict(LABEL_NAMES)}
    charts = (LABEL_BALANCE, ChartSpec("crosstab", "Label balance per slide (largest slides)", rows="slide",
                                       cols="label", limit=MAX_BARS))
    sheet_page_size = 64  # 1 M tiny patches: a grid page is one contact sheet (8 whole rows of 8)
    wording = Wording(series="slide")

    def detect(self, root: Path) -> bool:
        return pcam_files.has_pcam_files(root)

    def scan(self, root: Path, progress: ProgressFn = no_progress, work_dir: Path | None = None,
             files: DatasetFiles | None = None) -> ScanResult:
        access = files or DatasetFiles.confined_to(root)
        splits = pcam_files.split_files(root)
        if not any(s.x or s.y for s in splits):
            raise IngestError(f"{root}: no camelyonpatch_level_2_split_*_x.h5 / _y.h5 (or .h5.gz) files found")
        items = LazyItems()
        result = ScanResult(items=items, options={"splits": {}})
        slides: dict[str, None] = {}
        for split in splits:
            self._scan_split(root, split, work_dir, progress, result, slides, access)
        result.series = [SeriesRecord(wsi, None) for wsi in slides]
        if not result.items:
            reasons = "; ".join(str(p) for p in result.problems[:3])
            raise IngestError(f"{root}: no PCam split could be indexed ({reasons})", result.problems)
        return result

    # -- one split ----------------------------------------------------------------------------
    def _scan_split(self, root: Path, s: files.SplitFiles, cache: Path | None, progress: ProgressFn,
                    result: ScanResult, slides: dict[str, None], access: DatasetFiles) -> None:
        """One split's x/y (and meta) into lazily made items, or one Problem saying why the split is skipped.
        Copies decompressed for a split that is then rejected are deleted: nothing stays in the data dir."""
        made: list[Path] = []
        accepted = False
        try:
            accepted = self._index_split(root, s, cache, progress, result, slides, access, made)
        finally:
            if not accepted:
                for copy in made:
                    files.discard_copy(copy)

    def _index_split(self, root: Path, s: files.SplitFiles, cache: Path | None, progress: ProgressFn,
                     result: ScanResult, slides: dict[str, None], access: DatasetFiles, made: list[Path]) -> bool:
        import h5py

        problems = result.problems
        skipped = f"the {s.name} split is skipped"
        for role, other in (("x", "y"), ("y", "x")):
            if getattr(s, role) is None:
                present = str(getattr(s, other) or s.meta)
                problems.append(Problem(present, f"no {s.name} {role} file (camelyonpatch_level_2_split_{s.name}_"
                                                 f"{role}.h5 or .h5.gz) next to it; {skipped}"))
                return False
        x_rel, y_rel = s.x, s.y
        assert x_rel is not None and y_rel is not None, "both checked just above"
        paths: dict[str, Path] = {}
        sizes: dict[str, int] = {}
        limits = access.limits
        for role in ("x", "y"):
            rel: str = x_rel if role == "x" else y_rel
            try:
                path = access.path(rel)  # the real path, inside the data roots
            except FileRefused as exc:
                problems.append(Problem(exc.rel, f"{exc.reason}; {skipped}"))
                return False
            if rel.endswith(".gz"):
                if cache is None:
                    problems.append(Problem(rel, f"compressed, and no work folder to decompress it into was given; "
                                                 f"gunzip it next to itself; {skipped}"))
                    return False
                fresh = not files.cache_path(path, cache).is_file()
                try:
                    path = files.gunzip_cached(path, cache, progress, limits.decompressed_bytes)
                except files.GzipCorrupt as exc:
                    problems.append(Problem(rel, f"{exc}; {skipped}"))
                    return False
                except OSError as exc:
                    problems.append(Problem(rel, f"cannot decompress into the data dir's work folder "
                                                 f"({exc.strerror or type(exc).__name__}); {skipped}"))
                    return False
                if fresh:
                    made.append(path)
            paths[role] = path
            sizes[role] = path.stat().st_size
        try:
            with h5py.File(paths["y"], "r") as fy:
                labels, reason = files.read_y(fy, sizes["y"], limits.volume_voxels)
            if labels is None:
                problems.append(Problem(y_rel, f"{reason}; {skipped}", field="y"))
                return False
        except pixels.H5_ERRORS as exc:
            problems.append(Problem(y_rel, f"not a readable HDF5 file ({exc}); {skipped}"))
            return False
        try:
            with h5py.File(paths["x"], "r") as fx:
                info = files.check_x(fx, sizes["x"], limits.volume_voxels)
        except pixels.H5_ERRORS as exc:
            problems.append(Problem(x_rel, f"not a readable HDF5 file ({exc}); {skipped}"))
            return False
        if isinstance(info, str):
            problems.append(Problem(x_rel, f"{info}; {skipped}", field="x"))
            return False
        n = info.count
        if info.count != len(labels):
            problems.append(Problem(y_rel, f"{len(labels)} labels but {x_rel} has {info.count} patches; "
                                         f"{skipped}", field="y"))
            return False
        progress(f"reading {s.name} labels", n, n)
        meta: MetaColumns | None = None
        if s.meta:
            try:
                meta_path = access.path(s.meta)
            except FileRefused as exc:
                problems.append(Problem(exc.rel, f"{exc.reason}; patches indexed without meta"))
            else:
                meta, meta_problems = read_meta_columns(meta_path, s.meta, s.name, info.count)
                problems += meta_problems
        self._check_labels(s, labels, meta, problems)
        location = x_rel if not x_rel.endswith(".gz") else str(paths["x"])
        st = (root / x_rel).stat()
        self._record_layout(s, info, location, result)
        valid = (labels == 0) | (labels == 1)
        if meta is not None:
            kept = meta.wsi if valid.all() else [w for w, ok in zip(meta.wsi, valid.tolist(), strict=True) if ok]
            slides.update(dict.fromkeys(w for w in dict.fromkeys(kept) if w is not None))  # None: a row without meta
        source = f"{location}|{st.st_size}|{st.st_mtime_ns}"
        items = result.items
        assert isinstance(items, LazyItems), "scan() made it"
        items.add_columns(int(valid.sum()), lambda: self._columns(s, labels, meta, location, source))
        return True

    @staticmethod
    def _check_labels(s: files.SplitFiles, labels: np.ndarray, meta: MetaColumns | None,
                      problems: list[Problem]) -> None:
        y_rel, meta_rel = str(s.y), str(s.meta)
        bad = np.flatnonzero((labels != 0) & (labels != 1))
        for i in bad[:MAX_LABEL_PROBLEMS].tolist():
            problems.append(Problem(y_rel, f"label {labels[i]} is not 0 or 1; patch skipped", row=None, field="y",
                                    item=f"{s.name}/{i}"))
        if len(bad) > MAX_LABEL_PROBLEMS:
            problems.append(Problem(y_rel, f"{len(bad) - MAX_LABEL_PROBLEMS} more labels are not 0 or 1 "
                                         f"(first {MAX_LABEL_PROBLEMS} listed); those patches are skipped"))
        if meta is None or s.meta is None:  # meta is read only from s.meta
            return
        centre = meta.centre[:len(labels)]
        disagree = np.flatnonzero((centre >= 0) & (centre != labels[:len(centre)]))
        if len(disagree):
            first = ", ".join(f"{s.name}/{i}" for i in disagree[:5].tolist())
            problems.append(Problem(meta_rel, f"center_tumor_patch disagrees with the y label for {len(disagree)} "
                                            f"patches (e.g. {first}); the y label is used",
                                    field="center_tumor_patch"))

    @staticmethod
    def _record_layout(s: files.SplitFiles, info: files.XInfo, location: str, result: ScanResult) -> None:
        result.options["splits"][s.name] = {
            "x": location, "patches": info.count, "chunks": list(info.chunks) if info.chunks else None,
            "compression": info.compression, "slow_random_access": info.slow_random_access}
        if info.slow_random_access:
            log.warning("%s: x is stored in %s-compressed chunks of %s (%.1f MB): every patch read decompresses "
                        "a whole chunk; rewrite it with chunks of one patch for fast browsing",
                        s.x, info.compression, info.chunks, info.chunk_bytes / 1e6)

    @staticmethod
    def _columns(s: files.SplitFiles, labels: np.ndarray, meta: MetaColumns | None, location: str,
                 source: str) -> ItemColumns:
        """The split's valid rows as columns (`app.datasets.columns`): no Python object or loop per patch but the
        strings stored for it, made by C-level `map`s. The fingerprint is the row's own content after an 8-hex
        digest of the file's identity (no hash per row), hashed only when a long slide name makes it exceed 64."""
        split = s.name
        valid = (labels == 0) | (labels == 1)
        rows = np.flatnonzero(valid)
        every = len(rows) == len(labels)
        indices = rows.tolist()
        label_text = list(map(("0", "1").__getitem__, labels[rows].astype(np.int8).tolist()))
        prefix = hashlib.blake2b(f"{source}|{split}".encode(), digest_size=4).hexdigest()
        if meta is None:
            json: list[str] | str = "{}"
            wsi: list[str | None] | None = None
            fingerprints = list(map(f"{prefix}|".__add__, label_text))
        else:
            pick = (lambda col: col) if every else (lambda col: [col[i] for i in indices])
            json, wsi, tails = pick(meta.json), list(pick(meta.wsi)), list(pick(meta.fingerprint))
            if None in tails:
                fingerprints = [f"{prefix}|{lab}" if t is None else f"{prefix}|{lab}|{t}"
                                for lab, t in zip(label_text, tails, strict=True)]
            else:
                fingerprints = list(map(f"{prefix}|{{}}|{{}}".format, label_text, tails))
            if max(map(len, fingerprints), default=0) > 64:
                fingerprints = [fp if len(fp) <= 64 else hashlib.blake2b(fp.encode(), digest_size=16).hexdigest()
                                for fp in fingerprints]
        values: dict[str, list[Any]] = {
            "key": list(map(f"{split}/".__add__, map(str, indices))), "fingerprint": fingerprints,
            "label": label_text, "location_index": indices}
        constants: dict[str, Any] = {"kind": "patch", "location": location, "split": split, "width": files.PATCH,
                                     "height": files.PATCH, "depth": 1}
        for name, column in (("meta", json), ("series", wsi)):
            if isinstance(column, list):
                values[name] = column
            else:
                constants[name] = column
        return ItemColumns(len(indices), values, constants)

    # -- pixels -------------------------------------------------------------------------------
    def slices(self, item: ItemRef, plane: str) -> list[int]:
        if plane != "axial":
            raise ValueError(f"PCam patches are 2-D images; plane {plane!r} is not available")
        return []

    def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
        path = item.file(item.location)  # OutsideRoots (a PixelError) when it links outside the data roots
        return Image2D(pixels.read_patch(path, item.location_index), None, None)

    def read_images(self, items: Sequence[ItemRef]) -> list[Image2D | None]:
        """A page of patches (contact sheets): consecutive rows of one file in a single read."""
        by_file: dict[Path, list[int]] = {}
        for n, item in enumerate(items):
            by_file.setdefault(item.file(item.location), []).append(n)
        out: list[Image2D | None] = [None] * len(items)
        for path, positions in by_file.items():
            indices = [items[n].location_index for n in positions]
            if any(i is None for i in indices):
                raise PixelError("a patch item has no row index")
            patches = pixels.read_patches(path, [int(i) for i in indices if i is not None])
            for n, patch in zip(positions, patches, strict=True):
                out[n] = Image2D(patch, None, None)
        return out

    def overlay(self, item: ItemRef, annotations: Sequence[Any], view: View, image: Image2D,
                volumes: VolumeCache) -> OverlayLayer:
        """The centre 32×32 region outlined just outside its pixels, and the label's name, in the label's colour."""
        shapes: list[Any] = []
        corrected = [a for a in annotations if a.kind == "label" and a.label in LABEL_COLOURS]
        labels = [(a.label, (a.geometry or {}).get("bbox") or CENTRE) for a in corrected] or \
            ([(item.label, CENTRE)] if item.label in LABEL_COLOURS else [])
        for label, (x1, y1, x2, y2) in labels:
            colour = LABEL_COLOURS[label]
            shapes.append(Box(float(x1) - 1, float(y1) - 1, float(x2), float(y2), colour))
            shapes.append(Label(3.0, 12.0, LABEL_NAMES[label], colour))
        return OverlayLayer(shapes)

    def viewer_shapes(self, item: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The centre region that defines the label, outlined just outside its pixels (as `overlay` draws it)."""
        labels = [(a.get("label"), (a.get("geometry") or {}).get("bbox") or CENTRE)
                  for a in item.get("annotations") or () if a["kind"] == "label" and a.get("label") in LABEL_COLOURS]
        if not labels and item.get("label") in LABEL_COLOURS:
            labels = [(item["label"], CENTRE)]
        return [{"type": "box", "slice": None, "bbox": [x1 - 1, y1 - 1, x2, y2],
                 "colour": "rgb({},{},{})".format(*LABEL_COLOURS[label]), "text": LABEL_NAMES[label]}
                for label, (x1, y1, x2, y2) in labels]


__all__ = ["CENTRE", "LABEL_COLOURS", "LABEL_NAMES", "PCamAdapter"]
