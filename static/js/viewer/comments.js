// The item's comments in the side panel: listed for every reader (GET /api/items/{id}/comments, oldest first);
// an annotator adds one (POST), attached to the annotation selected with the Edit tool when "on the selected
// annotation" is ticked.

import { writeHeaders } from "../urls.js";

const $ = (id) => document.getElementById(id);

function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

export function bindComments(v) {
  const panel = $("comments-panel");
  const url = v.state.edit?.urls?.comments;
  if (!panel || !url) return;
  const list = $("comment-list");
  const count = $("comment-count");
  const form = $("comment-form");
  const error = $("comment-error");
  const attach = $("comment-attach");

  const show = (comments) => {
    count.textContent = String(comments.length);
    list.replaceChildren(...comments.map((c) => {
      const li = document.createElement("li");
      li.dataset.id = String(c.id);
      const head = document.createElement("div");
      head.className = "comment-head muted";
      head.textContent = `${c.author} · ${when(c.created_at)}${c.annotation_id ? ` · on annotation ${c.annotation_id}` : ""}`;
      const text = document.createElement("div");
      text.className = "comment-text";
      text.textContent = c.text;
      li.append(head, text);
      return li;
    }));
    const empty = $("comment-empty");
    if (empty) empty.hidden = comments.length > 0;
  };

  const load = async () => {
    let r;
    try {
      r = await fetch(url, { credentials: "same-origin" });
      if (v.life.signal.aborted) return; // another item was swapped in meanwhile (review mode)
      if (r.ok) show(await r.json());
      else error.textContent = `comments could not be loaded (HTTP ${r.status})`;
    } catch (err) { // the network, or the page being left while it loads
      if (!v.life.signal.aborted) error.textContent = `comments could not be loaded (${err.message})`;
    }
  };

  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = $("comment-text");
    const text = box.value.trim();
    if (!text) return;
    const body = { text };
    const selected = v.editor?.selected?.ann;
    if (attach?.checked && selected) body.annotation_id = selected;
    error.textContent = "";
    let r;
    try {
      r = await fetch(url, { method: "POST", credentials: "same-origin",
                             headers: writeHeaders({ "Content-Type": "application/json" }), body: JSON.stringify(body) });
    } catch (err) {
      error.textContent = `not added: ${err.message}`;
      return;
    }
    if (!r.ok) {
      let detail = `HTTP ${r.status}`;
      try { detail = (await r.json()).detail || detail; } catch { /* keep the status */ }
      error.textContent = `not added: ${detail}`;
      return;
    }
    box.value = "";
    await load();
  }, { signal: v.life.signal });
  // Shift+C is review mode's "comment" key: it can focus the box (review.js); the form is plain HTML otherwise
  load();
}
