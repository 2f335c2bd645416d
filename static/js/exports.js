// The exports page: the format list follows the chosen dataset; "Start export" posts POST /api/exports with the
// filters typed as a query string (`split=test&review_status=accepted,corrected`); while an export is queued or
// running, the page polls it (GET /api/exports/{id}) and reloads when it finishes, to show its download link.

import { URLS, fillUrl, writeHeaders } from "./urls.js";

const POLL_MS = 1000;
const form = document.getElementById("export-form");
const datasetSelect = document.getElementById("export-dataset");
const formatSelect = document.getElementById("export-format");
const message = document.getElementById("export-message");
const ACTIVE = new Set(["queued", "running"]);

function fillFormats() {
  const option = datasetSelect.selectedOptions[0];
  const formats = (option?.dataset.formats || "").split(",").filter(Boolean);
  formatSelect.replaceChildren(...formats.map((f) => new Option(f, f)));
}

function parseFilters(text) {
  const filters = {};
  for (const [name, value] of new URLSearchParams(text.trim())) {
    if (!name) continue;
    (filters[name] ||= []).push(value);
  }
  return filters;
}

function say(text, isError) {
  message.hidden = false;
  message.textContent = text;
  message.classList.toggle("signin-error", Boolean(isError));
}

async function start(event) {
  event.preventDefault();
  const data = new FormData(form);
  const body = {
    dataset_id: Number(data.get("dataset_id")), format: data.get("format"),
    filters: parseFilters(String(data.get("filters") || "")), annotations: data.get("annotations"),
  };
  const r = await fetch(URLS.exports, {
    method: "POST", headers: writeHeaders({ "Content-Type": "application/json", Accept: "application/json" }),
    body: JSON.stringify(body),
  });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) {
    say(answer.detail || `the export could not start (${r.status})`, true);
    return;
  }
  say(`export ${answer.id} started`);
  // the page again, its form keeping this dataset and these filters
  const query = new URLSearchParams(String(data.get("filters") || "").trim());
  query.set("dataset_id", String(body.dataset_id));
  window.location.assign(`${window.location.pathname}?${query}`);
}

async function poll() {
  const active = [...document.querySelectorAll("#export-table tr[data-id]")].filter((tr) => ACTIVE.has(tr.dataset.status));
  for (const tr of active) {
    const r = await fetch(fillUrl(URLS.export, { id: tr.dataset.id }), { headers: { Accept: "application/json" } });
    if (!r.ok) continue;
    const e = await r.json();
    tr.querySelector(".export-progress").textContent = `${e.done} / ${e.total}`;
    tr.querySelector(".export-status").textContent = e.status;
    if (!ACTIVE.has(e.status)) {
      window.location.reload();
      return;
    }
  }
  if (active.length) setTimeout(poll, POLL_MS);
}

datasetSelect?.addEventListener("change", fillFormats);
form?.addEventListener("submit", start);
fillFormats();
poll();
