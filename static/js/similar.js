// Item page, "More like this" (issue 15): GET /api/items/{id}/similar with the chosen embedding model and lists
// the nearest items best first, each a thumbnail linking to its page with its cosine score. A read: no
// writeHeaders. The API's own message is shown when the item has no vector yet (run a job of the model).

const K = 12;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function find(section, form) {
  const list = section.querySelector("#similar-list");
  const error = section.querySelector("#similar-error");
  const params = new URLSearchParams({ model: form.elements.model.value, k: String(K) });
  if (form.elements.exclude_same_patient?.checked) params.set("exclude_same_patient", "true");
  error.hidden = true;
  list.replaceChildren();
  let r;
  try {
    r = await fetch(`/api/items/${section.dataset.item}/similar?${params}`, { credentials: "same-origin" });
  } catch (err) { // the network, or the page being left while it searches
    error.textContent = `could not search (${err.message})`;
    error.hidden = false;
    return;
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    error.textContent = typeof body.detail === "string" ? body.detail : `could not search (${r.status})`;
    error.hidden = false;
    return;
  }
  if (!body.items.length) list.append(el("li", "small", "no other items"));
  for (const hit of body.items) {
    const li = el("li", "similar-item");
    const a = el("a");
    a.href = `/items/${hit.id}`;
    const img = el("img");
    img.src = `/api/items/${hit.id}/render?format=jpeg&size=96`;
    img.alt = `item ${hit.id}`;
    img.loading = "lazy";
    img.width = 96;
    img.height = 96;
    a.append(img, el("span", "small mono", hit.score.toFixed(3)));
    li.append(a);
    list.append(li);
  }
}

function bind() {
  const section = document.getElementById("similar");
  const form = document.getElementById("similar-form");
  if (!section || !form || form.dataset.bound) return;
  form.dataset.bound = "1";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    find(section, form);
  });
}

bind();
document.addEventListener("medview:item-swapped", bind);
