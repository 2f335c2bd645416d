// Thumbnail grid, virtualised: smooth from the first to the millionth item with a bounded DOM.
//
// The server renders the first page and a "Next page" link (which works without JS). This module then takes
// the grid over: #grid gets the height of ALL rows (total / columns × row height, compressed past MAX_PX so the
// browser's limit on element height is never hit), and only the rows near the viewport exist, in one absolutely
// placed window whose card nodes are recycled as you scroll. Items are fetched in pages of the server's page
// size: page p follows page p-1's keyset cursor when that page is loaded (the cheap path while scrolling), and
// otherwise is asked for by `offset=p × size` (a jump: scrollbar drag, "Go to #", End key). Pages far from the
// viewport are dropped. With `data-sheet` (PCam) a page's thumbnails are tiles of ONE contact sheet for the same
// cursor/offset (same filters, sort and limit as the items, so tile n is item n), cropped by CSS as
// pages.tile_styles does for the first page. Cards are cloned from the page's <template>, so both paths
// produce the same markup.
//
// Selection: ctrl/⌘-click toggles a card, shift-click selects the range from the last clicked card (loaded
// items), "Select all N matching" selects the whole filtered list (minus later ctrl-clicks). The count shows
// in the toolbar and "Copy JSON" gives the ids, or the filters when all matching are selected.

import { URLS, fillUrl } from "./urls.js";

const MAX_PX = 8_000_000; // grid height cap (Chrome clips elements at ~33.5 M px; keep far from it)
const BUFFER_ROWS = 3; // rows rendered above and below the viewport
const KEEP_PAGES = 40; // loaded pages kept around the viewport
const JUMP_DELAY_MS = 90; // wait for a fast scroll (scrollbar drag) to settle before an offset request
const SHEET_COLS = 8; // pages.SHEET_COLS
const GAP = 8; // .grid gap in px (medview.css)

const grid = document.getElementById("grid");
const pager = document.getElementById("pager");
const template = document.getElementById("card-template");
const firstPage = document.getElementById("first-page");

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

function formatValue(v) {
  if (v == null || typeof v !== "number") return "";
  return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(v) : v.toPrecision(4).replace(/\.?0+$/, "");
}

// A model's prediction badge (pages: item_card.html renders the same): class and probability, or Dice; coloured
// by its verdict (right/wrong against the ground truth, good/fair/poor Dice).
function showBadge(badge, p) {
  if (!badge) return;
  badge.hidden = !p;
  badge.className = `pred-badge mono${p && p.verdict ? ` pred-${p.verdict}` : ""}`;
  if (!p) { badge.textContent = ""; badge.title = ""; return; }
  badge.textContent = p.label != null ? `${p.label}${p.probability != null ? ` ${p.probability.toFixed(2)}` : ""}`
    : p.dice != null ? `Dice ${p.dice.toFixed(2)}` : "predicted";
  badge.title = `prediction: ${p.verdict || "no ground truth"}`;
}

class VirtualGrid {
  constructor() {
    this.api = grid.dataset.api;
    // the grid's filters and sort, carried by item links so the item page can step through this list
    const listQuery = new URL(this.api, location.href).searchParams;
    for (const k of ["limit", "cursor", "offset", "format", "model"]) listQuery.delete(k);
    this.itemSuffix = `?${new URLSearchParams({ list: listQuery.toString() })}`;
    this.sheet = grid.dataset.sheet;
    this.total = Number(grid.dataset.total || 0);
    this.size = Number(grid.dataset.pageSize || 60);
    this.labels = JSON.parse(grid.dataset.labels || "{}");
    this.pages = new Map(); // page number → {items, next, sheet}
    this.loading = new Map(); // page number → Promise
    this.cols = 1;
    this.rowH = 0;
    this.pendingJump = null;
    const first = JSON.parse(firstPage.textContent);
    // the server's first page is page 0 unless it was opened at a cursor (a no-JS "Next page" link)
    if (!first.cursor) this.store(0, first.items, first.next_cursor, this.sheetUrl({}));
    grid.textContent = "";
    grid.classList.add("virtual");
    this.window = document.createElement("div");
    this.window.className = "grid-window";
    grid.append(this.window);
    if (pager) pager.hidden = true;
    this.selection = new Selection(this);
    this.measure();
    addEventListener("scroll", () => this.schedule(), { passive: true });
    addEventListener("resize", () => { this.measure(); this.schedule(); });
    this.schedule();
  }

  sheetUrl(params) {
    if (!this.sheet) return "";
    const url = new URL(this.sheet, location.href);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    return url.pathname + url.search;
  }

  store(p, items, next, sheet) {
    this.pages.set(p, { items, next, sheet });
  }

  // Columns from the width (as CSS auto-fill minmax(150px, 1fr) would) and the row height of a real card.
  measure() {
    const width = grid.clientWidth;
    this.cols = Math.max(1, Math.floor((width + GAP) / (150 + GAP)));
    this.window.style.gridTemplateColumns = `repeat(${this.cols}, minmax(0, 1fr))`;
    const probe = this.window.firstElementChild || this.window.appendChild(this.blankCard());
    this.window.style.gridAutoRows = "";
    this.rowH = probe.getBoundingClientRect().height + GAP;
    // every row exactly the measured one: a card can never push its row taller than the virtual row height
    this.window.style.gridAutoRows = `${this.rowH - GAP}px`;
    if (!this.window.dataset.rendered) probe.remove();
    this.rows = Math.ceil(this.total / this.cols);
    this.virtualH = Math.max(0, this.rows * this.rowH - GAP);
    this.height = Math.min(this.virtualH, MAX_PX);
    grid.style.height = `${this.height}px`;
  }

  blankCard() {
    const node = template.content.firstElementChild.cloneNode(true);
    node.classList.add("pending");
    node.removeAttribute("href");
    return node;
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  // Scroll px inside the grid ↔ virtual px (identical unless the grid was compressed past MAX_PX).
  toVirtual(y) {
    const vh = innerHeight;
    if (this.height >= this.virtualH || this.height <= vh) return y;
    return (y * (this.virtualH - vh)) / (this.height - vh);
  }

  toScroll(v) {
    const vh = innerHeight;
    if (this.height >= this.virtualH || this.height <= vh) return v;
    return (v * (this.height - vh)) / (this.virtualH - vh);
  }

  gridTop() {
    return grid.getBoundingClientRect().top + scrollY;
  }

  scrollToPosition(n) {
    const row = Math.floor(Math.max(0, Math.min(this.total - 1, n)) / this.cols);
    scrollTo(0, this.gridTop() + this.toScroll(row * this.rowH) - 60);
    this.schedule();
  }

  render() {
    if (!this.total || !this.rowH) return;
    const viewTop = Math.max(0, scrollY - this.gridTop());
    const virtualTop = this.toVirtual(Math.min(viewTop, this.height));
    const firstRow = Math.max(0, Math.floor(virtualTop / this.rowH) - BUFFER_ROWS);
    const lastRow = Math.min(this.rows - 1, Math.floor((virtualTop + innerHeight) / this.rowH) + BUFFER_ROWS);
    const y = Math.min(viewTop, this.height) - (virtualTop - firstRow * this.rowH);
    this.window.style.transform = `translateY(${Math.max(0, Math.round(y))}px)`;
    const start = firstRow * this.cols;
    const end = Math.min(this.total, (lastRow + 1) * this.cols);
    this.fill(start, end);
    this.window.dataset.rendered = "1";
    const seen = Math.min(this.total, Math.floor(virtualTop / this.rowH) * this.cols + 1);
    const position = document.getElementById("grid-position");
    if (position) position.textContent = `#${seen.toLocaleString()}–${Math.min(this.total, seen - 1 + Math.ceil(innerHeight / this.rowH) * this.cols).toLocaleString()} of ${this.total.toLocaleString()}`;
    this.request(Math.floor(start / this.size), Math.floor((end - 1) / this.size));
  }

  // Card nodes for positions [start, end): reuse the window's nodes, filling each with its item or a placeholder.
  fill(start, end) {
    const want = end - start;
    while (this.window.children.length > want) this.window.lastElementChild.remove();
    while (this.window.children.length < want) this.window.append(this.blankCard());
    for (let k = 0; k < want; k += 1) {
      const pos = start + k;
      const page = this.pages.get(Math.floor(pos / this.size));
      const item = page && page.items[pos % this.size];
      const node = this.window.children[k];
      const stamp = item ? `${item.id}` : `-${pos}`;
      if (node.dataset.stamp !== stamp) {
        if (item) this.card(node, item, page, pos % this.size);
        else this.placeholder(node);
        node.dataset.stamp = stamp;
      }
      node.dataset.pos = pos;
      node.classList.toggle("selected", !!item && this.selection.has(item.id));
    }
  }

  card(node, item, page, n) {
    node.classList.remove("pending");
    node.href = fillUrl(URLS.item_page, { id: item.id }) + this.itemSuffix;
    node.dataset.id = item.id;
    const image = node.querySelector("img");
    if (image) {
      image.src = item.thumbnail_url;
      image.alt = item.title || item.key;
    } else {
      const thumb = node.querySelector(".thumb");
      thumb.setAttribute("aria-label", item.title || item.key);
      tileStyle(thumb, page.sheet, n, page.items.length);
    }
    // a readable title where the kind gives one (a DICOM series: number, description, date), the key on hover
    const key = node.querySelector(".card-key");
    key.textContent = item.title || item.key;
    key.title = item.title ? `${item.title}\n${item.key}` : item.key;
    key.classList.toggle("card-title", Boolean(item.title));
    const split = node.querySelector(".split");
    split.textContent = item.split || "–";
    split.className = `tag split split-${item.split}`;
    node.querySelector(".card-label").textContent = item.label == null ? "" : this.labels[item.label] || item.label;
    const value = node.querySelector(".card-value");
    if (value) value.textContent = formatValue(item.sort_value);
    showBadge(node.querySelector(".pred-badge"), item.prediction);
  }

  placeholder(node) {
    node.classList.add("pending");
    node.removeAttribute("href");
    delete node.dataset.id;
    const image = node.querySelector("img");
    if (image) image.removeAttribute("src");
    const thumb = node.querySelector(".thumb.tile");
    if (thumb) thumb.style.backgroundImage = "none";
    showBadge(node.querySelector(".pred-badge"), null);
    for (const sel of [".card-key", ".card-label", ".card-value"]) {
      const el = node.querySelector(sel);
      if (el) el.textContent = "";
    }
  }

  // Load pages [from, to]: those following a loaded page at once (keyset cursor), the others (jumps) once the
  // scrolling settles, then drop pages far from the viewport.
  request(from, to) {
    const jumps = [];
    for (let p = from; p <= to; p += 1) {
      if (this.pages.has(p) || this.loading.has(p)) continue;
      const prev = this.pages.get(p - 1);
      if (p === 0 || (prev && prev.next)) this.load(p);
      else jumps.push(p);
    }
    clearTimeout(this.pendingJump);
    if (jumps.length) this.pendingJump = setTimeout(() => jumps.forEach((p) => this.load(p)), JUMP_DELAY_MS);
    for (const p of this.pages.keys()) {
      if (p < from - KEEP_PAGES / 2 || p > to + KEEP_PAGES / 2) this.pages.delete(p);
    }
  }

  load(p) {
    if (this.pages.has(p) || this.loading.has(p)) return this.loading.get(p);
    const prev = this.pages.get(p - 1);
    const params = p === 0 ? {} : prev && prev.next ? { cursor: prev.next } : { offset: String(p * this.size) };
    const url = new URL(this.api, location.href);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const job = fetch(url, { headers: { accept: "application/json" } })
      .then(async (response) => {
        const page = await response.json();
        if (!response.ok) throw new Error(page.detail || response.statusText);
        this.store(p, page.items, page.next_cursor, this.sheetUrl(params));
        if (page.total !== this.total) {
          this.total = page.total;
          this.measure();
        }
        grid.dataset.loaded = String(this.pages.size);
        this.schedule();
      })
      .catch((error) => {
        const note = document.getElementById("grid-position");
        if (note) note.textContent = `Could not load items: ${error.message}`;
      })
      .finally(() => this.loading.delete(p));
    this.loading.set(p, job);
    return job;
  }

  itemAt(pos) {
    const page = this.pages.get(Math.floor(pos / this.size));
    return page && page.items[pos % this.size];
  }
}

class Selection {
  constructor(view) {
    this.view = view;
    this.ids = new Set();
    this.all = false; // every item matching the filters …
    this.excluded = new Set(); // … except these
    this.anchor = null;
    this.base = JSON.parse(document.getElementById("selection-base")?.textContent || "{}");
    this.bar = document.getElementById("selection-bar");
    this.count = document.getElementById("selection-count");
    this.output = document.getElementById("selection-json");
    grid.addEventListener("click", (e) => this.click(e));
    document.getElementById("select-all")?.addEventListener("click", () => this.selectAll());
    document.getElementById("select-clear")?.addEventListener("click", () => this.clear());
    document.getElementById("select-copy")?.addEventListener("click", () => this.copy());
    addEventListener("keydown", (e) => { if (e.key === "Escape") this.clear(); });
  }

  has(id) {
    return this.all ? !this.excluded.has(id) : this.ids.has(id);
  }

  size() {
    return this.all ? this.view.total - this.excluded.size : this.ids.size;
  }

  set(id, on) {
    const target = this.all ? this.excluded : this.ids;
    if (on !== this.all) target.add(id);
    else target.delete(id);
  }

  click(e) {
    const card = e.target.closest(".card");
    if (!card || !card.dataset.id || !(e.ctrlKey || e.metaKey || e.shiftKey)) return;
    e.preventDefault();
    const pos = Number(card.dataset.pos);
    const id = Number(card.dataset.id);
    if (e.shiftKey && this.anchor !== null) {
      const [a, b] = this.anchor < pos ? [this.anchor, pos] : [pos, this.anchor];
      for (let p = a; p <= b; p += 1) {
        const item = this.view.itemAt(p);
        if (item) this.set(item.id, true);
      }
    } else {
      this.set(id, !this.has(id));
      this.anchor = pos;
    }
    this.changed();
  }

  selectAll() {
    this.all = true;
    this.ids.clear();
    this.excluded.clear();
    this.changed();
  }

  clear() {
    this.all = false;
    this.ids.clear();
    this.excluded.clear();
    this.anchor = null;
    this.changed();
  }

  json() {
    const out = { ...this.base, sort: grid.dataset.sort || "id", count: this.size() };
    if (this.all) return { ...out, all_matching: true, exclude_ids: [...this.excluded] };
    return { ...out, ids: [...this.ids] };
  }

  copy() {
    const text = JSON.stringify(this.json());
    this.output.hidden = false;
    this.output.value = text;
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
    this.output.select();
  }

  changed() {
    const n = this.size();
    this.bar.hidden = n === 0;
    this.count.textContent = n.toLocaleString();
    grid.dataset.selected = String(n);
    document.dispatchEvent(new CustomEvent("selectionchange-grid", { detail: { count: n } }));
    if (!this.output.hidden) this.output.value = JSON.stringify(this.json());
    if (n === 0) this.output.hidden = true;
    this.view.fill(Number(this.view.window.firstElementChild?.dataset.pos || 0),
      Number(this.view.window.firstElementChild?.dataset.pos || 0) + this.view.window.children.length);
  }
}

/** The dataset page's "Export…" link carries the selection as well as the filters: `id=` for the items picked,
 * `exclude_id=` for the ones taken out of "all matching" (the exports page fills its form from the link). */
function exportLinkFollows(selection) {
  const link = document.getElementById("export-link");
  if (!link) return;
  const base = new URL(link.href);
  document.addEventListener("selectionchange-grid", () => {
    const url = new URL(base);
    if (!selection.all) for (const id of selection.ids) url.searchParams.append("id", String(id));
    else for (const id of selection.excluded) url.searchParams.append("exclude_id", String(id));
    link.href = url.toString();
    link.title = selection.size() && !selection.all ? `export the ${selection.size()} selected items`
      : "export the items matching these filters (csv, coco, the dataset's own format…)";
  });
}

if (grid && template && firstPage) {
  const view = new VirtualGrid();
  window.medviewGrid = view; // for tests and the console
  exportLinkFollows(view.selection);
  const jump = document.getElementById("jump-input");
  if (jump) {
    jump.closest("label").hidden = false;
    jump.addEventListener("change", () => view.scrollToPosition(Number(jump.value) - 1));
  }
  for (const id of ["sort-select", "model-select"]) {
    const select = document.getElementById(id);
    if (select) select.addEventListener("change", () => select.form.submit());
  }
}
