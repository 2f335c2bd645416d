"""The embedding map page in a real browser (issue 15): a real ONNX embedder over the PCam sample, the dataset page
links the map, the WebGL canvas is drawn (its pixels read back), colouring by label paints each point in its
category's colour with a legend, a lasso drawn with the mouse selects exactly the points inside it (computed here
from the API's coordinates), "Open in grid" shows those items, a click on a point opens its item, and the lasso
becomes a review queue of exactly its items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers.api import register, wait_finished
from tests.helpers.live import live_client
from tests.helpers.pcam import MEAN, SCALE, STD
from tests.onnx_models import projection_embedder

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-map15")
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2"]  # static/js/map_gl.js PALETTE, first entries


@pytest.fixture
def ingested(pcam_ingested):
    return pcam_ingested


def unpack(body: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    n = int.from_bytes(body[:4], "little")
    header = json.loads(body[4:4 + n])
    return header, {a["name"]: np.frombuffer(body, np.dtype(a["dtype"]), a["length"], 4 + n + a["offset"])
                    for a in header["arrays"]}


def inside(xy: np.ndarray, polygon: list[list[float]]) -> np.ndarray:
    """Even-odd point-in-polygon, the page's rule (map_gl.js insidePolygon), in float64."""
    x, y = xy[:, 0].astype(np.float64), xy[:, 1].astype(np.float64)
    result = np.zeros(len(xy), bool)
    for (xa, ya), (xb, yb) in zip(polygon, polygon[-1:] + polygon[:-1], strict=True):
        crosses = (ya > y) != (yb > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (xb - xa) * (y - ya) / (yb - ya) + xa
        result ^= crosses & (x < at)
    return result


# every painted pixel of the WebGL canvas, read back through a 2-D canvas
PAINTED = """() => { const c = document.getElementById('map-canvas'); const o = document.createElement('canvas');
  o.width = c.width; o.height = c.height; const g = o.getContext('2d'); g.drawImage(c, 0, 0);
  const d = g.getImageData(0, 0, o.width, o.height).data; let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n += 1; return n; }"""
PIXEL = """([x, y]) => { const c = document.getElementById('map-canvas'); const o = document.createElement('canvas');
  const r = window.devicePixelRatio || 1; o.width = c.width; o.height = c.height; const g = o.getContext('2d');
  g.drawImage(c, 0, 0); return [...g.getImageData(Math.round(x * r), Math.round(y * r), 1, 1).data]; }"""
SCREEN = """() => { const m = window.medviewMap, xy = m.state.xy, out = [];
  for (let i = 0; i < xy.length / 2; i += 1) out.push(m.renderer.toScreen(xy[2 * i], xy[2 * i + 1])); return out; }"""


def test_map_page_draws_colours_lassos_and_opens_the_grid(page, live_server, ingested, tmp_path):
    card = {"name": "pcam-embedder", "task": "embed", "input": {"size": [96, 96], "channels": 3, "scale": SCALE,
            "mean": MEAN, "std": STD}, "output": {"kind": "embedding"}, "applies_to": ["pcam"]}
    dataset = ingested.dataset_id
    with live_client(live_server) as api:
        model = register(api, projection_embedder(tmp_path / "e.onnx", (96, 96)), yaml.safe_dump(card)).json()["id"]
        job = api.post("/api/jobs", json={"kind": "predict", "model_id": model, "dataset_id": dataset})
        assert wait_finished(api, job.json()["id"])["status"] == "done"
        _, arrays = unpack(api.get(f"/api/datasets/{dataset}/map", params={"model": model}).content)
        labels = {i["id"]: i["label"] for i in api.get(f"/api/datasets/{dataset}/items", params={"limit": 100})
                  .json()["items"]}
    ids, xy = arrays["ids"].tolist(), arrays["xy"].reshape(-1, 2)

    page.goto(f"{live_server}/datasets/{dataset}")
    page.click("#map-link")
    page.wait_for_function("() => document.body.dataset.mapDrawn")
    assert page.eval_on_selector("#map-status", "e => e.textContent") == f"{len(ids)} points · PCA"
    assert page.evaluate(PAINTED) > 20 * len(ids)  # every point is a disc of several pixels

    # coloured by label at first; by split when chosen, then by label again: the legend lists the labels with their
    # counts, an isolated point shows its label's colour
    page.wait_for_function("() => document.body.dataset.mapColoured === 'label'")
    page.select_option("#map-field", "split")
    page.wait_for_function("() => document.body.dataset.mapColoured === 'split'")
    assert page.eval_on_selector_all("#map-legend li", "ls => ls.length") == 3  # train, valid, test
    page.select_option("#map-field", "label")
    page.wait_for_function("() => document.body.dataset.mapColoured === 'label'")
    legend = page.eval_on_selector_all("#map-legend li", "ls => ls.map(l => l.textContent)")
    counts: dict[str, int] = {}
    for i in ids:
        counts[str(labels[i])] = counts.get(str(labels[i]), 0) + 1
    order = sorted(counts, key=lambda v: (-counts[v], v))
    assert len(legend) == len(order) and all(legend[n].endswith(str(counts[v])) for n, v in enumerate(order))
    screen = np.array(page.evaluate(SCREEN))
    gaps = np.linalg.norm(screen[:, None] - screen[None], axis=2) + np.eye(len(ids)) * 1e9
    lonely = [n for n in range(len(ids)) if gaps[n].min() > 12]
    assert lonely, "no point is drawn apart from the others"
    for n in lonely:
        want = PALETTE[order.index(str(labels[ids[n]]))]
        got = page.evaluate(PIXEL, screen[n].tolist())
        assert all(abs(got[k] - int(want[1 + 2 * k:3 + 2 * k], 16)) <= 12 for k in range(3)), (n, got, want)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "map-by-label.png"))

    # a lasso around the left half of the points, drawn with the mouse (shift-drag)
    box = page.eval_on_selector("#map-canvas", "c => { const r = c.getBoundingClientRect(); return [r.left, r.top]; }")
    left, right = screen[:, 0].min() - 15, np.median(screen[:, 0]) + 1
    top, bottom = screen[:, 1].min() - 15, screen[:, 1].max() + 15
    corners = [(left, top), (right, top), (right + 30, (top + bottom) / 2), (right, bottom), (left, bottom)]
    lasso(page, box, corners)
    polygon = page.evaluate("() => window.medviewMap.state.lasso")
    expected = [i for i, keep in zip(ids, inside(xy, polygon), strict=True) if keep]
    assert 0 < len(expected) < len(ids)
    assert page.evaluate("() => window.medviewMap.state.selectedIds") == expected
    assert page.eval_on_selector("#map-selected", "e => e.textContent") == str(len(expected))
    page.wait_for_function("() => [...document.querySelectorAll('#map-thumbs img')].every(i => i.complete "
                           "&& i.naturalWidth > 0)")
    page.screenshot(path=str(SHOTS / "map-lasso.png"))

    page.click("#map-open-grid")
    page.wait_for_url(f"**/datasets/{dataset}?id=*")
    assert page.url.endswith("?" + "&".join(f"id={i}" for i in expected))
    page.wait_for_selector("#grid .card:not(.pending)")
    shown = page.eval_on_selector_all("#grid .card:not(.pending)", "cs => cs.map(c => Number(c.dataset.id))")
    assert sorted(shown) == expected
    assert page.eval_on_selector("#total", "e => e.dataset.total") == str(len(expected))
    page.screenshot(path=str(SHOTS / "grid-from-map.png"))

    # back on the map, a click on a point opens its item
    page.go_back()
    page.wait_for_function("() => document.body.dataset.mapDrawn")
    n = lonely[0]
    page.mouse.click(box[0] + screen[n][0], box[1] + screen[n][1])
    page.wait_for_url(f"**/items/{ids[n]}*")

    # the same lasso made into a review queue of exactly those items
    page.goto(f"{live_server}/datasets/{dataset}/map?model={model}")
    page.wait_for_function("() => document.body.dataset.mapDrawn")
    lasso(page, box, corners)
    assert page.evaluate("() => window.medviewMap.state.selectedIds") == expected
    page.click("#map-queue")
    page.fill("#map-queue-name", "map lasso")
    page.click("#map-queue-form button[type=submit]")
    page.wait_for_url("**/review/queues/*")
    queue = int(page.url.rstrip("/").split("/")[-1])
    with live_client(live_server) as api:
        made = api.get(f"/api/review/queues/{queue}").json()
    assert made["name"] == "map lasso" and made["progress"]["items"] == len(expected)


def lasso(page, box, corners) -> None:
    """Shift-drag through the corners (canvas pixels) and back to the first; waits for the selection."""
    page.keyboard.down("Shift")
    page.mouse.move(box[0] + corners[0][0], box[1] + corners[0][1])
    page.mouse.down()
    for x, y in corners[1:] + corners[:1]:
        page.mouse.move(box[0] + x, box[1] + y, steps=8)
    page.mouse.up()
    page.keyboard.up("Shift")
    page.wait_for_function("() => document.body.dataset.mapSelected !== '0' && document.body.dataset.mapSelected")
