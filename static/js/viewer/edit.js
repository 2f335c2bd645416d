// Annotation editing in the viewer (`v.editor`): the Edit tool (key E) makes the handles of the annotations this
// dataset kind lets users edit (`state.edit.kinds`, from the adapter) draggable — RECIST endpoints (the short axis
// kept perpendicular to the long one and crossing it at the same place unless Alt is held), box corners and
// bodies (a drag on empty image draws a new box), line ends, vertebra centroids in any plane — and saves each
// drag at its end (PUT against the version
// the page holds; a 409 opens the conflict dialog, a 400 shows the server's reason and snaps the shape back).
// Also: the class of an image-folder item (side-panel select), saving the viewer's measurements as annotations
// (Save per measurement, Shift+S for all), undo (Z / Ctrl+Z: the previous geometry saved as a new version),
// retiring one's own annotations. Every successful save dispatches "medview:annotation-saved".
// In a two-reader review queue (`setQueue`) the first edit of a shared annotation is a new annotation of the
// reader's own (POST with `queue_id` and meta.derived_from) instead of a PUT over the shared one.

import { fillUrl, writeHeaders } from "../urls.js";
import { PLANE_AXIS, clamp, displayToVoxel, voxelToDisplay } from "./geometry.js";
import { editShapes } from "./overlays.js";

const HANDLE_PX = 9; // grab distance around a handle (CSS pixels)
const $ = (id) => document.getElementById(id);
const round2 = (v) => Math.round(v * 100) / 100;
const sub = (a, b) => [a[0] - b[0], a[1] - b[1]];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1];
const cross = (a, b) => a[0] * b[1] - a[1] * b[0];
const clone = (x) => JSON.parse(JSON.stringify(x));
const OWN_TOOLS = new Set(["wl", "pan", "line", "bidir", "edit"]); // Z is the brush's own when a brush tool is on

/** A RECIST short axis relative to its long one: where it crosses (fraction t along the long axis) and its two
 * signed distances along the long axis' normal, scaled so that their span keeps the short axis' length. */
export function recistFrame(long, short) {
  const [a, b] = long;
  const d = sub(b, a);
  const [c, e] = short;
  const r = sub(e, c);
  const den = cross(d, r);
  const lenSq = dot(d, d) || 1;
  const t = Math.abs(den) < 1e-9 ? dot(sub([(c[0] + e[0]) / 2, (c[1] + e[1]) / 2], a), d) / lenSq : cross(sub(c, a), r) / den;
  const L = Math.sqrt(lenSq);
  const n = [-d[1] / L, d[0] / L];
  const p = [a[0] + t * d[0], a[1] + t * d[1]];
  const sc = dot(sub(c, p), n);
  const se = dot(sub(e, p), n);
  const k = Math.hypot(r[0], r[1]) / (Math.abs(se - sc) || 1);
  return { t, sc: sc * k, se: se * k, p, n };
}

/** The short axis rebuilt on a (moved) long axis from `recistFrame`: perpendicular, same length and crossing. */
export function rebuildShort(long, f) {
  const [a, b] = long;
  const d = sub(b, a);
  const L = Math.hypot(d[0], d[1]) || 1;
  const n = [-d[1] / L, d[0] / L];
  const p = [a[0] + f.t * d[0], a[1] + f.t * d[1]];
  return [[p[0] + f.sc * n[0], p[1] + f.sc * n[1]], [p[0] + f.se * n[0], p[1] + f.se * n[1]]];
}

export function recistBox(long, short) {
  const pts = [...long, ...short];
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)].map(round2);
}

const roundPts = (pts) => pts.map((p) => p.map(round2));
const onSlice = (shape, pane) => (shape.slice === null || shape.slice === undefined || shape.slice === pane.slice)
  && (!shape.plane || shape.plane === (pane.plane || "axial"));

export class Editor {
  constructor(v) {
    this.v = v;
    this.cfg = v.state.edit;
    this.records = new Map(this.cfg.annotations.map((a) => [a.id, a]));
    this.undoStack = [];
    this.queue = null;
    this.selected = null; // the selected shape
    this.drag = null;
    this.live = null; // {shape, text}: diameters while dragging
    this.errors = new Map(); // shape → the server's 400 message
    this.chain = Promise.resolve(); // saves go one after another (each needs the version the previous made)
    this.pendingSaves = 0;
    this.status = { text: "", kind: "" };
    this.dialog = $("conflict-dialog");
    this.bind();
    this.paint();
  }

  get active() { return this.v.tool === "edit"; }
  /** Geometric kinds the Edit tool drags (labels are edited in the side panel). */
  get draggable() { return this.cfg.kinds.some((k) => ["recist", "bbox", "centroid", "line"].includes(k)); }

  activate() {
    if (!this.draggable) return;
    this.v.tool = "edit";
    this.v.pending = null;
    this.v.update({});
  }

  deactivate() {
    if (!this.active) return;
    this.v.tool = this.v.state.windowed ? "wl" : "pan";
    this.selected = null;
    this.v.update({});
  }

  setQueue(queue) {
    this.queue = queue && queue.queueId ? { queueId: queue.queueId, readersPerItem: queue.readersPerItem || 1 } : null;
  }

  // -- pointer (called by tools.js while the Edit tool is active) ------------------------------------------------

  /** The handles of the editable shapes shown on `pane`, in image pixels: [{shape, handle, at}]. */
  handles(pane) {
    const s = this.v.state;
    const out = [];
    if (!pane.raw || pane.role !== "gt" || !this.v.gtOn() || !this.v.shows("shapes")) return out;
    for (const shape of s.shapes) {
      const rec = this.records.get(shape.ann);
      if (!rec || !this.cfg.kinds.includes(rec.kind)) continue;
      if (shape.type === "recist" && onSlice(shape, pane) && shape.long && shape.short) {
        shape.long.forEach((at, n) => out.push({ shape, handle: `long${n}`, at }));
        shape.short.forEach((at, n) => out.push({ shape, handle: `short${n}`, at }));
      } else if (shape.type === "box" && onSlice(shape, pane)) {
        const [x1, y1, x2, y2] = shape.bbox;
        [[x1, y1], [x2, y1], [x2, y2], [x1, y2]].forEach((at, n) => out.push({ shape, handle: `corner${n}`, at }));
      } else if (shape.type === "line" && onSlice(shape, pane)) {
        shape.line.forEach((at, n) => out.push({ shape, handle: `end${n}`, at }));
      } else if (shape.type === "centroid" && pane.plane) {
        const [x, y, depth] = this.centroidAt(shape, pane);
        const normal = s.spacing ? s.spacing[PLANE_AXIS[pane.plane]] : 1;
        const cut = pane.gtMask?.present?.has(shape.label); // drawn where the slice cuts its vertebra, as gtShapes
        if (Math.abs(depth - pane.slice) * normal <= Math.max(s.centroid_slab_mm, normal / 2) || cut) {
          out.push({ shape, handle: "point", at: [x, y], depth });
        }
      }
    }
    return out;
  }

  centroidAt(shape, pane) {
    const s = this.v.state;
    return voxelToDisplay(shape.point, s.shape, s.spacing, pane.plane, [pane.raw.width, pane.raw.height]);
  }

  /** Pointer down at CSS pixel (sx, sy) of `pane`: grab the nearest handle (or a box's inside). */
  down(pane, sx, sy) {
    let best = null;
    let bestDist = HANDLE_PX;
    for (const h of this.handles(pane)) {
      const [hx, hy] = pane.toScreen(...h.at);
      const dist = Math.hypot(hx - sx, hy - sy);
      if (dist <= bestDist) [best, bestDist] = [h, dist];
    }
    const at = pane.toImage(sx, sy);
    if (!best) {
      const box = this.v.state.shapes.find((sh) => sh.type === "box" && this.records.has(sh.ann) && onSlice(sh, pane)
        && at[0] >= sh.bbox[0] && at[0] <= sh.bbox[2] && at[1] >= sh.bbox[1] && at[1] <= sh.bbox[3]);
      if (box) best = { shape: box, handle: "move", at };
    }
    if (!best && this.canDrawBox(pane, at)) { // a drag on empty image draws a new box
      const shape = { type: "box", ann: null, slice: pane.slice ?? null, bbox: [at[0], at[1], at[0], at[1]], text: "" };
      this.v.state.shapes.push(shape);
      best = { shape, handle: "corner2", at };
    }
    if (!best) {
      this.selected = null;
      this.v.update({});
      return false;
    }
    const shape = best.shape;
    this.selected = shape;
    this.errors.delete(shape);
    this.drag = { pane, shape, handle: best.handle, start: at, depth: best.depth, before: this.geometryOf(shape),
                  frame: shape.type === "recist" ? recistFrame(shape.long, shape.short) : null, moved: false };
    this.v.update({});
    return true;
  }

  /** Pointer moved (or released: `done`) while a handle is held; `moved`: past the click distance. */
  move(pane, sx, sy, { alt = false, done = false, moved = true } = {}) {
    const d = this.drag;
    if (!d) return;
    if (!moved) {
      if (done) {
        this.drag = null;
        if (d.shape.ann === null) this.dropShape(d.shape); // a click, not a drawn box
      }
      return;
    }
    const raw = pane.raw;
    const lim = (p) => [clamp(p[0], -0.5, raw.width - 0.5), clamp(p[1], -0.5, raw.height - 0.5)];
    const at = lim(pane.toImage(sx, sy));
    const shape = d.shape;
    const g = clone(d.before);
    if (shape.type === "recist") {
      const axis = d.handle.startsWith("long") ? "long" : "short";
      const n = Number(d.handle.at(-1));
      if (axis === "long") { // only what moved is rounded: the other end stays exactly where it was
        g.long[n] = at.map(round2);
        if (!alt) g.short = roundPts(rebuildShort(g.long, d.frame));
      } else if (alt) {
        g.short[n] = at.map(round2);
      } else {
        const f = d.frame;
        const side = Math.sign(n ? f.se : f.sc) || (n ? 1 : -1);
        const dist = side * Math.max(0.5, side * dot(sub(at, f.p), f.n));
        g.short[n] = [f.p[0] + dist * f.n[0], f.p[1] + dist * f.n[1]].map(round2);
      }
      g.bbox = recistBox(g.long, g.short);
    } else if (shape.type === "box") {
      let [x1, y1, x2, y2] = g.bbox;
      if (d.handle === "move") {
        const dx = clamp(at[0] - d.start[0], -0.5 - x1, raw.width - 0.5 - x2);
        const dy = clamp(at[1] - d.start[1], -0.5 - y1, raw.height - 0.5 - y2);
        [x1, y1, x2, y2] = [x1 + dx, y1 + dy, x2 + dx, y2 + dy];
      } else {
        const n = Number(d.handle.at(-1));
        if (n === 0 || n === 3) x1 = at[0]; else x2 = at[0];
        if (n === 0 || n === 1) y1 = at[1]; else y2 = at[1];
      }
      g.bbox = [Math.min(x1, x2), Math.min(y1, y2), Math.max(x1, x2), Math.max(y1, y2)].map(round2);
    } else if (shape.type === "line") {
      g.line[Number(d.handle.at(-1))] = at.map(round2);
    } else if (shape.type === "centroid") {
      const s = this.v.state;
      const ijk = displayToVoxel(at[0], at[1], d.depth, s.shape, s.spacing, pane.plane, [raw.width, raw.height]);
      g.point = ijk.map((c, n) => round2(clamp(c, -0.5, s.shape[n] - 0.5)));
    }
    if (Math.hypot(at[0] - d.start[0], at[1] - d.start[1]) > 0.01) d.moved = true;
    this.applyGeometry(shape, g);
    this.live = { shape, text: this.sizeText(shape, pane) };
    if (done) {
      this.drag = null;
      this.live = null;
      if (shape.ann === null) this.createBox(shape, pane);
      else if (d.moved) this.saveShape(shape, d.before);
    }
    this.v.update({});
  }

  /** New boxes: where the kind takes `bbox` annotations, on a 2-D image or a volume's axial plane. */
  canDrawBox(pane, at) {
    if (!this.cfg.kinds.includes("bbox") || (pane.plane && pane.plane !== "axial")) return false;
    return at[0] >= -0.5 && at[1] >= -0.5 && at[0] <= pane.raw.width - 0.5 && at[1] <= pane.raw.height - 0.5;
  }

  dropShape(shape) {
    this.v.state.shapes = this.v.state.shapes.filter((x) => x !== shape);
    if (this.selected === shape) this.selected = null;
    this.v.update({});
  }

  createBox(shape, pane) {
    const [x1, y1, x2, y2] = shape.bbox;
    if (x2 - x1 < 2 || y2 - y1 < 2) { this.dropShape(shape); return; }
    shape.ann = undefined; // being saved: not draggable until it has its id
    this.enqueue(async () => {
      const body = { kind: "bbox", label: null, geometry: { bbox: shape.bbox }, slice: pane.slice ?? undefined,
                     ...(pane.plane ? { meta: { plane: pane.plane } } : {}),
                     ...(this.queue ? { queue_id: this.queue.queueId } : {}) };
      const r = await this.request("POST", this.cfg.urls.create, body);
      if (!r.ok) {
        this.dropShape(shape);
        this.setStatus(`not saved: ${r.data?.detail || `HTTP ${r.status}`}`, "error");
        return;
      }
      this.undoStack.push({ created: true, ann: r.data.id });
      this.replace(null, r.data, shape);
    });
  }

  sizeText(shape, pane) {
    const mm = pane.raw?.pixelMm;
    const len = (seg) => Math.hypot(seg[1][0] - seg[0][0], seg[1][1] - seg[0][1]);
    const f = (px) => (mm ? `${(px * mm).toFixed(1)}` : `${px.toFixed(1)}`);
    const unit = mm ? "mm" : "px";
    if (shape.type === "recist") return `${f(len(shape.long))} × ${f(len(shape.short))} ${unit}`;
    if (shape.type === "box") return `${f(shape.bbox[2] - shape.bbox[0])} × ${f(shape.bbox[3] - shape.bbox[1])} ${unit}`;
    if (shape.type === "line") return `${f(len(shape.line))} ${unit}`;
    if (shape.type === "centroid") return `voxel ${shape.point.map((c) => c.toFixed(1)).join(", ")}`;
    return "";
  }

  // -- shapes ↔ annotation geometry -----------------------------------------------------------------------------

  geometryOf(shape) {
    if (shape.type === "recist") return clone({ long: shape.long, short: shape.short, bbox: shape.bbox ?? recistBox(shape.long, shape.short) });
    if (shape.type === "box") return { bbox: [...shape.bbox] };
    if (shape.type === "line") return { line: clone(shape.line) };
    if (shape.type === "centroid") return { point: [...shape.point] };
    return {};
  }

  applyGeometry(shape, g, meta = null) {
    if (shape.type === "recist") Object.assign(shape, { long: g.long, short: g.short, bbox: g.bbox ?? recistBox(g.long, g.short) });
    else if (shape.type === "box") shape.bbox = g.bbox;
    else if (shape.type === "line") shape.line = g.line;
    else if (shape.type === "centroid") shape.point = g.point;
    if (meta) {
      if (shape.type === "recist") Object.assign(shape, { long_mm: meta.long_mm, short_mm: meta.short_mm });
      if (shape.type === "line") shape.length_mm = meta.length_mm;
    }
  }

  // -- saving ---------------------------------------------------------------------------------------------------

  setStatus(text, kind = "") {
    this.status = { text, kind };
    this.paint();
  }

  /** Queue a write; `fn` runs once the writes before it have finished. */
  enqueue(fn) {
    this.pendingSaves++;
    this.setStatus("saving…", "saving");
    const run = this.chain.then(fn).catch((err) => this.setStatus(`not saved: ${err.message || err}`, "error"))
      .finally(() => { this.pendingSaves--; this.paint(); });
    this.chain = run;
    return run;
  }

  async request(method, url, body) {
    const r = await fetch(url, { method, credentials: "same-origin",
                                 headers: writeHeaders(body ? { "Content-Type": "application/json" } : {}),
                                 body: body ? JSON.stringify(body) : undefined });
    let data = null;
    try { data = await r.json(); } catch { data = null; }
    return { status: r.status, ok: r.ok, data };
  }

  /** The lineage id (the first version's id) of a record, asked from its history when the page does not know it. */
  async lineageOf(rec) {
    if (rec.lineage_id) return rec.lineage_id;
    if (rec.version === 1) return rec.id;
    const r = await this.request("GET", `${fillUrl(this.cfg.urls.annotation, { id: rec.id })}/history`);
    return r.ok && r.data?.length ? r.data[0].lineage_id : rec.id;
  }

  /** Whether an edit of `rec` must be a queue reading of one's own (two-reader queue, not yet one's own). */
  needsOwnReading(rec) {
    const q = this.queue;
    if (!q || q.readersPerItem < 2) return false;
    return !(rec.source === `user:${this.cfg.user}` && rec.meta?.queue_id === q.queueId);
  }

  /** Save a shape's geometry (drag end or undo); `before` is what it was (restored on a 400, kept for undo). */
  saveShape(shape, before, { undo = false } = {}) {
    return this.enqueue(async () => {
      const rec = this.records.get(shape.ann);
      if (!rec) return;
      const geometry = this.geometryOf(shape);
      await this.write(rec, { geometry }, {
        shape,
        onBad: () => this.applyGeometry(shape, before),
        undoEntry: undo ? null : { shape, geometry: before },
      });
    });
  }

  /** PUT `changes` onto `rec` (or, in a two-reader queue, POST one's own reading); handles 409 and 400. */
  async write(rec, changes, { shape = null, onBad = () => {}, undoEntry = null } = {}) {
    let r;
    if (this.needsOwnReading(rec)) {
      const derived = await this.lineageOf(rec);
      r = await this.request("POST", this.cfg.urls.create, {
        kind: rec.kind, label: changes.label !== undefined ? changes.label : rec.label,
        geometry: changes.geometry ?? rec.geometry, slice: rec.slice_index ?? undefined,
        meta: { ...(rec.meta || {}), derived_from: derived, queue_id: this.queue.queueId }, queue_id: this.queue.queueId,
      });
    } else {
      r = await this.request("PUT", fillUrl(this.cfg.urls.annotation, { id: rec.id }), { version: rec.version, ...changes });
    }
    if (r.ok) {
      this.replace(rec, r.data, shape);
      if (undoEntry) this.undoStack.push({ ...undoEntry, ann: r.data.id });
      return r.data;
    }
    const detail = r.data?.detail || `HTTP ${r.status}`;
    if (r.status === 409 && r.data?.current) {
      this.setStatus(`conflict: ${r.data.changed_by} changed it`, "error");
      this.conflict(rec, r.data, changes, shape, undoEntry);
      return null;
    }
    onBad();
    if (shape) this.errors.set(shape, detail);
    this.setStatus(`not saved: ${detail}`, "error");
    this.v.update({});
    return null;
  }

  /** A saved version replaces the page's record (and the shape follows the server's geometry and meta). */
  replace(old, saved, shape) {
    if (old) this.records.delete(old.id);
    if (saved.kind === "label") { // the class name drawn on the image (the adapter's text shape) follows
      for (const t of this.v.state.shapes) if (t.type === "text" && old && t.text === old.label) t.text = saved.label;
    }
    this.records.set(saved.id, saved);
    if (shape) {
      shape.ann = saved.id;
      this.applyGeometry(shape, saved.geometry, saved.meta);
      this.errors.delete(shape);
    }
    const time = (saved.created_at ? new Date(saved.created_at) : new Date()).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    this.setStatus(`saved · v${saved.version} · ${time}`, "saved");
    document.dispatchEvent(new CustomEvent("medview:annotation-saved", { detail: { annotation: saved, previous: old || null } }));
    if (old) this.followInLesionTable(old.id, saved);
    this.v.update({});
  }

  /** The side panel's server-rendered lesion table (DeepLesion) shows the saved version's diameters. */
  followInLesionTable(oldId, saved) {
    const row = document.querySelector(`tr.lesion-row[data-annotation="${oldId}"]`);
    if (!row) return;
    row.dataset.annotation = String(saved.id);
    const { long_mm: long, short_mm: short } = saved.meta || {};
    const cell = row.querySelector(".lesion-size");
    if (cell && typeof long === "number" && typeof short === "number") cell.textContent = `${long.toFixed(1)} × ${short.toFixed(1)}`;
  }

  /** The 409 dialog: who changed it and when; reload theirs, or keep mine (re-sent against their version). */
  conflict(rec, body, changes, shape, undoEntry) {
    const dlg = this.dialog;
    const current = body.current;
    const when = body.changed_at ? new Date(body.changed_at).toLocaleString() : "just now";
    $("conflict-text").textContent = `${body.changed_by || "someone"} changed this ${rec.kind} at ${when} `
      + `(now version ${current.version}${current.retired_at ? ", retired" : ""}). Your change was not saved.`;
    const keep = $("conflict-keep");
    keep.disabled = Boolean(current.retired_at);
    const close = () => { if (dlg.open) dlg.close(); };
    $("conflict-reload").onclick = () => {
      close();
      this.records.delete(rec.id);
      if (current.retired_at) {
        this.v.state.shapes = this.v.state.shapes.filter((s) => s !== shape);
        this.setStatus("reloaded: it was retired", "saved");
        this.v.update({});
        return;
      }
      this.records.set(current.id, current);
      if (shape) {
        shape.ann = current.id;
        this.applyGeometry(shape, current.geometry, current.meta);
      }
      this.setStatus(`reloaded theirs · v${current.version}`, "saved");
      this.paintLabel();
      this.v.update({});
    };
    keep.onclick = () => {
      close();
      this.records.delete(rec.id);
      this.records.set(current.id, current);
      if (shape) shape.ann = current.id;
      this.enqueue(() => this.write(current, changes, { shape, undoEntry }));
    };
    if (!dlg.open) dlg.showModal();
  }

  /** Undo the last edit: its previous geometry (or label) saved as a new version; a new annotation is retired. */
  undo() {
    const entry = this.undoStack.pop();
    if (!entry) { this.setStatus("nothing to undo"); return false; }
    if (entry.created) {
      this.enqueue(() => this.retire(entry.ann, { silent: true }));
    } else if (entry.label !== undefined) {
      this.enqueue(async () => {
        const rec = this.records.get(entry.ann);
        if (rec) await this.write(rec, { label: entry.label });
        this.paintLabel();
      });
    } else {
      const shape = entry.shape;
      const before = this.geometryOf(shape);
      this.applyGeometry(shape, entry.geometry);
      this.v.update({});
      this.saveShape(shape, before, { undo: true });
    }
    return true;
  }

  async retire(id, { silent = false } = {}) {
    const rec = this.records.get(id);
    if (!rec) return;
    const r = await this.request("DELETE", `${fillUrl(this.cfg.urls.annotation, { id })}?version=${rec.version}`);
    if (!r.ok) {
      this.setStatus(`not retired: ${r.data?.detail || `HTTP ${r.status}`}`, "error");
      return;
    }
    this.records.delete(id);
    const s = this.v.state;
    s.shapes = s.shapes.filter((sh) => sh.ann !== id);
    if (this.selected?.ann === id) this.selected = null;
    this.setStatus(`${silent ? "undone" : "retired"} · v${r.data.version}`, "saved");
    document.dispatchEvent(new CustomEvent("medview:annotation-saved", { detail: { annotation: r.data, previous: rec } }));
    this.v.update({});
  }

  /** Select an annotation from the side panel: its slice is shown (and its handles, with the Edit tool). */
  select(id) {
    const s = this.v.state;
    const shape = s.shapes.find((x) => x.ann === id) || null;
    this.selected = shape;
    if (shape && shape.slice !== null && shape.slice !== undefined && s.slices.includes(shape.slice) && shape.slice !== s.slice
        && (!s.planes || !Object.keys(s.planes).length || s.plane === (shape.plane || "axial"))) {
      this.v.goToSlice(shape.slice);
    } else this.v.update({});
  }

  // -- labels (image folders) -----------------------------------------------------------------------------------

  labelRecord() {
    return [...this.records.values()].find((a) => a.kind === "label") || null;
  }

  setLabel(label) {
    return this.enqueue(async () => {
      const rec = this.labelRecord();
      if (rec && rec.label === label) return;
      if (rec) {
        await this.write(rec, { label }, { undoEntry: { label: rec.label } });
      } else {
        const r = await this.request("POST", this.cfg.urls.create, { kind: "label", label, geometry: {},
                                                                      ...(this.queue ? { queue_id: this.queue.queueId } : {}) });
        if (r.ok) { this.replace(null, r.data, null); this.undoStack.push({ created: true, ann: r.data.id }); }
        else this.setStatus(`not saved: ${r.data?.detail || `HTTP ${r.status}`}`, "error");
      }
      this.paintLabel();
    });
  }

  // -- measurements → annotations -------------------------------------------------------------------------------

  /** The annotation a measurement would be saved as, or a reason it cannot be. */
  measurementAnnotation(m) {
    const kind = m.kind === "bidir" ? "recist" : "line";
    if (!this.cfg.kinds.includes(kind)) return { reason: `this dataset takes no ${kind} annotations` };
    if (m.plane && m.plane !== "axial") return { reason: "save measurements from the axial plane" };
    const meta = m.plane ? { plane: m.plane } : {};
    const seg = roundPts.bind(null);
    if (kind === "recist") {
      if (m.segments.length < 2) return { reason: "draw the short axis first" };
      const [long, short] = [seg(m.segments[0]), seg(m.segments[1])];
      return { body: { kind, label: null, geometry: { long, short, bbox: recistBox(long, short) }, slice: m.slice ?? undefined, meta } };
    }
    return { body: { kind, label: null, geometry: { line: seg(m.segments[0]) }, slice: m.slice ?? undefined, meta } };
  }

  canSave(m) { return !this.measurementAnnotation(m).reason; }

  saveMeasurement(m) {
    const { body, reason } = this.measurementAnnotation(m);
    if (reason) { this.setStatus(`not saved: ${reason}`, "error"); return Promise.resolve(null); }
    m.saving = true;
    return this.enqueue(async () => {
      if (this.queue) body.queue_id = this.queue.queueId;
      const r = await this.request("POST", this.cfg.urls.create, body);
      m.saving = false;
      if (!r.ok) {
        m.error = r.data?.detail || `HTTP ${r.status}`;
        this.setStatus(`not saved: ${m.error}`, "error");
        this.v.update({});
        return;
      }
      const saved = r.data;
      const shape = body.kind === "recist"
        ? { type: "recist", ann: saved.id, slice: saved.slice_index, long: saved.geometry.long, short: saved.geometry.short,
            bbox: saved.geometry.bbox, text: "", long_mm: saved.meta.long_mm, short_mm: saved.meta.short_mm }
        : { type: "line", ann: saved.id, slice: saved.slice_index, plane: saved.meta.plane || null, line: saved.geometry.line,
            length_mm: saved.meta.length_mm };
      this.v.state.shapes.push(shape);
      this.v.measurements = this.v.measurements.filter((x) => x !== m);
      this.undoStack.push({ created: true, ann: saved.id });
      this.replace(null, saved, shape);
    });
  }

  saveAll() {
    const todo = this.v.measurements.filter((m) => !m.saving && this.canSave(m));
    if (!todo.length) { this.setStatus("no measurement to save"); return; }
    for (const m of todo) this.saveMeasurement(m);
  }

  // -- drawing and the side panel ---------------------------------------------------------------------------------

  overlay(pane) {
    if (!this.active) return [];
    return editShapes(this.handles(pane), this.selected, this.live, this.errors, pane);
  }

  bind() {
    const life = { signal: this.v.life.signal }; // per item: a swap (main.js) removes these listeners
    const tool = $("edit-tool");
    tool?.addEventListener("click", () => (this.active ? this.deactivate() : this.activate()), life);
    $("edit-label")?.addEventListener("change", (e) => { if (e.target.value) this.setLabel(e.target.value); }, life);
    $("save-measurements")?.addEventListener("click", () => this.saveAll(), life);
    $("edit-undo")?.addEventListener("click", () => this.undo(), life);
    document.addEventListener("keydown", (e) => {
      const field = e.target instanceof Element ? e.target.closest("input, textarea, select, dialog") : null;
      if (field || e.defaultPrevented) return; // a key another handler (review mode) has taken
      const k = e.key;
      if ((k === "z" || k === "Z") && !e.shiftKey && !e.altKey && OWN_TOOLS.has(this.v.tool)) {
        e.preventDefault();
        this.undo();
      } else if (k === "e" && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();
        if (this.active) this.deactivate(); else this.activate();
      } else if (k === "Escape" && this.selected && !this.drag) {
        this.selected = null;
        this.v.update({});
      } else if (k === "S" && e.shiftKey && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();
        this.saveAll();
      }
    }, life);
  }

  paintLabel() {
    const select = $("edit-label");
    const rec = this.labelRecord();
    if (select && document.activeElement !== select) select.value = rec?.label ?? "";
  }

  /** Status line and the list of editable annotations (retire for one's own). */
  paint() {
    const status = $("edit-status");
    if (status) {
      status.textContent = this.status.text;
      status.dataset.state = this.pendingSaves ? "saving" : this.status.kind;
    }
    const tool = $("edit-tool");
    if (tool) {
      tool.classList.toggle("active", this.active);
      tool.setAttribute("aria-pressed", String(this.active));
    }
    const list = $("edit-annotations");
    if (!list) return;
    const me = `user:${this.cfg.user}`;
    const key = [...this.records.values()].map((a) => `${a.id}.${a.version}`).join() + `|${this.selected?.ann}|${this.undoStack.length}`;
    if (key === this.painted) return; // nothing changed (paint runs with every redraw, drags included)
    this.painted = key;
    const rows = [...this.records.values()].filter((a) => a.kind !== "label").map((a) => {
      const li = document.createElement("li");
      li.dataset.id = String(a.id);
      li.classList.toggle("selected", this.selected?.ann === a.id);
      const what = document.createElement("span");
      const size = a.kind === "recist" && a.meta?.long_mm !== undefined ? ` ${a.meta.long_mm} × ${a.meta.short_mm} mm`
        : a.kind === "line" && a.meta?.length_mm !== undefined ? ` ${a.meta.length_mm} mm` : "";
      const name = a.meta?.lesion_type_name || a.meta?.name || a.label;
      what.textContent = `${a.kind}${name ? ` ${name}` : ""}${size}`;
      const small = document.createElement("span");
      small.className = "muted";
      small.textContent = `v${a.version} · ${a.source}`;
      li.append(what, small);
      li.title = "select it (and show its slice)";
      li.addEventListener("click", (e) => { if (!e.target.closest("button")) this.select(a.id); });
      if (a.source === me) {
        const del = document.createElement("button");
        del.type = "button";
        del.className = "retire";
        del.textContent = "retire";
        del.title = "retire this annotation (kept in its history)";
        del.addEventListener("click", () => this.enqueue(() => this.retire(a.id)));
        li.append(del);
      }
      return li;
    });
    list.replaceChildren(...rows);
    const undo = $("edit-undo");
    if (undo) undo.disabled = !this.undoStack.length;
  }
}
