// "Add dataset…" on the datasets page (admins): the form posts POST /api/datasets {path, kind?, name?} with the
// CSRF header; the server checks the folder, kind and name at once (its message is shown under the form) and
// answers the queued ingest job. Every queued or running ingest job is polled (GET /api/jobs/{id}) into a
// progress bar showing its phase and done / total, with a Cancel button; when one finishes, the page reloads so
// the new (or updated) dataset is listed, and the job's row links it. A failed job shows the server's reason and
// its first problems.

import { ACTIVE, jobRow, resetActions } from "./job_rows.js";
import { URLS, fillUrl, writeHeaders } from "./urls.js";

const POLL_MS = 500;
const form = document.getElementById("ingest-form");
const message = document.getElementById("ingest-message");
const list = document.getElementById("ingest-jobs");
const rows = new Map(); // job id → <li>
const MAX_PROBLEMS_SHOWN = 5;

function say(text) {
  message.hidden = !text;
  message.textContent = text || "";
}

/** The job's phase; a job just claimed by a worker (running, its runner not yet started) is "starting". */
function phaseOf(job) {
  const phase = job.params?.phase || "queued";
  return job.status === "running" && phase === "queued" ? "starting" : phase;
}

function describe(job) {
  const p = job.params || {};
  if (job.status === "done" && p.result) {
    const r = p.result;
    const problems = r.problems ? ` · ${r.problems.toLocaleString()} problems` : "";
    return `done · ${r.items.toLocaleString()} items, ${r.annotations.toLocaleString()} annotations` +
      ` (${r.added.toLocaleString()} added, ${r.updated.toLocaleString()} updated, ${r.removed.toLocaleString()} removed)${problems}`;
  }
  if (job.status === "failed") return `failed — ${job.error || "unknown error"}`;
  if (job.status === "cancelled") return "cancelled";
  const counts = job.total ? ` ${job.done.toLocaleString()} / ${job.total.toLocaleString()}` : "";
  return `${job.status} · ${phaseOf(job)}${counts}`;
}

function render(job) {
  const li = jobRow(list, rows, job, "job ingest-job");
  if (!li.querySelector(".job-problems")) {
    li.insertAdjacentHTML("beforeend", '<ul class="job-problems small"></ul>');
  }
  const p = job.params || {};
  li.dataset.phase = phaseOf(job);
  li.querySelector(".job-name").textContent = `#${job.id} ${p.name || ""} (${p.kind || "auto"})`;
  li.querySelector(".job-name").title = p.path || "";
  const bar = li.querySelector("progress");
  bar.max = Math.max(job.total, 1);
  if (job.status === "done") bar.value = bar.max;
  else if (job.total) bar.value = job.done;
  else bar.removeAttribute("value"); // indeterminate until the phase knows its total
  bar.hidden = !ACTIVE.has(job.status) && job.status !== "done";
  li.querySelector(".job-state").textContent = describe(job);
  const actions = resetActions(li, job,
    (j) => post(fillUrl(URLS.job_cancel, { id: j.id })).then(render).catch((e) => say(e.message)));
  if (job.status === "done" && p.result) {
    const link = document.createElement("a");
    link.href = fillUrl(URLS.dataset_page, { id: p.result.dataset_id });
    link.textContent = "Open dataset";
    actions.append(link);
  }
  const problems = li.querySelector(".job-problems");
  problems.replaceChildren(...(job.status === "failed" ? (p.problems || []) : []).slice(0, MAX_PROBLEMS_SHOWN).map((x) => {
    const item = document.createElement("li");
    item.textContent = x.text;
    return item;
  }));
  if (job.status === "failed" && (p.problem_count || 0) > MAX_PROBLEMS_SHOWN) {
    const more = document.createElement("li");
    more.textContent = `… and ${p.problem_count - MAX_PROBLEMS_SHOWN} more`;
    problems.append(more);
  }
}

async function post(url, body) {
  const r = await fetch(url, {
    method: "POST", headers: writeHeaders({ "Content-Type": "application/json", Accept: "application/json" }),
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.detail || `HTTP ${r.status}`);
  return data;
}

async function start(event) {
  event.preventDefault();
  say("");
  const data = new FormData(form);
  const body = { path: String(data.get("path") || "").trim() };
  if (data.get("kind")) body.kind = String(data.get("kind"));
  if (String(data.get("name") || "").trim()) body.name = String(data.get("name")).trim();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const job = await post(URLS.datasets, body);
    render({ ...job, done: 0, total: 0, error: null });
  } catch (err) {
    say(err.message);
  } finally {
    button.disabled = false;
  }
}

async function poll() {
  const active = [...rows.values()].filter((li) => ACTIVE.has(li.dataset.status));
  let finished = false;
  await Promise.all(active.map(async (li) => {
    try {
      const r = await fetch(fillUrl(URLS.job, { id: li.dataset.id }), { headers: { Accept: "application/json" } });
      if (!r.ok) return;
      const job = await r.json();
      render(job);
      if (job.status === "done") finished = true;
    } catch {
      // the server restarting or the page unloading (a reload under way): try again at the next tick
    }
  }));
  if (finished) {
    window.location.reload(); // the datasets table, with the new or updated dataset
    return;
  }
  setTimeout(poll, POLL_MS);
}

if (form && list) {
  for (const job of JSON.parse(document.getElementById("ingest-initial")?.textContent || "[]").reverse()) render(job);
  form.addEventListener("submit", start);
  setTimeout(poll, POLL_MS);
}
