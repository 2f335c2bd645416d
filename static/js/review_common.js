// Shared by the review scripts: the review URL templates the page was given (the `review-urls` JSON block, built
// from the server's routes) and a JSON POST that says what went wrong as the server did.

import { fillUrl, writeHeaders } from "./urls.js";

export const REVIEW_URLS = JSON.parse(document.getElementById("review-urls")?.textContent || "{}");

/** The review URL `name` with its `{field}`s filled. */
export function reviewUrl(name, params = {}) {
  return fillUrl(REVIEW_URLS[name], params);
}

/** POST JSON with the page's CSRF header; resolves to the answer's JSON (null for 204), rejects with its detail. */
export async function postJson(url, body) {
  const r = await fetch(url, { method: "POST", headers: writeHeaders({ "content-type": "application/json" }),
                               body: JSON.stringify(body ?? {}) });
  const data = r.status === 204 ? null : await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data?.detail || `HTTP ${r.status}`);
  return data;
}
