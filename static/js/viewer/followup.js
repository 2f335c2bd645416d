// The follow-up page: a prior and a current study of one patient side by side (app/web/followup_page.py). Built on
// the viewer's own parts — Pane (canvas + vector layer), the raw-slice cache and window LUT (pixels.js), the
// ground-truth shapes (overlays.js) and the W/L drag rule (tools.js) — with two item states instead of one.
// Linked (the default): a W/L drag on either pane sets both windows, zoom and pan are shared in mm (the same
// screen pixels per mm and the same offset in mm from each image's centre), and scrolling one pane moves the
// other to the slice at the same position along the scan axis (volumes with an affine: nearest in patient mm),
// else to the same offset from its key (middle) slice. "Linked" off: each pane on its own.

import { Pane } from "./pane.js";
import { SliceCache, fetchRaw, windowLut } from "./pixels.js";
import { gtShapes } from "./overlays.js";
import { dragWindow } from "./tools.js";
import { clamp } from "./geometry.js";
import { isVolume, num } from "./url.js";

const WHEEL_STEP_PX = 50;
const CLICK_PX = 3;
const ZOOM_STEP = 1.25;
const AXIS_NAMES = { axial: "S", coronal: "A", sagittal: "R" }; // the patient axis a plane's slices count along

class Side {
  constructor(host, state, role) {
    this.state = state;
    this.role = role;
    if (isVolume(state)) {
      const { sagittal, coronal, axial } = state.planes;
      state.shape = [sagittal, coronal, axial]; // canonical voxel counts (centroid shapes)
      if (!state.spacing_maps_planes) state.spacing = null;
    }
    this.pane = new Pane(host, { role: "gt", plane: isVolume(state) ? state.plane : null, title: "" });
    this.pane.root.dataset.side = role;
    this.wl = corner(this.pane.root, "bl");
    this.where = corner(this.pane.root, "br");
    this.hover = corner(this.pane.root, "bc");
    this.window = [...state.window];
    this.view = { scale: null, pan: [0, 0] }; // scale: screen px per mm (null = fit); pan: mm from the centre
    this.lut = new Uint32Array(65536);
    this.recolour = true;
    this.token = 0;
    this.slice = state.slice;
  }

  get plane() { return this.pane.plane; }
  get slices() {
    const s = this.state;
    return isVolume(s) ? Array.from({ length: s.planes[this.plane] }, (_, i) => i) : s.slices;
  }
  get keySlice() { return isVolume(this.state) ? Math.floor(this.state.planes[this.plane] / 2) : this.state.key_slice; }
  get mm() { return this.pane.raw?.pixelMm || 1; }

  /** Patient mm of a slice along the plane's axis (null without an affine). */
  position(slice) {
    const p = this.state.positions?.[this.plane];
    return p ? p[0] + p[1] * slice : null;
  }

  /** The slice of this side that matches `other`'s shown slice: the nearest in mm, else the same offset from the
   * key slice (in steps through the list of slices). */
  matching(other) {
    const list = this.slices;
    if (!list.length) return this.slice;
    const at = other.position(other.slice);
    const p = this.state.positions?.[this.plane];
    if (at !== null && p && p[1] && other.plane === this.plane) {
      return clamp(Math.round((at - p[0]) / p[1]), 0, list.length - 1);
    }
    const offset = other.slices.indexOf(other.slice) - other.slices.indexOf(other.keySlice);
    return list[clamp(list.indexOf(this.keySlice) + offset, 0, list.length - 1)];
  }

  url(slice) {
    const p = new URLSearchParams();
    if (isVolume(this.state)) p.set("plane", this.plane);
    if (slice !== null && slice !== undefined) p.set("slice", String(slice));
    p.set("v", String(this.state.version));
    return `${this.state.raw_url}?${p}`;
  }
}

function corner(root, where) {
  const div = document.createElement("div");
  div.className = `corner ${where}`;
  root.append(div);
  return div;
}

/** The value under the pointer (HU for CT) and its pixel, in the pane's bottom centre. */
function hover(side, sx, sy) {
  const raw = side.pane.raw;
  const [x, y] = side.pane.toImage(sx, sy).map(Math.round);
  if (x < 0 || y < 0 || x >= raw.width || y >= raw.height) { side.hover.textContent = ""; return; }
  const p = y * raw.width + x;
  const value = raw.channels === 3 ? `RGB ${raw.values.slice(3 * p, 3 * p + 3).join(", ")}`
    : `${raw.values[p]}${raw.dtype === "int16" && side.state.units ? ` ${side.state.units}` : ""}`;
  side.hover.textContent = `${value} · x ${x}, y ${y} px`;
}

export class Followup {
  constructor(data) {
    this.viewport = document.getElementById("viewport");
    this.errorBox = document.getElementById("image-error");
    this.host = document.createElement("div");
    this.host.className = "panes layout-side";
    this.viewport.prepend(this.host);
    this.raws = new SliceCache(fetchRaw);
    this.sides = data.sides.map((s, n) => new Side(this.host, s, n ? "current" : "prior"));
    this.linked = true;
    this.overlays = true;
    this.tool = this.sides.some((s) => s.state.windowed) ? "wl" : "pan";
    this.frame = 0;
    this.loading = 0;
    const [prior, current] = this.sides;
    if (prior.state.positions && current.state.positions) prior.slice = prior.matching(current); // same height
    new ResizeObserver(() => this.schedule()).observe(this.viewport);
    this.bind();
    for (const side of this.sides) this.load(side);
  }

  /** Fetch the side's shown slice (and prefetch its neighbours), then draw. */
  async load(side) {
    const token = ++side.token;
    this.loading++;
    this.viewport.dataset.loading = "true";
    try {
      const raw = await this.raws.get(side.url(side.slice));
      if (token !== side.token) return;
      side.pane.setRaw(raw);
      side.pane.slice = side.slice;
      side.recolour = true;
      this.errorBox.hidden = true;
      const list = side.slices;
      const i = list.indexOf(side.slice);
      for (const d of [1, -1]) if (list[i + d] !== undefined) this.raws.get(side.url(list[i + d])).catch(() => {});
    } catch (err) {
      if (token === side.token) {
        this.errorBox.textContent = `${side.role}: ${err.message || "the image could not be loaded"}`;
        this.errorBox.hidden = false;
      }
    } finally {
      if (--this.loading === 0) delete this.viewport.dataset.loading;
      this.schedule();
    }
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  draw() {
    for (const side of this.sides) {
      const pane = side.pane;
      if (side.recolour && pane.raw) {
        windowLut(side.window[0], side.window[1], false, side.lut);
        pane.recolour(side.lut, false);
        side.recolour = false;
      }
      const zoom = side.view.scale === null ? pane.fitZoom() : side.view.scale * side.mm;
      pane.view = { zoom, cx: (pane.width - 1) / 2 + side.view.pan[0] / side.mm,
                    cy: (pane.height - 1) / 2 + side.view.pan[1] / side.mm };
      pane.shapes = this.overlays && pane.raw ? gtShapes(side.state, pane, new Set()) : [];
      pane.draw();
      this.readouts(side);
    }
  }

  readouts(side) {
    const s = side.state;
    side.wl.replaceChildren();
    if (s.windowed) {
      const [low, high] = side.window;
      const line = document.createElement("div");
      line.className = "wl-readout";
      line.textContent = `W ${num(high - low)}  L ${num((low + high) / 2)}${s.units ? ` ${s.units}` : ""}`;
      side.wl.append(line);
    }
    const parts = [];
    if (isVolume(s)) {
      parts.push(`${side.plane} ${side.slice} / 0–${s.planes[side.plane] - 1}`);
      const at = side.position(side.slice);
      if (at !== null) parts.push(`${AXIS_NAMES[side.plane]} ${at.toFixed(1)} mm`);
    } else if (side.slice !== null && side.slice !== undefined) {
      const offset = side.slices.indexOf(side.slice) - side.slices.indexOf(side.keySlice);
      parts.push(`slice ${side.slice} ${offset ? `(key ${offset > 0 ? "+" : ""}${offset})` : "(key)"}`);
    }
    if (side.pane.raw) parts.push(`zoom ${Math.round(side.pane.view.zoom * 100)}%`);
    side.where.textContent = parts.join(" · ");
    side.where.dataset.slice = String(side.slice);
  }

  /** The sides a change applies to: both when linked, else the one acted on. */
  targets(side) { return this.linked ? this.sides : [side]; }

  setWindow(side, low, high) {
    if (!(high > low)) return;
    for (const t of this.targets(side)) if (t.state.windowed) { t.window = [low, high]; t.recolour = true; }
    this.schedule();
  }

  setView(side, scale, pan) {
    for (const t of this.targets(side)) t.view = { scale, pan: [...pan] };
    this.schedule();
  }

  zoomBy(side, factor) {
    const scale = clamp(side.pane.view.zoom * factor, 0.05, 64) / side.mm;
    this.setView(side, scale, side.view.pan);
  }

  step(side, delta) {
    const list = side.slices;
    const j = clamp(list.indexOf(side.slice) + delta, 0, list.length - 1);
    if (list[j] === undefined || list[j] === side.slice) return;
    this.goTo(side, list[j]);
  }

  goTo(side, slice) {
    side.slice = slice;
    this.load(side);
    if (this.linked) {
      const other = this.sides.find((s) => s !== side);
      const next = other.matching(side);
      if (next !== other.slice) { other.slice = next; this.load(other); }
    }
  }

  setPlane(name) {
    for (const side of this.sides) {
      if (!isVolume(side.state) || !(name in side.state.planes)) return;
    }
    for (const side of this.sides) {
      side.pane.plane = name;
      side.pane.root.dataset.plane = name;
      side.slice = side.keySlice;
      side.view = { scale: null, pan: [0, 0] };
    }
    for (const b of document.querySelectorAll("button[data-plane]")) b.classList.toggle("active", b.dataset.plane === name);
    const [prior, current] = this.sides;
    if (this.linked) prior.slice = prior.matching(current);
    for (const side of this.sides) this.load(side);
  }

  setLinked(on) {
    this.linked = on;
    const b = document.getElementById("link-toggle");
    b.classList.toggle("active", on);
    b.setAttribute("aria-pressed", String(on));
    b.firstChild.textContent = on ? "Linked" : "Unlinked";
  }

  setTool(tool) {
    this.tool = tool;
    for (const b of document.querySelectorAll("button[data-tool]")) b.classList.toggle("active", b.dataset.tool === tool);
  }

  bind() {
    const sideOf = (target) => this.sides.find((s) => s.pane.root.contains(target));
    const local = (side, e) => {
      const r = side.pane.root.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    let drag = null;
    let wheel = 0;
    let last = this.sides[1];
    this.host.addEventListener("contextmenu", (e) => e.preventDefault());
    this.host.addEventListener("pointerdown", (e) => {
      const side = sideOf(e.target);
      if (!side?.pane.raw) return;
      e.preventDefault();
      this.host.setPointerCapture(e.pointerId);
      last = side;
      let mode = this.tool;
      if (e.button === 1 || (e.button === 0 && e.shiftKey)) mode = "pan";
      else if (e.button === 2) mode = "zoom";
      const [sx, sy] = local(side, e);
      drag = { side, mode, sx, sy, window: [...side.window], scale: side.pane.view.zoom / side.mm,
               pan: [...side.view.pan] };
    });
    this.host.addEventListener("pointermove", (e) => {
      const under = drag?.side || sideOf(e.target);
      if (under?.pane.raw) hover(under, ...local(under, e));
      if (!drag) return;
      const [x, y] = local(drag.side, e);
      const dx = x - drag.sx;
      const dy = y - drag.sy;
      if (Math.hypot(dx, dy) <= CLICK_PX) return;
      if (drag.mode === "wl" && drag.side.state.windowed) this.setWindow(drag.side, ...dragWindow(drag.window, dx, dy));
      else if (drag.mode === "zoom") this.setView(drag.side, clamp(drag.scale * Math.exp(-dy / 200), 0.001, 1000), drag.pan);
      else this.setView(drag.side, drag.scale, [drag.pan[0] - dx / drag.scale, drag.pan[1] - dy / drag.scale]);
    });
    const finish = (e) => {
      if (drag && this.host.hasPointerCapture(e.pointerId)) this.host.releasePointerCapture(e.pointerId);
      drag = null;
    };
    this.host.addEventListener("pointerleave", () => { for (const side of this.sides) side.hover.textContent = ""; });
    this.host.addEventListener("pointerup", finish);
    this.host.addEventListener("pointercancel", finish);
    this.host.addEventListener("wheel", (e) => {
      e.preventDefault();
      const side = sideOf(e.target);
      if (!side?.pane.raw) return;
      last = side;
      const delta = e.deltaMode === 1 ? e.deltaY * 40 : e.deltaY;
      if (e.ctrlKey || e.metaKey || side.slices.length < 2) { this.zoomBy(side, Math.exp(-delta / 500)); return; }
      wheel += delta;
      if (Math.abs(wheel) >= WHEEL_STEP_PX) { this.step(side, Math.sign(wheel)); wheel = 0; }
    }, { passive: false });

    const click = (id, fn) => document.getElementById(id)?.addEventListener("click", fn);
    click("zoom-fit", () => this.setView(last, null, [0, 0]));
    click("zoom-in", () => this.zoomBy(last, ZOOM_STEP));
    click("zoom-out", () => this.zoomBy(last, 1 / ZOOM_STEP));
    click("link-toggle", () => this.setLinked(!this.linked));
    click("toggle-overlays", (e) => this.toggleOverlays(e.currentTarget));
    for (const b of document.querySelectorAll("button[data-tool]")) b.addEventListener("click", () => this.setTool(b.dataset.tool));
    for (const b of document.querySelectorAll("button[data-plane]")) b.addEventListener("click", () => this.setPlane(b.dataset.plane));
    const active = this.sides[1].plane;
    for (const b of document.querySelectorAll("button[data-plane]")) b.classList.toggle("active", b.dataset.plane === active);

    document.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest?.("input, textarea, select")) return;
      const keys = {
        w: () => this.tool !== "wl" && this.sides.some((s) => s.state.windowed) && this.setTool("wl"),
        h: () => this.setTool("pan"), f: () => this.setView(last, null, [0, 0]), l: () => this.setLinked(!this.linked),
        "+": () => this.zoomBy(last, ZOOM_STEP), "=": () => this.zoomBy(last, ZOOM_STEP),
        "-": () => this.zoomBy(last, 1 / ZOOM_STEP), o: () => this.toggleOverlays(document.getElementById("toggle-overlays")),
        a: () => this.setPlane("axial"), c: () => this.setPlane("coronal"), s: () => this.setPlane("sagittal"),
        ArrowLeft: () => this.step(last, -1), ArrowUp: () => this.step(last, -1), PageUp: () => this.step(last, -1),
        ArrowRight: () => this.step(last, 1), ArrowDown: () => this.step(last, 1), PageDown: () => this.step(last, 1),
        k: () => this.goTo(last, last.keySlice),
      };
      const fn = keys[e.key];
      if (!fn) return;
      e.preventDefault();
      fn();
    });
  }

  toggleOverlays(button) {
    this.overlays = !this.overlays;
    button?.classList.toggle("active", this.overlays);
    button?.setAttribute("aria-pressed", String(this.overlays));
    this.schedule();
  }

  /** Test hook: what each pane shows, the link, and the displayed pixels. */
  api() {
    return {
      ready: () => !this.viewport.dataset.loading && !this.frame && this.sides.every((s) => s.pane.raw
        && s.pane.slice === s.slice),
      linked: () => this.linked,
      panes: () => this.sides.map((s) => ({ role: s.role, plane: s.plane, slice: s.slice, window: [...s.window],
                                           zoom: s.pane.view.zoom, mmPerPx: s.mm, scale: s.pane.view.zoom / s.mm,
                                           position: s.position(s.slice), width: s.pane.width, height: s.pane.height })),
      paneBox: (n) => { const r = this.sides[n].pane.root.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; },
      pixel: (n, x, y) => {
        const pane = this.sides[n].pane;
        const [sx, sy] = pane.toScreen(x, y);
        const dpr = window.devicePixelRatio || 1;
        const d = pane.ctx.getImageData(Math.floor(sx * dpr), Math.floor(sy * dpr), 1, 1).data;
        return [d[0], d[1], d[2]];
      },
      drawNow: () => this.draw(),
    };
  }
}

const followup = new Followup(JSON.parse(document.getElementById("followup-state").textContent));
window.medviewFollowup = followup.api();
