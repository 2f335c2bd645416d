// Pixels in the browser: the stored values of a slice (`/raw`: int16 HU or uint8 grey/RGB, fetched once, gzip
// decoded by the browser), window/level through a 65,536-entry lookup table into RGBA, and label images (the
// app.imaging.labels PNG of `/mask` and of predicted masks) coloured as fill or contour.

const CACHE_SLICES = 48; // ≈ 24 MB of 512×512 int16: a scroll back and forth never refetches

export class HttpError extends Error {}

/** GET `url` and say what went wrong as the server did (its JSON `detail`). */
async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) {
    let detail = `HTTP ${r.status}`;
    try { detail = (await r.json()).detail || detail; } catch { /* not JSON */ }
    throw new HttpError(detail);
  }
  return r;
}

/** One raw slice: {values, width, height, channels, dtype, pixelMm, slice, plane, min, max}. A plain GET (no
 * headers, default credentials) so the item page's `<link rel="preload" as="fetch" crossorigin>` of the same URL
 * answers it (app/web/preload.py): the first slice is on its way before this module has loaded. */
export async function fetchRaw(url) {
  const r = await fetchOk(url);
  const shape = (r.headers.get("x-shape") || "").split(",").map(Number);
  const dtype = r.headers.get("x-dtype");
  const buffer = await r.arrayBuffer();
  const values = dtype === "int16" ? new Int16Array(buffer) : new Uint8Array(buffer);
  const [height, width, channels = 1] = shape;
  if (values.length !== height * width * channels) throw new HttpError(`raw slice has ${values.length} values, not ${shape}`);
  const spacing = r.headers.get("x-pixel-spacing");
  const slice = r.headers.get("x-slice");
  // volumes: the patient-direction letters at the image's left, right, top and bottom edges (from the affine)
  const letters = (r.headers.get("x-orientation") || "").split(",");
  const orientation = letters.length === 4 && letters.every(Boolean)
    ? { left: letters[0], right: letters[1], top: letters[2], bottom: letters[3] } : null;
  return { values, width, height, channels, dtype, pixelMm: spacing ? Number(spacing) : null,
           slice: slice ? Number(slice) : null, plane: r.headers.get("x-plane"), orientation };
}

/** A label PNG → {labels: Uint8Array, width, height, palette: Map(label → [r, g, b])}. */
export async function fetchLabels(url) {
  const r = await fetchOk(url); // a plain GET, as the page's preload of it (app/web/preload.py)
  const palette = new Map();
  for (const entry of (r.headers.get("x-palette") || "").split(";").filter(Boolean)) {
    const [label, rgb] = entry.split(":");
    palette.set(Number(label), rgb.split(",").map(Number));
  }
  // no colour management, no premultiplication: the grey value is the label (8-bit; labels above 255 need the
  // 16-bit PNG, which browsers reduce to 8 bits — none of the datasets here has them)
  const bitmap = await createImageBitmap(await r.blob(), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const labels = new Uint8Array(bitmap.width * bitmap.height);
  for (let n = 0; n < labels.length; n++) labels[n] = rgba[n * 4];
  return { labels, width: bitmap.width, height: bitmap.height, palette };
}

/** A small LRU of promises, so concurrent requests for one slice share a fetch. */
export class SliceCache {
  constructor(loader, size = CACHE_SLICES) {
    this.loader = loader;
    this.size = size;
    this.map = new Map();
  }

  get(url) {
    let hit = this.map.get(url);
    if (hit) this.map.delete(url);
    else {
      const promise = this.loader(url);
      promise.then((v) => { promise.settled = v; }, () => this.map.delete(url)); // a failure is retried later
      hit = promise;
    }
    this.map.set(url, hit);
    while (this.map.size > this.size) this.map.delete(this.map.keys().next().value);
    return hit;
  }

  /** The settled value when already loaded (no await), else undefined. */
  peek(url) {
    return this.map.get(url)?.settled;
  }
}

const LITTLE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const rgba = LITTLE ? (r, g, b) => (0xff000000 | (b << 16) | (g << 8) | r) >>> 0
  : (r, g, b) => ((r << 24) | (g << 16) | (b << 8) | 0xff) >>> 0;

/**
 * The window's lookup table: index v + 32768 → packed RGBA grey. grey = round(clip((v − low) / (high − low),
 * 0, 1) · 255) as app.imaging.window does; inverted: 255 − grey. Rebuilt per window change (64k entries).
 */
export function windowLut(low, high, invert, lut = new Uint32Array(65536)) {
  const scale = 255 / (high - low);
  const first = Math.max(0, Math.min(65536, Math.ceil(low) + 32768));
  const last = Math.max(0, Math.min(65536, Math.floor(high) + 32769));
  const black = invert ? rgba(255, 255, 255) : rgba(0, 0, 0);
  const white = invert ? rgba(0, 0, 0) : rgba(255, 255, 255);
  lut.fill(black, 0, first);
  for (let n = first; n < last; n++) {
    let g = Math.round((n - 32768 - low) * scale);
    g = g < 0 ? 0 : g > 255 ? 255 : g;
    if (invert) g = 255 - g;
    lut[n] = rgba(g, g, g);
  }
  lut.fill(white, last);
  return lut;
}

/** Raw values → RGBA words of `out` (Uint32Array over an ImageData): int16 through the LUT, uint8 as grey/RGB. */
export function toRgba(raw, lut, invert, out) {
  const v = raw.values;
  const n = raw.width * raw.height;
  if (raw.dtype === "int16") {
    for (let p = 0; p < n; p++) out[p] = lut[v[p] + 32768];
  } else if (raw.channels === 3) {
    for (let p = 0, q = 0; p < n; p++, q += 3) {
      out[p] = invert ? rgba(255 - v[q], 255 - v[q + 1], 255 - v[q + 2]) : rgba(v[q], v[q + 1], v[q + 2]);
    }
  } else {
    for (let p = 0; p < n; p++) out[p] = invert ? rgba(255 - v[p], 255 - v[p], 255 - v[p]) : rgba(v[p], v[p], v[p]);
  }
  return out;
}

const MASK_DEFAULT = [255, 200, 0]; // app.imaging.overlay.MASK_DEFAULT

/**
 * Labels → RGBA words: every labelled pixel in its palette colour (fill), or only the region's boundary — a
 * pixel with an 8-neighbour of another label, as overlay.blend_mask's 3×3 erosion (contour). Opacity is applied
 * when drawing (globalAlpha), so colours stay exact.
 */
export function labelsToRgba(mask, palette, mode, out) {
  const { labels, width, height } = mask;
  const colours = new Uint32Array(256);
  for (let l = 1; l < 256; l++) {
    const c = palette?.get(l) || MASK_DEFAULT;
    colours[l] = rgba(c[0], c[1], c[2]);
  }
  out.fill(0);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const l = labels[p];
      if (!l) continue;
      if (mode === "contour" && !edge(labels, width, height, x, y, l)) continue;
      out[p] = colours[l];
    }
  }
  return out;
}

function edge(labels, width, height, x, y, l) {
  for (let dy = -1; dy <= 1; dy++) {
    const yy = y + dy;
    if (yy < 0 || yy >= height) continue; // outside the image counts as inside (erosion's border)
    for (let dx = -1; dx <= 1; dx++) {
      const xx = x + dx;
      if (xx >= 0 && xx < width && labels[yy * width + xx] !== l) return true;
    }
  }
  return false;
}

export const DIFF_COLOURS = { tp: [60, 220, 110], fp: [255, 60, 90], fn: [60, 150, 255] };

/**
 * Difference of a predicted and a ground-truth label image (same size): agreeing labels (true positive), a
 * predicted label where the truth has another or none (false positive), truth without a prediction (false
 * negative). Returns the counts too, for the legend and tests.
 */
export function diffToRgba(truth, predicted, out) {
  const t = truth.labels;
  const p = predicted.labels;
  const tp = rgba(...DIFF_COLOURS.tp);
  const fp = rgba(...DIFF_COLOURS.fp);
  const fn = rgba(...DIFF_COLOURS.fn);
  // Pixels agree when their labels are equal — or, for a binary prediction (labels 0/1) against labelled ground
  // truth (VerSe's vertebra numbers), when both are foreground: a bone mask is then judged as bone, not as C1.
  let pMax = 0;
  let tMax = 0;
  for (let n = 0; n < t.length; n++) {
    if (p[n] > pMax) pMax = p[n];
    if (t[n] > tMax) tMax = t[n];
  }
  const foreground = pMax <= 1 && tMax > 1;
  const counts = { tp: 0, fp: 0, fn: 0, foreground };
  for (let n = 0; n < t.length; n++) {
    if (p[n] && (foreground ? t[n] : p[n] === t[n])) { out[n] = tp; counts.tp++; }
    else if (p[n]) { out[n] = fp; counts.fp++; }
    else if (t[n]) { out[n] = fn; counts.fn++; }
    else out[n] = 0;
  }
  return counts;
}
