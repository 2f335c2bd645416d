// Mouse on the panes. Left button: the active tool — window/level (horizontal = width, vertical = level), pan,
// a length line, or a bidirectional (RECIST) measurement: long axis, then the short axis perpendicular to it.
// The Edit tool (edit.js) drags annotation handles; elsewhere it pans.
// Middle button or Shift+left: pan; right button: zoom (drag up = in). Wheel: slices (zoom for a single image;
// Ctrl/⌘+wheel always zooms about the pointer). A click in the three-plane layout moves the crosshair there.
// Drags are coalesced to one frame per animation frame; none waits on the server.

import { clamp, displayToVoxel } from "./geometry.js";
import { measurementLengths } from "./overlays.js";
import { isVolume, num } from "./url.js";

const WHEEL_STEP_PX = 50; // wheel distance per slice step (a mouse notch is ~100 px, trackpads send less)
const CLICK_PX = 3;
const MIN_WIDTH = 2; // an even whole width keeps both window ends whole (dragWindow)

/** Value units (HU for CT) per dragged pixel: fine for narrow windows, faster for wide ones. */
export const wlSensitivity = (width) => Math.max(1, width / 256);

export function bindPointer(v) {
  const s = v.state;
  let drag = null;
  let wheelDistance = 0;
  const paneOf = (target) => v.panes.find((p) => p.root.contains(target));
  const local = (pane, e) => {
    const r = pane.root.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };

  v.host.addEventListener("contextmenu", (e) => e.preventDefault());
  v.host.addEventListener("pointerdown", (e) => {
    const pane = paneOf(e.target);
    if (!pane || !pane.raw) return;
    e.preventDefault();
    v.host.setPointerCapture(e.pointerId);
    const [sx, sy] = local(pane, e);
    let mode = v.tool;
    if (e.button === 1 || (e.button === 0 && e.shiftKey)) mode = "pan";
    else if (e.button === 2) mode = "zoom";
    drag = { pane, mode, sx, sy, x: sx, y: sy, moved: false, window: [...s.window], zoom: pane.view.zoom,
             centre: [pane.view.cx, pane.view.cy], start: pane.toImage(sx, sy) };
    if (mode === "edit" && !v.editor?.down(pane, sx, sy)) drag.mode = "pan"; // no handle under the pointer: pan
    if (mode === "line" || mode === "bidir") {
      const at = drag.start;
      if (mode === "bidir" && v.pending && v.pending.plane === pane.plane && v.pending.slice === pane.slice) {
        drag.short = true;
      } else {
        v.pending = { id: v.nextId++, kind: mode, plane: pane.plane, slice: pane.slice, segments: [[at, at]],
                      lengths: [], pixelMm: pane.raw.pixelMm };
      }
    }
  });

  v.host.addEventListener("pointermove", (e) => {
    const pane = drag?.pane || paneOf(e.target);
    if (pane?.raw) hover(v, pane, ...local(pane, e));
    if (!drag) return;
    const [x, y] = local(drag.pane, e);
    if (Math.hypot(x - drag.sx, y - drag.sy) > CLICK_PX) drag.moved = true;
    drag.x = x;
    drag.y = y;
    drag.alt = e.altKey;
    act(v, drag, false);
  });

  const finish = (e) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (v.host.hasPointerCapture(e.pointerId)) v.host.releasePointerCapture(e.pointerId);
    if (!d.moved && s.layout === "three" && (d.mode === "wl" || d.mode === "pan")) {
      const [ix, iy] = d.pane.toImage(d.sx, d.sy);
      const at = displayToVoxel(ix, iy, d.pane.slice, s.shape, s.spacing, d.pane.plane, [d.pane.width, d.pane.height]);
      v.setCursor(at);
      return;
    }
    act(v, d, true);
  };
  v.host.addEventListener("pointerup", finish);
  v.host.addEventListener("pointercancel", finish);
  v.host.addEventListener("pointerleave", () => { if (!drag) document.getElementById("hover-readout").textContent = ""; });

  v.host.addEventListener("wheel", (e) => {
    e.preventDefault();
    const pane = paneOf(e.target);
    if (!pane?.raw) return;
    const delta = e.deltaMode === 1 ? e.deltaY * 40 : e.deltaY;
    const canStep = s.slices.length > 1 || s.layout === "three";
    if (e.ctrlKey || e.metaKey || !canStep) {
      zoomAt(v, pane, ...local(pane, e), Math.exp(-delta / 500));
      return;
    }
    wheelDistance += delta;
    if (Math.abs(wheelDistance) >= WHEEL_STEP_PX) {
      v.step(Math.sign(wheelDistance), pane);
      wheelDistance = 0;
    }
  }, { passive: false });
}

/** Zoom by `factor` keeping the image point under (sx, sy) where it is. */
function zoomAt(v, pane, sx, sy, factor) {
  const s = v.state;
  const zoom = clamp(pane.view.zoom * factor, 0.05, 64);
  if (s.layout === "three") { v.update({ zoom }); return; }
  const [ix, iy] = pane.toImage(sx, sy);
  const W = pane.root.clientWidth;
  const H = pane.root.clientHeight;
  // centre such that (ix, iy) stays at (sx, sy): sx = W/2 − (cx + .5)·z + (ix + .5)·z
  const cx = ix - (sx - W / 2) / zoom;
  const cy = iy - (sy - H / 2) / zoom;
  v.update({ zoom, pan: [cx, cy] });
}

/**
 * The window after a W/L drag of (dx, dy) screen pixels from `start` [low, high]: whole numbers throughout, as a
 * radiologist reads and types them — the level rounded, the width rounded to an even number ≥ 2 so that low =
 * level − width/2 and high = level + width/2 are whole too (the readout's W and L and the URL's window=LOW,HIGH).
 */
export function dragWindow(start, dx, dy) {
  const k = wlSensitivity(start[1] - start[0]);
  const width = Math.max(MIN_WIDTH, 2 * Math.round((start[1] - start[0] + dx * k) / 2));
  const level = Math.round((start[0] + start[1]) / 2 + dy * k);
  return [level - width / 2, level + width / 2];
}

function act(v, d, done) {
  const s = v.state;
  const dx = d.x - d.sx;
  const dy = d.y - d.sy;
  if (d.mode === "wl" && s.windowed) {
    if (d.moved) v.setWindow(...dragWindow(d.window, dx, dy));
  } else if (d.mode === "pan" || (d.mode === "wl" && !s.windowed)) {
    if (!d.moved || s.layout === "three") return;
    v.update({ zoom: d.zoom, pan: [d.centre[0] - dx / d.zoom, d.centre[1] - dy / d.zoom] });
  } else if (d.mode === "zoom") {
    if (d.moved) v.update({ zoom: clamp(d.zoom * Math.exp(-dy / 200), 0.05, 64), pan: s.layout === "three" ? null : d.centre });
  } else if (d.mode === "line" || d.mode === "bidir") {
    measure(v, d, done);
  } else if (d.mode === "edit") {
    v.editor.move(d.pane, d.x, d.y, { alt: Boolean(d.alt), done, moved: d.moved });
  }
}

function measure(v, d, done) {
  const m = v.pending;
  if (!m) return;
  const end = d.pane.toImage(d.x, d.y);
  if (d.short) {
    const long = m.segments[0];
    const [nx, ny] = [-(long[1][1] - long[0][1]), long[1][0] - long[0][0]];
    const len = Math.hypot(nx, ny) || 1;
    const proj = ((end[0] - d.start[0]) * nx + (end[1] - d.start[1]) * ny) / len;
    m.segments[1] = [d.start, [d.start[0] + proj * nx / len, d.start[1] + proj * ny / len]];
  } else m.segments[0] = [d.start, end];
  m.lengths = measurementLengths(m.segments, m.pixelMm);
  if (done) {
    const tooShort = !d.moved;
    if (tooShort) m.segments.length = d.short ? 1 : 0;
    const complete = m.kind === "line" ? m.segments.length === 1 : m.segments.length === 2;
    if (!m.segments.length) v.pending = null;
    else if (complete) {
      m.lengths = measurementLengths(m.segments, m.pixelMm);
      v.measurements.push(m);
      v.pending = null;
    }
  }
  v.update({});
}

/** The value under the pointer (HU, grey or RGB) and its position in pixels and mm (voxel i, j, k for volumes). */
function hover(v, pane, sx, sy) {
  const out = document.getElementById("hover-readout");
  const [fx, fy] = pane.toImage(sx, sy);
  const x = Math.round(fx);
  const y = Math.round(fy);
  const raw = pane.raw;
  if (x < 0 || y < 0 || x >= raw.width || y >= raw.height) { out.textContent = ""; return; }
  const p = y * raw.width + x;
  let value;
  if (raw.dtype === "int16") value = `${raw.values[p]}${v.state.units ? ` ${v.state.units}` : ""}`; // HU: CT only
  else if (raw.channels === 3) value = `RGB ${raw.values[3 * p]}, ${raw.values[3 * p + 1]}, ${raw.values[3 * p + 2]}`;
  else value = `${raw.values[p]}`;
  const mm = raw.pixelMm ? ` · ${num(x * raw.pixelMm)}, ${num(y * raw.pixelMm)} mm` : "";
  let voxel = "";
  const s = v.state;
  if (isVolume(s) && pane.plane) {
    const ijk = displayToVoxel(x, y, pane.slice, s.shape, s.spacing, pane.plane, [raw.width, raw.height]);
    voxel = ` · voxel ${ijk.map((c) => Math.round(c)).join(", ")}`;
  }
  const labels = pane.gtMask && !pane.gtMask.error ? pane.gtMask.labels[p] : 0;
  out.textContent = `${value} · x ${x}, y ${y} px${mm}${voxel}${labels ? ` · label ${labels}` : ""}`;
}
