// Previous / next item of the grid the item page was opened from. The grid's item links carry its query
// (filters + sort) in `?list=`; this module asks GET /api/items/{id}?neighbours=1&<that query> for the item's
// position and its neighbours (keyset on the server, fast at 1 M items) and shows "‹ 1,234 of 5,000 ›".
// Keys: `,` previous, `.` next (free of the viewer's keys). Without `list` the bar stays hidden.

const nav = document.getElementById("item-nav");
const params = new URLSearchParams(location.search);
const list = params.get("list");

function itemHref(id) {
  const url = new URL(location.href);
  url.pathname = url.pathname.replace(/\/items\/\d+$/, `/items/${id}`);
  url.search = new URLSearchParams({ list }).toString();
  return url.pathname + url.search;
}

function setLink(node, id) {
  if (id == null) {
    node.removeAttribute("href");
    node.setAttribute("aria-disabled", "true");
  } else {
    node.href = itemHref(id);
    node.dataset.id = String(id);
    node.setAttribute("aria-disabled", "false");
  }
}

async function load() {
  const url = new URL(nav.dataset.api, location.href);
  for (const [k, v] of new URLSearchParams(list)) url.searchParams.append(k, v);
  url.searchParams.set("neighbours", "1");
  const response = await fetch(url, { headers: { accept: "application/json" } });
  if (!response.ok) return;
  const found = (await response.json()).neighbours;
  if (!found) return; // the item is not in that list (it changed since): no bar
  const fmt = new Intl.NumberFormat("en-US");
  document.getElementById("item-nav-position").textContent = fmt.format(found.position);
  document.getElementById("item-nav-total").textContent = fmt.format(found.total);
  setLink(document.getElementById("item-nav-prev"), found.previous);
  setLink(document.getElementById("item-nav-next"), found.next);
  const grid = document.getElementById("item-nav-grid");
  grid.href = nav.dataset.grid + (list ? `?${list}` : "");
  nav.hidden = false;
  nav.dataset.ready = "1";
}

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

if (nav && list !== null) {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const id = event.key === "," ? "item-nav-prev" : event.key === "." ? "item-nav-next" : null;
    const link = id && document.getElementById(id);
    if (!link || !link.href) return;
    event.preventDefault();
    location.assign(link.href);
  });
  load().catch(() => {});
}
