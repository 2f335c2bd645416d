// The item viewer: every dataset kind in one client-side viewer. It fetches the stored values of each shown slice
// once (`/raw`: int16 HU or uint8 grey/RGB) and windows them in the browser (a W/L drag never waits on the server),
// draws ground-truth and predicted label images (`/mask`, prediction mask URLs) as fill or contour, vector shapes in
// an SVG layer, and keeps the view in the page URL. Layouts: one pane; side by side (ground truth | a model's
// prediction, zoom/pan/window/slice shared); three linked planes of a volume with a crosshair. The server-rendered
// <img> stays as the first paint (and the no-script view) until the first slice has arrived.

import { Pane } from "./pane.js";
import { SliceCache, diffToRgba, fetchLabels, fetchRaw, labelsToRgba, windowLut } from "./pixels.js";
import { crossShapes, diffBoxShapes, gtShapes, measureShapes, predShapes, truthBoxes } from "./overlays.js";
import { PLANE_AXIS, clamp } from "./geometry.js";
import { isVolume, syncUrl } from "./url.js";
import { paintReadouts, paintLegend } from "./readouts.js";
import { bindControls } from "./controls.js";
import { bindPointer } from "./tools.js";

// The editing tools (annotation editor, comments, mask brush) are loaded after the first frame, not before it: on a
// first visit every module before the first frame is a request, a compile and a run between the page and its first
// CT pixel (bench/first_pixel.py). Once loaded they stay in the module map, so a review swap binds them at once.
let extraModules = null;
const loadExtras = () => Promise.all([import("./edit.js"), import("./comments.js"), import("./brush.js")]);
const nextFrameDone = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

const SPINNER_DELAY_MS = 150;
const PLANES = ["axial", "coronal", "sagittal"];

export class Viewer {
  constructor(state) {
    this.state = state;
    this.viewport = document.getElementById("viewport");
    this.host = document.createElement("div");
    this.viewport.prepend(this.host);
    this.raws = new SliceCache(fetchRaw);
    this.labels = new SliceCache(fetchLabels, 24);
    this.lut = new Uint32Array(65536);
    this.frame = 0;
    this.frames = 0; // drawn frames (tests and the bench read it)
    this.token = 0;
    new ResizeObserver(() => this.schedule()).observe(this.viewport);
    bindPointer(this); // on the panes' host, reading this.state (one object for the page's life: see swap)
    this.start();
  }

  /** Per-item start: the state's derived fields, per-item fields, the panes and the per-item bindings (their
   * listeners carry `this.life.signal`, so a swap removes them all), then the first load. */
  start() {
    const state = this.state;
    this.img = document.getElementById("slice-image");
    this.errorBox = document.getElementById("image-error");
    this.life = new AbortController();
    this.measurements = [];
    this.pending = null; // a bidirectional measurement's long axis, waiting for its short axis
    this.nextId = 1;
    this.tool = state.windowed ? "wl" : "pan";
    this.dirty = { window: true, mask: true };
    this.prepareState(state);
    this.buildPanes();
    this.editor = null;
    this.brush = null;
    this.extrasReady = false;
    const first = this.load(); // first: the slice's fetch (preloaded by the page) starts now
    bindControls(this);
    if (extraModules) {
      this.attachExtras(extraModules);
    } else {
      const life = this.life;
      first
        .catch((err) => setTimeout(() => { throw err; })) // the page's error, as ever; the tools load anyway
        .then(nextFrameDone)
        .then(loadExtras)
        // once more a second later: a page being left (or closed) drops the timer, so only a real failure is told
        .catch(() => new Promise((resolve) => setTimeout(resolve, 1000)).then(loadExtras))
        .then((mods) => {
          extraModules = mods;
          if (life === this.life) this.attachExtras(mods);
        })
        .catch((err) => this.partFailed("the editing tools", err));
    }
  }

  /** The editor (annotators and above only), comments and the mask brush / eraser (null when the kind takes no
   * user masks), with review mode's queue when the page is a queue's. */
  attachExtras([{ Editor }, { bindComments }, { createBrush }]) {
    this.editor = this.state.edit?.can_edit ? new Editor(this) : null;
    bindComments(this);
    this.brush = createBrush(this);
    if (this.queueSetup) this.setQueue(this.queueSetup);
    this.extrasReady = true;
    this.schedule(); // the editor's handles, if any
  }

  /** A part of the page loaded after the first frame did not load (a module request failed): say so where the
   * user looks, and report it as an error of the page (tests fail on it, naming the cause, rather than waiting
   * for `ready()`). */
  partFailed(what, err) {
    const box = this.errorBox;
    if (box) {
      box.textContent = `${what[0].toUpperCase()}${what.slice(1)} could not be loaded (${err?.message || err}); reload the page.`;
      box.hidden = false;
    }
    setTimeout(() => { throw err; });
  }

  /** Review mode's queue (review.js), kept for the editing tools, which may arrive after it. */
  setQueue(setup) {
    this.queueSetup = setup;
    this.editor?.setQueue?.(setup);
    this.brush?.setQueue?.(setup);
  }

  prepareState(state) {
    if (isVolume(state)) {
      const { sagittal, coronal, axial } = state.planes;
      state.shape = [sagittal, coronal, axial]; // canonical (i, j, k) voxel counts
      if (!state.spacing_maps_planes) state.spacing = null; // map planes by the shown images' sizes instead
      if (state.at) state.slice = state.at[PLANE_AXIS[state.plane]];
      else state.at = this.defaultCursor(state);
    }
  }

  /** Show another item in place (review mode's swap, review.js): the page's item parts were already replaced
   * (toolbar, viewport corners, side panel, the `viewer-state` block); `state` is that block's. The slice caches
   * stay (URLs are per item and version); measurements, pending, the editor's records and undo stack, the brush's
   * base, comments and the per-item listeners go. The state object keeps its identity (listeners bound once,
   * tools.js, hold it). */
  swap(state, { warmed = false } = {}) {
    this.life.abort();
    this.brush?.destroy?.();
    this.editor?.destroy?.();
    clearTimeout(this.spinner);
    this.viewport.classList.remove("loading", "brushing");
    // a warmed slice is drawn before the next frame: the old canvas stays until then; else the new item's
    // server-rendered image shows first, as after a page load
    if (!warmed) this.viewport.classList.remove("live");
    delete this.viewport.dataset.loading;
    delete document.documentElement.dataset.drawnItem; // the first-draw mark is made again for this item
    for (const key of Object.keys(this.state)) delete this.state[key];
    Object.assign(this.state, state);
    this.start();
  }

  /** The first view's raw slice of a (next) item's state into the slice cache, so a swap draws at once. */
  warm(state) {
    const s = { ...state };
    if (isVolume(s)) {
      if (s.layout === "three") return null; // three planes: let the swap load them
      if (s.at) s.slice = s.at[PLANE_AXIS[s.plane]];
    }
    return this.raws.get(this.url(s.raw_url, s.plane || "axial", s.slice, s)).catch(() => null);
  }

  defaultCursor(state = this.state) {
    const at = state.shape.map((n) => Math.floor(n / 2));
    at[PLANE_AXIS[state.plane]] = state.slice;
    return at;
  }

  /** The selected model's prediction (the `model` in the URL, else the first stored one). */
  prediction() {
    const { predictions, model } = this.state;
    return predictions.find((p) => p.model_id === model) || predictions[0] || null;
  }

  shows(layer) { return !this.state.hide.includes(layer); }
  gtOn() { return this.state.overlays === "gt"; }

  buildPanes() {
    const s = this.state;
    this.host.replaceChildren();
    this.host.className = `panes layout-${s.layout}`;
    if (s.layout === "three") {
      this.panes = PLANES.map((p) => new Pane(this.host, { role: "gt", plane: p, title: p }));
    } else {
      this.panes = [new Pane(this.host, { role: "gt", plane: isVolume(s) ? s.plane : null,
                                         title: s.layout === "side" ? "ground truth" : "" })];
      if (s.layout === "side") {
        const pred = this.prediction();
        this.panes.push(new Pane(this.host, { role: "pred", plane: this.panes[0].plane,
                                             title: pred ? `prediction · ${pred.model_name}` : "no prediction yet" }));
      }
    }
    this.dirty = { window: true, mask: true };
  }

  sliceOf(pane) {
    const s = this.state;
    if (s.layout === "three") return Math.round(s.at[PLANE_AXIS[pane.plane]]);
    return s.slice;
  }

  url(base, plane, slice, state = this.state) {
    const p = new URLSearchParams();
    if (isVolume(state)) p.set("plane", plane);
    if (slice !== null && slice !== undefined) p.set("slice", String(slice));
    p.set("v", String(state.version));
    return `${base}?${p}`;
  }

  /** The predicted label image of a view: its URL with the view's plane/slice; 2-D key-slice items only there. */
  predMaskUrl(pred, plane, slice) {
    const mask = pred?.outputs?.mask;
    if (typeof mask !== "string") return null;
    const s = this.state;
    if (!isVolume(s) && s.slices.length && slice !== s.key_slice) return null;
    const u = new URL(mask, location.origin);
    if (isVolume(s)) u.searchParams.set("plane", plane);
    if (slice !== null && slice !== undefined && (isVolume(s) || s.slices.length)) u.searchParams.set("slice", String(slice));
    return `${u.pathname}${u.search}`;
  }

  needsGtMask(pane) {
    return Boolean(this.state.mask_url) && pane.role === "gt" && this.gtOn() && (this.shows("mask") || this.state.diff);
  }

  needsPredMask(pane) {
    return (pane.role === "pred" && this.shows("pred")) || (pane.role === "gt" && this.state.diff);
  }

  /** Fetch what every pane shows (raw values, label images), then draw. Stale answers are dropped. */
  async load() {
    const token = ++this.token;
    const s = this.state;
    clearTimeout(this.spinner);
    this.viewport.dataset.loading = "true";
    this.spinner = setTimeout(() => this.viewport.classList.add("loading"), SPINNER_DELAY_MS);
    const pred = this.prediction();
    const jobs = this.panes.map(async (pane) => {
      const slice = this.sliceOf(pane);
      const raw = await this.raws.get(this.url(s.raw_url, pane.plane || "axial", slice));
      const soft = (url) => (url ? this.labels.get(url).catch((e) => ({ error: e.message })) : null);
      const gt = this.needsGtMask(pane) ? await soft(this.url(s.mask_url, pane.plane, slice)) : null;
      const pr = this.needsPredMask(pane) ? await soft(this.predMaskUrl(pred, pane.plane, slice)) : null;
      return { pane, slice, raw, gt, pr };
    });
    let results;
    try {
      results = await Promise.all(jobs);
    } catch (err) {
      if (token === this.token) this.failed(err.message);
      return;
    }
    if (token !== this.token) return;
    for (const { pane, slice, raw, gt, pr } of results) {
      pane.setRaw(raw);
      pane.slice = slice;
      pane.gtMask = gt;
      pane.predMask = pr;
    }
    this.loaded();
    this.dirty = { window: true, mask: true };
    this.drawNow();
    this.prefetch();
  }

  loaded() {
    clearTimeout(this.spinner);
    this.viewport.classList.remove("loading");
    delete this.viewport.dataset.loading;
    this.errorBox.hidden = true;
    this.viewport.classList.add("live"); // the canvas replaces the server-rendered first paint
  }

  failed(detail) {
    clearTimeout(this.spinner);
    this.viewport.classList.remove("loading");
    delete this.viewport.dataset.loading;
    this.errorBox.textContent = detail || "the image could not be loaded";
    this.errorBox.hidden = false;
  }

  /** The neighbouring slices of every pane, so scrolling shows them at once. */
  prefetch() {
    const s = this.state;
    for (const pane of this.panes) {
      const list = isVolume(s) ? null : s.slices;
      for (const d of [1, -1, 2]) {
        let next;
        if (list) next = list[list.indexOf(pane.slice) + d];
        else next = pane.slice + d;
        const count = isVolume(s) ? s.planes[pane.plane] : null;
        if (next === undefined || next === null || next < 0 || (count !== null && next >= count)) continue;
        this.raws.get(this.url(s.raw_url, pane.plane || "axial", next)).catch(() => {});
      }
    }
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.drawNow(); });
  }

  /** Window (LUT + putImageData) when it changed, label layers when they changed, then every pane's frame. */
  drawNow() {
    const s = this.state;
    if (!this.panes.some((pane) => pane.raw)) return void paintReadouts(this); // nothing yet: the server image shows
    if (this.dirty.window) {
      windowLut(s.window[0], s.window[1], s.invert, this.lut);
      for (const pane of this.panes) pane.recolour(this.lut, s.invert);
    }
    if (this.dirty.mask) for (const pane of this.panes) this.paintMask(pane);
    this.dirty = { window: false, mask: false };
    for (const pane of this.panes) {
      pane.view = this.viewFor(pane);
      pane.shapes = this.shapesFor(pane);
      pane.draw();
      paintLegend(this, pane);
    }
    this.frames++;
    if (!document.documentElement.dataset.drawnItem && this.panes[0]?.raw) { // first pixels of this item:
      document.documentElement.dataset.drawnItem = String(s.id); // review mode's bench and tests wait on it
      performance.mark("medview:first-draw", { detail: { item: s.id } }); // one per item (a swap makes another)
    }
    paintReadouts(this);
  }

  paintMask(pane) {
    const s = this.state;
    const alpha = s.mask_mode === "contour" ? 1 : s.opacity;
    const ok = (m) => m && !m.error && pane.raw && m.width === pane.raw.width && m.height === pane.raw.height;
    pane.diffCounts = null;
    if (pane.role === "gt" && s.diff && ok(pane.gtMask) && ok(pane.predMask)) {
      pane.setMask((words) => { pane.diffCounts = diffToRgba(pane.gtMask, pane.predMask, words); },
                   Math.max(s.opacity, 0.5));
    } else if (pane.role === "gt" && this.gtOn() && this.shows("mask") && ok(pane.gtMask)) {
      pane.setMask((words) => labelsToRgba(pane.gtMask, pane.gtMask.palette, s.mask_mode, words), alpha);
    } else if (pane.role === "pred" && this.shows("pred") && ok(pane.predMask)) {
      const palette = pane.predMask.palette.size ? pane.predMask.palette : this.panes[0].gtMask?.palette;
      pane.setMask((words) => labelsToRgba(pane.predMask, palette, s.mask_mode, words), alpha);
    } else pane.setMask(null, 0);
  }

  viewFor(pane) {
    const s = this.state;
    const zoom = s.zoom ?? pane.fitZoom();
    if (s.layout === "three" && s.zoom !== null && pane.raw) {
      const [x, y] = crossShapes(s, s.at, pane)[0].at; // zoomed planes stay centred on the crosshair
      return { zoom, cx: x, cy: y };
    }
    const [cx, cy] = s.pan && s.layout !== "three" ? s.pan : [(pane.width - 1) / 2, (pane.height - 1) / 2];
    return { zoom, cx, cy };
  }

  /** Whether a 2-D prediction applies to the shown slice (DeepLesion: the key slice). */
  predHere(pane) {
    const s = this.state;
    return isVolume(s) || !s.slices.length || pane.slice === s.key_slice;
  }

  shapesFor(pane) {
    const s = this.state;
    const pred = this.prediction();
    const detect = pred?.task === "detect2d" && this.predHere(pane);
    let out = [];
    if (pane.role === "gt") {
      if (this.gtOn() && this.shows("shapes")) {
        out = gtShapes(s, pane, visibleLabels(pane.gtMask), { boxes: !(s.diff && detect) });
        if (this.editor) out.push(...this.editor.overlay(pane));
      }
      pane.boxCounts = null;
      if (s.diff && detect) {
        const { shapes, counts } = diffBoxShapes(pred, truthBoxes(s.shapes, pane.slice));
        out.push(...shapes);
        pane.boxCounts = counts;
      }
    } else if (pane.role === "pred" && this.shows("pred") && detect) out = predShapes(pred);
    if (this.shows("measure")) out.push(...measureShapes(this.pendingList(), pane));
    if (s.layout === "three") out.push(...crossShapes(s, s.at, pane));
    return out;
  }

  pendingList() {
    return this.pending ? [...this.measurements, this.pending] : this.measurements;
  }

  // -- state changes -------------------------------------------------------------------------------------------

  /** Apply `changes`; `reload` when the shown slices or label layers change, else just a redraw. */
  update(changes, { reload = false, mask = false, window = false } = {}) {
    Object.assign(this.state, changes);
    if (window) this.dirty.window = true;
    if (mask) this.dirty.mask = true;
    syncUrl(this.state);
    if (reload) this.load();
    else this.schedule();
    paintReadouts(this);
  }

  setWindow(low, high, preset = null) {
    if (!(high > low)) return;
    this.update({ window: [low, high], preset }, { window: true });
  }

  setLayout(layout) {
    const s = this.state;
    if (layout === s.layout || (layout === "three" && !isVolume(s))) layout = "single";
    if (layout === "three") s.at = s.at || this.defaultCursor();
    s.layout = layout;
    this.buildPanes();
    this.update({ pan: layout === "three" ? null : s.pan }, { reload: true });
  }

  /** Move the three-plane cursor (canonical voxel) and the main plane's slice with it. */
  setCursor(at) {
    const s = this.state;
    const clamped = at.map((v, n) => clamp(Math.round(v), 0, s.shape[n] - 1));
    this.update({ at: clamped, slice: clamped[PLANE_AXIS[s.plane]] }, { reload: true });
  }

  step(delta, pane = null) {
    const s = this.state;
    if (s.layout === "three") {
      const plane = pane?.plane || s.plane;
      const at = [...s.at];
      at[PLANE_AXIS[plane]] += delta;
      this.setCursor(at);
      return;
    }
    const i = s.slices.indexOf(s.slice);
    const j = Math.min(s.slices.length - 1, Math.max(0, i + delta));
    if (i >= 0 && j !== i) this.update({ slice: s.slices[j] }, { reload: true });
  }

  goToSlice(slice) {
    const s = this.state;
    if (s.layout === "three") {
      const at = [...s.at];
      at[PLANE_AXIS[s.plane]] = slice;
      this.setCursor(at);
    } else if (s.slices.includes(slice)) this.update({ slice }, { reload: true });
  }

  setPlane(name) {
    const s = this.state;
    if (!isVolume(s) || !(name in s.planes) || name === s.plane) return;
    const count = s.planes[name];
    const middle = Math.floor(count / 2);
    const slice = s.layout === "three" ? s.at[PLANE_AXIS[name]] : middle;
    for (const pane of this.panes) if (s.layout !== "three") pane.plane = name;
    this.update({ plane: name, slices: Array.from({ length: count }, (_, i) => i), key_slice: middle, slice,
                  pan: null }, { reload: true });
  }

  /** Add a prediction made on this page (predictions.js) or show another model's. */
  showPrediction(prediction, { compare = false } = {}) {
    const s = this.state;
    if (prediction) {
      const out = prediction.outputs || {};
      prediction.task = prediction.task || (out.mask ? "segment2d" : out.boxes ? "detect2d" : "classify");
      s.predictions = [...s.predictions.filter((p) => p.model_id !== prediction.model_id), prediction];
      s.model = prediction.model_id;
    }
    if (compare && s.layout !== "side") s.layout = "side";
    this.buildPanes();
    this.update({}, { reload: true });
  }

  /** Test and bench hook: values and displayed pixels. */
  api() {
    return {
      state: this.state, viewer: this,
      setWindow: (low, high) => { this.setWindow(low, high); this.drawNow(); },
      ready: () => this.extrasReady && !this.viewport.dataset.loading && this.viewport.classList.contains("live") && !this.frame,
      panes: () => this.panes.map((p) => ({ role: p.role, plane: p.plane, slice: p.slice, width: p.width,
                                              height: p.height, view: { ...p.view }, diff: p.diffCounts,
                                              boxes: p.boxCounts })),
      screen: (n, x, y) => this.panes[n].toScreen(x, y),
      paneBox: (n) => { const r = this.panes[n].root.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; },
      pixel: (n, x, y) => { // the displayed RGB at image pixel (x, y) of pane n
        const pane = this.panes[n];
        const [sx, sy] = pane.toScreen(x, y);
        const dpr = window.devicePixelRatio || 1;
        const d = pane.ctx.getImageData(Math.floor(sx * dpr), Math.floor(sy * dpr), 1, 1).data;
        return [d[0], d[1], d[2]];
      },
      measurements: () => this.measurements.map((m) => ({ ...m })),
      editor: () => this.editor || null,
      drawNow: () => this.drawNow(),
    };
  }
}

function visibleLabels(mask) {
  if (!mask || mask.error) return new Set();
  if (!mask.present) {
    mask.present = new Set();
    for (const l of mask.labels) if (l) mask.present.add(l);
  }
  return mask.present;
}

const viewer = new Viewer(JSON.parse(document.getElementById("viewer-state").textContent));
window.medviewViewer = viewer.api();
if (document.getElementById("review-bar")) { // review mode: the page was opened from a queue (?queue=Q)
  import("./review.js").then(({ startReview }) => startReview(viewer))
    .catch((err) => viewer.partFailed("review mode", err));
}
