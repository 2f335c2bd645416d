// Review mode: the item page opened from a queue (`?queue=Q`). A bar with the queue, my progress and everyone's,
// and keyboard-only verdicts: Shift+A accept (`corrected` after an edit was saved here), Shift+R reject, Shift+U
// uncertain, e edit (the editor's own toggle; without an editor, a note), Shift+C comment, Shift+Z undo my last
// verdict (an append: docs/review.md), Shift+N / Shift+→ next and Shift+P / Shift+← previous among my items in
// queue order. A verdict posts with the queue id and goes straight to my next item, whose first raw slice was
// prefetched when this one opened (a pinned URL: the HTTP cache serves it to the next page's viewer, which draws
// its first pixels from it). The page leaves once the verdict is stored (a refused verdict is said here, on its
// item); leaving while the verdict travels (a keepalive POST checked on the next page) measured no faster.
// The keys are taken in the capture phase, before the viewer's own (which lower-case letters: Shift+A is not "a"),
// and marked handled, so the editor (edit.js) leaves them alone.

import { postJson, reviewUrl } from "../review_common.js";

const RAW_ACCEPT = "application/octet-stream, image/png, application/json"; // as pixels.js fetchRaw
const $ = (id) => document.getElementById(id);

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
    this.prefetched = new Set();
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
    this.v.editor?.setQueue?.(setup);
    this.v.brush?.setQueue?.(setup);
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

  /** Warm the HTTP cache for item `id`: its first raw slice (a pinned URL, so the next page's viewer reads it from
   * the cache), found through its JSON. The page itself is not prefetched: it is not cacheable (it changes with
   * every edit), so a browser would fetch it again on navigation. */
  prefetch(id) {
    if (!id || this.prefetched.has(id)) return;
    this.prefetched.add(id);
    fetch(`${reviewUrl("item", { item_id: id })}?queue=${this.queueId}`, { headers: { accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((item) => {
        if (!item || item.kind === "volume") return; // a volume's first view depends on its plane: the page decides
        const p = new URLSearchParams();
        if (item.slice !== null && item.slice !== undefined) p.set("slice", String(item.slice));
        p.set("v", String(item.version));
        return fetch(`${reviewUrl("raw", { item_id: id })}?${p}`, { headers: { accept: RAW_ACCEPT } }).then((r) => r.arrayBuffer());
      })
      .catch(() => {})
      .finally(() => { this.bar.dataset.prefetched = String(id); }); // tests and the bench wait on it
  }

  go(id) {
    this.bar.dataset.leaving = String(id);
    location.assign(this.pageUrl(id));
  }

  async verdict(kind) {
    if (this.busy || !this.state) return;
    const verdict = kind === "accept" && this.corrected ? "corrected" : kind;
    const target = this.target();
    this.busy = true;
    const body = { verdict, queue_id: this.queueId };
    try {
      const out = await postJson(reviewUrl("reviews", { item_id: this.itemId }), body);
      this.say(`${verdict} recorded · ${out.review_status}`);
      if (target) { this.go(target); return; }
      await this.refresh();
      if (this.target()) this.go(this.target());
      else this.showDone();
    } catch (err) {
      this.say(err.message, true);
    }
    this.busy = false;
  }

  async undo() {
    if (this.busy) return;
    this.busy = true;
    try {
      const out = await postJson(reviewUrl("undo", { queue_id: this.queueId }));
      if (out.item_id !== this.itemId) { this.go(out.item_id); return; }
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
    if (to) this.go(to.item_id);
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
