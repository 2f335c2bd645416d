// The vector layers of a pane as plain shape records (drawn by Pane.drawShapes): ground truth (RECIST axes, boxes,
// centroids with names, class labels), predicted boxes, the detection difference (matched / missed / spurious at
// IoU ≥ 0.5), measurements and the three-plane crosshair. Colours are app.imaging.overlay's.

import { PLANE_AXIS, matchBoxes, segmentLength, voxelToDisplay } from "./geometry.js";

export const COLOURS = {
  long: "rgb(255,70,70)", short: "rgb(60,200,255)", box: "rgb(90,235,90)", text: "rgb(255,240,80)",
  pred: "rgb(255,160,40)", matched: "rgb(60,220,110)", missed: "rgb(255,220,60)", spurious: "rgb(255,60,90)",
  measure: "rgb(255,255,255)", cross: "rgba(88,166,255,0.85)", line: "rgb(255,200,120)",
  handle: "rgb(255,255,255)", selected: "rgb(255,214,0)", error: "rgb(255,90,90)",
};

/** Half way to white ("#rrggbb" or "rgb(r,g,b)"). */
function lighten(colour) {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(colour);
  const rgb = hex ? hex.slice(1).map((h) => parseInt(h, 16)) : (colour.match(/\d+/g) || []).slice(0, 3).map(Number);
  return rgb.length === 3 ? `rgb(${rgb.map((c) => Math.round((c + 255) / 2)).join(",")})` : colour;
}

/** Does a 2-D shape belong on this slice? (DeepLesion annotations live on their key slice.) */
const onSlice = (shape, slice) => shape.slice === null || shape.slice === undefined || shape.slice === slice;
/** A 2-D shape stored on a volume plane (a saved length line's `meta.plane`) shows on that plane only. */
const onPlane = (shape, pane) => !shape.plane || shape.plane === (pane.plane || "axial");

/** Ground-truth boxes on this slice ([x1, y1, x2, y2]), for the detection difference. */
export function truthBoxes(shapes, slice) {
  return shapes.filter((s) => (s.type === "recist" || s.type === "box") && s.bbox && onSlice(s, slice))
    .map((s) => s.bbox.map(Number));
}

/** Ground-truth shapes of a pane; `visible` = labels present in the shown mask (a vertebra cut by the slice). */
export function gtShapes(state, pane, visible, { boxes = true } = {}) {
  const out = [];
  const layer = "gt";
  for (const s of state.shapes) {
    if (s.type === "recist" && onSlice(s, pane.slice)) {
      if (s.bbox && boxes) out.push({ layer, kind: "rect", bbox: s.bbox, colour: COLOURS.box, width: 1 });
      if (s.long) out.push({ layer, kind: "line", a: s.long[0], b: s.long[1], colour: COLOURS.long, width: 2, id: "long" });
      if (s.short) out.push({ layer, kind: "line", a: s.short[0], b: s.short[1], colour: COLOURS.short, width: 2, id: "short" });
      if (s.text && s.bbox) out.push({ layer, kind: "text", at: [s.bbox[0], s.bbox[1]], dy: -4, text: s.text, colour: COLOURS.text });
    } else if (s.type === "box" && onSlice(s, pane.slice) && boxes) {
      const colour = s.colour || COLOURS.box;
      out.push({ layer, kind: "rect", bbox: s.bbox, colour, width: 1 });
      if (s.text) out.push({ layer, kind: "text", at: [s.bbox[0], s.bbox[1]], dy: -4, text: s.text, colour });
    } else if (s.type === "centroid" && pane.plane && pane.raw) {
      const dims = [pane.raw.width, pane.raw.height];
      const [x, y, depth] = voxelToDisplay(s.point, state.shape, state.spacing, pane.plane, dims);
      const normal = state.spacing ? state.spacing[PLANE_AXIS[pane.plane]] : 1;
      const slab = Math.max(state.centroid_slab_mm, normal / 2);
      if (Math.abs(depth - pane.slice) * normal > slab && !visible.has(s.label)) continue;
      const colour = s.colour || COLOURS.text;
      out.push({ layer, kind: "dot", at: [x, y], colour, r: 3.5, id: s.text });
      // the name beside the body, as the server draws it: anterior in sagittal/axial views, to the patient's
      // left (image right) in coronal ones; lightened for legibility on the mask (labels.TEXT_COLOURS)
      const gap = state.label_gap_mm / (pane.raw.pixelMm || 1);
      const place = { sagittal: [[x - gap, y], "end", 4], axial: [[x, y - gap], "middle", 0],
                      coronal: [[x + gap, y], "start", 4] }[pane.plane];
      out.push({ layer, kind: "text", at: place[0], dy: place[2], anchor: place[1], text: s.text, colour: lighten(colour) });
      out.push({ layer, kind: "line", a: [x, y], b: place[0], colour: lighten(colour), width: 0.75 });
    } else if (s.type === "line" && s.line && onSlice(s, pane.slice) && onPlane(s, pane)) {
      out.push({ layer, kind: "line", a: s.line[0], b: s.line[1], colour: COLOURS.line, width: 1.5, id: "line" });
      if (s.length_mm !== undefined && s.length_mm !== null) {
        out.push({ layer, kind: "text", at: s.line[1], dx: 8, dy: -6, text: `${Number(s.length_mm).toFixed(1)} mm`, colour: COLOURS.line });
      }
    } else if (s.type === "text") {
      out.push({ layer, kind: "text", screen: true, at: [12, 60 + 18 * out.length], text: s.text, colour: s.colour });
    }
  }
  return out;
}

/** A prediction's boxes (detect2d, [x1, y1, x2, y2, score, label] in image pixels) with their scores. */
export function predShapes(prediction) {
  const out = [];
  for (const b of prediction?.outputs?.boxes || []) {
    out.push({ layer: "pred", kind: "rect", bbox: b.slice(0, 4), colour: COLOURS.pred, width: 1.5 });
    if (b[4] !== undefined) {
      out.push({ layer: "pred", kind: "text", at: [b[0], b[3]], dy: 13, text: Number(b[4]).toFixed(2), colour: COLOURS.pred });
    }
  }
  return out;
}

/** Detection difference: predicted boxes matched to a truth box (IoU ≥ 0.5), missed truth, spurious predictions. */
export function diffBoxShapes(prediction, truth) {
  const boxes = (prediction?.outputs?.boxes || []).map((b) => b.map(Number));
  const { matched, spurious, missed } = matchBoxes(boxes, truth);
  const out = [];
  for (const [p] of matched) out.push({ layer: "pred", kind: "rect", bbox: p.slice(0, 4), colour: COLOURS.matched, width: 2, id: "matched" });
  for (const t of missed) out.push({ layer: "pred", kind: "rect", bbox: t, colour: COLOURS.missed, width: 2, dash: "5 4", id: "missed" });
  for (const p of spurious) out.push({ layer: "pred", kind: "rect", bbox: p.slice(0, 4), colour: COLOURS.spurious, width: 2, id: "spurious" });
  return { shapes: out, counts: { matched: matched.length, missed: missed.length, spurious: spurious.length } };
}

function label(m) {
  const parts = m.lengths.map((l) => `${l.value.toFixed(1)} ${l.unit}`);
  return parts.join(" × ");
}

/** Measurements of this pane's plane and slice, with their lengths (mm from the slice's pixel spacing). */
export function measureShapes(measurements, pane) {
  const out = [];
  for (const m of measurements) {
    if (m.plane !== pane.plane || m.slice !== pane.slice) continue;
    m.segments.forEach(([a, b], n) => {
      out.push({ layer: "measure", kind: "line", a, b, colour: n ? COLOURS.short : COLOURS.measure, width: 1.5,
                 id: `m${m.id}` });
      out.push({ layer: "measure", kind: "dot", a, at: a, colour: COLOURS.measure, r: 2 });
      out.push({ layer: "measure", kind: "dot", at: b, colour: COLOURS.measure, r: 2 });
    });
    if (m.lengths.length) {
      const [, b] = m.segments[0];
      out.push({ layer: "measure", kind: "text", at: b, dx: 8, dy: -6, text: label(m), colour: COLOURS.measure,
                 id: `m${m.id}` });
    }
  }
  return out;
}

export function measurementLengths(segments, pixelMm) {
  return segments.map(([a, b]) => segmentLength(a, b, pixelMm));
}

/** The crosshair of the three-plane layout: the cursor voxel in this pane's plane. */
export function crossShapes(state, cursor, pane) {
  if (!pane.raw) return [];
  const [x, y] = voxelToDisplay(cursor, state.shape, state.spacing, pane.plane, [pane.raw.width, pane.raw.height]);
  return [{ layer: "cross", kind: "cross", at: [x, y], colour: COLOURS.cross, width: 1 }];
}

/** The Edit tool's layer: a handle on every draggable point (the selected shape's filled), the diameters while
 * dragging and the server's reason beside a shape whose save was refused. `handles` from Editor.handles. */
export function editShapes(handles, selected, live, errors, pane) {
  const out = [];
  for (const h of handles) {
    const on = h.shape === selected;
    out.push({ layer: "edit", kind: "dot", at: h.at, colour: on ? COLOURS.selected : COLOURS.handle, r: on ? 5 : 4,
               id: `${h.shape.ann}:${h.handle}` });
  }
  const anchor = (shape) => {
    if (shape.type === "recist") return shape.long[1];
    if (shape.type === "box") return [shape.bbox[2], shape.bbox[1]];
    if (shape.type === "line") return shape.line[1];
    const h = handles.find((x) => x.shape === shape);
    return h ? h.at : null;
  };
  if (live) {
    const at = anchor(live.shape);
    if (at) out.push({ layer: "edit", kind: "text", at, dx: 10, dy: -10, text: live.text, colour: COLOURS.selected, id: "live" });
  }
  for (const [shape, message] of errors) {
    const at = anchor(shape);
    if (at && pane.raw) out.push({ layer: "edit", kind: "text", at, dx: 10, dy: 14, text: message.slice(0, 120), colour: COLOURS.error, id: "error" });
  }
  return out;
}
