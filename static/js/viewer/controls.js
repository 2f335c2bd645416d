// Toolbar, keyboard and side-panel wiring of the viewer. Every action has a key (the `?` overlay lists them);
// keys a focused field uses itself stay its own (letters and digits still reach the viewer from a slider).

import { isVolume } from "./url.js";

const OPACITY_STEP = 0.1;
const ZOOM_STEP = 1.25;
const PLANE_KEYS = { a: "axial", c: "coronal", s: "sagittal" };
const LAYER_KEYS = { g: "mask", v: "shapes", p: "pred", r: "measure" };
const TOOL_KEYS = { w: "wl", h: "pan", l: "line", b: "bidir" };
const SLIDER_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);

const $ = (id) => document.getElementById(id);

function ownKey(target, key) {
  const field = target instanceof Element ? target.closest("input, textarea, select") : null;
  return field !== null && (field.type !== "range" || SLIDER_KEYS.has(key));
}

export function bindControls(v) {
  const s = v.state;
  const life = { signal: v.life.signal }; // per item: a swap (main.js) removes these listeners
  const on = (node, event, fn) => node?.addEventListener(event, fn, life);
  const setPreset = (name) => { if (s.windowed && name in s.presets) v.setWindow(...s.presets[name], name); };
  const toggleOverlays = () => v.update({ overlays: s.overlays === "gt" ? "none" : "gt" }, { reload: true });
  const toggleLayer = (layer) => {
    const hide = s.hide.includes(layer) ? s.hide.filter((h) => h !== layer) : [...s.hide, layer];
    // showing a ground-truth layer while all ground truth is off turns it back on
    const overlays = !hide.includes(layer) && ["mask", "shapes"].includes(layer) ? "gt" : s.overlays;
    v.update({ hide, overlays }, { reload: true });
  };
  const setMaskMode = (mode) => {
    if (!s.has_mask || (mode === s.mask_mode && s.overlays === "gt" && !s.hide.includes("mask"))) return;
    v.update({ mask_mode: mode, overlays: "gt", hide: s.hide.filter((h) => h !== "mask") }, { reload: true });
  };
  const setOpacity = (opacity) => {
    opacity = Math.round(Math.min(1, Math.max(0, opacity)) * 1000) / 1000;
    if (opacity !== s.opacity || s.overlays !== "gt") v.update({ opacity, overlays: "gt" }, { reload: s.overlays !== "gt", mask: true });
  };
  const zoomBy = (factor) => {
    const zoom = v.panes[0].view.zoom * factor;
    v.update({ zoom: Math.min(64, Math.max(0.05, zoom)), pan: s.pan ?? (s.layout === "three" ? null : [v.panes[0].view.cx, v.panes[0].view.cy]) });
  };
  const fit = () => v.update({ zoom: null, pan: null });
  const native = () => v.update({ zoom: 1 });
  // W/L needs grey values with a window (CT's HU, MR's own units); measuring tools are the ones the kind offers (state.tools, from its adapter)
  const offers = (tool) => tool === "pan" || (tool === "wl" ? s.windowed : s.tools.includes(tool));
  const setTool = (tool) => { if (!offers(tool)) return; v.tool = tool; v.pending = null; v.update({}); };
  v.deleteMeasurement = (id) => {
    v.measurements = v.measurements.filter((m) => m.id !== id);
    v.update({});
  };
  const help = $("viewer-help");
  const toggleHelp = (show = help.hidden) => { help.hidden = !show; };

  for (const b of document.querySelectorAll("button[data-preset]")) on(b, "click", () => setPreset(b.dataset.preset));
  on($("toggle-overlays"), "click", toggleOverlays);
  on($("prev-slice"), "click", () => v.step(-1));
  on($("next-slice"), "click", () => v.step(1));
  on($("key-slice"), "click", () => v.goToSlice(s.key_slice));
  on($("slice-slider"), "input", (e) => v.goToSlice(s.slices[Number(e.target.value)]));
  for (const b of document.querySelectorAll("button[data-plane]")) on(b, "click", () => v.setPlane(b.dataset.plane));
  for (const b of document.querySelectorAll("button[data-mask-mode]")) on(b, "click", () => setMaskMode(b.dataset.maskMode));
  for (const b of document.querySelectorAll("button[data-layer]")) on(b, "click", () => toggleLayer(b.dataset.layer));
  for (const b of document.querySelectorAll("button[data-tool]")) on(b, "click", () => setTool(b.dataset.tool));
  for (const b of document.querySelectorAll("button[data-layout]")) on(b, "click", () => v.setLayout(b.dataset.layout));
  on($("toggle-diff"), "click", () => v.update({ diff: !s.diff }, { reload: true }));
  on($("toggle-invert"), "click", () => v.update({ invert: !s.invert }, { window: true }));
  on($("zoom-fit"), "click", fit);
  on($("zoom-native"), "click", native);
  on($("show-help"), "click", () => toggleHelp());
  on($("close-help"), "click", () => toggleHelp(false));
  on($("clear-measurements"), "click", () => { v.measurements = []; v.update({}); });
  const opacityInput = $("mask-opacity");
  on(opacityInput, "input", () => setOpacity(Number(opacityInput.value))); // drawn in the browser: no debounce
  on($("custom-window"), "submit", (event) => {
    event.preventDefault();
    const lowInput = $("window-low");
    const highInput = $("window-high");
    const low = Number(lowInput.value);
    const high = Number(highInput.value);
    const bad = lowInput.value === "" || highInput.value === "" || !Number.isFinite(low) || !Number.isFinite(high);
    highInput.setCustomValidity(bad ? `enter two numbers${s.units ? ` (${s.units})` : ""}` : high <= low ? "HIGH must be greater than LOW" : "");
    if (!highInput.reportValidity()) return;
    lowInput.blur();
    highInput.blur();
    v.setWindow(low, high);
  });
  on($("window-high"), "input", () => $("window-high").setCustomValidity(""));

  for (const row of document.querySelectorAll(".lesion-row")) {
    on(row, "click", () => {
      const slice = Number(row.dataset.slice);
      if (row.dataset.slice !== "" && s.slices.includes(slice)) v.update({ slice, overlays: "gt" }, { reload: true });
    });
  }
  // volume annotations (vertebra centroids) carry their slice in each plane: data-axial, data-coronal, …
  for (const row of document.querySelectorAll(".plane-target")) {
    on(row, "click", () => {
      if (!isVolume(s)) return;
      if (s.layout === "three") {
        v.state.overlays = "gt";
        v.setCursor([Number(row.dataset.sagittal), Number(row.dataset.coronal), Number(row.dataset.axial)]);
        return;
      }
      const slice = Number(row.dataset[s.plane]);
      if (s.slices.includes(slice)) v.update({ slice, overlays: "gt" }, { reload: true });
    });
  }
  // predictions.js: a model run on this page, or "compare" on a stored prediction
  document.addEventListener("medview:prediction", (e) => v.showPrediction(e.detail.prediction, { compare: e.detail.compare }), life);

  const keys = (event) => {
    const k = event.key;
    const lower = k.length === 1 ? k.toLowerCase() : k;
    const n = Number(k);
    if (k === "?") toggleHelp();
    else if (k === "Escape") { if (!help.hidden) toggleHelp(false); else { v.pending = null; v.update({}); } }
    else if (Number.isInteger(n) && n >= 1 && n <= s.preset_order.length && s.windowed) setPreset(s.preset_order[n - 1]);
    else if (lower === "o") toggleOverlays();
    else if (lower === "m" && s.has_mask) setMaskMode(s.mask_mode === "contour" ? "fill" : "contour");
    else if (k === "[" || k === "]") { if (s.has_mask || s.predictions.length) setOpacity(s.opacity + (k === "]" ? OPACITY_STEP : -OPACITY_STEP)); }
    else if (lower in LAYER_KEYS) toggleLayer(LAYER_KEYS[lower]);
    else if (lower in TOOL_KEYS && offers(TOOL_KEYS[lower])) setTool(TOOL_KEYS[lower]);
    else if (lower === "i") v.update({ invert: !s.invert }, { window: true });
    else if (lower === "f") fit();
    else if (lower === "n") native();
    else if (k === "+" || k === "=") zoomBy(ZOOM_STEP);
    else if (k === "-" || k === "_") zoomBy(1 / ZOOM_STEP);
    else if (lower === "t" && isVolume(s)) v.setLayout("three");
    else if (lower === "x") v.setLayout("side");
    else if (lower === "d") v.update({ diff: !s.diff }, { reload: true });
    else if (isVolume(s) && lower in PLANE_KEYS) v.setPlane(PLANE_KEYS[lower]);
    else if (k === "ArrowLeft" || k === "ArrowUp" || k === "PageUp") v.step(-1);
    else if (k === "ArrowRight" || k === "ArrowDown" || k === "PageDown") v.step(1);
    else if ((lower === "k" || k === "Home") && s.slices.length) v.goToSlice(s.key_slice);
    else if ((k === "Delete" || k === "Backspace") && v.measurements.length) v.deleteMeasurement(v.measurements.at(-1).id);
    else return false;
    return true;
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (ownKey(event.target, event.key)) return;
    if (event.shiftKey && /^[A-Z]$/.test(event.key)) return; // Shift+letter: edit and review keys (Shift+S …)
    if (keys(event)) event.preventDefault();
  }, life);
}
