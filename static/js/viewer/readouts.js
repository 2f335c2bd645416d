// What the page says about the view: window (HU for CT, the values' own units otherwise), slice, zoom, the hovered value, toolbar button states, each
// pane's legend (prediction, difference colours and counts) and the measurement list.

import { COLOURS } from "./overlays.js";
import { DIFF_COLOURS } from "./pixels.js";
import { isVolume, num } from "./url.js";

const $ = (id) => document.getElementById(id);

function presetTitle(name, s) {
  if (name === null) return "custom";
  if (name === "default") return s.ct ? "own window" : "file's window";
  return name === "auto" ? "auto (0.5–99.5 %)" : name.replace("_", " ");
}

function press(button, on) {
  if (!button) return;
  button.classList.toggle("active", on);
  button.setAttribute("aria-pressed", String(on));
}

export function paintReadouts(v) {
  const s = v.state;
  const readout = $("window-readout");
  readout.replaceChildren();
  if (s.windowed) {
    const [low, high] = s.window;
    const line1 = document.createElement("div");
    line1.textContent = `W ${num(high - low)}  L ${num((low + high) / 2)}`;
    const line2 = document.createElement("div");
    line2.className = "muted";
    const units = s.units ? ` ${s.units}` : "";
    const modality = s.ct ? "" : ` · ${s.modality_name || "values"}`;
    line2.textContent = `${num(low)} to ${num(high)}${units}${modality} · ${presetTitle(s.preset, s)}${s.invert ? " · inverted" : ""}`;
    readout.append(line1, line2);
    for (const b of document.querySelectorAll("button[data-preset]")) b.classList.toggle("active", b.dataset.preset === s.preset);
    $("apply-window")?.classList.toggle("active", s.preset === null);
    const lowInput = $("window-low");
    const highInput = $("window-high");
    if (lowInput && document.activeElement !== lowInput && document.activeElement !== highInput) {
      lowInput.value = num(low);
      highInput.value = num(high);
    }
  }
  if (s.slices.length) paintSlice(s);
  const zoom = v.panes[0]?.view.zoom;
  $("view-readout").textContent = zoom ? `zoom ${Math.round(zoom * 100)}%${s.zoom === null ? " (fit)" : ""}` : "";
  press($("toggle-overlays"), s.overlays === "gt");
  for (const b of document.querySelectorAll("button[data-layer]")) press(b, !s.hide.includes(b.dataset.layer));
  for (const b of document.querySelectorAll("button[data-tool]")) press(b, b.dataset.tool === v.tool);
  press($("edit-tool"), v.tool === "edit");
  v.editor?.paint();
  for (const b of document.querySelectorAll("button[data-layout]")) press(b, b.dataset.layout === s.layout);
  press($("toggle-diff"), s.diff);
  press($("toggle-invert"), s.invert);
  for (const b of document.querySelectorAll("button[data-plane]")) press(b, b.dataset.plane === s.plane);
  for (const row of document.querySelectorAll(".lesion-row")) row.classList.toggle("here", Number(row.dataset.slice) === s.slice);
  for (const row of document.querySelectorAll(".plane-target")) {
    row.classList.toggle("here", s.plane !== null && Number(row.dataset[s.plane]) === s.slice);
  }
  if (s.has_mask) paintMask(v);
  paintMeasurements(v);
  v.viewport.dataset.tool = v.tool;
}

function paintSlice(s) {
  const readout = $("slice-readout");
  const slider = $("slice-slider");
  if (isVolume(s)) {
    readout.textContent = `${s.plane} slice ${s.slice} / 0–${s.slices.length - 1}`;
    readout.title = `${s.slices.length} ${s.plane} slices; the middle one is ${s.key_slice}`;
  } else {
    const [first, last] = s.slice_range || [s.slices[0], s.slices[s.slices.length - 1]];
    const key = s.slice === s.key_slice ? " (key)" : "";
    readout.textContent = `slice ${s.slice}${key} / range ${first}–${last}`;
    readout.title = `${s.slices.indexOf(s.slice) + 1} of ${s.slices.length} available slices`;
  }
  const i = s.slices.indexOf(s.slice);
  if ($("prev-slice")) {
    $("prev-slice").disabled = i <= 0;
    $("next-slice").disabled = i >= s.slices.length - 1;
    $("key-slice").classList.toggle("active", s.slice === s.key_slice);
  }
  if (slider && document.activeElement !== slider) {
    slider.max = String(s.slices.length - 1);
    slider.value = String(i);
  }
}

function paintMask(v) {
  const s = v.state;
  for (const b of document.querySelectorAll("button[data-mask-mode]")) press(b, b.dataset.maskMode === s.mask_mode);
  const input = $("mask-opacity");
  if (!input) return;
  const contour = s.mask_mode === "contour";
  input.disabled = contour; // contours are drawn at full colour: opacity only blends the fill
  const label = input.closest("label");
  if (label) label.title = contour ? "opacity applies to the fill; contours are drawn at full colour" : "mask fill opacity";
  if (document.activeElement !== input) input.value = String(s.opacity);
  const percent = `${Math.round(s.opacity * 100)}%`;
  $("mask-opacity-value").textContent = percent;
  input.setAttribute("aria-valuetext", percent);
}

function swatch(colour, text, count) {
  const row = document.createElement("span");
  row.className = "legend-item";
  const box = document.createElement("i");
  box.style.background = Array.isArray(colour) ? `rgb(${colour})` : colour;
  row.append(box, `${text}${count === undefined ? "" : ` ${count}`}`);
  return row;
}

/** A pane's legend: the prediction it shows, or the difference colours with their counts. */
export function paintLegend(v, pane) {
  const s = v.state;
  const pred = v.prediction();
  const items = [];
  if (pane.role === "pred" && pred) {
    if (pred.task === "classify") items.push(...classBars(pred, s));
    const dice = pred.metrics?.dice;
    if (dice !== undefined) items.push(swatch("transparent", `Dice ${Number(dice).toFixed(3)}`));
    if (pane.predMask?.error) items.push(swatch(COLOURS.spurious, pane.predMask.error));
    else if (!v.predHere(pane)) items.push(swatch("transparent", `predicted on the key slice ${s.key_slice}`));
  }
  if (pane.role === "gt" && s.diff) {
    if (pane.diffCounts) {
      const c = pane.diffCounts;
      items.push(swatch(DIFF_COLOURS.tp, c.foreground ? "agree (foreground)" : "agree", c.tp),
                 swatch(DIFF_COLOURS.fp, "false positive", c.fp), swatch(DIFF_COLOURS.fn, "false negative", c.fn));
    }
    if (pane.boxCounts) {
      const c = pane.boxCounts;
      items.push(swatch(COLOURS.matched, "matched", c.matched), swatch(COLOURS.missed, "missed", c.missed),
                 swatch(COLOURS.spurious, "spurious", c.spurious));
    }
    if (pred?.task === "classify") items.push(...classBars(pred, s));
    if (!pred) items.push(swatch("transparent", "no prediction to compare: run a model"));
    else if (pane.gtMask?.error || pane.predMask?.error) items.push(swatch(COLOURS.spurious, (pane.gtMask?.error || pane.predMask.error)));
  }
  pane.legend.replaceChildren(...items);
  pane.legend.hidden = !items.length;
}

/** Classification: one bar per class, the predicted one highlighted, ✓/✗ against the ground truth. */
function classBars(pred, s) {
  const probs = pred.outputs?.probabilities || [];
  const names = pred.outputs?.classes || pred.classes || [];
  const top = probs.reduce((best, p, i) => (p > probs[best] ? i : best), 0);
  return probs.map((p, i) => {
    const row = document.createElement("span");
    row.className = `legend-bar${i === top ? " top" : ""}`;
    const bar = document.createElement("b");
    bar.style.width = `${(60 * p).toFixed(1)}px`;
    const verdict = i === top && pred.metrics?.correct !== undefined ? (pred.metrics.correct ? " ✓" : " ✗") : "";
    row.append(`${names[i] ?? `class ${i}`} `, bar, ` ${(100 * p).toFixed(1)}%${verdict}`);
    return row;
  });
}

function paintMeasurements(v) {
  const list = $("measurement-list");
  if (!list) return;
  list.replaceChildren(...v.measurements.map((m) => {
    const li = document.createElement("li");
    li.dataset.id = String(m.id);
    const where = m.plane ? `${m.plane} ${m.slice}` : m.slice !== null ? `slice ${m.slice}` : "";
    li.textContent = `${m.kind === "bidir" ? "RECIST" : "line"} ${m.lengths.map((l) => `${l.value.toFixed(1)} ${l.unit}`).join(" × ")} `;
    const small = document.createElement("span");
    small.className = "muted";
    small.textContent = where;
    const del = document.createElement("button");
    del.type = "button";
    del.textContent = "×";
    del.title = "delete this measurement";
    del.addEventListener("click", () => v.deleteMeasurement(m.id));
    li.append(small);
    if (v.editor) { // annotators: save it as an annotation (recist / line)
      const save = document.createElement("button");
      save.type = "button";
      save.className = "save-measurement";
      const why = v.editor.measurementAnnotation(m).reason;
      save.textContent = m.saving ? "saving…" : "save";
      save.disabled = Boolean(why || m.saving);
      save.title = why || m.error || "save as an annotation (Shift+S saves all)";
      save.addEventListener("click", () => v.editor.saveMeasurement(m));
      li.append(save);
    }
    li.append(del);
    return li;
  }));
  $("measurements").hidden = !v.measurements.length;
  const saveAll = $("save-measurements");
  if (saveAll) saveAll.hidden = !v.editor || !v.measurements.length;
}
