// Key-slice and volume viewer. The server renders each slice (window, overlays) as a JPEG; this module only
// keeps the state (window or preset, plane, slice, overlays, mask mode and opacity), mirrors it in the page URL
// (history.replaceState, so a view can be shared and reloaded) and swaps the image through showImage(). Volumes
// carry `planes` ({axial|coronal|sagittal: slice count}) and `plane`; their slices are 0…n-1 and the middle one
// stands in for the key slice. Items with a mask annotation (`has_mask`) get the fill/contour and opacity
// controls; like every parameter, mask_mode and opacity appear in URLs only when they differ from the defaults.

const SPINNER_DELAY_MS = 150;
const OPACITY_DEBOUNCE_MS = 100; // the slider re-renders at most this often while dragged
const DEFAULT_MASK_MODE = "fill"; // the render endpoint's defaults (app/render/service.py RenderParams)
const DEFAULT_OPACITY = 0.4;
const WHEEL_STEP_PX = 50; // wheel distance per slice step (a mouse notch is ~100 px, trackpads send less)

const state = JSON.parse(document.getElementById("viewer-state").textContent);
const img = document.getElementById("slice-image");
const viewport = document.getElementById("viewport");
const errorBox = document.getElementById("image-error");
const lowInput = document.getElementById("window-low");
const highInput = document.getElementById("window-high");
const windowReadout = document.getElementById("window-readout");
const sliceReadout = document.getElementById("slice-readout");
const overlayButton = document.getElementById("toggle-overlays");
const applyButton = document.getElementById("apply-window");
const presetButtons = [...document.querySelectorAll("button[data-preset]")];
const prevButton = document.getElementById("prev-slice");
const nextButton = document.getElementById("next-slice");
const keyButton = document.getElementById("key-slice");
const customForm = document.getElementById("custom-window");
const planeButtons = [...document.querySelectorAll("button[data-plane]")];
const maskButtons = [...document.querySelectorAll("button[data-mask-mode]")];
const opacityInput = document.getElementById("mask-opacity");
const opacityOutput = document.getElementById("mask-opacity-value");
const opacityLabel = opacityInput?.closest("label");
const PLANE_KEYS = { a: "axial", c: "coronal", s: "sagittal" };

const num = (x) => String(Math.round(x * 1000) / 1000);
const isVolume = (s) => Boolean(s.planes && Object.keys(s.planes).length);

/** The render URL for a state; the same parameters, in the same order, as the page's first image. */
function renderUrl(s) {
  const p = new URLSearchParams({ format: "jpeg", overlays: s.overlays, v: String(s.version) });
  if (s.preset === null) p.set("window", `${num(s.window[0])},${num(s.window[1])}`);
  else if (s.preset !== "default") p.set("preset", s.preset);
  if (isVolume(s)) p.set("plane", s.plane);
  if (s.slice !== null && s.slice !== s.key_slice) p.set("slice", String(s.slice));
  setMaskParams(p, s);
  return `${s.render_url}?${p}`;
}

/** mask_mode and opacity, only when they differ from the render endpoint's defaults (as pages.render_url). */
function setMaskParams(p, s) {
  if (s.mask_mode !== DEFAULT_MASK_MODE) p.set("mask_mode", s.mask_mode);
  if (s.opacity !== DEFAULT_OPACITY) p.set("opacity", num(s.opacity));
}

let spinnerTimer = 0;
let wanted = img.getAttribute("src");

/** Point the image at `url`; a spinner appears only if the image takes longer than SPINNER_DELAY_MS. */
function showImage(url) {
  if (url === wanted) return;
  wanted = url;
  clearTimeout(spinnerTimer);
  viewport.dataset.loading = "true";
  spinnerTimer = setTimeout(() => viewport.classList.add("loading"), SPINNER_DELAY_MS);
  img.src = url;
}

function loaded() {
  clearTimeout(spinnerTimer);
  viewport.classList.remove("loading");
  delete viewport.dataset.loading;
}

img.addEventListener("load", () => {
  loaded();
  errorBox.hidden = true;
  prefetchNeighbours();
});
img.addEventListener("error", async () => {
  loaded();
  let detail = "the image could not be loaded";
  try {
    const r = await fetch(wanted, { headers: { accept: "application/json" } });
    if (!r.ok) detail = (await r.json()).detail || detail;
  } catch { /* network down: keep the generic message */ }
  errorBox.textContent = detail;
  errorBox.hidden = false;
});

function prefetchNeighbours() {
  const i = state.slices.indexOf(state.slice);
  for (const j of [i + 1, i - 1]) {
    if (j >= 0 && j < state.slices.length) new Image().src = renderUrl({ ...state, slice: state.slices[j] });
  }
}

function syncUrl() {
  const p = new URLSearchParams();
  if (state.preset === null) p.set("window", `${num(state.window[0])},${num(state.window[1])}`);
  else if (state.preset !== "default") p.set("preset", state.preset);
  if (isVolume(state)) p.set("plane", state.plane);
  if (state.slice !== null && state.slice !== state.key_slice) p.set("slice", String(state.slice));
  if (state.overlays !== "gt") p.set("overlays", state.overlays);
  setMaskParams(p, state);
  const query = p.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

function presetTitle(name) {
  if (name === null) return "custom";
  return name === "default" ? "own window" : name.replace("_", " ");
}

function paint() {
  const [low, high] = state.window;
  windowReadout.replaceChildren();
  if (state.ct) paintWindow(low, high);
  if (state.slices.length) paintSlice();
  const on = state.overlays === "gt";
  overlayButton.classList.toggle("active", on);
  overlayButton.setAttribute("aria-pressed", String(on));
  for (const row of document.querySelectorAll(".lesion-row")) {
    row.classList.toggle("here", Number(row.dataset.slice) === state.slice);
  }
  for (const b of planeButtons) {
    b.classList.toggle("active", b.dataset.plane === state.plane);
    b.setAttribute("aria-pressed", String(b.dataset.plane === state.plane));
  }
  for (const row of document.querySelectorAll(".plane-target")) {
    row.classList.toggle("here", state.plane !== null && Number(row.dataset[state.plane]) === state.slice);
  }
  if (state.has_mask) paintMask();
}

function paintMask() {
  for (const b of maskButtons) {
    b.classList.toggle("active", b.dataset.maskMode === state.mask_mode);
    b.setAttribute("aria-pressed", String(b.dataset.maskMode === state.mask_mode));
  }
  if (!opacityInput) return;
  const contour = state.mask_mode === "contour";
  opacityInput.disabled = contour; // contours are drawn at full colour: opacity only blends the fill
  if (opacityLabel) {
    opacityLabel.title = contour ? "opacity applies to the fill; contours are drawn at full colour"
      : "mask fill opacity";
  }
  if (draggedOpacity === null && document.activeElement !== opacityInput) opacityInput.value = String(state.opacity);
  paintOpacity(draggedOpacity ?? state.opacity);
}

function paintOpacity(opacity) {
  const percent = `${Math.round(opacity * 100)}%`;
  opacityOutput.textContent = percent;
  opacityInput.setAttribute("aria-valuetext", percent);
}

function paintWindow(low, high) {
  const line1 = document.createElement("div");
  line1.textContent = `W ${num(high - low)}  L ${num((low + high) / 2)}`;
  const line2 = document.createElement("div");
  line2.className = "muted";
  line2.textContent = `${num(low)} to ${num(high)} HU · ${presetTitle(state.preset)}`;
  windowReadout.append(line1, line2);
  for (const b of presetButtons) b.classList.toggle("active", b.dataset.preset === state.preset);
  applyButton.classList.toggle("active", state.preset === null);
  if (document.activeElement !== lowInput && document.activeElement !== highInput) {
    lowInput.value = num(low);
    highInput.value = num(high);
  }
}

function paintSlice() {
  if (isVolume(state)) {
    sliceReadout.textContent = `${state.plane} slice ${state.slice} / 0–${state.slices.length - 1}`;
    sliceReadout.title = `${state.slices.length} ${state.plane} slices; the middle one is ${state.key_slice}`;
    if (prevButton) {
      prevButton.disabled = state.slice <= 0;
      nextButton.disabled = state.slice >= state.slices.length - 1;
      keyButton.classList.toggle("active", state.slice === state.key_slice);
    }
    return;
  }
  const [first, last] = state.slice_range || [state.slices[0], state.slices[state.slices.length - 1]];
  const key = state.slice === state.key_slice ? " (key)" : "";
  sliceReadout.textContent = `slice ${state.slice}${key} / range ${first}–${last}`;
  const i = state.slices.indexOf(state.slice);
  sliceReadout.title = `${i + 1} of ${state.slices.length} available slices`;
  if (prevButton) {
    prevButton.disabled = i <= 0;
    nextButton.disabled = i >= state.slices.length - 1;
    keyButton.classList.toggle("active", state.slice === state.key_slice);
  }
}

function update(changes) {
  Object.assign(state, changes);
  paint();
  syncUrl();
  showImage(renderUrl(state));
}

function setPreset(name) {
  if (!state.ct || !(name in state.presets)) return;
  update({ preset: name, window: [...state.presets[name]] });
}

function step(delta) {
  const i = state.slices.indexOf(state.slice);
  const j = Math.min(state.slices.length - 1, Math.max(0, i + delta));
  if (i >= 0 && j !== i) update({ slice: state.slices[j] });
}

/** Switch a volume to another plane, at its middle slice. */
function setPlane(name) {
  if (!isVolume(state) || !(name in state.planes) || name === state.plane) return;
  const count = state.planes[name];
  const middle = Math.floor(count / 2);
  update({ plane: name, slices: Array.from({ length: count }, (_, i) => i), key_slice: middle, slice: middle });
}

function toggleOverlays() {
  update({ overlays: state.overlays === "gt" ? "none" : "gt" });
}

// Changing how the mask is drawn shows it: a hidden overlay would make the control look broken.
function setMaskMode(mode) {
  if (!state.has_mask || (mode === state.mask_mode && state.overlays === "gt")) return;
  update({ mask_mode: mode, overlays: "gt", ...pendingOpacity() });
}

let opacityTimer = 0;
let draggedOpacity = null; // the slider's value while a drag waits for the debounce

/** The dragged opacity not yet applied, as an update ({} when there is none); cancels the debounce. */
function pendingOpacity() {
  clearTimeout(opacityTimer);
  const opacity = draggedOpacity;
  draggedOpacity = null;
  return opacity === null || opacity === state.opacity ? {} : { opacity };
}

function applyOpacity() {
  const change = pendingOpacity();
  if (Object.keys(change).length) update({ ...change, overlays: "gt" });
}

for (const b of presetButtons) b.addEventListener("click", () => setPreset(b.dataset.preset));
overlayButton.addEventListener("click", toggleOverlays);
prevButton?.addEventListener("click", () => step(-1));
nextButton?.addEventListener("click", () => step(1));
keyButton?.addEventListener("click", () => update({ slice: state.key_slice }));
for (const b of planeButtons) b.addEventListener("click", () => setPlane(b.dataset.plane));
for (const b of maskButtons) b.addEventListener("click", () => setMaskMode(b.dataset.maskMode));
opacityInput?.addEventListener("input", () => {
  const opacity = Math.round(Number(opacityInput.value) * 1000) / 1000;
  if (!Number.isFinite(opacity)) return;
  draggedOpacity = opacity;
  paintOpacity(opacity); // the readout follows the thumb at once; the image once the drag pauses
  clearTimeout(opacityTimer);
  opacityTimer = setTimeout(applyOpacity, OPACITY_DEBOUNCE_MS);
});
opacityInput?.addEventListener("change", applyOpacity); // released: no need to wait

customForm?.addEventListener("submit", (event) => {
  event.preventDefault();
  const low = Number(lowInput.value);
  const high = Number(highInput.value);
  const bad = lowInput.value === "" || highInput.value === "" || !Number.isFinite(low) || !Number.isFinite(high);
  highInput.setCustomValidity(bad ? "enter two numbers (HU)" : high <= low ? "HIGH must be greater than LOW" : "");
  if (!highInput.reportValidity()) return;
  lowInput.blur();
  highInput.blur();
  update({ preset: null, window: [low, high] });
});
highInput?.addEventListener("input", () => highInput.setCustomValidity(""));

for (const row of document.querySelectorAll(".lesion-row")) {
  row.addEventListener("click", () => {
    const slice = Number(row.dataset.slice);
    if (row.dataset.slice !== "" && state.slices.includes(slice)) update({ slice, overlays: "gt" });
  });
}
// Volume annotations (e.g. vertebra centroids) carry their slice in each plane: data-axial, data-coronal, …
for (const row of document.querySelectorAll(".plane-target")) {
  row.addEventListener("click", () => {
    const slice = Number(row.dataset[state.plane]);
    if (isVolume(state) && state.slices.includes(slice)) update({ slice, overlays: "gt" });
  });
}

// Keys a focused slider uses itself; letters and digits still reach the viewer (a slider takes no text).
const SLIDER_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);

function ownKey(target, key) {
  const field = target instanceof Element ? target.closest("input, textarea, select") : null;
  return field !== null && (field.type !== "range" || SLIDER_KEYS.has(key));
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (ownKey(event.target, event.key)) return;
  const n = Number(event.key);
  if (Number.isInteger(n) && n >= 1 && n <= state.preset_order.length) setPreset(state.preset_order[n - 1]);
  else if (event.key === "o" || event.key === "O") toggleOverlays();
  else if ((event.key === "m" || event.key === "M") && state.has_mask) {
    setMaskMode(state.mask_mode === "contour" ? "fill" : "contour");
  }
  else if (isVolume(state) && event.key.toLowerCase() in PLANE_KEYS) setPlane(PLANE_KEYS[event.key.toLowerCase()]);
  else if (event.key === "ArrowLeft" || event.key === "ArrowUp") step(-1);
  else if (event.key === "ArrowRight" || event.key === "ArrowDown") step(1);
  else if ((event.key === "k" || event.key === "K" || event.key === "Home") && state.slices.length) {
    update({ slice: state.key_slice });
  }
  else return;
  event.preventDefault();
});

let wheelDistance = 0;
viewport.addEventListener("wheel", (event) => {
  event.preventDefault();
  wheelDistance += event.deltaMode === 1 ? event.deltaY * 40 : event.deltaY;
  if (Math.abs(wheelDistance) >= WHEEL_STEP_PX) {
    step(Math.sign(wheelDistance));
    wheelDistance = 0;
  }
}, { passive: false });

paint();
if (img.complete && img.naturalWidth > 0) prefetchNeighbours();
