// Thumbnail grid: infinite scroll. The server renders the first page and a "Next page" link (which
// works without JS); this module fetches the following pages from the items API with the same filters
// and appends cards cloned from the page's <template>, so both paths produce identical markup.

const LOOKAHEAD_PX = 800;

const grid = document.getElementById("grid");
const pager = document.getElementById("pager");
const template = document.getElementById("card-template");

function card(item, labels) {
  const node = template.content.firstElementChild.cloneNode(true);
  node.href = `/items/${item.id}`;
  node.dataset.id = item.id;
  const image = node.querySelector("img");
  image.src = item.thumbnail_url;
  image.alt = item.key;
  image.width = item.width || 256;
  image.height = item.height || 256;
  const key = node.querySelector(".card-key");
  key.textContent = item.key;
  key.title = item.key;
  const split = node.querySelector(".split");
  split.textContent = item.split || "–";
  split.className = `tag split split-${item.split}`;
  node.querySelector(".card-label").textContent = item.label == null ? "" : labels[item.label] || item.label;
  return node;
}

function nearBottom() {
  return pager.getBoundingClientRect().top < window.innerHeight + LOOKAHEAD_PX;
}

if (grid && pager && template) {
  const labels = JSON.parse(grid.dataset.labels || "{}");
  let cursor = grid.dataset.cursor;
  let busy = false;

  const finish = (text) => {
    cursor = "";
    pager.textContent = "";
    const note = document.createElement("span");
    note.className = "muted";
    note.textContent = text;
    pager.append(note);
  };

  const more = async () => {
    if (!cursor || busy) return;
    busy = true;
    pager.classList.add("loading");
    try {
      const url = new URL(grid.dataset.api, location.href);
      url.searchParams.set("cursor", cursor);
      const response = await fetch(url, { headers: { accept: "application/json" } });
      const page = await response.json();
      if (!response.ok) throw new Error(page.detail || response.statusText);
      const fragment = document.createDocumentFragment();
      for (const item of page.items) fragment.append(card(item, labels));
      grid.append(fragment);
      grid.dataset.cursor = cursor = page.next_cursor || "";
      const next = document.getElementById("next-page");
      if (!cursor) finish("End of the list.");
      else if (next) {
        const href = new URL(next.href);
        href.searchParams.set("cursor", cursor);
        next.href = href.toString();
      }
    } catch (error) {
      finish(`Could not load more items: ${error.message}`);
    } finally {
      busy = false;
      pager.classList.remove("loading");
    }
    if (cursor && nearBottom()) requestAnimationFrame(more);
  };

  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) more();
  }, { rootMargin: `${LOOKAHEAD_PX}px` }).observe(pager);
}
