// The embedding map's drawing (static/js/map.js uses it; bench/embed_map.py's bare page too): the binary format of
// GET /api/datasets/{id}/map and /map/colors, and a WebGL renderer of up to millions of points as GL_POINTS — one
// vertex buffer of x,y float32 (the response's own bytes, no copy), one of uint16 colour codes and one of uint8
// selection flags; the view (pan/zoom) is two uniforms, so panning redraws without touching the buffers.

const TYPES = { int32: Int32Array, int64: BigInt64Array, float32: Float32Array, uint16: Uint16Array, uint8: Uint8Array };

/** {header, arrays: {name: TypedArray}} of a map binary (app/api/embedding_map.py `pack`). */
export function parseMapBinary(buffer) {
  const length = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const base = 4 + length;
  const arrays = {};
  for (const a of header.arrays) {
    const Type = TYPES[a.dtype];
    if (!Type) throw new Error(`unknown dtype ${a.dtype}`);
    arrays[a.name] = new Type(buffer, base + a.offset, a.length);
  }
  if (arrays.ids instanceof BigInt64Array) arrays.ids = Float64Array.from(arrays.ids, Number);
  return { header, arrays };
}

// 24 categorical colours (Tableau 20 reordered, then 4 more); a point with no value is grey.
export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
  "#a0cbe8", "#ffbe7d", "#ff9d9a", "#86bcb6", "#8cd17d", "#f1ce63", "#d4a6c8", "#fabfd2", "#d37295", "#499894",
  "#79706e", "#b6992d", "#e377c2", "#17becf",
];
export const NO_VALUE_COLOUR = "#8b949e";
const MAX_COLOURS = 32;

const VERTEX = `
attribute vec2 a_xy;
attribute vec3 a_colour;
attribute float a_sel;
uniform vec2 u_scale;
uniform vec2 u_offset;
uniform float u_size;
uniform float u_has_sel;
varying vec4 v_color;
void main() {
  gl_Position = vec4(a_xy * u_scale + u_offset, 0.0, 1.0);
  bool picked = a_sel > 0.5;
  float alpha = u_has_sel > 0.5 ? (picked ? 0.95 : 0.45) : 0.85;
  v_color = vec4(a_colour, alpha);
  gl_PointSize = u_has_sel > 0.5 && picked ? u_size * 1.6 : u_size;
}`;
const FRAGMENT = `
precision mediump float;
varying vec4 v_color;
void main() {
  vec2 d = gl_PointCoord - vec2(0.5);
  if (dot(d, d) > 0.25) discard;
  gl_FragColor = vec4(v_color.rgb * v_color.a, v_color.a);
}`;

function rgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) / 255, ((n >> 8) & 255) / 255, (n & 255) / 255];
}

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
  return shader;
}

export class PointsRenderer {
  constructor(canvas) {
    this.canvas = canvas;
    const gl = canvas.getContext("webgl", { antialias: false, preserveDrawingBuffer: true, premultipliedAlpha: true });
    if (!gl) throw new Error("this browser has no WebGL");
    this.gl = gl;
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    gl.useProgram(program);
    this.program = program;
    this.loc = {};
    for (const name of ["u_scale", "u_offset", "u_size", "u_has_sel"]) {
      this.loc[name] = gl.getUniformLocation(program, name);
    }
    this.buffers = {};
    for (const [name, size, type, normalised] of [["a_xy", 2, gl.FLOAT, false], ["a_colour", 3, gl.UNSIGNED_BYTE, true], ["a_sel", 1, gl.UNSIGNED_BYTE, false]]) {
      const buffer = gl.createBuffer();
      const at = gl.getAttribLocation(program, name);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.enableVertexAttribArray(at);
      gl.vertexAttribPointer(at, size, type, normalised, size === 3 ? 4 : 0, 0);
      this.buffers[name] = buffer;
    }
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    this.count = 0;
    this.hasSelection = false;
    this.setPalette(PALETTE);
    this.view = { cx: 0, cy: 0, zoom: 1 };
    // one off-screen point drawn now: the driver compiles its pipeline (hundreds of ms with the software GL of
    // headless chromium) while the page is still fetching the map, not at its first real draw
    this.setPoints(new Float32Array([9, 9]));
    this.draw();
  }

  setPoints(xy) {
    const gl = this.gl;
    this.count = xy.length / 2;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_xy);
    gl.bufferData(gl.ARRAY_BUFFER, xy, gl.STATIC_DRAW);
    this.setCodes(null);
    this.setSelection(null);
  }

  /** Uint16 colour code per point (null: every point the "no value" grey): one RGBA byte quad per point, made
   * here from the palette — a colour attribute costs the (software, in headless chromium) vertex stage nothing,
   * where a palette lookup per vertex doubled the draw. */
  setCodes(codes) {
    const gl = this.gl;
    const colours = new Uint32Array(this.count);
    const quad = (hex) => { const [r, g, b] = rgb(hex).map((v) => Math.round(v * 255)); return new Uint32Array(new Uint8Array([r, g, b, 255]).buffer)[0]; };
    const none = quad(this.none);
    if (!codes) colours.fill(none);
    else {
      const table = this.palette.map(quad);
      for (let i = 0; i < this.count; i += 1) colours[i] = codes[i] < table.length ? table[codes[i]] : none;
    }
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_colour);
    gl.bufferData(gl.ARRAY_BUFFER, colours, gl.STATIC_DRAW);
  }

  /** Uint8 flag per point (null: no selection, every point drawn alike). */
  setSelection(flags) {
    const gl = this.gl;
    this.hasSelection = !!flags;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.a_sel);
    gl.bufferData(gl.ARRAY_BUFFER, flags || new Uint8Array(this.count), gl.DYNAMIC_DRAW);
  }

  setPalette(colours, none = NO_VALUE_COLOUR) {
    this.palette = colours.slice(0, MAX_COLOURS);
    this.none = none;
  }

  /** CSS pixels per data unit at the current zoom (the data's [-1, 1] square fits the canvas at zoom 1). */
  pixelsPerUnit() {
    return 0.47 * Math.min(this.canvas.clientWidth, this.canvas.clientHeight) * this.view.zoom;
  }

  toData(px, py) {
    const k = this.pixelsPerUnit();
    return [this.view.cx + (px - this.canvas.clientWidth / 2) / k, this.view.cy - (py - this.canvas.clientHeight / 2) / k];
  }

  toScreen(x, y) {
    const k = this.pixelsPerUnit();
    return [this.canvas.clientWidth / 2 + (x - this.view.cx) * k, this.canvas.clientHeight / 2 - (y - this.view.cy) * k];
  }

  draw() {
    const gl = this.gl;
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
    }
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    const k = this.pixelsPerUnit();
    const sx = (2 * k) / w;
    const sy = (2 * k) / h;
    gl.uniform2f(this.loc.u_scale, sx, sy);
    gl.uniform2f(this.loc.u_offset, -this.view.cx * sx, -this.view.cy * sy);
    // points grow as you zoom in and shrink for dense maps (about 2 px at 262k points, zoom 1)
    const base = Math.max(1.5, Math.min(8, 700 / Math.sqrt(Math.max(this.count, 1))));
    gl.uniform1f(this.loc.u_size, Math.min(24, base * Math.sqrt(this.view.zoom)) * dpr);
    gl.uniform1f(this.loc.u_has_sel, this.hasSelection ? 1 : 0);
    gl.drawArrays(gl.POINTS, 0, this.count);
  }

  /** Wait for the GPU to finish what was drawn (reads one pixel back): "drawn" then means on the canvas. */
  finish() {
    this.gl.readPixels(0, 0, 1, 1, this.gl.RGBA, this.gl.UNSIGNED_BYTE, new Uint8Array(4));
  }
}

/** A uniform grid over [-1, 1]² for "which point is under the mouse": point rows bucketed by cell. */
export class PointGrid {
  constructor(xy, size = 256) {
    const n = xy.length / 2;
    this.size = size;
    this.xy = xy;
    const cell = new Int32Array(n);
    const counts = new Int32Array(size * size + 1);
    for (let i = 0; i < n; i += 1) {
      const c = this.cellOf(xy[2 * i], xy[2 * i + 1]);
      cell[i] = c;
      counts[c + 1] += 1;
    }
    for (let c = 0; c < size * size; c += 1) counts[c + 1] += counts[c];
    this.start = counts.slice();
    this.rows = new Int32Array(n);
    const fill = counts;
    for (let i = 0; i < n; i += 1) this.rows[fill[cell[i]]++] = i;
  }

  axis(v) {
    return Math.max(0, Math.min(this.size - 1, Math.floor(((v + 1) / 2) * this.size)));
  }

  cellOf(x, y) {
    return this.axis(y) * this.size + this.axis(x);
  }

  /** The row of the point nearest (x, y) within `radius` data units, or -1. */
  nearest(x, y, radius) {
    let best = -1;
    let bestD = radius * radius;
    const [x0, x1, y0, y1] = [this.axis(x - radius), this.axis(x + radius), this.axis(y - radius), this.axis(y + radius)];
    for (let cy = y0; cy <= y1; cy += 1) {
      for (let cx = x0; cx <= x1; cx += 1) {
        const c = cy * this.size + cx;
        for (let k = this.start[c]; k < this.start[c + 1]; k += 1) {
          const i = this.rows[k];
          const dx = this.xy[2 * i] - x;
          const dy = this.xy[2 * i + 1] - y;
          const d = dx * dx + dy * dy;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }
}

/** Uint8 flag per point: inside the polygon [[x, y], …] (even-odd rule, data units). */
export function insidePolygon(xy, polygon) {
  const n = xy.length / 2;
  const flags = new Uint8Array(n);
  if (polygon.length < 3) return flags;
  let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [px, py] of polygon) {
    minX = Math.min(minX, px); maxX = Math.max(maxX, px); minY = Math.min(minY, py); maxY = Math.max(maxY, py);
  }
  const m = polygon.length;
  const xs = Float64Array.from(polygon, (p) => p[0]);
  const ys = Float64Array.from(polygon, (p) => p[1]);
  for (let i = 0; i < n; i += 1) {
    const x = xy[2 * i];
    const y = xy[2 * i + 1];
    if (x < minX || x > maxX || y < minY || y > maxY) continue;
    let inside = false;
    for (let a = 0, b = m - 1; a < m; b = a, a += 1) {
      if ((ys[a] > y) !== (ys[b] > y) && x < ((xs[b] - xs[a]) * (y - ys[a])) / (ys[b] - ys[a]) + xs[a]) inside = !inside;
    }
    if (inside) flags[i] = 1;
  }
  return flags;
}
