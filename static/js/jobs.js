// Prediction jobs from the dataset page: "Start job" posts POST /api/jobs with this page's filters — or, when
// cards are selected in the grid, the selection (`id`: the chosen ids, or all matching with `exclude_id`) —
// and every queued or running job of the dataset is polled (GET /api/jobs/{id}) into a progress bar with a
// Cancel button (POST /api/jobs/{id}/cancel). Finished jobs link their evaluation page.

import { ACTIVE, jobRow, resetActions } from "./job_rows.js";
import { URLS, fillUrl, writeHeaders } from "./urls.js";

const POLL_MS = 500;
const form = document.getElementById("jobs-form");
const list = document.getElementById("job-list");
const scope = document.getElementById("jobs-scope");
const base = JSON.parse(document.getElementById("selection-base")?.textContent || "{}");
const rows = new Map(); // job id → <li>

function selection() {
  const s = window.medviewGrid?.selection;
  return s && s.size() > 0 ? s : null;
}

/** The job's filters: the page's field filters, narrowed to the grid selection when there is one. */
function jobFilters() {
  const filters = { ...(base.filters || {}) };
  const s = selection();
  if (s && s.all) {
    if (s.excluded.size) filters.exclude_id = [...s.excluded].map(String);
  } else if (s) {
    filters.id = [...s.ids].map(String);
  }
  return filters;
}

function describeScope() {
  if (!scope) return;
  const s = selection();
  const n = s ? s.size() : Number(scope.dataset.total);
  scope.textContent = s ? `on the ${n.toLocaleString()} selected items` : `on the ${n.toLocaleString()} items matching the filters`;
}

function render(job) {
  const li = jobRow(list, rows, job);
  li.querySelector(".job-state").classList.add("mono");
  if (job.model_name) li.dataset.model = job.model_name; // GET /api/jobs/{id} does not repeat it
  const what = job.kind === "predict" ? li.dataset.model || `model ${job.params?.model_id}`
    : `${job.kind} ${job.params?.format || ""}`; // an export of this dataset (listed with its jobs)
  li.querySelector(".job-name").textContent = `#${job.id} ${what}`;
  const bar = li.querySelector("progress");
  bar.max = Math.max(job.total, 1);
  bar.value = job.status === "done" ? bar.max : job.done;
  const error = job.error ? ` — ${job.error}` : "";
  li.querySelector(".job-state").textContent = `${job.done.toLocaleString()} / ${job.total.toLocaleString()} · ${job.status}${error}`;
  const actions = resetActions(li, job,
    (j) => post(fillUrl(URLS.job_cancel, { id: j.id })).then(render).catch(showError));
  if (job.status === "done" && job.params?.model_id) {
    const link = document.createElement("a");
    link.href = fillUrl(URLS.evaluation_page, { model_id: job.params.model_id, dataset_id: base.dataset_id });
    link.textContent = "Evaluation";
    actions.append(link);
  }
}

async function post(url, body) {
  const r = await fetch(url, { method: "POST", headers: writeHeaders({ "Content-Type": "application/json" }),
    body: body ? JSON.stringify(body) : undefined });
  const data = await r.json();
  if (!r.ok) throw new Error(data.detail || `HTTP ${r.status}`);
  return data;
}

function showError(err) {
  const li = document.createElement("li");
  li.className = "job job-error";
  li.textContent = String(err.message || err);
  list.prepend(li);
}

async function poll() {
  const active = [...rows.values()].filter((li) => ACTIVE.has(li.dataset.status));
  await Promise.all(active.map(async (li) => {
    try {
      const r = await fetch(fillUrl(URLS.job, { id: li.dataset.id }));
      if (r.ok) render(await r.json());
    } catch {
      // the server restarting or the page being left: try again at the next tick
    }
  }));
  setTimeout(poll, POLL_MS);
}

if (list) {
  for (const job of JSON.parse(document.getElementById("jobs-initial")?.textContent || "[]").reverse()) render(job);
  form?.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const { id } = await post(URLS.jobs, { kind: "predict", model_id: Number(form.model_id.value),
        dataset_id: base.dataset_id, filters: jobFilters() });
      const r = await fetch(fillUrl(URLS.job, { id }));
      render({ ...(await r.json()), model_name: form.model_id.selectedOptions[0].textContent.split(" · ")[0] });
    } catch (err) {
      showError(err);
    }
  });
  document.addEventListener("selectionchange-grid", describeScope);
  describeScope();
  setTimeout(poll, POLL_MS);
}

// The "Run a model…" button opens the jobs panel (no inline handler: the page's CSP allows no inline script).
document.querySelector('a[href="#dataset-jobs"]')?.addEventListener("click", () => {
  const panel = document.getElementById("dataset-jobs");
  if (panel) panel.open = true;
});
