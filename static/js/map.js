// The embedding map page (templates/map.html): fetches the dataset's points for the chosen model and projection
// (GET /api/datasets/{id}/map, binary; a 202 while UMAP is computed is polled), draws them with WebGL
// (map_gl.js), colours them by a field (GET …/map/colors) with a legend, pans (drag), zooms (wheel, about the
// mouse), shows the item under the mouse (thumbnail and key), opens it on click, and lassos (shift-drag or the
// Lasso button) a selection that opens in the grid (`id=` filter, bounded) or becomes a review queue
// (POST /api/review/queues with item_ids; reviewer+). Sets document.body.dataset.mapDrawn when a map is drawn.

import { PALETTE, PointGrid, PointsRenderer, insidePolygon, parseMapBinary } from "./map_gl.js";
import { fillUrl, writeHeaders } from "./urls.js";

const DATA = JSON.parse(document.getElementById("map-data").textContent);
const $ = (id) => document.getElementById(id);
const canvas = $("map-canvas");
const stage = $("map-stage");
const status = $("map-status");
const POLL_MS = 3000;
const HOVER_PX = 8;
const THUMBS = 24;

const state = { ids: null, xy: null, grid: null, selected: null, selectedIds: [], lasso: null, lassoMode: false,
                token: 0, keys: new Map() };
let renderer;

function say(text, error = false) {
  status.textContent = text;
  status.classList.toggle("error", error);
}

function params(extra) {
  return new URLSearchParams({ model: $("map-model").value, ...extra });
}

async function detailOf(r) {
  const body = await r.json().catch(() => ({}));
  return typeof body.detail === "string" ? body.detail : `HTTP ${r.status}`;
}

// -- loading --

async function loadPoints() {
  const token = ++state.token;
  const method = $("map-method").value;
  history.replaceState(null, "", `?${params({ method, field: $("map-field").value })}`);
  say(`loading the ${method.toUpperCase()} map…`);
  let fallback = method === "pca";
  for (;;) {
    const r = await fetch(`${DATA.urls.map}?${params({ method })}`, { credentials: "same-origin" });
    if (token !== state.token) return;
    if (r.status === 202) {
      const busy = await r.json().catch(() => ({}));
      if (!fallback) { // the PCA map meanwhile, so there is something to look at
        fallback = true;
        const pca = await fetch(`${DATA.urls.map}?${params({ method: "pca" })}`, { credentials: "same-origin" });
        if (token !== state.token) return;
        if (pca.ok) await show(await pca.arrayBuffer(), "pca");
        if (token !== state.token) return;
      }
      say(`${method.toUpperCase()} is being computed (started ${busy.started_s_ago ?? 0} s ago; minutes for large `
          + `datasets)${state.xy ? ", PCA shown meanwhile" : ""}: the page draws it when it is ready.`);
      await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
      if (token !== state.token) return;
      continue;
    }
    if (!r.ok) { say(await detailOf(r), true); return; }
    await show(await r.arrayBuffer(), method);
    return;
  }
}

async function show(buffer, method) {
  const { header, arrays } = parseMapBinary(buffer);
  state.ids = arrays.ids;
  state.xy = arrays.xy;
  state.signature = header.signature;
  renderer.setPoints(state.xy);
  clearSelection(false);
  renderer.draw();
  renderer.finish();
  document.body.dataset.mapDrawn = String(performance.now());
  document.body.dataset.mapMethod = method;
  say(`${header.count.toLocaleString()} points · ${method.toUpperCase()}`);
  state.grid = null; // built on first hover
  if ($("map-field").value) await loadColours();
}

async function loadColours() {
  const field = $("map-field").value;
  history.replaceState(null, "", `?${params({ method: $("map-method").value, field })}`);
  const legend = $("map-legend");
  if (!field || !state.ids) {
    legend.replaceChildren();
    renderer.setCodes(null);
    renderer.draw();
    document.body.dataset.mapColoured = "";
    return;
  }
  const r = await fetch(`${DATA.urls.colors}?${params({ field })}`, { credentials: "same-origin" });
  if (!r.ok) { say(await detailOf(r), true); return; }
  const { header, arrays } = parseMapBinary(await r.arrayBuffer());
  if (header.signature !== state.signature || field !== $("map-field").value) return; // stale
  renderer.setCodes(arrays.codes);
  renderer.draw();
  const items = header.values.map((v, i) => legendRow(PALETTE[i % PALETTE.length], v.label, v.count));
  if (header.missing) items.push(legendRow(null, "no value", header.missing));
  legend.replaceChildren(...items);
  document.body.dataset.mapColoured = field;
}

function legendRow(colour, label, count) {
  const li = document.createElement("li");
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = colour || "var(--muted)";
  const text = document.createElement("span");
  text.textContent = label;
  const n = document.createElement("span");
  n.className = "count";
  n.textContent = count.toLocaleString();
  li.append(swatch, text, n);
  return li;
}

// -- selection --

function clearSelection(draw = true) {
  state.selected = null;
  state.selectedIds = [];
  renderer.setSelection(null);
  $("map-selection").hidden = true;
  document.body.dataset.mapSelected = "0";
  if (draw) renderer.draw();
}

function select(polygon) {
  const flags = insidePolygon(state.xy, polygon);
  const ids = [];
  for (let i = 0; i < flags.length; i += 1) if (flags[i]) ids.push(Number(state.ids[i]));
  state.lasso = polygon;
  if (!ids.length) { clearSelection(); return; }
  state.selected = flags;
  state.selectedIds = ids;
  renderer.setSelection(flags);
  renderer.draw();
  $("map-selection").hidden = false;
  $("map-selected").textContent = ids.length.toLocaleString();
  document.body.dataset.mapSelected = String(ids.length);
  const link = $("map-open-grid");
  const shown = ids.slice(0, DATA.max_grid_ids);
  link.href = `${DATA.urls.grid}?${new URLSearchParams(shown.map((id) => [DATA.id_field, String(id)]))}`;
  $("map-selection-note").textContent = ids.length > DATA.max_grid_ids
    ? `The grid opens with the first ${DATA.max_grid_ids.toLocaleString()} (by id); a review queue takes up to ${DATA.max_queue_ids.toLocaleString()}.`
    : "";
  const queue = $("map-queue");
  if (queue) queue.disabled = ids.length > DATA.max_queue_ids;
  $("map-thumbs").replaceChildren(...ids.slice(0, THUMBS).map((id) => {
    const a = document.createElement("a");
    a.href = fillUrl(DATA.urls.item_page, { id });
    const img = document.createElement("img");
    img.src = fillUrl(DATA.urls.render, { id });
    img.alt = `item ${id}`;
    img.loading = "lazy";
    a.append(img);
    return a;
  }));
}

// -- pointer: pan, zoom, lasso, hover, click --

function local(event) {
  const box = canvas.getBoundingClientRect();
  return [event.clientX - box.left, event.clientY - box.top];
}

function drawLasso(points) {
  $("map-lasso-path").setAttribute("points", points.map(([x, y]) => `${x},${y}`).join(" "));
}

function bindPointer() {
  let drag = null;
  canvas.addEventListener("pointerdown", (event) => {
    if (!state.xy || event.button !== 0) return;
    canvas.setPointerCapture(event.pointerId);
    const at = local(event);
    drag = { start: at, last: at, moved: false, lasso: state.lassoMode || event.shiftKey, path: [at] };
    hideTip();
  });
  canvas.addEventListener("pointermove", (event) => {
    const at = local(event);
    if (!drag) { hover(at); return; }
    const [dx, dy] = [at[0] - drag.last[0], at[1] - drag.last[1]];
    if (Math.hypot(at[0] - drag.start[0], at[1] - drag.start[1]) > 3) drag.moved = true;
    if (drag.lasso) {
      const prev = drag.path[drag.path.length - 1];
      if (Math.hypot(at[0] - prev[0], at[1] - prev[1]) >= 3) { drag.path.push(at); drawLasso(drag.path); }
    } else if (drag.moved) {
      const k = renderer.pixelsPerUnit();
      renderer.view.cx -= dx / k;
      renderer.view.cy += dy / k;
      renderer.draw();
    }
    drag.last = at;
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!drag) return;
    const done = drag;
    drag = null;
    if (done.lasso && done.moved && done.path.length >= 3) {
      drawLasso([]);
      select(done.path.map(([x, y]) => renderer.toData(x, y)));
    } else if (!done.moved) {
      const row = pick(local(event));
      if (row >= 0) location.assign(fillUrl(DATA.urls.item_page, { id: Number(state.ids[row]) }));
    }
    drawLasso([]);
  });
  canvas.addEventListener("wheel", (event) => {
    if (!state.xy) return;
    event.preventDefault();
    const at = local(event);
    const before = renderer.toData(...at);
    renderer.view.zoom = Math.max(0.5, Math.min(400, renderer.view.zoom * Math.exp(-event.deltaY * 0.0015)));
    const after = renderer.toData(...at);
    renderer.view.cx += before[0] - after[0];
    renderer.view.cy += before[1] - after[1];
    renderer.draw();
  }, { passive: false });
  canvas.addEventListener("pointerleave", hideTip);
}

function pick(at) {
  if (!state.xy) return -1;
  if (!state.grid) state.grid = new PointGrid(state.xy);
  const [x, y] = renderer.toData(...at);
  return state.grid.nearest(x, y, HOVER_PX / renderer.pixelsPerUnit());
}

let hoverTimer = 0;
function hover(at) {
  const row = pick(at);
  if (row < 0) { hideTip(); return; }
  const id = Number(state.ids[row]);
  const tip = $("map-tip");
  tip.hidden = false;
  const [w, h] = [stage.clientWidth, stage.clientHeight];
  tip.style.left = `${Math.min(at[0] + 14, w - 150)}px`;
  tip.style.top = `${Math.min(at[1] + 14, h - 180)}px`;
  if (tip.dataset.id === String(id)) return;
  tip.dataset.id = String(id);
  $("map-tip-img").src = fillUrl(DATA.urls.render, { id });
  $("map-tip-text").textContent = state.keys.get(id) || `#${id}`;
  clearTimeout(hoverTimer);
  if (!state.keys.has(id)) {
    hoverTimer = setTimeout(() => {
      fetch(fillUrl(DATA.urls.item, { id }), { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : null))
        .then((item) => {
          if (!item) return;
          const label = item.label != null ? (DATA.label_names || {})[item.label] ?? item.label : null;
          state.keys.set(id, `#${id} ${item.key}${label != null ? ` · ${label}` : ""}`);
          if (tip.dataset.id === String(id)) $("map-tip-text").textContent = state.keys.get(id);
        })
        .catch(() => {});
    }, 120);
  }
}

function hideTip() {
  $("map-tip").hidden = true;
  $("map-tip").dataset.id = "";
}

// -- review queue --

function bindQueue() {
  const dialog = $("map-queue-dialog");
  const opener = $("map-queue");
  if (!dialog || !opener) return;
  opener.addEventListener("click", () => {
    $("map-queue-name").value = `${DATA.dataset_name}: ${state.selectedIds.length} items from the embedding map`;
    $("map-queue-error").hidden = true;
    dialog.showModal();
  });
  $("map-queue-cancel").addEventListener("click", () => dialog.close());
  $("map-queue-form").addEventListener("submit", (event) => {
    event.preventDefault();
    createQueue().catch((e) => { $("map-queue-error").textContent = String(e); $("map-queue-error").hidden = false; });
  });
}

async function createQueue() {
  const body = { name: $("map-queue-name").value.trim(), dataset_id: DATA.dataset_id, filters: {},
                 readers_per_item: Number($("map-queue-readers").value), item_ids: state.selectedIds };
  const r = await fetch(DATA.urls.queues, { method: "POST", credentials: "same-origin",
                                            headers: writeHeaders({ "content-type": "application/json" }), body: JSON.stringify(body) });
  if (!r.ok) throw new Error(await detailOf(r));
  const made = await r.json();
  location.assign(fillUrl(DATA.urls.queue_page, { id: made.id }));
}

// -- start --

function start() {
  try {
    renderer = new PointsRenderer(canvas);
  } catch (e) {
    say(`cannot draw the map: ${e.message}`, true);
    return;
  }
  window.medviewMap = { state, renderer };
  bindPointer();
  bindQueue();
  const failed = (e) => say(`could not load the map: ${e.message || e}`, true);
  $("map-model").addEventListener("change", () => loadPoints().catch(failed));
  $("map-method").addEventListener("change", () => loadPoints().catch(failed));
  $("map-field").addEventListener("change", () => loadColours().catch(failed));
  $("map-clear").addEventListener("click", () => clearSelection());
  $("map-reset").addEventListener("click", () => { renderer.view = { cx: 0, cy: 0, zoom: 1 }; renderer.draw(); });
  $("map-lasso-mode").addEventListener("click", (event) => {
    state.lassoMode = !state.lassoMode;
    event.currentTarget.setAttribute("aria-pressed", String(state.lassoMode));
    stage.classList.toggle("lasso", state.lassoMode);
  });
  addEventListener("resize", () => { if (state.xy) renderer.draw(); });
  addEventListener("keydown", (event) => { // Escape clears the selection (not while typing or in the dialog)
    if (event.key === "Escape" && state.selected && !event.target.closest("input, select, textarea, dialog")) clearSelection();
  });
  loadPoints().catch(failed);
}

start();
