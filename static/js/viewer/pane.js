// One image pane: a display canvas (the windowed slice and a label layer, drawn with the pane's zoom/pan transform)
// under an SVG layer of vector shapes recomputed in screen coordinates each frame, so lines and text stay crisp at
// any zoom. Image coordinates: x right, y down, pixel centres at integers (as the server's overlay code).
// The SVG layer also carries the view's frame marks: orientation markers at the middle of each edge (volumes: the
// server's letters from the affine, `/raw`'s X-Orientation) and a scale bar in mm whenever the pixel spacing is
// known (X-Pixel-Spacing); an image without geometry (a photo, a histology patch) shows neither.

import { toRgba } from "./pixels.js";

const SVG = "http://www.w3.org/2000/svg";
const FIT_MARGIN = 8; // px around a fitted image, as the first-paint <img>
const SCALE_STEPS = [1, 2, 5]; // scale-bar lengths: 1, 2, 5, 10, 20, 50 … mm
const SCALE_MAX_PX = 120; // the longest the bar may be on screen (and at most a third of the pane)
const MARK_INSET = 8; // px from the pane's edge to an orientation marker

/** The scale bar for `mmPerPx` mm per image pixel at `zoom` screen px per image pixel: the longest round length
 * (1, 2, 5 × 10ⁿ mm) that fits in `maxPx` screen pixels, as {mm, px, text}; null when nothing fits. */
export function scaleBar(mmPerPx, zoom, maxPx) {
  if (!(mmPerPx > 0) || !(zoom > 0) || !(maxPx > 0)) return null;
  const pxPerMm = zoom / mmPerPx;
  const limit = maxPx / pxPerMm;
  let best = null;
  for (let exp = -1; exp <= 4; exp++) {
    for (const step of SCALE_STEPS) {
      const mm = step * 10 ** exp;
      if (mm <= limit + 1e-9) best = mm;
    }
  }
  if (best === null) return null;
  return { mm: best, px: best * pxPerMm, text: `${Number(best.toPrecision(3))} mm` };
}

function svgEl(tag, attrs, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  parent?.append(node);
  return node;
}

export class Pane {
  constructor(host, { role, plane, title }) {
    this.role = role; // "gt" | "pred" | "plane"
    this.plane = plane;
    this.root = document.createElement("div");
    this.root.className = "pane";
    this.root.dataset.role = role;
    if (plane) this.root.dataset.plane = plane;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "pane-canvas";
    this.svg = svgEl("svg", { class: "pane-svg" });
    this.title = document.createElement("div");
    this.title.className = "pane-title";
    this.title.textContent = title || "";
    this.legend = document.createElement("div");
    this.legend.className = "pane-legend";
    this.root.append(this.canvas, this.svg, this.title, this.legend);
    host.append(this.root);
    this.ctx = this.canvas.getContext("2d", { alpha: false });
    this.raw = null;
    this.image = document.createElement("canvas");
    this.imageCtx = this.image.getContext("2d");
    this.mask = document.createElement("canvas");
    this.maskCtx = this.mask.getContext("2d");
    this.maskAlpha = 0; // 0: no mask layer
    this.shapes = [];
    this.slice = null;
    this.view = { zoom: 1, cx: 0, cy: 0 };
  }

  get width() { return this.raw?.width || 0; }
  get height() { return this.raw?.height || 0; }

  /** Size the backing store to the pane's box (device pixels); true when it changed. */
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.root.clientWidth * dpr));
    const h = Math.max(1, Math.round(this.root.clientHeight * dpr));
    if (w === this.canvas.width && h === this.canvas.height) return false;
    this.canvas.width = w;
    this.canvas.height = h;
    return true;
  }

  setRaw(raw) {
    if (raw !== this.raw) {
      if (!this.raw || raw.width !== this.raw.width || raw.height !== this.raw.height) {
        this.image.width = raw.width;
        this.image.height = raw.height;
        this.mask.width = raw.width;
        this.mask.height = raw.height;
        this.pixels = this.imageCtx.createImageData(raw.width, raw.height);
        this.words = new Uint32Array(this.pixels.data.buffer);
        this.maskPixels = this.maskCtx.createImageData(raw.width, raw.height);
        this.maskWords = new Uint32Array(this.maskPixels.data.buffer);
      }
      this.raw = raw;
    }
  }

  /** Window the raw values into the image canvas (the hot path of a W/L drag: LUT lookup + putImageData). */
  recolour(lut, invert) {
    if (!this.raw) return;
    toRgba(this.raw, lut, invert, this.words);
    this.imageCtx.putImageData(this.pixels, 0, 0);
  }

  /** Fill the label layer: `paint(words)` writes RGBA words; `alpha` is its opacity when drawn (0 hides it). */
  setMask(paint, alpha) {
    if (!this.raw || !paint) {
      this.maskAlpha = 0;
      return;
    }
    paint(this.maskWords);
    this.maskCtx.putImageData(this.maskPixels, 0, 0);
    this.maskAlpha = alpha;
  }

  /** Zoom that fits the whole image in the pane. */
  fitZoom() {
    if (!this.raw) return 1;
    const w = this.root.clientWidth - 2 * FIT_MARGIN;
    const h = this.root.clientHeight - 2 * FIT_MARGIN;
    return Math.max(0.01, Math.min(w / this.raw.width, h / this.raw.height));
  }

  /** CSS-pixel translation of the image origin: the view centre (cx, cy) sits at the pane's centre. Integer
   * zooms get whole-pixel offsets, so 1:1 shows every stored pixel exactly once. */
  offset() {
    const { zoom, cx, cy } = this.view;
    let tx = this.root.clientWidth / 2 - (cx + 0.5) * zoom;
    let ty = this.root.clientHeight / 2 - (cy + 0.5) * zoom;
    if (Number.isInteger(zoom)) [tx, ty] = [Math.round(tx), Math.round(ty)];
    return [tx, ty];
  }

  /** Image pixel coordinates (centre = integer) → CSS pixels in the pane. */
  toScreen(x, y) {
    const [tx, ty] = this.offset();
    return [tx + (x + 0.5) * this.view.zoom, ty + (y + 0.5) * this.view.zoom];
  }

  toImage(sx, sy) {
    const [tx, ty] = this.offset();
    return [(sx - tx) / this.view.zoom - 0.5, (sy - ty) / this.view.zoom - 0.5];
  }

  draw() {
    this.resize();
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.raw) {
      const [tx, ty] = this.offset();
      const z = this.view.zoom;
      ctx.setTransform(z * dpr, 0, 0, z * dpr, tx * dpr, ty * dpr);
      ctx.imageSmoothingEnabled = !Number.isInteger(z); // integer zooms show pixels as squares
      ctx.drawImage(this.image, 0, 0);
      if (this.maskAlpha > 0) {
        ctx.globalAlpha = this.maskAlpha;
        ctx.drawImage(this.mask, 0, 0);
        ctx.globalAlpha = 1;
      }
    }
    this.drawShapes();
  }

  /** The vector layer, in screen coordinates (crisp at any zoom). Each element carries data-layer/data-kind. */
  drawShapes() {
    const svg = this.svg;
    svg.replaceChildren();
    const W = this.root.clientWidth;
    const H = this.root.clientHeight;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const z = this.view.zoom;
    for (const s of this.shapes) {
      const common = { "data-layer": s.layer, "data-kind": s.kind, stroke: s.colour, "stroke-width": s.width || 1.5,
                       "stroke-dasharray": s.dash, fill: "none", "data-id": s.id };
      if (s.kind === "line") {
        const [x1, y1] = this.toScreen(...s.a);
        const [x2, y2] = this.toScreen(...s.b);
        svgEl("line", { ...common, x1, y1, x2, y2 }, svg);
      } else if (s.kind === "rect") {
        // corners at pixel centres, as overlay.Box draws them
        const [x1, y1] = this.toScreen(s.bbox[0], s.bbox[1]);
        const [x2, y2] = this.toScreen(s.bbox[2], s.bbox[3]);
        svgEl("rect", { ...common, x: x1, y: y1, width: x2 - x1, height: y2 - y1 }, svg);
      } else if (s.kind === "dot") {
        const [cx, cy] = this.toScreen(...s.at);
        svgEl("circle", { ...common, cx, cy, r: s.r || 3, fill: s.colour }, svg);
      } else if (s.kind === "cross") { // crosshair through an image point, across the whole pane
        const [cx, cy] = this.toScreen(...s.at);
        svgEl("line", { ...common, x1: 0, y1: cy, x2: W, y2: cy, "data-axis": "h" }, svg);
        svgEl("line", { ...common, x1: cx, y1: 0, x2: cx, y2: H, "data-axis": "v" }, svg);
      } else if (s.kind === "text") {
        const [x, y] = s.screen ? s.at : this.toScreen(...s.at);
        const t = svgEl("text", { "data-layer": s.layer, "data-kind": "text", x: x + (s.dx || 0), y: y + (s.dy || 0),
                                  fill: s.colour, "text-anchor": s.anchor || "start", class: "pane-text" }, svg);
        t.textContent = s.text;
      }
    }
    svg.dataset.zoom = String(z);
    this.drawFrameMarks(svg, W, H);
  }

  /** Orientation letters at each edge's middle and the scale bar (bottom right, above the corner readouts). */
  drawFrameMarks(svg, W, H) {
    if (!this.raw) return;
    const marks = this.raw.orientation;
    if (marks) {
      // top: below the two-line corner readouts (and a pane title); bottom: above the hovered value's line
      const at = { left: [MARK_INSET, H / 2 + 5, "start"], right: [W - MARK_INSET, H / 2 + 5, "end"],
                   top: [W / 2, 58, "middle"], bottom: [W / 2, H - 36, "middle"] };
      for (const [edge, [x, y, anchor]] of Object.entries(at)) {
        const t = svgEl("text", { "data-layer": "frame", "data-kind": "marker", "data-edge": edge, x, y,
                                  "text-anchor": anchor, class: "pane-marker" }, svg);
        t.textContent = marks[edge];
      }
    }
    const bar = scaleBar(this.raw.pixelMm, this.view.zoom, Math.min(SCALE_MAX_PX, W / 3));
    if (!bar) return;
    const x2 = W - 14;
    const x1 = x2 - bar.px;
    const y = H - 52;
    const g = svgEl("g", { "data-layer": "frame", "data-kind": "scalebar", "data-mm": bar.mm,
                           "data-px": bar.px.toFixed(2), class: "pane-scalebar" }, svg);
    const d = `M${x1} ${y - 4}V${y}H${x2}V${y - 4}`;
    svgEl("path", { d, fill: "none", class: "halo" }, g); // dark edge: visible on bright pixels too
    svgEl("path", { d, fill: "none" }, g);
    const label = svgEl("text", { x: (x1 + x2) / 2, y: y - 7, "text-anchor": "middle", class: "pane-marker small" }, g);
    label.textContent = bar.text;
  }
}
