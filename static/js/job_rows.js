// One job as a row of a job list (the datasets page's ingest jobs, the dataset page's prediction jobs): the <li>
// made once per job id and reused by every poll, holding a name, a progress bar, the state text and an actions
// slot, with the Cancel button an active job has (POST /api/jobs/{id}/cancel through the page's `cancel`).

export const ACTIVE = new Set(["queued", "running"]);

/** The row of `job` in `list` (`rows`: job id → <li>), made and prepended on first sight. */
export function jobRow(list, rows, job, className = "job") {
  let li = rows.get(job.id);
  if (!li) {
    li = document.createElement("li");
    li.className = className;
    li.dataset.id = String(job.id);
    li.innerHTML = '<span class="job-name"></span> <progress max="1" value="0"></progress> ' +
      '<span class="job-state"></span> <span class="job-actions"></span>';
    list.prepend(li);
    rows.set(job.id, li);
  }
  li.dataset.status = job.status;
  return li;
}

/** Empty the row's actions and, for an active job, put a Cancel button calling `cancel(job)` there. */
export function resetActions(li, job, cancel) {
  const actions = li.querySelector(".job-actions");
  actions.replaceChildren();
  if (ACTIVE.has(job.status)) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button job-cancel";
    button.textContent = "Cancel";
    button.addEventListener("click", () => cancel(job));
    actions.append(button);
  }
  return actions;
}
