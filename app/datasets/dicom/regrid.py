"""Tilted or unevenly spaced slices → a straight, evenly spaced grid (the geometry a DICOM series is shown in).

Why: a CT acquired with gantry tilt has slices whose positions step sideways (along the column direction) as
well as along the slice normal, and a series with missing or irregular slices has gaps of different sizes.
Stacking such slices as if they were an orthogonal, evenly spaced volume shears the coronal and sagittal
planes and puts every slice at the median gap, so distances measured there are wrong (issue 14).

What (units: mm in patient LPS, as ImagePositionPatient; pixels of the acquired images): every slice k is
placed by its offset from the first slice, split along the row cosine r, the column cosine c and the slice
normal n. The output grid keeps r and c (pixel size unchanged) and steps along n evenly from the first slice
to the last, at the slices' gap when it is even, else at the largest step not above the smallest gap (like
dcm2niix's `_Tilt` and `_Eq` outputs; its `_Eq` steps at exactly the smallest gap and may end before the last
slice, ours ends on it). The in-plane extent grows by whole pixels so every shifted slice fits (dcm2niix does
the same: 512 rows become 600 for an 18.5° tilt over 54 slices). Output slice m at position s lies between
acquired slices k and k+1: each is shifted in its plane by its own offset (linear interpolation) and the two
are blended linearly by distance. Outside every acquired image: the series' lowest value (air for CT).

A series whose slices already lie along the normal at an even gap gets no grid (`plan` returns None) and is
shown as stored, pixel for pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.datasets.base import PixelError, TooLarge
from app.datasets.roots import DatasetFiles
from app.datasets.volumes import Volume
from app.imaging.volume import to_canonical, voxel_spacing

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
TILT_MIN_MM, TILT_MIN_DEG = 0.05, 0.1  # sideways travel below both is not a tilt (rounding of positions)
UNEVEN_MIN_MM, UNEVEN_FRACTION = 0.01, 0.01  # gap spread above both (mm, fraction of the median gap) is uneven
MAX_UPSAMPLE = 2  # an even grid holds at most this many times the acquired slices, as dcm2niix's (one tiny gap
# would otherwise mean 50× the memory)
EDGE = 1e-3  # px: offsets this close to a whole pixel count as whole (positions are stored rounded)


def oriented_normal(iop: tuple[float, ...]) -> np.ndarray:
    """Slice normal (LPS) turned so that its largest RAS component is positive."""
    normal = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
    norm = float(np.linalg.norm(normal))
    normal = normal / norm if norm > 1e-6 else np.array([0.0, 0.0, 1.0])
    ras = normal * [-1.0, -1.0, 1.0]
    return -normal if ras[int(np.argmax(np.abs(ras)))] < 0 else normal


@dataclass(frozen=True)
class Grid:
    """Where the straightened volume's voxels are, and what the viewer says about it."""

    affine: np.ndarray  # RAS mm of voxel (column, row, slice) of the output grid
    shape: tuple[int, int, int]  # (columns, rows, slices)
    spacing: tuple[float, float, float]  # (column mm, row mm, slice mm)
    positions: np.ndarray  # acquired slices along the normal, mm from the first (ascending)
    offsets: np.ndarray  # acquired slices' in-plane offsets (columns px, rows px) from the first, (k, 2)
    low: tuple[int, int]  # output pixel (0, 0) is acquired pixel (low[0], low[1]) of the first slice
    tilt: float  # degrees between the stacking direction and the slice normal
    gaps: tuple[float, float]  # smallest and largest gap between acquired slices along the normal, mm
    uneven: bool

    @property
    def label(self) -> str:
        """The geometry in words, as the viewer and the notes show it."""
        what = []
        if self.tilt > TILT_MIN_DEG:
            what.append(f"Tilt-corrected {self.tilt:.1f}°")
        if self.uneven:
            what.append(f"uneven slice gaps {self.gaps[0]:.3g}–{self.gaps[1]:.3g} mm")
        head = ", ".join(what) or "Straightened"
        return f"{head[0].upper()}{head[1:]}, resampled to even {self.spacing[2]:.3g} mm spacing"


def plan(ipps: np.ndarray | Sequence[Sequence[float]], iop: Sequence[float], normal: np.ndarray,
         pixel: tuple[float, float], size: tuple[int, int]) -> Grid | None:
    """The straight, even grid for slices at `ipps` (stack order, ascending along `normal`), or None when
    they are already straight and evenly spaced. `pixel` = (row mm, column mm), `size` = (columns, rows)."""
    if len(ipps) < 2:
        return None
    points = np.asarray(ipps, dtype=float)
    r, c, n = np.asarray(iop[:3], float), np.asarray(iop[3:6], float), np.asarray(normal, float)
    row_mm, col_mm = pixel
    travel = points - points[0]
    positions = travel @ n
    offsets = np.stack([travel @ r / col_mm, travel @ c / row_mm], axis=1)
    along = float(positions[-1])
    across = float(np.linalg.norm(travel[-1] - along * n))
    tilt = math.degrees(math.atan2(across, abs(along)))
    tilted = across > TILT_MIN_MM and tilt > TILT_MIN_DEG
    gaps = np.diff(positions)
    median = float(np.median(gaps))
    uneven = float(gaps.max() - gaps.min()) > max(UNEVEN_MIN_MM, UNEVEN_FRACTION * median)
    if not (tilted or uneven) or float(gaps.min()) <= 0:
        return None
    steps = len(points) - 1
    if uneven:
        steps = min(math.ceil(along / float(gaps.min()) - EDGE), MAX_UPSAMPLE * len(points) - 1)
    step = along / steps
    low = (math.floor(float(offsets[:, 0].min()) + EDGE), math.floor(float(offsets[:, 1].min()) + EDGE))
    high = (math.ceil(float(offsets[:, 0].max()) - EDGE), math.ceil(float(offsets[:, 1].max()) - EDGE))
    shape = (size[0] + high[0] - low[0], size[1] + high[1] - low[1], steps + 1)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = r * col_mm, c * row_mm, n * step
    lps[:3, 3] = points[0] + low[0] * col_mm * r + low[1] * row_mm * c
    return Grid(LPS_TO_RAS @ lps, shape, (col_mm, row_mm, step), positions, offsets, low, tilt,
                (float(gaps.min()), float(gaps.max())), uneven)


def translate(image: np.ndarray, dy: float, dx: float, shape: tuple[int, int], fill: float) -> np.ndarray:
    """`out[y, x] = image[y + dy, x + dx]` (bilinear, `fill` outside the image) as float32 of `shape`: a shift
    is four weighted slices of a padded copy, several times faster than a general resampler."""
    iy, ix = math.floor(dy), math.floor(dx)
    fy, fx = np.float32(dy - iy), np.float32(dx - ix)
    canvas = np.full((shape[0] + 1, shape[1] + 1), fill, np.float32)
    y0, x0 = max(0, -iy), max(0, -ix)  # canvas[y, x] = image[y + iy, x + ix]
    y1, x1 = min(canvas.shape[0], image.shape[0] - iy), min(canvas.shape[1], image.shape[1] - ix)
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = image[y0 + iy:y1 + iy, x0 + ix:x1 + ix]
    top = canvas[:-1, :-1] * (1 - fx) + canvas[:-1, 1:] * fx if fx else canvas[:-1, :-1].copy()
    out = top * (1 - fy) + (canvas[1:, :-1] * (1 - fx) + canvas[1:, 1:] * fx) * fy if fy else top
    # beyond the outermost pixel centres is outside the image (not a blend with `fill`)
    out[:max(0, math.ceil(-dy - EDGE))] = fill
    out[max(0, math.floor(image.shape[0] - 1 - dy + EDGE) + 1):] = fill
    out[:, :max(0, math.ceil(-dx - EDGE))] = fill
    out[:, max(0, math.floor(image.shape[1] - 1 - dx + EDGE) + 1):] = fill
    return out


def straighten(stack: np.ndarray, grid: Grid) -> np.ndarray:
    """Acquired slices (slices × rows × cols, int16, stack order) → the grid's voxels (columns × rows ×
    slices, int16): each output slice from its two neighbouring acquired slices, each shifted by its own
    in-plane offset, blended by distance."""
    cols, rows, count = grid.shape
    fill = float(stack.min()) if stack.size else 0.0
    out = np.empty((count, rows, cols), np.int16)
    shifted: dict[int, np.ndarray] = {}

    def moved(k: int) -> np.ndarray:
        if k not in shifted:
            for old in [key for key in shifted if key < k - 1]:
                del shifted[old]
            dx, dy = grid.low[0] - grid.offsets[k, 0], grid.low[1] - grid.offsets[k, 1]
            shifted[k] = translate(stack[k], dy, dx, (rows, cols), fill)
        return shifted[k]

    last = len(grid.positions) - 1
    step = grid.spacing[2]
    for m in range(count):
        s = m * step
        k = min(int(np.searchsorted(grid.positions, s, side="right")) - 1, last - 1)
        k = max(k, 0)
        span = float(grid.positions[k + 1] - grid.positions[k])
        w = min(max((s - float(grid.positions[k])) / span, 0.0), 1.0)
        if w < 1e-6:
            values = moved(k)
        elif w > 1 - 1e-6:
            values = moved(k + 1)
        else:
            values = (1 - w) * moved(k) + w * moved(k + 1)
        out[m] = np.rint(values)
    return out.transpose(2, 1, 0)


def grid_of(spec: dict, size: tuple[int, int]) -> Grid:
    """The grid an item was indexed with, from its stored `meta["regrid"]` (slice positions, orientation,
    pixel size) and image size (columns, rows): the same computation as at ingest."""
    iop = tuple(float(v) for v in spec["iop"])
    row_mm, col_mm = (float(v) for v in spec["pixel"])
    grid = plan(spec["ipp"], iop, oriented_normal(iop), (row_mm, col_mm), size)
    if grid is None:
        raise ValueError("the stored slice positions need no straightening (re-ingest the dataset)")
    return grid


def load_straight(files: Path | DatasetFiles, rels: Sequence[str], frames: Sequence[int] | None, shape: tuple[int, int],
                  spec: dict) -> Volume:
    """The stack decoded (app.datasets.dicom.pixels) and resampled into its grid, as a canonical RAS+ volume;
    the grid's size is checked against MEDVIEW_MAX_VOLUME_VOXELS before anything is decoded."""
    from app.datasets.dicom import pixels  # pixels pulls in pydicom: only when a volume is loaded

    try:
        grid = grid_of(spec, (shape[1], shape[0]))
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # meta edited or from another version
        raise PixelError(f"{rels[0]}: the series' stored slice geometry cannot be used ({exc}); re-ingest the "
                         "dataset") from None
    access = files if isinstance(files, DatasetFiles) else DatasetFiles.confined_to(files)
    problem = access.limits.volume_problem(grid.shape)
    if problem:
        raise TooLarge(rels[0], f"the straightened series is {problem}; not decoded")
    stack = pixels.load_stack(access, rels, frames, shape)
    data, canonical = to_canonical(straighten(stack, grid), grid.affine)
    return Volume(np.ascontiguousarray(data), canonical, voxel_spacing(canonical))
