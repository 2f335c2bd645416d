"""One VerSe case → one `ItemRecord`, from headers and the centroid JSON only (no CT voxels decoded).

The mask is decoded at ingest only when there is no usable centroid file, to list its vertebrae and
place their centres (measured: a 512×512×300 float64 mask costs ~2 s to decode slab by slab, and
np.unique on it another 6 s; for VerSe's 374 subjects with centroid files that would add 10–40 minutes
to an ingest that otherwise takes seconds). Masks larger than MASK_SCAN_MAX_VOXELS are not decoded.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from app.datasets.base import AnnotationRecord, FileRefused, ItemRecord, Problem
from app.datasets.roots import DatasetFiles
from app.datasets.verse import labels as vl
from app.datasets.verse.centroids import CentroidError, canonical_points, inside, read_centroids
from app.datasets.verse.layout import Case
from app.datasets.verse.nifti import Header, NiftiError, file_signature, label_centres, read_header
from app.imaging.presets import PRESETS

MASK_SCAN_MAX_VOXELS = 64 * 1024 * 1024
DEFAULT_PLANE = "sagittal"  # the spine's natural view
FORMAT_VERSION = "verse-1"  # part of every fingerprint: bump when what ingest stores changes


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


class CaseIndexer:
    """Builds the item of one case, appending every problem found to `problems`."""

    def __init__(self, root: Path, problems: list[Problem], files: DatasetFiles | None = None):
        self.root = root
        self.problems = problems
        self.files = files or DatasetFiles.confined_to(root)

    def confined(self, path: Path, case: Case, what: str) -> Path | None:
        """The real path of one of the case's files, or None (and a problem) when it links outside the roots."""
        try:
            return self.files.path(self.rel(path))
        except FileRefused as exc:
            self.problem(path, f"{exc.reason}; {what}", case)
            return None

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def problem(self, path: Path, message: str, case: Case, field: str | None = None) -> None:
        self.problems.append(Problem(self.rel(path), message, field=field, item=case.key))

    def item(self, case: Case) -> ItemRecord | None:
        first_problem = len(self.problems)
        real = self.confined(case.ct, case, "the CT is not indexed")
        if real is None:
            return None
        try:
            ct = read_header(real, self.files.limits)
        except NiftiError as exc:
            self.problem(case.ct, f"{exc}; the CT is not indexed", case)
            return None
        mask_header = self._mask(case, ct)
        centroids, source, hidden, direction = self._centroids(case, ct)
        if source is None and mask_header is not None:
            centroids, source = self._mask_centres(case, mask_header), "mask"
        annotations = []
        if mask_header is not None:
            assert case.mask is not None, "_mask() reads a header only from the case's mask"
            annotations.append(AnnotationRecord("mask", None, {"mask": self.rel(case.mask)},
                                                meta={"kind": "vertebra labels"}))
        for label in vl.spine_sorted(list(centroids)):
            meta = {"name": vl.name(label), "colour": vl.hex_colour(label)}
            if source == "mask":
                meta["derived_from"] = "mask"
            annotations.append(AnnotationRecord("centroid", str(label), {"point": centroids[label]}, meta=meta))
        present = vl.spine_sorted(list(centroids))
        names = [vl.name(n) for n in present]
        ni, nj, nk = ct.canonical_shape
        ground_truth = (["mask"] if mask_header is not None else []) + (["centroids"] if centroids else [])
        return ItemRecord(
            key=case.key, kind="volume", location=self.rel(case.ct),
            fingerprint=self._fingerprint(case, self.problems[first_problem:]),
            split=case.split, label=vl.span_text(present), width=ni, height=nj, depth=nk,
            spacing=[round(v, 6) for v in ct.canonical_spacing], window=list(PRESETS["bone"]),
            meta={
                "subject": case.subject, "session": case.session,
                "ct": None if case.label_only else self.rel(case.ct), "label_only": case.label_only,
                "mask": self.rel(case.mask) if case.mask else None, "mask_shown": mask_header is not None,
                "ctd": self.rel(case.ctd) if case.ctd else None, "ctd_direction": direction,
                "axcodes": list(ct.axcodes), "shape": list(ct.shape), "dtype": ct.dtype,
                "planes": {"axial": nk, "coronal": nj, "sagittal": ni}, "default_plane": DEFAULT_PLANE,
                "vertebrae": names, "vertebra_labels": present, "vertebrae_source": source,
                "hidden_vertebrae": [vl.name(n) for n in hidden],
                "other_masks": [self.rel(p) for p in case.other_masks],
            },
            patient=case.subject, study=f"{case.subject}_ses-{case.session}" if case.session else None,
            annotations=annotations,
            facets={"split": [case.split] if case.split else [], "region": vl.regions_of(present),
                    "vertebra": names, "vertebra_count": [str(len(present))] if source else [],
                    "ground_truth": ground_truth or ["none"]},
        )

    def _fingerprint(self, case: Case, problems: list[Problem]) -> str:
        """The files' signatures and what was wrong with them: a mask refused since the last ingest (a link now
        leading outside the data roots, same size and mtime) changes the item."""
        parts = [FORMAT_VERSION, case.key, "labels" if case.label_only else "ct",
                 *(file_signature(p) for p in (case.ct, case.mask, case.ctd)),
                 *(str(p) for p in problems)]
        return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()

    def _mask(self, case: Case, ct: Header) -> Header | None:
        if case.mask is None:
            extra = ""
            if case.other_masks:
                extra = (f" ({', '.join(p.name for p in case.other_masks)} is a sub-region mask, not the vertebra "
                         "mask)")
            self.problem(case.ct, f"no vertebra mask (…_seg-vert_msk.nii.gz) found{extra}; the CT is indexed "
                         "without a mask", case, field="mask")
            return None
        real = self.confined(case.mask, case, "the mask is not shown")
        if real is None:
            return None
        try:
            mask = read_header(real, self.files.limits)
        except NiftiError as exc:
            self.problem(case.mask, f"{exc}; the mask is not shown", case)
            return None
        if not ct.same_grid(mask):
            what = (f"shape {_dims(mask.shape)} vs the CT's {_dims(ct.shape)}" if mask.shape != ct.shape
                    else "same shape but a different affine (voxel → mm)")
            self.problem(case.mask, f"mask and CT are not on one voxel grid ({what}); the mask is not shown",
                         case, field="grid")
            return None
        return mask

    def _centroids(self, case: Case, ct: Header):
        """(label → canonical point, source or None, hidden labels, frame direction)."""
        if case.ctd is None:
            return {}, None, [], None
        real = self.confined(case.ctd, case, "centroids not used")
        if real is None:
            return {}, None, [], None
        try:
            ctd = read_centroids(real)
        except CentroidError as exc:
            self.problem(case.ctd, f"{exc}; centroids not used", case, field=exc.field)
            return {}, None, [], None
        for number, issue in ctd.issues:
            self.problem(case.ctd, f"entry {number}: {issue}", case, field="label")
        points = {}
        shape = ct.canonical_shape
        for label, point in canonical_points(ctd, ct).items():
            if inside(point, shape):
                points[label] = point
            else:
                x, y, z = ctd.points[label]
                self.problem(case.ctd, f"{vl.name(label)} (label {label}) at X={x:g} Y={y:g} Z={z:g} in the "
                             f"{''.join(ctd.direction)} frame lies outside the CT ({_dims(ct.shape)} voxels); skipped",
                             case, field="label")
        return points, "ctd", ctd.hidden, list(ctd.direction)

    def _mask_centres(self, case: Case, mask: Header) -> dict[int, list[float]]:
        path = case.mask
        assert path is not None, "called with the header _mask() read from the case's mask"
        voxels = math.prod(mask.shape)
        if voxels > MASK_SCAN_MAX_VOXELS:
            self.problem(path, f"no centroid file, and the mask ({voxels:,} voxels) is too large to decode "
                         "at ingest: its vertebrae are not listed (they are still drawn)", case)
            return {}
        real = self.confined(path, case, "its vertebrae are not listed")
        if real is None:
            return {}
        try:
            centres = label_centres(real, mask)
        except NiftiError as exc:
            self.problem(path, f"{exc}; its vertebrae are not listed", case)
            return {}
        unknown = sorted(n for n in centres if n not in vl.NAMES)
        if unknown:
            self.problem(path, f"labels {', '.join(map(str, unknown))} are not VerSe vertebra numbers (1–28); "
                         "not listed", case, field="label")
        return {n: c for n, (c, _count) in centres.items() if n in vl.NAMES}
