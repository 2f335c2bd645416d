// Coordinates shared by the panes: canonical volume voxels (i → patient's right… as app/imaging/volume.py) ↔ display
// pixels of a plane, exactly as voxel_to_display does on the server (radiological flips, square-mm resampling), and
// box matching for the detection difference view.

export const PLANE_AXIS = { sagittal: 0, coronal: 1, axial: 2 };

/** (row mm, column mm) of the display view of `plane` from the canonical spacing (volume.plane_pixel_mm). */
export function planePixelMm(spacing, plane) {
  const [si, sj, sk] = spacing;
  return { axial: [sj, si], coronal: [sk, si], sagittal: [sk, sj] }[plane];
}

/**
 * Column/row scale of a plane: display pixels per source voxel along x and y. From the canonical spacing when
 * known (as the server), else from the shown image's size (`dims` = [width, height] of /raw).
 */
function scales(shape, spacing, plane, dims) {
  const [ni, nj, nk] = shape;
  const [cols, rows] = { axial: [ni, nj], coronal: [ni, nk], sagittal: [nj, nk] }[plane];
  if (spacing && spacing.length === 3) {
    const [rowMm, colMm] = planePixelMm(spacing, plane);
    const pixel = Math.min(rowMm, colMm);
    return [colMm / pixel, rowMm / pixel, cols, rows];
  }
  return [dims ? dims[0] / cols : 1, dims ? dims[1] / rows : 1, cols, rows];
}

/** Canonical voxel [i, j, k] → [x, y, depth] in the display image of `plane` (depth = slice coordinate). */
export function voxelToDisplay(ijk, shape, spacing, plane, dims) {
  const [i, j, k] = ijk;
  const [ni, nj, nk] = shape;
  const [sx, sy] = scales(shape, spacing, plane, dims);
  let col, row, depth;
  if (plane === "axial") [col, row, depth] = [ni - 1 - i, nj - 1 - j, k];
  else if (plane === "coronal") [col, row, depth] = [ni - 1 - i, nk - 1 - k, j];
  else [col, row, depth] = [nj - 1 - j, nk - 1 - k, i];
  return [(col + 0.5) * sx - 0.5, (row + 0.5) * sy - 0.5, depth];
}

/** The inverse: display pixel (x, y) of `plane` at slice `depth` → canonical voxel [i, j, k] (fractional). */
export function displayToVoxel(x, y, depth, shape, spacing, plane, dims) {
  const [ni, nj, nk] = shape;
  const [sx, sy] = scales(shape, spacing, plane, dims);
  const col = (x + 0.5) / sx - 0.5;
  const row = (y + 0.5) / sy - 0.5;
  if (plane === "axial") return [ni - 1 - col, nj - 1 - row, depth];
  if (plane === "coronal") return [ni - 1 - col, depth, nk - 1 - row];
  return [depth, nj - 1 - col, nk - 1 - row];
}

export const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** Intersection over union of two [x1, y1, x2, y2] boxes. */
export function iou(a, b) {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const area = (r) => (r[2] - r[0]) * (r[3] - r[1]);
  return inter / (area(a) + area(b) - inter);
}

/**
 * Greedy matching, highest score first (as FROC counting): a predicted box is matched when its IoU with a
 * not-yet-matched ground-truth box is ≥ `threshold`. Returns {matched: [[pred, gt]], spurious: [pred],
 * missed: [gt]}.
 */
export function matchBoxes(predicted, truth, threshold = 0.5) {
  const used = new Set();
  const matched = [];
  const spurious = [];
  for (const p of [...predicted].sort((a, b) => (b[4] ?? 0) - (a[4] ?? 0))) {
    let best = -1;
    let bestIou = threshold;
    truth.forEach((t, n) => {
      const v = iou(p, t);
      if (!used.has(n) && v >= bestIou) [best, bestIou] = [n, v];
    });
    if (best >= 0) {
      used.add(best);
      matched.push([p, truth[best]]);
    } else spurious.push(p);
  }
  return { matched, spurious, missed: truth.filter((_, n) => !used.has(n)) };
}

/** Length in mm (or px when the spacing is unknown) of a segment in image pixels. */
export function segmentLength(a, b, pixelMm) {
  const px = Math.hypot(b[0] - a[0], b[1] - a[1]);
  return pixelMm ? { value: px * pixelMm, unit: "mm" } : { value: px, unit: "px" };
}

/** The short axis of a bidirectional measurement: from `start`, the drag's component perpendicular to the long axis. */
export function perpendicular(long, start, end) {
  const [a, b] = long;
  const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
  const nx = -(b[1] - a[1]) / len;
  const ny = (b[0] - a[0]) / len;
  const d = (end[0] - start[0]) * nx + (end[1] - start[1]) * ny;
  return [start, [start[0] + d * nx, start[1] + d * ny]];
}
