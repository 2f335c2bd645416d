// Thumbnail grid: infinite scroll. The server renders the first page and a "Next page" link (which
// works without JS); this module fetches the following pages from the items API with the same filters
// and appends cards cloned from the page's <template>, so both paths produce identical markup. When the grid has
// `data-sheet` (PCam), a page's thumbnails are tiles of ONE contact sheet for the same cursor (same filters and
// limit as the items, so tile n is item n), cropped by CSS as pages.tile_styles does for the first page.

const LOOKAHEAD_PX = 800;

const grid = document.getElementById("grid");
const pager = document.getElementById("pager");
const template = document.getElementById("card-template");

const SHEET_COLS = 8; // pages.SHEET_COLS

// Inline style showing tile n of `count` (row by row, SHEET_COLS a row) of the sheet at `url`.
function tileStyle(thumb, url, n, count) {
  const rows = Math.max(1, Math.ceil(count / SHEET_COLS));
  const col = n % SHEET_COLS;
  const row = Math.floor(n / SHEET_COLS);
  const x = SHEET_COLS > 1 ? (100 * col) / (SHEET_COLS - 1) : 0;
  const y = rows > 1 ? (100 * row) / (rows - 1) : 0;
  thumb.style.backgroundImage = `url("${url}")`;
  thumb.style.backgroundSize = `${SHEET_COLS * 100}% ${rows * 100}%`;
  thumb.style.backgroundPosition = `${+x.toFixed(3)}% ${+y.toFixed(3)}%`;
}

function card(item, labels, sheet) {
  const node = template.content.firstElementChild.cloneNode(true);
  node.href = `/items/${item.id}`;
  node.dataset.id = item.id;
  const image = node.querySelector("img");
  if (image) {
    image.src = item.thumbnail_url;
    image.alt = item.key;
    image.width = item.width || 256;
    image.height = item.height || 256;
  } else {
    const thumb = node.querySelector(".thumb");
    thumb.setAttribute("aria-label", item.key);
    tileStyle(thumb, sheet.url, sheet.n, sheet.count);
  }
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
      let sheetUrl = "";
      if (grid.dataset.sheet) {
        const sheet = new URL(grid.dataset.sheet, location.href);
        sheet.searchParams.set("cursor", cursor);
        sheetUrl = sheet.pathname + sheet.search;
      }
      const fragment = document.createDocumentFragment();
      page.items.forEach((item, n) => {
        fragment.append(card(item, labels, { url: sheetUrl, n, count: page.items.length }));
      });
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
