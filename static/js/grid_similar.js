// "More like this" on the dataset grid: with exactly one card selected, the selection bar's button opens the
// grid filtered to that item's nearest items (`similar=ID&similar_model=MODEL`, app.embeddings.similar_filter),
// keeping the other filters and the key search; the chip "similar to item N ✕" on that page removes it.

const button = document.getElementById("more-like-this");

function selectedId() {
  const selection = window.medviewGrid && window.medviewGrid.selection;
  if (!selection || selection.all || selection.ids.size !== 1) return null;
  return [...selection.ids][0];
}

if (button) {
  document.addEventListener("selectionchange-grid", () => { button.hidden = selectedId() === null; });
  button.addEventListener("click", () => {
    const id = selectedId();
    if (id === null) return;
    const url = new URL(location.href);
    for (const k of ["cursor", "offset", "sort", "similar", "similar_model", "similar_k"]) url.searchParams.delete(k);
    url.searchParams.set("similar", String(id));
    url.searchParams.set("similar_model", button.dataset.similarModel);
    location.assign(url.toString());
  });
}
