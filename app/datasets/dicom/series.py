"""Series → stacks of slices: grouping, ordering along the slice normal, and the geometry (affine).

A stack is what one item shows: the slices of one series that share a size and orientation, sorted
by position along their normal (normal = row cosine × column cosine of ImageOrientationPatient,
turned so that its main component points to R, A or S in RAS; for an axial series that is
inferior first). Slices that already lie along the normal at an even gap are shown as stored; a gantry tilt
or uneven gaps get a straight, evenly spaced grid (regrid.py) that the volume is resampled into when viewed.
Enhanced multi-frame files are stacks of their own, frames sorted the same way. A series whose files differ
in size/orientation is split into stacks; one whose slices repeat a position is split by echo / temporal
position / acquisition number when that separates them, otherwise skipped.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from app.datasets.base import Problem
from app.datasets.dicom.headers import Header
from app.datasets.dicom.regrid import LPS_TO_RAS, Grid, oriented_normal, plan

DUPLICATE_MM = 0.01  # positions closer than this along the normal are the same slice position
IDENTITY_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass
class Stack:
    """The ordered slices of one item and their geometry."""

    headers: list[Header]  # in slice order (one header for a multi-frame file)
    frames: list[int] | None  # frame order inside a multi-frame file
    affine: np.ndarray  # RAS mm of voxel (column, row, slice)
    spacing: tuple[float, float, float]  # (column mm, row mm, slice mm)
    orientation: str  # axial | coronal | sagittal | oblique | unknown
    notes: list[str] = field(default_factory=list)
    key: str = ""
    grid: Grid | None = None  # the straightened, even grid when the slices are tilted or unevenly spaced
    ipps: list[tuple[float, ...]] = field(default_factory=list)  # ImagePositionPatient of each slice, stack order
    iop: tuple[float, ...] = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        """(columns, rows, slices) of the volume as shown: the grid's when there is one, else as acquired."""
        h = self.headers[0]
        return self.grid.shape if self.grid is not None else (h.cols, h.rows, self.depth)

    @property
    def depth(self) -> int:
        return len(self.frames) if self.frames is not None else len(self.headers)

    def describe(self) -> str:
        h = self.headers[0]
        what = f"{h.frames}-frame file" if self.frames is not None else f"{self.depth} slice(s)"
        return f"{self.key}: {what}, {h.cols}×{h.rows} px, {self.orientation}"


def orientation_name(normal: np.ndarray) -> str:
    axis = int(np.argmax(np.abs(normal)))
    name = ("sagittal", "coronal", "axial")[axis]
    return name if abs(normal[axis]) >= 0.8 else f"oblique ({name})"


def build_stacks(headers: list[Header]) -> tuple[list[Stack], list[Problem]]:
    """Every series' stacks (keys assigned: the first stack of a series keeps its SeriesInstanceUID)."""
    problems = fill_missing_uids(headers)
    by_series: dict[str, list[Header]] = defaultdict(list)
    for h in headers:
        by_series[h.series_uid].append(h)
    stacks: list[Stack] = []
    for uid, members in by_series.items():
        parts = _series_stacks(uid, members, problems)
        for n, stack in enumerate(parts, 1):
            stack.key = uid if n == 1 else f"{uid}#{n}"
        if len(parts) > 1:
            problems.append(Problem(parts[0].headers[0].rel, (
                f"series {uid} holds {len(parts)} separate stacks of images (different size, orientation or "
                f"multi-frame files); split into one item each: " + "; ".join(s.describe() for s in parts)),
                item=uid))
        stacks += parts
    return stacks, problems


def fill_missing_uids(headers: list[Header]) -> list[Problem]:
    """Anonymisers sometimes blank the UIDs: files without a Study/SeriesInstanceUID are grouped by folder,
    frame of reference, modality and series number/description, under a readable stand-in key."""
    problems: list[Problem] = []
    studies: dict[tuple, str] = {}
    series: dict[tuple, list[Header]] = defaultdict(list)
    for h in headers:
        folder = posixpath.dirname(h.rel)
        info = h.info
        if not h.study_uid:
            parts = (h.patient_id, info.get("study_date"), info.get("study_id"), info.get("accession"))
            study_key = parts if any(parts) else (folder,)
            h.study_uid = studies.setdefault(study_key,
                                             "study-" + ("-".join(p for p in study_key if p) or "in-root-folder"))
        if not h.series_uid:
            series[(folder, h.study_uid, info.get("frame_of_reference"), h.modality, info.get("series_number"),
                    info.get("series_description"))].append(h)
    used: set[str] = set()
    for (folder, _study, _for, modality, number, _desc), members in series.items():
        base = (f"{folder}/" if folder else "") + modality + (f"-{number}" if number else "")
        key, n = base, 1
        while key in used:
            n += 1
            key = f"{base}#{n}"
        used.add(key)
        for h in members:
            h.series_uid = key
        problems.append(Problem(members[0].rel, (
            f"{len(members)} file(s) have no SeriesInstanceUID (anonymised?): grouped by folder, frame of "
            f"reference, modality and series number as series {key!r}"), item=key))
    return problems


def _series_stacks(uid: str, members: list[Header], problems: list[Problem]) -> list[Stack]:
    singles: list[Header] = []
    seen: dict[str, str] = {}
    for h in sorted(members, key=lambda h: h.rel):
        if h.frames == 1 and h.sop_uid and h.sop_uid in seen:
            problems.append(Problem(h.rel, f"same SOPInstanceUID as {seen[h.sop_uid]} (a duplicate copy); skipped",
                                    item=uid))
            continue
        seen[h.sop_uid] = h.rel
        if h.frames == 1:
            singles.append(h)
    groups: dict[tuple, list[Header]] = defaultdict(list)
    loose: list[Header] = []
    for h in singles:
        if h.positions and h.iop:
            spacing = tuple(round(v, 3) for v in h.pixel_spacing) if h.pixel_spacing else None
            groups[(h.rows, h.cols, tuple(round(v, 3) for v in h.iop), spacing)].append(h)
        else:
            loose.append(h)
    parts: list[Stack] = []
    for group in sorted(groups.values(), key=len, reverse=True):
        parts += _positioned(uid, group, problems)
    for h in sorted((h for h in members if h.frames > 1), key=lambda h: (h.instance or 0, h.rel)):
        if (stack := _multiframe(uid, h, problems)) is not None:
            parts.append(stack)
    for h in sorted(loose, key=lambda h: (h.instance or 0, h.rel)):
        stack = _make([h], None, [(0.0, 0.0, 0.0)], IDENTITY_IOP, h)
        stack.orientation = "unknown"
        stack.notes.append("no ImagePositionPatient/ImageOrientationPatient: shown as stored, without "
                           "patient orientation")
        parts.append(stack)
    return parts


def _position(h: Header) -> tuple[float, float, float]:
    """ImagePositionPatient of a slice in a positioned group (`_series_stacks` groups only slices with one)."""
    assert h.positions, f"{h.rel} has no ImagePositionPatient"
    return h.positions[0]


def _orientation(h: Header) -> tuple[float, ...]:
    """ImageOrientationPatient of a slice in a positioned group (`_series_stacks` groups only slices with one)."""
    assert h.iop, f"{h.rel} has no ImageOrientationPatient"
    return h.iop


def _duplicates(headers: list[Header], normal: np.ndarray) -> tuple[Header, Header, float] | None:
    pos = sorted((float(np.dot(_position(h), normal)), h.rel, i) for i, h in enumerate(headers))
    for (p0, _, i0), (p1, _, i1) in zip(pos, pos[1:], strict=False):
        if p1 - p0 < DUPLICATE_MM:
            return headers[i0], headers[i1], p0
    return None


def _positioned(uid: str, group: list[Header], problems: list[Problem]) -> list[Stack]:
    normal = oriented_normal(_orientation(group[0]))
    dup = _duplicates(group, normal)
    if dup is None:
        group = sorted(group, key=lambda h: (float(np.dot(_position(h), normal)), h.instance or 0))
        return [_make(group, None, [_position(h) for h in group], _orientation(group[0]), group[0])]
    by_tags: dict[tuple, list[Header]] = defaultdict(list)
    for h in group:
        by_tags[h.stack_tags].append(h)
    if len(by_tags) > 1 and all(_duplicates(g, normal) is None for g in by_tags.values()):
        return [s for g in sorted(by_tags.values(), key=len, reverse=True) for s in _positioned(uid, g, problems)]
    a, b, p = dup
    problems.append(Problem(a.rel, (
        f"{a.rel} and {b.rel} are both at {p:.2f} mm along the slice normal (repeated positions that no echo, "
        f"temporal position or acquisition number separates); these {len(group)} slices of series {uid} are "
        "skipped"), item=uid))
    return []


def _multiframe(uid: str, h: Header, problems: list[Problem]) -> Stack | None:
    if not (h.positions and h.iop):
        step = h.spacing_between or h.slice_thickness or 1.0
        stack = _make([h], list(range(h.frames)), [(0.0, 0.0, f * step) for f in range(h.frames)], IDENTITY_IOP, h)
        stack.orientation = "unknown"
        stack.notes.append("no per-frame positions: frames in file order, shown without patient orientation")
        return stack
    normal = oriented_normal(h.iop)
    proj = [float(np.dot(p, normal)) for p in h.positions]
    order = sorted(range(h.frames), key=lambda f: (proj[f], f))
    for f0, f1 in zip(order, order[1:], strict=False):
        if proj[f1] - proj[f0] < DUPLICATE_MM:
            problems.append(Problem(h.rel, (
                f"frames {f0 + 1} and {f1 + 1} of this {h.frames}-frame file are at the same position "
                "(a temporal or multi-echo acquisition); not a volume, skipped"), item=uid))
            return None
    return _make([h], order, [h.positions[f] for f in order], h.iop, h)


def _make(headers: list[Header], frames: list[int] | None, ipps: list, iop: tuple[float, ...], ref: Header) -> Stack:
    """Geometry of slices already in order: affine columns = row cosine × column spacing, column cosine ×
    row spacing, normal × slice spacing (the step along the normal), origin = the first slice. Tilted or
    unevenly spaced slices get the straightened grid's affine instead (regrid.plan)."""
    normal = oriented_normal(iop)
    points = np.asarray(ipps, dtype=float)
    proj = points @ normal
    notes: list[str] = []
    if ref.pixel_spacing:
        row_mm, col_mm = ref.pixel_spacing
    else:
        row_mm = col_mm = 1.0
        notes.append("no PixelSpacing: 1 mm pixels assumed")
    grid = plan(points, iop, normal, (row_mm, col_mm), (ref.cols, ref.rows)) if len(points) > 1 else None
    if grid is not None:
        if grid.tilt > 0.1:
            notes.append(f"slice positions are not along the slice normal (gantry tilt of about {grid.tilt:.1f}°): "
                         "straightened (tilt-corrected)")
        if grid.uneven:
            notes.append(f"slice spacing varies from {grid.gaps[0]:.3g} to {grid.gaps[1]:.3g} mm (missing slices?): "
                         "slices are placed at their true positions")
        notes.append(f"{grid.label}: coronal and sagittal planes and measurements are in true mm; "
                     f"{grid.shape[2]} slices of {grid.shape[0]}×{grid.shape[1]} px")
        return Stack(headers, frames, grid.affine, grid.spacing, orientation_name(normal), notes, grid=grid,
                     ipps=[tuple(map(float, p)) for p in points], iop=tuple(iop))
    step = float(np.median(np.diff(proj))) if len(points) > 1 else abs(ref.spacing_between or ref.slice_thickness
                                                                         or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = np.asarray(iop[:3]) * col_mm
    lps[:3, 1] = np.asarray(iop[3:]) * row_mm
    lps[:3, 2] = normal * step
    lps[:3, 3] = points[0]
    return Stack(headers, frames, LPS_TO_RAS @ lps, (col_mm, row_mm, abs(step)), orientation_name(normal), notes)
