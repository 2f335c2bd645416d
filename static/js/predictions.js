// Item page: run a model on this item (POST /api/items/{id}/predict, any task) and list each model's prediction:
// classifiers as one probability bar per class (predicted class highlighted, ✓/✗ against the ground truth from
// metrics.correct); masks and boxes with their metrics and a "Compare" button that shows them side by side in the
// viewer (the `medview:prediction` event, handled by static/js/viewer/controls.js). Bound to the page's panel at
// load and again when review mode swaps the next item in (`medview:item-swapped`: the side panel is new).

import { URLS, fillUrl, writeHeaders } from "./urls.js";

let state, list, form, errorBox, count, byModel;
const POLL_MS = 1000; // while a long prediction (202) finishes in the background

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render(prediction) {
  const probs = prediction.outputs?.probabilities || [];
  const names = state.classes[String(prediction.model_id)] || [];
  const top = probs.reduce((best, p, i) => (p > probs[best] ? i : best), 0);
  const card = el("div", "prediction");
  card.dataset.modelId = prediction.model_id;
  const head = el("div", "prediction-head");
  head.append(el("span", "strong", prediction.model_name));
  const correct = prediction.metrics?.correct;
  if (!prediction.outputs?.probabilities) {
    const compare = el("button", "compare", "Compare");
    compare.type = "button";
    compare.title = "ground truth | prediction side by side in the viewer (key X; D for the difference)";
    compare.addEventListener("click", () => announce(prediction, true));
    head.append(compare);
    card.append(head);
    const metrics = Object.entries(prediction.metrics || {}).filter(([, v]) => typeof v === "number");
    card.append(el("div", "muted small", metrics.length
      ? metrics.map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(" · ") : (prediction.task || "prediction")));
    return card;
  }
  if (correct === true || correct === false) {
    const verdict = el("span", `verdict ${correct ? "ok" : "bad"}`, correct ? "✓ matches ground truth" : "✗ differs from ground truth");
    verdict.dataset.correct = String(correct);
    head.append(verdict);
  } else {
    head.append(el("span", "muted small", "no ground truth"));
  }
  card.append(head);
  probs.forEach((p, i) => {
    const row = el("div", `prob-row${i === top ? " predicted" : ""}`);
    row.dataset.class = names[i] ?? String(i);
    row.append(el("span", "prob-name", names[i] ?? `class ${i}`));
    const track = el("div", "prob-track");
    const bar = el("div", "prob-bar");
    bar.style.width = `${(100 * p).toFixed(2)}%`;
    bar.dataset.probability = String(p);
    track.append(bar);
    row.append(track, el("span", "prob-value", `${(100 * p).toFixed(1)}%`));
    card.append(row);
  });
  if (prediction.metrics?.nll !== undefined) {
    card.append(el("div", "muted small", `NLL ${Number(prediction.metrics.nll).toFixed(3)}`));
  }
  return card;
}

function show(prediction) {
  state.predictions = [...state.predictions.filter((p) => p.model_id !== prediction.model_id), prediction];
  const card = render(prediction);
  const old = byModel.get(prediction.model_id);
  if (old) old.replaceWith(card);
  else list.append(card);
  byModel.set(prediction.model_id, card);
  count.textContent = String(byModel.size);
}

/** A prediction that outlived the request's wait (202): poll the item until the model's new one is stored. */
async function stored(modelId, detail) {
  const before = state.predictions.find((p) => p.model_id === modelId)?.created_at;
  errorBox.classList.add("pending");
  showError(`${detail} — waiting…`);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const item = await (await fetch(fillUrl(URLS.item, { id: state.item_id }))).json();
    const found = (item.predictions || []).find((p) => p.model_id === modelId && p.created_at !== before);
    if (found) {
      errorBox.classList.remove("pending");
      showError("");
      return found;
    }
  }
}

/** Tell the viewer (a new prediction, or "compare" pressed). */
function announce(prediction, compare) {
  document.dispatchEvent(new CustomEvent("medview:prediction", { detail: { prediction, compare } }));
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

/** Bind to the item's panel (the elements of the page as it is now). */
function bind() {
  const source = document.getElementById("predictions-state");
  if (!source) return;
  state = JSON.parse(source.textContent);
  list = document.getElementById("prediction-list");
  form = document.getElementById("run-model");
  errorBox = document.getElementById("predict-error");
  count = document.getElementById("prediction-count");
  byModel = new Map();
  state.predictions.forEach(show);
  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("run-model-button");
    const modelId = Number(document.getElementById("run-model-select").value);
    button.disabled = true;
    showError("");
    try {
      const response = await fetch(fillUrl(URLS.predict, { id: state.item_id }), {
        method: "POST", headers: writeHeaders({"Content-Type": "application/json", Accept: "application/json"}),
        body: JSON.stringify({model_id: modelId}),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.detail || `prediction failed (HTTP ${response.status})`);
      const prediction = response.status === 202 ? await stored(modelId, body.detail) : body;
      show(prediction);
      announce(prediction, false);
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
    }
  });
}

bind();
document.addEventListener("medview:item-swapped", bind);
