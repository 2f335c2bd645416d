// The queue page's actions: "Adjudication queue" (a 1-reader queue of the disputed items) and "Sign off".
// Both POST to the review API with the page's CSRF header and follow the answer.

import { postJson, reviewUrl } from "./review_common.js";

const root = document.getElementById("review-queue");
const queueId = root?.dataset.queueId;
const errorBox = document.getElementById("action-error");

function fail(err) {
  errorBox.hidden = false;
  errorBox.textContent = err.message;
}

document.getElementById("make-adjudication")?.addEventListener("click", async (e) => {
  e.target.disabled = true;
  try {
    const made = await postJson(reviewUrl("adjudication", { queue_id: queueId }), {});
    location.assign(reviewUrl("queue_page", { queue_id: made.id }));
  } catch (err) { fail(err); e.target.disabled = false; }
});

document.getElementById("sign-off")?.addEventListener("click", async (e) => {
  e.target.disabled = true;
  try {
    await postJson(reviewUrl("sign_off", { queue_id: queueId }));
    location.reload();
  } catch (err) { fail(err); e.target.disabled = false; }
});
