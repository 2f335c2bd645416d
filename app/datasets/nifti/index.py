"""One image/label pair → one `ItemRecord`, from NIfTI headers plus the label map's voxels (to list its labels).

Headers are read with VerSe's reader (app.datasets.verse.nifti: gzip completeness checked, size limits before any
decoding). The label map is decoded slab by slab to list the labels present; the image is decoded only to choose a
display window when nothing says it is CT (dataset.json's channel 0, or a file name ending in `_ct`), and only when
small enough (MAX_DECODE_VOXELS): a float image with a narrow value range (a normalised MR) gets a display scale,
so its values survive the int16 the viewer and the cache hold.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from app.datasets.base import AnnotationRecord, FileRefused, ItemRecord, Problem
from app.datasets.nifti.colours import hex_colour
from app.datasets.nifti.layout import DatasetJson, Pair, describe
from app.datasets.roots import DatasetFiles
from app.datasets.verse.nifti import Header, NiftiError, file_signature, label_centres, read_header
from app.imaging.presets import PRESETS

MAX_DECODE_VOXELS = 64 * 1024 * 1024
FORMAT_VERSION = "nifti-1"  # part of every fingerprint: bump when what ingest stores changes
CT_WINDOW = PRESETS["abdomen"]
SPACING_BANDS = ((1.0, "≤1 mm"), (2.0, "1–2 mm"), (3.0, "2–3 mm"), (5.0, "3–5 mm"), (math.inf, ">5 mm"))
AIR_HU = -500.0  # an integer image whose 1st percentile is below this holds air in HU: a CT
NARROW_RANGE = 100.0  # a float image whose 1st–99th percentile span is below this is scaled for display


def dims(shape: tuple[int, ...] | list[int]) -> str:
    return "×".join(map(str, shape))


def spacing_band(spacing: tuple[float, float, float]) -> str:
    """The band of the coarsest voxel side (slice thickness, usually)."""
    coarsest = max(spacing)
    return next(name for upper, name in SPACING_BANDS if coarsest <= upper + 1e-6)


def label_name(number: int, described: DatasetJson) -> str:
    return described.labels.get(number) or f"label {number}"


class PairIndexer:
    """Builds the item of one pair, appending every problem found to `problems`."""

    def __init__(self, root: Path, problems: list[Problem], described: DatasetJson,
                 files: DatasetFiles | None = None):
        self.root = root
        self.problems = problems
        self.described = described
        self.files = files or DatasetFiles.confined_to(root)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def problem(self, path: Path, message: str, pair: Pair, field: str | None = None) -> None:
        self.problems.append(Problem(self.rel(path), message, field=field, item=pair.key))

    def header(self, path: Path, pair: Pair, consequence: str) -> tuple[Path, Header] | None:
        try:
            real = self.files.path(self.rel(path))
            return real, read_header(real, self.files.limits)
        except FileRefused as exc:
            self.problem(path, f"{exc.reason}; {consequence}", pair)
        except NiftiError as exc:
            self.problem(path, f"{exc}; {consequence}", pair)
        return None

    def item(self, pair: Pair) -> ItemRecord | None:
        first_problem = len(self.problems)
        found = self.header(pair.image, pair, "not indexed")
        if found is None:
            return None
        image_path, image = found
        try:
            window, scale, window_source = self._window(pair, image_path, image)
        except _Unreadable:
            return None
        labels, present = self._labels(pair, image)
        names = [label_name(n, self.described) for n in present]
        ni, nj, nk = image.canonical_shape
        sx, sy, sz = (round(v, 6) for v in image.canonical_spacing)
        spacing = (sx, sy, sz)
        annotations = []
        if labels is not None:
            annotations.append(AnnotationRecord("mask", None, {"mask": self.rel(labels)},
                                                meta={"kind": "label map", "labels": present}))
        meta: dict[str, Any] = {
            **describe(pair, self.root), "label_shown": labels is not None, "labels": names,
            "label_values": present, "label_colours": [hex_colour(n) for n in present],
            "axcodes": list(image.axcodes), "shape": list(image.shape),
            "dtype": image.dtype, "planes": {"axial": nk, "coronal": nj, "sagittal": ni},
            "default_plane": "axial", "window_source": window_source,
            "channel_names": [self.described.channels.get(n, f"channel {n}")
                              for n in range(1 + len(pair.channels))],
        }
        if scale != 1.0:
            meta["display_scale"] = scale
        # CT when the window came from CT evidence; else what dataset.json calls channel 0, else "OT" (other): the
        # viewer says HU and offers the CT presets only for CT
        named = self.described.channels.get(0, "").strip().upper()
        meta["modality"] = "CT" if window_source.startswith("CT") else (named or "OT")
        return ItemRecord(
            key=pair.key, kind="volume", location=self.rel(pair.image),
            fingerprint=self._fingerprint(pair, self.problems[first_problem:]),
            split=pair.split, label=", ".join(names) or None, width=ni, height=nj, depth=nk,
            spacing=list(spacing), window=list(window) if window else None, meta=meta,
            annotations=annotations,
            facets={"split": [pair.split] if pair.split else [], "has_labels": ["yes" if labels else "no"],
                    "labels": names, "shape": [dims((ni, nj, nk))], "spacing_band": [spacing_band(spacing)],
                    "channels": [str(1 + len(pair.channels))]},
        )

    def _fingerprint(self, pair: Pair, problems: list[Problem]) -> str:
        parts = [FORMAT_VERSION, pair.key, *(file_signature(p) for p in (pair.image, pair.label, *pair.channels)),
                 file_signature(self.described.path), *(str(p) for p in problems)]
        return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()

    def _labels(self, pair: Pair, image: Header) -> tuple[Path | None, list[int]]:
        """The label map shown (None when there is none or it cannot be used) and the label values in it."""
        for other in pair.other_labels:
            self.problem(other, f"a second label map for this image ({self.rel(pair.label or other)} is used); "
                         "not shown", pair, field="label")
        if pair.label is None:
            if pair.label_expected:
                self.problem(pair.image, "no label map (expected one of the same case name in labelsTr/); "
                             "indexed without labels", pair, field="label")
            return None, []
        found = self.header(pair.label, pair, "the label map is not shown")
        if found is None:
            return None, []
        real, header = found
        if not image.same_grid(header):
            what = (f"shape {dims(header.shape)} vs the image's {dims(image.shape)}" if header.shape != image.shape
                    else "same shape but a different affine (voxel → mm)")
            self.problem(pair.label, f"label map and image are not on one voxel grid ({what}); the label map is "
                         "not shown", pair, field="grid")
            return None, []
        if math.prod(header.shape) > MAX_DECODE_VOXELS:
            self.problem(pair.label, f"the label map ({math.prod(header.shape):,} voxels) is too large to decode at "
                         "ingest: its labels are not listed (it is still drawn)", pair)
            return pair.label, []
        try:
            centres = label_centres(real, header)
        except NiftiError as exc:
            self.problem(pair.label, f"{exc}; the label map is not shown", pair)
            return None, []
        return pair.label, sorted(centres)

    def _window(self, pair: Pair, path: Path, header: Header) -> tuple[tuple[float, float] | None, float, str]:
        """(display window, display scale, where the window came from); _Unreadable when the voxels cannot be
        decoded (the problem is recorded)."""
        modality = self.described.channels.get(0, "")
        name = pair.image.name.lower()
        if modality.upper() == "CT" or name.endswith(("_ct.nii.gz", "_ct.nii")):
            return CT_WINDOW, 1.0, f"CT ({'dataset.json' if modality else 'file name'}): abdomen window"
        if math.prod(header.shape) > MAX_DECODE_VOXELS:
            return None, 1.0, "default (too large to measure at ingest)"
        import nibabel as nib

        try:
            loaded: Any = nib.load(str(path))
            raw = np.asanyarray(loaded.dataobj)
        except Exception as exc:  # nibabel raises many kinds (EOFError, zlib.error, ValueError, …)
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            self.problem(pair.image, f"voxel data cannot be read ({text}); not indexed", pair)
            raise _Unreadable from None
        values = (raw[..., 0] if raw.ndim == 4 else raw).astype(np.float32)
        low, high = (float(v) for v in np.nanpercentile(values, (1, 99)))
        scale = 1.0
        if header.dtype[0] in "iu" and low < AIR_HU:
            return CT_WINDOW, 1.0, "CT (air at −1000 HU in the image): abdomen window"
        if header.dtype[0] == "f" and 0 < high - low < NARROW_RANGE:
            scale = round(1000.0 / (high - low), 6)
            low, high = low * scale, high * scale
        if not high > low:
            high = low + 1.0
        return (round(low, 3), round(high, 3)), scale, "the image's 1st–99th percentile"


class _Unreadable(Exception):
    """The image's voxels cannot be decoded (its problem is already recorded)."""
