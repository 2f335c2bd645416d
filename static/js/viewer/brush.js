// The mask brush and eraser (`v.brush`): paints a label onto a client-side copy of the current mask of the shown
// image (a volume: of the shown plane and slice), drawn live on the viewer's mask layer, and saves each stroke
// when it ends as a new version of the mask annotation (a greyscale label PNG in the JSON body; the server stores
// the whole 3-D mask of a volume). Keys: `y` brush, `Shift+Y` eraser, Alt+drag erases, `{` `}` size, `z` / Ctrl+Z
// undo the last stroke (restores the previous mask and saves it as a new version). A version conflict (409) opens
// a dialog naming who changed it and when: reload theirs or keep mine. After each save the document gets a
// "medview:annotation-saved" event {annotation, previous}. In a two-reader review queue the first save makes the
// reader's own annotation (POST with queue_id, meta.derived_from) instead of editing the shared one.

import { fillUrl, writeHeaders } from "../urls.js";
import { fetchLabels } from "./pixels.js";
import { isVolume } from "./url.js";

const SIZE_STEP = 2;
const MAX_SIZE = 100;
const UNDO_DEPTH = 20;
const TOOL_KEYS = new Set(["w", "h", "l", "b", "e"]); // the viewer's mouse tools (W/L, pan, length, RECIST, edit)

const $ = (id) => document.getElementById(id);

// -- a minimal greyscale PNG encoder (8-bit, filter 0, zlib through CompressionStream) -------------------------
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** Labels (Uint8Array, row-major) → base64 of an 8-bit greyscale PNG whose pixel values are the labels. */
export async function labelPngBase64(labels, width, height) {
  const raw = new Uint8Array((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(labels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const zipped = new Uint8Array(await new Response(new Blob([raw]).stream()
    .pipeThrough(new CompressionStream("deflate"))).arrayBuffer());
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  header.set([8, 0, 0, 0, 0], 8); // bit depth 8, greyscale, deflate, filter 0, no interlace
  const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", header), chunk("IDAT", zipped),
                 chunk("IEND", new Uint8Array(0))];
  const png = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { png.set(p, at); at += p.length; }
  let text = "";
  for (let i = 0; i < png.length; i += 0x8000) text += String.fromCharCode(...png.subarray(i, i + 0x8000));
  return btoa(text);
}

// -- the brush --------------------------------------------------------------------------------------------------
export class Brush {
  constructor(v, config) {
    this.v = v;
    this.config = config;
    this.annotation = config.annotation; // {id, version, lineage_id, meta} of the current mask, or null
    this.active = false;
    this.erasing = false;
    this.size = 12; // diameter in image pixels
    this.label = config.labels[0]?.value ?? 1;
    this.base = null; // {key, labels, width, height}: the local copy of the shown view's mask
    this.undoStack = [];
    this.stroke = null;
    this.saving = Promise.resolve();
    this.queue = null;
    this.saves = 0; // successful saves (tests wait on it)
    this.cursor = document.createElement("div");
    this.cursor.className = "brush-cursor";
    Object.assign(this.cursor.style, { position: "absolute", pointerEvents: "none", borderRadius: "50%",
                                       border: "1.5px solid #fff", boxShadow: "0 0 0 1px #000", display: "none",
                                       zIndex: "5", transform: "translate(-50%, -50%)" });
    v.viewport.append(this.cursor);
    this.bind();
  }

  // -- the shared tool API ------------------------------------------------------------------------------------
  activate(mode = "paint") {
    this.v.editor?.deactivate?.(); // one tool at a time: the brush replaces the edit tool
    this.active = true;
    this.erasing = mode === "erase";
    const s = this.v.state;
    if (s.overlays !== "gt" || s.hide.includes("mask")) {
      this.v.update({ overlays: "gt", hide: s.hide.filter((h) => h !== "mask") }, { reload: true });
    }
    this.v.viewport.classList.add("brushing");
    this.paintButtons();
    this.status(this.erasing ? "eraser: drag to erase" : "brush: drag to paint (Alt+drag erases)");
  }

  deactivate() {
    this.active = false;
    this.cursor.style.display = "none";
    this.v.viewport.classList.remove("brushing");
    this.paintButtons();
  }

  setQueue(queue) { this.queue = queue && queue.queueId ? queue : null; }

  /** Another item is swapped in (main.js `swap`): the listeners go with the viewer's signal, the cursor here. */
  destroy() {
    this.active = false;
    this.cursor.remove();
  }

  /** Undo the last stroke: restore the mask before it and save that as a new version. */
  undo() {
    const last = this.undoStack.pop();
    this.paintButtons();
    if (!last) return false;
    if (this.base && this.base.key === last.key) this.base.labels.set(last.labels);
    this.showLocal();
    this.queueSave({ ...last, labels: last.labels });
    return true;
  }

  // -- view and local copy ------------------------------------------------------------------------------------
  pane() { return this.v.panes.find((p) => p.role === "gt") || this.v.panes[0]; }

  viewKey(pane) {
    const volume = isVolume(this.v.state);
    return { plane: volume ? pane.plane : null, slice: volume ? pane.slice : null,
             key: `${volume ? pane.plane : ""}:${volume ? pane.slice : ""}` };
  }

  /** The local copy of the shown view's current mask (the current version's label PNG; empty without one). */
  ensureBase(pane) {
    const { key } = this.viewKey(pane);
    if (this.base && this.base.key === key && this.base.width === pane.width) {
      this.base.pane = pane;
      return Promise.resolve(this.base);
    }
    if (!this.loading || this.loading.key !== key) {
      const promise = this.fetchBase(pane).finally(() => { if (this.loading?.promise === promise) this.loading = null; });
      this.loading = { key, promise };
    }
    return this.loading.promise;
  }

  async fetchBase(pane) {
    const { plane, slice, key } = this.viewKey(pane);
    let labels = new Uint8Array(pane.width * pane.height);
    if (this.annotation) {
      const url = new URL(fillUrl(this.config.urls.annotation_mask, { id: this.annotation.id }), location.origin);
      if (plane) { url.searchParams.set("plane", plane); url.searchParams.set("slice", String(slice)); }
      const fetched = await fetchLabels(`${url.pathname}${url.search}`);
      if (fetched.width === pane.width && fetched.height === pane.height) labels = fetched.labels;
    }
    this.base = { key, plane, slice, labels, width: pane.width, height: pane.height, pane };
    return this.base;
  }

  /** Draw the local copy on the pane's mask layer (the viewer's own colouring, live). */
  showLocal() {
    const pane = this.base && this.v.panes.includes(this.base.pane) ? this.base.pane : this.pane();
    if (!this.base || !pane || this.base.key !== this.viewKey(pane).key) return;
    const palette = pane.gtMask && !pane.gtMask.error ? pane.gtMask.palette : new Map();
    pane.gtMask = { labels: this.base.labels, width: this.base.width, height: this.base.height, palette };
    this.v.dirty.mask = true;
    this.v.schedule();
  }

  // -- painting -------------------------------------------------------------------------------------------------
  dab(x, y, value) {
    const b = this.base;
    const r = this.size / 2;
    const x0 = Math.max(0, Math.floor(x - r)), x1 = Math.min(b.width - 1, Math.ceil(x + r));
    const y0 = Math.max(0, Math.floor(y - r)), y1 = Math.min(b.height - 1, Math.ceil(y + r));
    const r2 = Math.max(0.25, r * r);
    for (let py = y0; py <= y1; py++) {
      for (let px = x0; px <= x1; px++) {
        if ((px - x) ** 2 + (py - y) ** 2 <= r2) b.labels[py * b.width + px] = value;
      }
    }
  }

  line(a, b, value) {
    const steps = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / Math.max(0.5, this.size / 4)));
    for (let n = 1; n <= steps; n++) this.dab(a[0] + (b[0] - a[0]) * n / steps, a[1] + (b[1] - a[1]) * n / steps, value);
  }

  async startStroke(pane, at, erase) {
    const stroke = { pane, points: [at], erase, drawn: 0, ready: false, ended: false };
    this.stroke = stroke;
    try {
      await this.ensureBase(pane);
    } catch (err) {
      this.status(`cannot start from the current mask: ${err.message}`);
      this.stroke = null;
      return;
    }
    stroke.before = this.base.labels.slice();
    stroke.ready = true;
    this.paintStroke(stroke);
    if (stroke.ended) this.endStroke(stroke);
  }

  paintStroke(stroke) {
    if (!stroke.ready) return;
    const value = stroke.erase ? 0 : this.label;
    const pts = stroke.points;
    if (stroke.drawn === 0) { this.dab(pts[0][0], pts[0][1], value); stroke.drawn = 1; }
    for (; stroke.drawn < pts.length; stroke.drawn++) this.line(pts[stroke.drawn - 1], pts[stroke.drawn], value);
    this.showLocal();
  }

  endStroke(stroke) {
    stroke.ended = true;
    if (!stroke.ready) return;
    if (this.stroke === stroke) this.stroke = null;
    const b = this.base;
    let changed = false;
    for (let i = 0; i < b.labels.length; i++) if (b.labels[i] !== stroke.before[i]) { changed = true; break; }
    if (!changed) return;
    this.undoStack.push({ key: b.key, plane: b.plane, slice: b.slice, width: b.width, height: b.height,
                          labels: stroke.before });
    if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
    this.paintButtons();
    this.queueSave({ key: b.key, plane: b.plane, slice: b.slice, width: b.width, height: b.height,
                     labels: b.labels.slice() });
  }

  // -- saving ---------------------------------------------------------------------------------------------------
  queueSave(snapshot) {
    this.saving = this.saving.then(() => this.save(snapshot)).catch((err) => this.status(`not saved: ${err.message}`));
  }

  async save(snap, force = null) {
    this.status("saving…");
    const geometry = { png: await labelPngBase64(snap.labels, snap.width, snap.height) };
    if (snap.plane) { geometry.plane = snap.plane; geometry.slice = snap.slice; }
    const previous = this.annotation;
    const ownQueueReading = this.queue && previous?.meta?.queue_id === this.queue.queueId;
    let url, method, body;
    if (previous && !(this.queue && this.queue.readersPerItem === 2 && !ownQueueReading)) {
      url = fillUrl(this.config.urls.annotation, { id: (force || previous).id });
      method = "PUT";
      body = { version: (force || previous).version, geometry };
    } else {
      url = fillUrl(this.config.urls.create, { id: this.config.item_id });
      method = "POST";
      body = { kind: "mask", label: this.config.binary ? "1" : null, geometry };
      if (this.queue) {
        body.queue_id = this.queue.queueId;
        if (previous) body.meta = { derived_from: previous.lineage_id || previous.id };
      }
    }
    const r = await fetch(url, { method, body: JSON.stringify(body),
                                 headers: writeHeaders({ "content-type": "application/json", accept: "application/json" }) });
    const answer = await r.json().catch(() => ({}));
    if (r.status === 409) return this.conflict(snap, answer);
    if (!r.ok) throw new Error(answer.detail || `HTTP ${r.status}`);
    this.saved(answer, previous, snap);
    return answer;
  }

  saved(annotation, previous, snap) {
    this.annotation = { id: annotation.id, version: annotation.version, lineage_id: annotation.lineage_id,
                        meta: annotation.meta || {} };
    const s = this.v.state;
    s.version = (s.version || 0) + 1; // the server bumped the item's content version: cached views are stale
    if (!s.mask_url) { s.mask_url = this.config.urls.item_mask; s.has_mask = true; }
    this.v.labels.map.clear();
    if (this.base && snap.key === this.base.key && snap.plane) this.base = null; // refetch: the voxels as stored
    this.saves++;
    this.v.viewport.dataset.brushSaves = String(this.saves);
    this.status(`saved: mask version ${annotation.version}`);
    document.dispatchEvent(new CustomEvent("medview:annotation-saved", { detail: { annotation, previous } }));
    if (snap.plane) { // a volume: the stored voxels may differ from the painted pixels, other planes changed too
      const pane = this.v.panes.find((p) => this.viewKey(p).key === snap.key) || this.pane();
      this.v.load().then(() => this.ensureBase(pane)).then(() => this.showLocal()).catch(() => {});
    }
  }

  conflict(snap, answer) {
    const dialog = $("brush-conflict");
    const current = answer.current;
    const when = answer.changed_at ? new Date(answer.changed_at).toLocaleString() : "an unknown time";
    const text = `${answer.changed_by || "someone"} changed this mask at ${when}` +
      (current ? ` (now version ${current.version})` : "");
    if (!dialog || !current) { this.status(`not saved: ${text}`); return null; }
    $("brush-conflict-text").textContent = `${text}. Reload theirs, or keep yours (saved over theirs)?`;
    return new Promise((resolve) => {
      dialog.addEventListener("close", async () => {
        const previous = this.annotation;
        this.annotation = { id: current.id, version: current.version, lineage_id: current.lineage_id,
                            meta: current.meta || {} };
        if (dialog.returnValue === "mine") {
          this.annotation = previous; // resend against their version
          resolve(await this.save(snap, current).catch((e) => this.status(`not saved: ${e.message}`)));
        } else {
          this.base = null;
          this.undoStack = [];
          this.v.state.version = (this.v.state.version || 0) + 1;
          this.v.labels.map.clear();
          this.status(`reloaded version ${current.version}`);
          this.v.load();
          resolve(null);
        }
      }, { once: true });
      dialog.showModal();
    });
  }

  // -- UI -------------------------------------------------------------------------------------------------------
  status(text) { const node = $("brush-status"); if (node) node.textContent = text; }

  paintButtons() {
    const paint = $("brush-paint"), erase = $("brush-erase"), undo = $("brush-undo");
    for (const [node, on] of [[paint, this.active && !this.erasing], [erase, this.active && this.erasing]]) {
      if (!node) continue;
      node.classList.toggle("active", on);
      node.setAttribute("aria-pressed", on ? "true" : "false");
    }
    if (undo) undo.disabled = !this.undoStack.length;
  }

  setSize(size) {
    this.size = Math.max(1, Math.min(MAX_SIZE, Math.round(size)));
    const input = $("brush-size");
    if (input) input.value = String(this.size);
    const out = $("brush-size-value");
    if (out) out.textContent = `${this.size} px`;
    this.moveCursor(this.lastPointer);
  }

  moveCursor(pointer) {
    this.lastPointer = pointer;
    const pane = pointer?.pane;
    if (!this.active || !pane || !pane.raw) { this.cursor.style.display = "none"; return; }
    const box = this.v.viewport.getBoundingClientRect();
    const root = pane.root.getBoundingClientRect();
    const d = this.size * pane.view.zoom;
    Object.assign(this.cursor.style, { display: "block", width: `${d}px`, height: `${d}px`,
                                       left: `${root.left - box.left + pointer.sx}px`,
                                       top: `${root.top - box.top + pointer.sy}px`,
                                       borderStyle: this.erasing || pointer.alt ? "dashed" : "solid" });
  }

  bind() {
    const v = this.v;
    const life = { signal: v.life.signal }; // per item: a swap (main.js) removes these listeners
    const early = { ...life, capture: true };
    const paneOf = (target) => v.panes.find((p) => p.root.contains(target));
    const local = (pane, e) => {
      const r = pane.root.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    // capture phase on the panes' host: a brush stroke never reaches the viewer's own tools (tools.js)
    v.host.addEventListener("pointerdown", (e) => {
      if (!this.active || e.button !== 0 || e.shiftKey) return;
      const pane = paneOf(e.target);
      if (!pane || !pane.raw || pane.role !== "gt") return;
      e.preventDefault();
      e.stopPropagation();
      v.host.setPointerCapture(e.pointerId);
      const [sx, sy] = local(pane, e);
      this.startStroke(pane, pane.toImage(sx, sy), this.erasing || e.altKey);
    }, early);
    v.host.addEventListener("pointermove", (e) => {
      if (!this.active) return;
      const pane = this.stroke?.pane || paneOf(e.target);
      if (!pane) return;
      const [sx, sy] = local(pane, e);
      this.moveCursor({ pane, sx, sy, alt: e.altKey });
      if (!this.stroke) return;
      e.stopPropagation();
      this.stroke.points.push(pane.toImage(sx, sy));
      this.paintStroke(this.stroke);
    }, early);
    const finish = (e) => {
      if (!this.stroke) return;
      e.stopPropagation();
      if (v.host.hasPointerCapture(e.pointerId)) v.host.releasePointerCapture(e.pointerId);
      this.endStroke(this.stroke);
    };
    v.host.addEventListener("pointerup", finish, early);
    v.host.addEventListener("pointercancel", finish, early);
    v.host.addEventListener("pointerleave", () => { this.cursor.style.display = "none"; }, life);

    // choosing another mouse tool (toolbar or its key) puts the brush away
    for (const b of document.querySelectorAll("button[data-tool]")) b.addEventListener("click", () => this.deactivate(), life);
    $("brush-paint")?.addEventListener("click", () => (this.active && !this.erasing ? this.deactivate() : this.activate("paint")), life);
    $("brush-erase")?.addEventListener("click", () => (this.active && this.erasing ? this.deactivate() : this.activate("erase")), life);
    $("brush-undo")?.addEventListener("click", () => this.undo(), life);
    $("brush-size")?.addEventListener("input", (e) => this.setSize(Number(e.target.value)), life);
    $("brush-label")?.addEventListener("change", (e) => { this.label = Number(e.target.value); }, life);
    document.addEventListener("keydown", (e) => {
      const field = e.target instanceof Element ? e.target.closest("input, textarea, select") : null;
      if (field && field.type !== "range") return;
      if (e.metaKey || (e.altKey && !e.ctrlKey)) return;
      const k = e.key;
      let handled = true;
      if ((k === "z" || k === "Z") && e.ctrlKey && !e.shiftKey) { if (this.active) this.undo(); else handled = false; }
      else if (e.ctrlKey) handled = false;
      else if (k === "y") (this.active && !this.erasing ? this.deactivate() : this.activate("paint"));
      else if (k === "Y") (this.active && this.erasing ? this.deactivate() : this.activate("erase"));
      else if (k === "{" && this.active) this.setSize(this.size - SIZE_STEP);
      else if (k === "}" && this.active) this.setSize(this.size + SIZE_STEP);
      else if (k === "z" && this.active) this.undo();
      else if (k === "Escape" && this.active && $("viewer-help")?.hidden !== false) this.deactivate();
      else {
        if (this.active && TOOL_KEYS.has(k)) this.deactivate(); // another tool's key: that tool takes over
        handled = false;
      }
      if (handled) { e.preventDefault(); e.stopImmediatePropagation(); }
    }, early);
  }
}

/** The page's brush, when the item's dataset takes user masks (the `brush-config` block), else null. */
export function createBrush(v) {
  const node = document.getElementById("brush-config");
  if (!node) return null;
  return new Brush(v, JSON.parse(node.textContent));
}
