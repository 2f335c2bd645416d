// The dataset page's "Review queue…" action: a dialog that makes a review queue from what the grid shows — its
// filters and sort as in the page URL (metric sorts such as lowest Dice first included), or the selected items —
// or from one of the kind's built-in suggestions that apply to this dataset (GET /api/review/suggestions).

import { writeHeaders } from "./urls.js";

const dialog = document.getElementById("review-queue-dialog");
const opener = document.getElementById("review-queue-open");
const $ = (id) => document.getElementById(id);

function gridFilters() {
  const base = JSON.parse(document.getElementById("selection-base")?.textContent || "{}");
  return base.filters || {};
}

function gridSort() {
  return new URLSearchParams(location.search).get("sort") || null;
}

function describe(filters, sort) {
  const parts = Object.entries(filters).map(([k, v]) => `${k}=${[].concat(v).join(",")}`);
  return `${parts.join(" · ") || "all items"}${sort ? ` · sort ${sort}` : ""}`;
}

/** The grid's explicit selection (ids), or null (nothing selected, or "all matching"). */
function selectedIds() {
  const sel = window.medviewGrid?.selection;
  if (!sel || sel.all || !sel.ids.size) return null;
  return [...sel.ids];
}

let suggestions = [];

async function loadSuggestions() {
  const url = `${dialog.dataset.suggestionsUrl}?dataset_id=${dialog.dataset.datasetId}`;
  const r = await fetch(url, { headers: { accept: "application/json" } });
  suggestions = r.ok ? await r.json() : [];
  const box = $("review-queue-sources");
  box.querySelectorAll("label.suggestion").forEach((l) => l.remove());
  suggestions.forEach((s, n) => {
    const label = document.createElement("label");
    label.className = "suggestion";
    const input = Object.assign(document.createElement("input"), { type: "radio", name: "source", value: `suggestion:${n}` });
    const text = document.createElement("span");
    text.textContent = `${s.name}${s.limit ? ` (first ${s.limit})` : ""}`;
    label.append(input, document.createTextNode(" "), text);
    box.append(label);
  });
}

async function loadUsers() {
  if (!dialog.dataset.usersUrl) return;
  const r = await fetch(dialog.dataset.usersUrl, { headers: { accept: "application/json" } });
  if (!r.ok) return;
  const users = await r.json();
  const list = $("review-queue-users");
  list.replaceChildren(...users.filter((u) => (u.role === "reviewer" || u.role === "admin") && !u.disabled)
    .map((u) => Object.assign(document.createElement("option"), { value: u.username })));
}

function open() {
  const filters = gridFilters();
  const sort = gridSort();
  $("review-queue-grid-text").textContent = `the grid: ${describe(filters, sort)}`;
  const ids = selectedIds();
  $("review-queue-selection-choice").hidden = !ids;
  if (ids) $("review-queue-selection-text").textContent = `the ${ids.length} selected item${ids.length === 1 ? "" : "s"}, in the grid's order`;
  $("review-queue-name").value = `${dialog.dataset.datasetName}: ${describe(filters, sort)}`;
  $("review-queue-error").hidden = true;
  dialog.showModal();
  loadSuggestions().catch(() => {});
  loadUsers().catch(() => {});
}

function body() {
  const form = $("review-queue-form");
  const source = form.querySelector("input[name=source]:checked")?.value || "grid";
  const out = { name: $("review-queue-name").value.trim(), dataset_id: Number(dialog.dataset.datasetId),
                filters: gridFilters(), sort: gridSort(), readers_per_item: Number($("review-queue-readers").value),
                assignees: $("review-queue-assignees").value.split(",").map((s) => s.trim()).filter(Boolean) };
  const limit = $("review-queue-limit").value;
  if (limit) out.limit = Number(limit);
  if (source === "selection") out.item_ids = selectedIds();
  else if (source.startsWith("suggestion:")) {
    const s = suggestions[Number(source.split(":")[1])];
    Object.assign(out, { filters: s.filters, sort: s.sort });
    if (!limit && s.limit) out.limit = s.limit;
  }
  return out;
}

async function create(event) {
  event.preventDefault();
  const error = $("review-queue-error");
  const r = await fetch(dialog.dataset.queuesUrl, { method: "POST", headers: writeHeaders({ "content-type": "application/json" }),
                                                    body: JSON.stringify(body()) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    error.hidden = false;
    error.textContent = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || `HTTP ${r.status}`);
    return;
  }
  location.assign(dialog.dataset.queuePage.replace(/0$/, String(data.id)));
}

if (dialog && opener) {
  opener.addEventListener("click", open);
  $("review-queue-cancel").addEventListener("click", () => dialog.close());
  $("review-queue-form").addEventListener("submit", create);
  // a suggestion's name replaces the default one
  $("review-queue-sources").addEventListener("change", (e) => {
    const v = e.target.value || "";
    if (v.startsWith("suggestion:")) $("review-queue-name").value = `${dialog.dataset.datasetName}: ${suggestions[Number(v.split(":")[1])].name}`;
  });
}
