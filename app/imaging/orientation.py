"""Orientation markers: which patient direction each edge of a displayed plane faces, from the volume's affine.

The viewer cuts its planes from the canonical volume (the file's axes reordered and flipped to the closest
RAS+, app.imaging.volume), so for a file whose axes run along the patient's, every plane shows the textbook
radiological letters (axial: R left, L right, A top, P bottom) whatever order or sign the file stored them in.
A file whose axes are oblique to the patient keeps that obliquity after the reordering: a screen edge then points
between two or three patient directions and its marker names them, strongest first ("RA" for an axial image
rotated 30° about the patient's long axis), as PACS viewers do. So the letters are computed from the affine's
direction cosines, never from the plane's name.

World coordinates are nibabel's RAS+ millimetres: +x the patient's right (R), +y anterior (A), +z superior (S).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# letter for the negative and the positive direction of each world axis (RAS+)
AXIS_LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))
# a world axis joins a marker when the edge's direction cosine along it reaches this (the direction is more
# than ~14.5° off the plane of the other two axes): slight tilts keep single letters, real obliques get two
SECONDARY_COSINE = 0.25
EDGES = ("left", "right", "top", "bottom")
# canonical voxel axis (0 = i, 1 = j, 2 = k) and sign that each edge of a plane's display image points along,
# as app.imaging.volume.extract_plane lays the planes out (columns run towards −i or −j, rows towards −k or −j)
PLANE_EDGES: dict[str, dict[str, tuple[int, int]]] = {
    "axial": {"left": (0, 1), "right": (0, -1), "top": (1, 1), "bottom": (1, -1)},
    "coronal": {"left": (0, 1), "right": (0, -1), "top": (2, 1), "bottom": (2, -1)},
    "sagittal": {"left": (1, 1), "right": (1, -1), "top": (2, 1), "bottom": (2, -1)},
}


def direction_letters(vector: Sequence[float] | np.ndarray) -> str:
    """Patient-direction letters of a world (RAS+) direction, strongest component first: (1, 0, 0) → "R",
    (0.87, 0.5, 0) → "RA", (0, 0, 0) → "" (no direction)."""
    v = np.asarray(vector, dtype=float)
    length = float(np.linalg.norm(v))
    if not np.isfinite(length) or length == 0:
        return ""
    v = v / length
    order = np.argsort(-np.abs(v), kind="stable")
    return "".join(AXIS_LETTERS[a][int(v[a] > 0)] for a in order if abs(v[a]) >= SECONDARY_COSINE)


def canonical_directions(affine: Any) -> np.ndarray:
    """3×3 matrix whose columns are the world directions (RAS+) of the canonical voxel axes i, j, k: the file's
    columns of the affine reordered and flipped exactly as app.imaging.volume.to_canonical reorders the array."""
    from nibabel.orientations import io_orientation  # as app.imaging.volume: only volumes pay its import

    a = np.asarray(affine, dtype=float)
    if a.shape not in ((4, 4), (3, 4)) or not np.all(np.isfinite(a[:3, :3])):
        raise ValueError(f"an affine must be a finite 4×4 matrix, got shape {a.shape}")
    rotation = a[:3, :3]
    out = np.zeros((3, 3))
    for file_axis, (target, flip) in enumerate(io_orientation(a)):
        if np.isnan(target):
            raise ValueError("the affine has a zero (degenerate) axis")
        out[:, int(target)] = rotation[:, file_axis] * flip
    return out


def plane_markers(affine: Any, plane: str) -> dict[str, str]:
    """{edge: letters} for the four edges (left, right, top, bottom) of `plane`'s display image."""
    directions = canonical_directions(affine)
    return {edge: direction_letters(directions[:, axis] * sign) for edge, (axis, sign) in PLANE_EDGES[plane].items()}


def all_markers(affine: Any) -> dict[str, dict[str, str]]:
    """plane_markers for the three planes."""
    return {plane: plane_markers(affine, plane) for plane in PLANE_EDGES}
