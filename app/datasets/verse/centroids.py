"""VerSe centroid files (`*_ctd.json`) and their coordinate frame.

The file is a JSON list: the first element names the frame, `{"direction": ["P", "I", "R"]}`, the rest
are `{"label": n, "X": x, "Y": y, "Z": z}` in *voxel* coordinates of that frame. The frame is the
volume's own voxel array re-ordered and flipped (nibabel's reorientation, no resampling) so that its
axes point to the named directions: X runs towards the first code, Y the second, Z the third. A flipped
axis maps index x to n − 1 − x (nibabel's convention; VerSe's own `reorient_centroids_to` uses n − x,
half a voxel's difference on average, which we do not copy). An optional `"zoom"` in the first element
gives the frame's voxel size in mm when it differs from the file's (TPTBox's POI files).

Labels 1–28 are vertebrae (1–7 C1–C7, 8–19 T1–T12, 20–25 L1–L6, 26 sacrum, 27 coccyx, 28 T13); TPTBox's
point encoding `subregion × 256 + vertebra` is accepted for the vertebral-body centroid (subregion 50);
other points (subregion landmarks, S2–S6) are skipped; a `nan` coordinate means "not visible".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from app.datasets.verse.labels import LABELS_BY_NAME, NAMES
from app.datasets.verse.nifti import Header

POINT_CODE = 256  # TPTBox: label = subregion × 256 + vertebra
BODY_SUBREGION = 50
AXIS_CODES = set("LRAPSI")


class CentroidError(Exception):
    """The centroid file cannot be used at all; the message says why (field, reason)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class CentroidFile:
    direction: tuple[str, str, str]
    points: dict[int, tuple[float, float, float]]  # vertebra label → (X, Y, Z) in the file's frame
    zoom: tuple[float, float, float] | None = None
    skipped: int = 0  # other points (subregion landmarks, non-vertebra labels)
    hidden: list[int] = field(default_factory=list)  # vertebrae whose coordinates are nan
    issues: list[tuple[int, str]] = field(default_factory=list)  # (entry number, what is wrong)


def _vertebra(label: object) -> int | None:
    """The vertebra number of a centroid entry's label, or None for another kind of point."""
    if isinstance(label, str):
        if label in LABELS_BY_NAME:
            return LABELS_BY_NAME[label]
        label = label.strip()
        if not label.lstrip("-").isdigit():
            raise ValueError(f"label {label!r} is neither a vertebra number nor a name")
        label = int(label)
    if isinstance(label, bool) or not isinstance(label, (int, float)) or not float(label).is_integer():
        raise ValueError(f"label {label!r} is not an integer")
    value = int(label)
    vertebra, subregion = value % POINT_CODE, value // POINT_CODE
    if vertebra in NAMES and subregion in (0, BODY_SUBREGION):
        return vertebra
    return None


def parse_centroids(text: str) -> CentroidFile:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CentroidError(f"not valid JSON ({exc})") from None
    if not isinstance(data, list) or not data:
        raise CentroidError("expected a JSON list whose first element is {\"direction\": [...]}")
    head = data[0]
    if not isinstance(head, dict) or "direction" not in head:
        raise CentroidError("the first element must be {\"direction\": [three axis codes]} naming the "
                            "coordinate frame; without it the centroids cannot be placed", field="direction")
    direction = head["direction"]
    if (not isinstance(direction, list | tuple) or len(direction) != 3
            or not all(isinstance(c, str) and c.upper() in AXIS_CODES for c in direction)):
        raise CentroidError(f"direction must be three axis codes from L/R, A/P, S/I, got {direction!r}",
                            field="direction")
    codes = tuple(c.upper() for c in direction)
    if sorted(_axis(c) for c in codes) != [0, 1, 2]:
        raise CentroidError(f"direction {list(direction)} does not name three different axes", field="direction")
    zoom = head.get("zoom")
    if zoom is not None:
        if (not isinstance(zoom, list) or len(zoom) != 3
                or not all(isinstance(z, int | float) and z > 0 for z in zoom)):
            raise CentroidError(f"zoom must be three positive numbers (mm), got {zoom!r}", field="zoom")
        zoom = tuple(float(z) for z in zoom)
    out = CentroidFile(codes, {}, zoom)
    for number, entry in enumerate(data[1:], 2):
        if not isinstance(entry, dict) or "label" not in entry:
            out.issues.append((number, f"entry {entry!r:.60} has no label"))
            continue
        try:
            vertebra = _vertebra(entry["label"])
        except ValueError as exc:
            out.issues.append((number, str(exc)))
            continue
        if vertebra is None:
            out.skipped += 1
            continue
        try:
            xyz = (float(entry["X"]), float(entry["Y"]), float(entry["Z"]))
        except (KeyError, TypeError, ValueError):
            out.issues.append((number, f"{NAMES[vertebra]} (label {entry['label']}) needs numeric X, Y and Z"))
            continue
        if not all(math.isfinite(v) for v in xyz):
            out.hidden.append(vertebra)
            continue
        if vertebra in out.points:
            out.issues.append((number, f"{NAMES[vertebra]} (label {vertebra}) is listed twice; the first is used"))
            continue
        out.points[vertebra] = xyz
    return out


def _axis(code: str) -> int:
    return {"L": 0, "R": 0, "A": 1, "P": 1, "S": 2, "I": 2}[code]


def read_centroids(path: Path) -> CentroidFile:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CentroidError("not valid JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise CentroidError(f"cannot be read ({exc.strerror or exc})") from None
    return parse_centroids(text)


def frame_to_canonical(direction: tuple[str, str, str], header: Header,
                       zoom: tuple[float, float, float] | None = None) -> np.ndarray:
    """4×4 matrix: voxel coordinates in the centroid frame → canonical RAS+ voxel coordinates."""
    frame = header.affine @ inv_ornt_aff(ornt_transform(io_orientation(header.affine), axcodes2ornt(direction)),
                                         header.shape)
    if zoom is not None:
        own = np.sqrt((frame[:3, :3] ** 2).sum(axis=0))
        frame = frame @ np.diag([*(np.asarray(zoom) / own), 1.0])
    return np.linalg.inv(header.canonical_affine) @ frame


def canonical_points(ctd: CentroidFile, header: Header) -> dict[int, list[float]]:
    """The file's vertebra centroids in canonical voxel coordinates [i, j, k] (rounded to 0.01 voxel)."""
    matrix = frame_to_canonical(ctd.direction, header, ctd.zoom)
    return {label: [round(float(v), 2) for v in (matrix @ np.array([*xyz, 1.0]))[:3]]
            for label, xyz in ctd.points.items()}


def inside(point: list[float], shape: tuple[int, int, int], margin: float = 0.5) -> bool:
    return all(-margin <= p <= n - 1 + margin for p, n in zip(point, shape, strict=True))
