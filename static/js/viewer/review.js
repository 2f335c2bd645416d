// Review mode: the item page opened from a queue (`?queue=Q`). A bar with the queue, my progress and everyone's,
// and keyboard-only verdicts: Shift+A accept (`corrected` after an edit was saved here), Shift+R reject, Shift+U
// uncertain, e edit (the editor's own toggle; without an editor, a note), Shift+C comment, Shift+Z undo my last
// verdict (an append: docs/review.md), Shift+N / Shift+→ next and Shift+P / Shift+← previous among my items in
// queue order.
// A verdict swaps the next item in place: while I look at item N, item N+1's page (the same URL a navigation
// would load) is fetched and parsed, and its first raw slice decoded into the viewer's cache; on the verdict the
// page's item parts (title, breadcrumb, toolbar, viewport corners, side panel, the viewer's state) are replaced,
// the viewer shows the new state (`viewer.swap`), the URL is pushed (Back reloads the page it names), and the
// verdict's POST travels meanwhile (a refused verdict is said on the bar, with a link back to its item). Whenever
// the swap cannot apply (nothing prefetched for that item, another set of page scripts, any error) the page
// navigates as before. The keys are taken in the capture phase, before the viewer's own (which lower-case
// letters: Shift+A is not "a"), and marked handled, so the editor (edit.js) leaves them alone.

import { postJson, reviewUrl } from "../review_common.js";

const $ = (id) => document.getElementById(id);
// Module scripts a swapped-in page may carry: the viewer's own, and the grid's previous / next (item-nav.js: inert
// without `?list=`, which a queue's URLs never carry). Another script on either page (predictions.js binds its
// panel once) makes the verdict navigate instead.
const SWAP_SAFE_SCRIPTS = ["/js/viewer/main.js", "/js/item-nav.js", "/js/predictions.js"];
const PREFETCH_FRESH_MS = 5 * 60 * 1000;
const KEPT = new Set(["review-bar", "review-urls"]);
/** Tag, id and class of each part of <main>: a page is swapped in only when its parts match these one to one. */
const partsOf = (doc) => [...(doc.querySelector("main")?.children || [])].map((n) => `${n.tagName}#${n.id}.${n.className}`).join("|");
const scriptsOf = (doc) => [...doc.querySelectorAll("script[src]")].map((s) => new URL(s.getAttribute("src"), location.href).pathname);
const swapSafe = (doc) => scriptsOf(doc).every((src) => SWAP_SAFE_SCRIPTS.some((ok) => src.endsWith(ok)));

export function startReview(viewer) {
  const bar = $("review-bar");
  if (!bar) return null;
  const mode = new ReviewMode(viewer, bar);
  window.medviewReview = mode; // tests and the bench
  return mode;
}

class ReviewMode {
  constructor(v, bar) {
    this.v = v;
    this.bar = bar;
    this.queueId = Number(bar.dataset.queueId);
    this.itemId = Number(bar.dataset.itemId);
    this.state = null;
    this.corrected = false; // an edit was saved on this item: accept records `corrected`
    this.busy = false;
    this.chain = Promise.resolve(); // verdicts one after another (a key pressed while one travels waits)
    this.prefetched = new Map(); // item id → promise of {doc, state} (its page, parsed) or null
    this.swaps = 0; // items swapped in (tests and the bench)
    addEventListener("popstate", () => location.reload()); // a pushed item URL: the page it names, in full
    addEventListener("keydown", (e) => this.key(e), true);
    document.addEventListener("medview:annotation-saved", () => { this.corrected = true; this.paint(); });
    for (const b of bar.querySelectorAll("button[data-verdict]")) b.addEventListener("click", () => this.verdict(b.dataset.verdict));
    const actions = { edit: () => this.edit(), comment: () => this.openComment(), undo: () => this.undo(),
                      prev: () => this.step(-1), next: () => this.step(1) };
    for (const b of bar.querySelectorAll("button[data-review]")) b.addEventListener("click", () => actions[b.dataset.review]());
    $("review-comment").addEventListener("submit", (e) => { e.preventDefault(); this.postComment(); });
    this.ready = this.refresh();
  }

  pageUrl(id) { return `${reviewUrl("item_page", { item_id: id })}?queue=${this.queueId}`; }

  async fetchState() {
    const r = await fetch(reviewUrl("reader", { queue_id: this.queueId }), { headers: { accept: "application/json" } });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.detail || `HTTP ${r.status}`);
    return data;
  }

  async refresh() {
    let data;
    try {
      data = await this.fetchState();
    } catch (err) {
      this.say(err.message, true);
      return;
    }
    this.state = data;
    const q = data.queue;
    const setup = { queueId: this.queueId, readersPerItem: q.readers_per_item };
    this.v.setQueue(setup);
    this.paint();
    this.prefetch(this.target());
    this.bar.dataset.ready = "1";
  }

  mine() { return this.state?.mine || []; }
  myRead(id = this.itemId) { return this.mine().find((m) => m.item_id === id) || null; }

  /** My items in queue order: the ones I read, and my next one. */
  order() {
    const out = [...this.mine()];
    const n = this.state?.next;
    if (n && !out.some((m) => m.item_id === n.item.id)) out.push({ position: n.position, item_id: n.item.id, verdict: null });
    return out.sort((a, b) => a.position - b.position);
  }

  /** Where a verdict here goes: my next unread item other than this one (null: none left). */
  target() {
    const n = this.state?.next;
    if (!n) return null;
    return n.item.id !== this.itemId ? n.item.id : n.next_item_id;
  }

  paint() {
    if (!this.state) return;
    const q = this.state.queue;
    const p = q.progress;
    $("review-queue-name").textContent = q.name;
    const read = this.mine().length;
    const mineTotal = read + (p.left_for_me || 0);
    const needed = p.items * q.readers_per_item;
    $("review-mine-bar").style.width = `${mineTotal ? (100 * read) / mineTotal : 100}%`;
    $("review-all-bar").style.width = `${needed ? (100 * p.reads_done) / needed : 100}%`;
    $("review-mine").setAttribute("aria-valuenow", String(read));
    $("review-all").setAttribute("aria-valuenow", String(p.reads_done));
    $("review-progress").textContent = `me ${read}/${mineTotal} · all ${p.reads_done}/${needed}`;
    const order = this.order();
    const at = order.findIndex((m) => m.item_id === this.itemId);
    $("review-position").textContent = at >= 0 ? `item ${at + 1} of my ${order.length}` : "not one of my items";
    const mine = this.myRead();
    $("review-my-verdict").textContent = `${mine ? `my verdict: ${mine.verdict}` : "not read yet"}${this.corrected ? " · edited: accept records corrected" : ""}`;
    this.bar.dataset.myVerdict = mine ? mine.verdict : "";
    if (q.signed_off_by) this.say(`signed off by ${q.signed_off_by}: no more verdicts`);
  }

  say(text, error = false) {
    const s = $("review-status");
    s.textContent = text;
    s.classList.toggle("error", error);
  }

  /** Item `id`'s page, fetched and parsed in the background (the URL a navigation would load), with its first raw
   * slice decoded into the viewer's slice cache: the swap shows it at once. */
  prefetch(id) {
    if (!id || this.prefetched.has(id)) return;
    const job = fetch(this.pageUrl(id), { headers: { accept: "text/html" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : null))
      .then(async (html) => {
        if (!html) return null;
        const doc = new DOMParser().parseFromString(html, "text/html");
        const node = doc.getElementById("viewer-state");
        if (!node) return null;
        const state = JSON.parse(node.textContent);
        const warmed = Boolean(await this.v.warm(state));
        return { doc, state, warmed };
      })
      .catch(() => null);
    this.prefetched.set(id, job);
    job.finally(() => { this.bar.dataset.prefetched = String(id); }); // tests and the bench wait on it
    clearTimeout(this.refetch); // a long look at this item: the next page is fetched again, so it is not stale
    this.refetch = setTimeout(() => {
      if (this.prefetched.get(id) === job && this.target() === id) { this.prefetched.delete(id); this.prefetch(id); }
    }, PREFETCH_FRESH_MS);
  }

  /** The prefetched page of `id` when it is ready and can be swapped in, else null (no waiting). */
  async swappable(id) {
    if (sessionStorage.getItem("medview.reviewSwap") === "off") return null; // navigate (bench --navigate)
    const job = this.prefetched.get(id);
    if (!job) return null;
    const got = await Promise.race([job, Promise.resolve(undefined)]); // settled already, or not ready
    if (!got || !got.doc) return null;
    const doc = got.doc;
    const needed = ["viewer-state", "viewport", "review-bar"];
    if (needed.some((n) => !doc.getElementById(n)) || !doc.querySelector(".toolbar") || !doc.querySelector("aside.side")) return null;
    if (!swapSafe(doc) || !swapSafe(document)) return null;
    if (doc.querySelector("main")?.className !== document.querySelector("main")?.className) return null;
    if (partsOf(doc) !== partsOf(document)) return null; // another layout of the page (a kind's extra part)
    return got;
  }

  /** Replace the page's item parts with the prefetched page's and show its state in the viewer. */
  swap(id, { doc, state, warmed }) {
    const take = (node) => document.adoptNode(node);
    const here = [...document.querySelector("main").children];
    const there = [...doc.querySelector("main").children];
    document.title = doc.title;
    for (const selector of ["nav.crumbs", ".topbar-right"]) {
      const a = document.querySelector(selector);
      const b = doc.querySelector(selector);
      if (a && b) a.replaceWith(take(b));
    }
    // every part of <main> but the review bar (kept: it holds my state) and the viewer (its viewport's
    // children are replaced around the viewer's own panes)
    here.forEach((node, n) => {
      if (KEPT.has(node.id) || node.matches("section.viewer")) return;
      node.replaceWith(take(there[n]));
    });
    const img = doc.getElementById("slice-image");
    if (warmed && img) { // the viewer draws the cached slice at once: the server-rendered first paint is not needed
      img.dataset.src = img.getAttribute("src") || "";
      img.removeAttribute("src");
    }
    const viewport = this.v.viewport;
    for (const child of [...viewport.children]) if (child !== this.v.host) child.remove();
    for (const child of [...doc.getElementById("viewport").children]) viewport.append(take(child));
    this.itemId = id;
    this.bar.dataset.itemId = String(id);
    this.corrected = false;
    this.closeComment();
    this.v.swap(state, { warmed });
    const setup = { queueId: this.queueId, readersPerItem: this.state.queue.readers_per_item };
    this.v.setQueue(setup);
    history.pushState(null, "", this.pageUrl(id));
    this.prefetched.delete(id);
    this.swaps++;
    this.bar.dataset.swaps = String(this.swaps);
    this.paint();
    document.dispatchEvent(new CustomEvent("medview:item-swapped", { detail: { itemId: id } }));
  }

  /** Show item `id`: swapped in when its page was prefetched, else a full navigation. True when swapped. */
  async show(id) {
    let got = null;
    try {
      got = await this.swappable(id);
      if (got) { this.swap(id, got); return true; }
    } catch (err) {
      console.warn("review: swap failed, navigating", err); // eslint-disable-line no-console
    }
    this.go(id);
    return false;
  }

  go(id) {
    this.bar.dataset.leaving = String(id);
    location.assign(this.pageUrl(id));
  }

  verdict(kind) {
    if (!this.state) return this.chain;
    this.chain = this.chain.then(() => this.verdictNow(kind)).catch((err) => this.say(err.message, true));
    return this.chain;
  }

  async verdictNow(kind) {
    if (!this.state) return;
    // edits still saving on this item finish first (their versions; `corrected` below)
    await Promise.all([this.v.editor?.chain, this.v.brush?.saving]).catch(() => {});
    const verdict = kind === "accept" && this.corrected ? "corrected" : kind;
    const from = this.itemId;
    const target = this.target();
    this.busy = true;
    const post = postJson(reviewUrl("reviews", { item_id: from }), { verdict, queue_id: this.queueId });
    const got = target ? await this.swappable(target) : null;
    if (got) {
      this.bar.dataset.ready = "0";
      try {
        this.swap(target, got); // while the verdict travels
      } catch (err) {
        console.warn("review: swap failed, navigating", err); // eslint-disable-line no-console
        await post.catch(() => {});
        this.go(target);
        return;
      }
    }
    try {
      const out = await post;
      this.say(`${verdict} recorded for item ${from} · ${out.review_status}`);
    } catch (err) {
      if (got) this.sayBack(`${verdict} on item ${from} not recorded: ${err.message}`, from);
      else this.say(err.message, true);
      if (got) await this.refresh();
      this.busy = false;
      return;
    }
    this.busy = false;
    if (got) { await this.refresh(); return; }
    if (target) { this.go(target); return; }
    await this.refresh();
    if (this.target()) await this.show(this.target());
    else this.showDone();
  }

  /** A refused verdict after its item was swapped out: say so, with a link back to that item. */
  sayBack(text, id) {
    this.say(`${text} · `, true);
    const back = document.createElement("a");
    back.href = this.pageUrl(id);
    back.id = "review-back";
    back.textContent = "back to it";
    $("review-status").append(back);
  }

  async undo() {
    if (this.busy) return;
    this.busy = true;
    try {
      const out = await postJson(reviewUrl("undo", { queue_id: this.queueId }));
      if (out.item_id !== this.itemId) { this.busy = false; await this.show(out.item_id); return; }
      await this.refresh();
      this.hideDone();
      this.say(`undid ${out.undone.verdict}: now ${out.review.verdict}`);
    } catch (err) {
      this.say(err.message, true);
    }
    this.busy = false;
  }

  step(delta) {
    if (!this.state) return;
    const order = this.order();
    const at = order.findIndex((m) => m.item_id === this.itemId);
    const to = at < 0 ? (delta > 0 ? order.find((m) => !m.verdict) : order.at(-1)) : order[at + delta];
    if (to) this.show(to.item_id);
    else if (delta > 0 && !this.state.next) this.showDone();
    else this.say(delta > 0 ? "no next item" : "this is my first item");
  }

  /** The editor's tool on / off (the bar's button; the `e` key is the editor's own when there is one). */
  edit() {
    const ed = this.v.editor;
    if (!ed?.activate) { this.say("editing is not available on this page", true); return; }
    if (ed.active) ed.deactivate(); else ed.activate();
  }

  openComment() {
    const form = $("review-comment");
    form.hidden = false;
    $("review-comment-text").focus();
  }

  closeComment() {
    $("review-comment").hidden = true;
    $("review-comment-text").blur();
  }

  async postComment() {
    const input = $("review-comment-text");
    const text = input.value.trim();
    if (!text) { this.closeComment(); return; }
    try {
      await postJson(reviewUrl("comments", { item_id: this.itemId }), { text });
      input.value = "";
      this.closeComment();
      this.say("comment posted");
    } catch (err) {
      this.say(err.message, true);
    }
  }

  showDone() {
    this.hideDone();
    const c = this.state?.counts || {};
    const panel = document.createElement("div");
    panel.className = "review-done";
    panel.id = "review-done";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", "queue done");
    const card = document.createElement("div");
    card.className = "card";
    const h = document.createElement("h2");
    h.textContent = `Done: nothing left for you in “${this.state.queue.name}”`;
    const dl = document.createElement("dl");
    for (const v of ["accept", "corrected", "reject", "uncertain"]) {
      const dt = document.createElement("dt");
      dt.textContent = v;
      const dd = document.createElement("dd");
      dd.className = "mono";
      dd.dataset.verdict = v;
      dd.textContent = String(c[v] || 0);
      dl.append(dt, dd);
    }
    const links = document.createElement("p");
    const back = document.createElement("a");
    back.href = reviewUrl("queue_page", { queue_id: this.queueId });
    back.textContent = "Queue page";
    links.append(back, document.createTextNode(" · Shift+Z undoes the last verdict"));
    card.append(h, dl, links);
    const q = this.state.queue;
    if (q.signed_off_by) {
      const p = document.createElement("p");
      p.className = "signed";
      p.textContent = `Signed off by ${q.signed_off_by}`;
      card.append(p);
    } else if (this.state.can_sign_off) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "button primary";
      b.id = "review-sign-off";
      b.textContent = "Sign off the queue";
      b.addEventListener("click", async () => {
        try {
          const done = await postJson(reviewUrl("sign_off", { queue_id: this.queueId }));
          b.replaceWith(Object.assign(document.createElement("p"), { className: "signed", textContent: `Signed off by ${done.signed_off_by}` }));
        } catch (err) { this.say(err.message, true); }
      });
      card.append(b);
    }
    panel.append(card);
    this.v.viewport.append(panel);
  }

  hideDone() { $("review-done")?.remove(); }

  key(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t instanceof HTMLElement && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) {
      if (e.key === "Escape" && t.id === "review-comment-text") { e.preventDefault(); e.stopImmediatePropagation(); this.closeComment(); }
      return;
    }
    let act = null;
    if (e.shiftKey) {
      const k = e.key.length === 1 ? e.key.toUpperCase() : e.key;
      act = { A: () => this.verdict("accept"), R: () => this.verdict("reject"), U: () => this.verdict("uncertain"),
              C: () => this.openComment(), Z: () => this.undo(), N: () => this.step(1), ArrowRight: () => this.step(1),
              P: () => this.step(-1), ArrowLeft: () => this.step(-1) }[k] || null;
    } else if (e.key === "e" && !this.v.editor) {
      act = () => this.edit(); // with an editor, `e` is its own toggle (edit.js)
    }
    if (!act) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    act();
  }
}
