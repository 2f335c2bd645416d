// The page URL mirrors the view (history.replaceState) so it can be shared and reloaded; parameters appear only
// when they differ from the defaults, in a fixed order (the server validates the same names: app/web/item_page.py).
// The render endpoint's mask defaults come with the state (`defaults`), never copied here.

const URL_DELAY_MS = 200; // a drag rewrites the URL at most this often (browsers throttle replaceState)

export const num = (x) => String(Math.round(x * 1000) / 1000);
export const isVolume = (s) => Boolean(s.planes && Object.keys(s.planes).length);

/** mask_mode and opacity, only when they differ from the render endpoint's defaults (as item_page.render_url). */
export function setMaskParams(p, s) {
  if (s.mask_mode !== s.defaults.mask_mode) p.set("mask_mode", s.mask_mode);
  if (s.opacity !== s.defaults.opacity) p.set("opacity", num(s.opacity));
}

/** The query string of a view state. */
export function viewQuery(s) {
  const p = new URLSearchParams();
  if (s.queue !== null && s.queue !== undefined) p.set("queue", String(s.queue)); // review mode (review.js)
  if (s.preset === null) p.set("window", `${num(s.window[0])},${num(s.window[1])}`);
  else if (s.preset !== (s.default_preset || "default")) p.set("preset", s.preset); // MR without a VOI: auto
  if (isVolume(s)) p.set("plane", s.plane);
  if (s.slice !== null && s.slice !== s.key_slice) p.set("slice", String(s.slice));
  if (s.overlays !== "gt") p.set("overlays", s.overlays);
  setMaskParams(p, s);
  if (s.invert) p.set("invert", "1");
  if (s.zoom !== null) p.set("zoom", num(s.zoom));
  if (s.pan !== null) p.set("pan", `${num(s.pan[0])},${num(s.pan[1])}`);
  if (s.layout !== "single") p.set("layout", s.layout);
  if (s.layout === "three" && s.at) p.set("at", s.at.map((v) => String(Math.round(v))).join(","));
  if (s.hide.length) p.set("hide", s.hide.join(","));
  if (s.model !== null) p.set("model", String(s.model));
  if (s.diff) p.set("diff", "1");
  return p.toString();
}

let timer = 0;

/** Mirror the state in the address bar (coalesced while dragging; `now` writes at once). */
export function syncUrl(s, now = false) {
  clearTimeout(timer);
  const write = () => {
    const query = viewQuery(s);
    const target = query ? `?${query}` : location.pathname;
    if (location.search !== (query ? `?${query}` : "")) history.replaceState(null, "", target);
  };
  if (now) write();
  else timer = setTimeout(write, URL_DELAY_MS);
}
