// The few-shot page (app/web/fewshot_pages.py): draws the label curve (GET …/fewshot-curve) as an SVG with a
// log x axis, trains a classifier (POST /api/models/fewshot, admin) and makes an uncertainty-first review queue
// of a trained one (POST /api/review/queues with `uncertainty`, reviewer and admin). URLs come from the page.

import { fillUrl, writeHeaders } from "./urls.js";

const DATA = JSON.parse(document.getElementById("fewshot-data")?.textContent || "{}");
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const W = 520, H = 320, PAD = { left: 52, right: 18, top: 16, bottom: 44 };

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

async function detail(r) {
  try {
    const body = await r.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
  } catch {
    return `HTTP ${r.status}`;
  }
}

/** The curve: mean balanced accuracy per labels-per-class on a log axis, ± sd as bars, chance as a dashed line. */
function drawCurve(curve) {
  const box = $("fewshot-curve");
  box.replaceChildren();
  const points = curve.points;
  if (!points.length) {
    box.textContent = "Too few labelled items for any point of the curve.";
    return;
  }
  const xs = points.map((p) => p.per_class);
  const lo = Math.log10(Math.min(1, ...xs)) - 0.12, hi = Math.log10(Math.max(10, ...xs)) + 0.12;
  const chance = 1 / curve.classes.length;
  const yLo = Math.max(0, Math.floor((Math.min(chance, ...points.map((p) => p.mean - p.sd)) - 0.05) * 10) / 10);
  const x = (n) => PAD.left + ((Math.log10(n) - lo) / (hi - lo)) * (W - PAD.left - PAD.right);
  const y = (v) => PAD.top + (1 - (v - yLo) / (1 - yLo)) * (H - PAD.top - PAD.bottom);
  const svg = el("svg", { class: "roc fewshot-plot", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
    "aria-label": "balanced accuracy against labels per class" });
  svg.append(el("rect", { class: "frame", x: PAD.left, y: PAD.top, width: W - PAD.left - PAD.right,
    height: H - PAD.top - PAD.bottom }));
  for (let v = yLo; v <= 1.0001; v += 0.1) {
    svg.append(el("line", { class: "grid-line", x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    svg.append(el("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(1)));
  }
  for (const n of [1, 5, 10, 25, 50, 100, 250].filter((n) => x(n) <= W - PAD.right)) {
    svg.append(el("line", { class: "grid-line", x1: x(n), x2: x(n), y1: PAD.top, y2: H - PAD.bottom }));
    svg.append(el("text", { x: x(n), y: H - PAD.bottom + 14, "text-anchor": "middle" }, String(n)));
  }
  svg.append(el("line", { class: "diagonal", x1: PAD.left, x2: W - PAD.right, y1: y(chance), y2: y(chance) }));
  svg.append(el("text", { class: "axis-label", x: W - PAD.right - 4, y: y(chance) - 4, "text-anchor": "end" }, "chance"));
  for (const p of points) {
    svg.append(el("line", { class: "curve error-bar", x1: x(p.per_class), x2: x(p.per_class),
      y1: y(Math.max(yLo, p.mean - p.sd)), y2: y(Math.min(1, p.mean + p.sd)) }));
  }
  svg.append(el("polyline", { class: "curve", points: points.map((p) => `${x(p.per_class).toFixed(1)},${y(p.mean).toFixed(1)}`).join(" ") }));
  for (const p of points) {
    const dot = el("circle", { class: "curve-dot", cx: x(p.per_class), cy: y(p.mean), r: 3.5 });
    dot.append(el("title", {}, `${p.per_class} per class: ${p.mean.toFixed(3)} ± ${p.sd.toFixed(3)}`));
    svg.append(dot);
  }
  svg.append(el("text", { class: "axis-label", x: (PAD.left + W - PAD.right) / 2, y: H - 8, "text-anchor": "middle" },
    "labels per class (log scale)"));
  svg.append(el("text", { class: "axis-label", transform: `translate(14 ${(PAD.top + H - PAD.bottom) / 2}) rotate(-90)`,
    "text-anchor": "middle" }, "balanced accuracy"));
  box.append(svg);
  const table = $("fewshot-curve-table");
  table.tBodies[0].replaceChildren(...points.map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.perClass = p.per_class;
    for (const v of [p.per_class, p.mean.toFixed(3), p.sd.toFixed(3), p.train, p.test]) {
      const td = document.createElement("td");
      td.className = "mono";
      td.textContent = String(v);
      tr.append(td);
    }
    return tr;
  }));
  table.hidden = false;
}

async function runCurve(event) {
  event.preventDefault();
  const form = event.target;
  const status = $("fewshot-curve-status");
  const params = new URLSearchParams({ dataset_id: DATA.dataset_id, source: form.source.value,
    method: form.method.value, draws: form.draws.value });
  status.textContent = "computing…";
  $("fewshot-curve-run").disabled = true;
  try {
    const r = await fetch(`${DATA.urls.curve}?${params}`, { headers: { accept: "application/json" } });
    if (!r.ok) {
      status.textContent = await detail(r);
      return;
    }
    const curve = await r.json();
    drawCurve(curve);
    const counts = Object.entries(curve.labelled).map(([c, n]) => `${c} ${n}`).join(", ");
    status.textContent = `${curve.draws} draws per point · labelled: ${counts}`;
  } catch (err) {
    status.textContent = `failed: ${err}`;
  } finally {
    $("fewshot-curve-run").disabled = false;
  }
}

async function train(event) {
  event.preventDefault();
  const form = event.target;
  const status = $("fewshot-train-status");
  const body = { embed_model_id: DATA.embed_model_id, dataset_id: DATA.dataset_id,
    per_class: Number(form.per_class.value), source: form.source.value, method: form.method.value,
    seed: Number(form.seed.value || 0) };
  if (form.name.value.trim()) body.name = form.name.value.trim();
  status.textContent = "training…";
  $("fewshot-train-run").disabled = true;
  try {
    const r = await fetch(DATA.urls.train, { method: "POST", body: JSON.stringify(body),
      headers: writeHeaders({ "content-type": "application/json", accept: "application/json" }) });
    if (!r.ok) {
      status.textContent = await detail(r);
      status.classList.add("error");
      return;
    }
    const out = await r.json();
    status.classList.remove("error");
    const score = out.heldout.balanced_accuracy === null ? "–" : out.heldout.balanced_accuracy.toFixed(3);
    status.replaceChildren(`Registered ${out.model.name}: held-out balanced accuracy ${score} on ${out.heldout.items} items; `,
      Object.assign(document.createElement("a"), { id: "fewshot-new-evaluation",
        href: fillUrl(DATA.urls.evaluation_page,
          { model_id: out.model.id, dataset_id: DATA.dataset_id }),
        textContent: `evaluation of ${out.predicted} predicted items →` }));
    await refreshTrained();
  } catch (err) {
    status.textContent = `failed: ${err}`;
  } finally {
    $("fewshot-train-run").disabled = false;
  }
}

/** The "Trained on" list as the server now renders it (the new classifier in it), swapped in without a reload. */
async function refreshTrained() {
  const r = await fetch(location.href, { headers: { accept: "text/html" } });
  if (!r.ok) return; // the registration stands; the list catches up on the next visit
  const fresh = new DOMParser().parseFromString(await r.text(), "text/html").getElementById("fewshot-trained-section");
  if (fresh) $("fewshot-trained-section")?.replaceWith(document.adoptNode(fresh));
}

async function uncertaintyQueue(button) {
  const status = button.parentElement.querySelector(".queue-status");
  button.disabled = true;
  try {
    const r = await fetch(DATA.urls.queues, { method: "POST",
      headers: writeHeaders({ "content-type": "application/json", accept: "application/json" }),
      body: JSON.stringify({ name: `uncertain first: ${button.dataset.modelName}`, dataset_id: DATA.dataset_id,
        uncertainty: { model_id: Number(button.dataset.modelId), measure: "margin" } }) });
    if (!r.ok) {
      status.textContent = await detail(r);
      return;
    }
    const queue = await r.json();
    status.replaceChildren(Object.assign(document.createElement("a"), {
      href: fillUrl(DATA.urls.queue_page, { id: queue.id }), textContent: `queue ${queue.id} (${queue.progress.items} items) →` }));
  } catch (err) {
    status.textContent = `failed: ${err}`;
  } finally {
    button.disabled = false;
  }
}

$("fewshot-curve-form")?.addEventListener("submit", (e) => { runCurve(e).catch(() => {}); });
$("fewshot-train-form")?.addEventListener("submit", (e) => { train(e).catch(() => {}); });
// delegated: the list's rows are replaced after a training (refreshTrained)
document.addEventListener("click", (e) => {
  const b = e.target instanceof Element ? e.target.closest("button.uncertainty-queue") : null;
  if (b) uncertaintyQueue(b).catch(() => {});
});
