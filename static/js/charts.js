// Dataset charts from /api/datasets/{id}/charts (app/catalog/charts.py): stacked bars and histograms as plain
// SVG, the DeepLesion body map as a canvas scatter (tens of thousands of points; a click opens the nearest
// lesion's key slice). No library: each chart is a few dozen lines.

import { URLS, fillUrl } from "./urls.js";

const PALETTE = ["#58a6ff", "#ff7b72", "#5fd38d", "#e3b341", "#bc8cff", "#39c5cf", "#ff9bce", "#a5d6ff",
  "#d29922", "#8b949e"];
const W = 380;
const H = 150;
const PAD = { left: 44, right: 8, top: 8, bottom: 34 };
const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.append(node);
  return node;
}

function short(n) {
  return n >= 1e6 ? `${+(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${+(n / 1e3).toFixed(1)}k` : String(n);
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= v);
}

function frame(title, note) {
  const fig = document.createElement("figure");
  fig.className = "chart";
  const cap = document.createElement("figcaption");
  cap.textContent = title;
  if (note) {
    const span = document.createElement("span");
    span.className = "muted";
    span.textContent = ` ${note}`;
    cap.append(span);
  }
  fig.append(cap);
  return fig;
}

function legend(fig, names) {
  if (names.length < 2) return;
  const box = document.createElement("div");
  box.className = "legend";
  names.forEach((name, i) => {
    const span = document.createElement("span");
    const sw = document.createElement("i");
    sw.style.background = PALETTE[i % PALETTE.length];
    span.append(sw, name);
    box.append(span);
  });
  fig.append(box);
}

function yAxis(svg, max) {
  const plotH = H - PAD.top - PAD.bottom;
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - f);
    el("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "axis" }, svg);
    el("text", { x: PAD.left - 4, y: y + 3, "text-anchor": "end" }, svg).textContent = short(max * f);
  }
}

// Stacked columns: categories along x, one colour per series.
function bars(chart) {
  const fig = frame(chart.title, chart.omitted ? `(${chart.omitted} more not shown)` : "");
  const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": chart.title });
  const n = chart.categories.length;
  const totals = chart.categories.map((_, c) => chart.series.reduce((s, ser) => s + ser.values[c], 0));
  const max = niceMax(Math.max(...totals));
  yAxis(svg, max);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const step = plotW / n;
  const bw = Math.max(1, Math.min(48, step * 0.8));
  chart.categories.forEach((cat, c) => {
    let y = PAD.top + plotH;
    const x = PAD.left + c * step + (step - bw) / 2;
    chart.series.forEach((ser, s) => {
      const h = (plotH * ser.values[c]) / max;
      y -= h;
      const rect = el("rect", { x, y, width: bw, height: Math.max(0, h), fill: PALETTE[s % PALETTE.length] }, svg);
      el("title", {}, rect).textContent = `${cat} · ${ser.name}: ${ser.values[c].toLocaleString()}`;
    });
    if (step >= 36) {
      const label = el("text", { x: x + bw / 2, y: H - PAD.bottom + 12, "text-anchor": "middle" }, svg);
      label.textContent = cat.length > 10 ? `${cat.slice(0, 9)}…` : cat;
    }
  });
  if (step < 36) el("text", { x: PAD.left + plotW / 2, y: H - 8, "text-anchor": "middle" }, svg).textContent = `${n} ${chart.axis}s`;
  fig.append(svg);
  legend(fig, chart.series.map((s) => s.name));
  return fig;
}

// Histogram: bins along x, series stacked.
function histogram(chart) {
  const fig = frame(chart.title, `(${chart.n.toLocaleString()} values, ${chart.unit})`);
  const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": chart.title });
  const bins = chart.edges.length - 1;
  const totals = Array.from({ length: bins }, (_, b) => chart.series.reduce((s, ser) => s + ser.counts[b], 0));
  const max = niceMax(Math.max(...totals));
  yAxis(svg, max);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const bw = plotW / bins;
  for (let b = 0; b < bins; b += 1) {
    let y = PAD.top + plotH;
    chart.series.forEach((ser, s) => {
      const h = (plotH * ser.counts[b]) / max;
      y -= h;
      const rect = el("rect", { x: PAD.left + b * bw + 0.5, y, width: Math.max(1, bw - 1), height: Math.max(0, h),
        fill: PALETTE[s % PALETTE.length] }, svg);
      el("title", {}, rect).textContent = `${chart.edges[b]}–${chart.edges[b + 1]} ${chart.unit} · ${ser.name}: ${ser.counts[b]}`;
    });
  }
  const ticks = 5;
  for (let t = 0; t <= ticks; t += 1) {
    const b = Math.round((bins * t) / ticks);
    el("text", { x: PAD.left + b * bw, y: H - PAD.bottom + 12, "text-anchor": "middle" }, svg).textContent = +chart.edges[b].toFixed(1);
  }
  fig.append(svg);
  legend(fig, chart.series.map((s) => s.name));
  return fig;
}

// Scatter on a canvas: x and y in [0, 1]; click → the nearest point's item.
function scatter(chart) {
  const fig = frame(chart.title, `(${chart.n.toLocaleString()} lesions; click a point to open it)`);
  const size = 200;
  const pad = 26;
  const canvas = document.createElement("canvas");
  const ratio = devicePixelRatio || 1;
  canvas.width = (size + pad) * ratio;
  canvas.height = (size + pad) * ratio;
  canvas.style.width = `${size + pad}px`;
  canvas.style.height = `${size + pad}px`;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", chart.title);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const px = (x) => pad + x * size;
  const py = (y) => (1 - y) * size;
  ctx.strokeStyle = "#262d38";
  ctx.strokeRect(pad, 0, size, size);
  ctx.fillStyle = "#6e7a8a";
  ctx.font = "10px sans-serif";
  ctx.fillText("0", pad - 10, size + 12);
  ctx.fillText("1", pad + size - 6, size + 12);
  ctx.fillText("1", pad - 10, 10);
  ctx.fillText(chart.x_label, pad + 40, size + 22);
  ctx.save();
  ctx.translate(10, size / 2 + 30);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(chart.y_label, 0, 0);
  ctx.restore();
  ctx.globalAlpha = chart.n > 5000 ? 0.5 : 0.85;
  for (let i = 0; i < chart.n; i += 1) {
    ctx.fillStyle = PALETTE[chart.group[i] % PALETTE.length];
    ctx.fillRect(px(chart.x[i]) - 1.5, py(chart.y[i]) - 1.5, 3, 3);
  }
  canvas.addEventListener("click", (e) => {
    const r = canvas.getBoundingClientRect();
    const x = (e.clientX - r.left - pad) / size;
    const y = 1 - (e.clientY - r.top) / size;
    let best = -1;
    let bestD = (8 / size) ** 2;
    for (let i = 0; i < chart.n; i += 1) {
      const d = (chart.x[i] - x) ** 2 + (chart.y[i] - y) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
    if (best >= 0) location.href = fillUrl(URLS.item_page, { id: chart.item[best] });
  });
  canvas.dataset.points = String(chart.n);
  fig.append(canvas);
  legend(fig, chart.groups);
  return fig;
}

const DRAW = { bars, histogram, scatter };

async function main() {
  const section = document.getElementById("charts");
  if (!section) return;
  const response = await fetch(section.dataset.api, { headers: { accept: "application/json" } });
  if (!response.ok) return;
  const data = await response.json();
  const row = section.querySelector(".chart-row");
  for (const chart of data.charts) {
    const draw = DRAW[chart.kind];
    if (draw) row.append(draw(chart));
  }
  section.hidden = row.children.length === 0;
}

// a failed fetch (the server restarting, the page being left) leaves the charts hidden, never an unhandled rejection
main().catch(() => {});
