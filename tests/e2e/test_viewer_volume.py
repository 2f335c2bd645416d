"""Volumes in the viewer (VerSe): three linked planes whose crosshair sits where app.imaging.volume.voxel_to_display
(the server's overlay mapping) puts the cursor voxel, a click that moves the other planes to the clicked voxel, and
centroid dots at the server's positions in every plane."""

from __future__ import annotations

import pytest

from app.datasets.ingest import ingest_path
from app.datasets.verse.synth import generate_verse
from app.imaging.volume import voxel_to_display
from tests.helpers.browser import viewer_redrawn
from tests.helpers.live import live_client, live_get

pytestmark = pytest.mark.browser

READY = "() => window.medviewViewer && window.medviewViewer.ready()"
PLANES = ("axial", "coronal", "sagittal")


@pytest.fixture(scope="module")
def verse_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_verse(tmp_path_factory.mktemp("verse-viewer") / "verse", subjects=1, layout="bids", seed=3)


def test_three_planes_crosshair_and_centroids(page, live_server, engine, settings, verse_tree):
    report = ingest_path(engine, settings, verse_tree.root, kind="verse", name="verse")
    listing = live_get(f"{live_server}/api/datasets/{report.dataset_id}/items").json()["items"]
    item = live_get(f"{live_server}/api/items/{listing[0]['id']}").json()
    shape, spacing = (item["width"], item["height"], item["depth"]), item["spacing"]
    at = [40, 70, 50]
    page.goto(f"{live_server}/items/{item['id']}?layout=three&at={','.join(map(str, at))}")
    page.wait_for_function(READY)
    panes = page.evaluate("() => window.medviewViewer.panes()")
    assert [(p["plane"], p["slice"]) for p in panes] == [("axial", 50), ("coronal", 70), ("sagittal", 40)]
    for n, plane in enumerate(PLANES):
        x, y, _ = voxel_to_display(at, shape, spacing, plane)
        sx, sy = page.evaluate("([n, x, y]) => window.medviewViewer.screen(n, x, y)", [n, x, y])
        h = page.locator(f'.pane[data-plane="{plane}"] line[data-axis="h"]')
        v = page.locator(f'.pane[data-plane="{plane}"] line[data-axis="v"]')
        assert float(h.get_attribute("y1")) == pytest.approx(sy, abs=1e-3)
        assert float(v.get_attribute("x1")) == pytest.approx(sx, abs=1e-3)
    # physical aspect: one zoom for all planes, so a millimetre is as long on screen in each
    assert len({round(p["view"]["zoom"], 6) for p in panes}) == 1

    # a click in the axial pane moves the sagittal and coronal slices to the clicked voxel
    target = [30, 60, 50]
    x, y, _ = voxel_to_display(target, shape, spacing, "axial")
    left, top, _, _ = page.evaluate("() => window.medviewViewer.paneBox(0)")
    sx, sy = page.evaluate("([x, y]) => window.medviewViewer.screen(0, x, y)", [x, y])
    page.mouse.click(left + sx, top + sy)
    page.wait_for_function("() => window.medviewViewer.panes()[2].slice === 30")
    page.wait_for_function(READY)
    panes = page.evaluate("() => window.medviewViewer.panes()")
    assert [p["slice"] for p in panes] == [50, 60, 30]
    page.wait_for_function("() => location.search.includes('at=30%2C60%2C50')")

    # centroid dots where the server's voxel_to_display puts them, in every plane through the centroid
    centroid = next(a for a in item["annotations"] if a["kind"] == "centroid")
    point = centroid["geometry"]["point"]
    for plane in PLANES:
        page.keyboard.press({"axial": "a", "coronal": "c", "sagittal": "s"}[plane])
        index = round(point[{"sagittal": 0, "coronal": 1, "axial": 2}[plane]])
        with viewer_redrawn(page):
            page.locator(f'.plane-target[data-{plane}="{index}"]').first.click()
        n = PLANES.index(plane)
        x, y, _ = voxel_to_display(point, shape, spacing, plane)
        sx, sy = page.evaluate("([n, x, y]) => window.medviewViewer.screen(n, x, y)", [n, x, y])
        dot = page.locator(f'.pane[data-plane="{plane}"] circle[data-id="{centroid["meta"]["name"]}"]')
        assert dot.count() == 1, plane
        assert float(dot.get_attribute("cx")) == pytest.approx(sx, abs=1e-3)
        assert float(dot.get_attribute("cy")) == pytest.approx(sy, abs=1e-3)


def test_a_real_3d_prediction_beside_the_vertebrae_and_its_foreground_difference(page, live_server, engine,
                                                                                   settings, verse_tree, tmp_path):
    """A real ONNX bone-threshold segmenter run through the API on the VerSe volume: the right pane shows its
    mask plane (same size as /raw), and the difference view — a binary prediction against vertebra labels —
    counts agreement on foreground, equal to numpy on the two label PNGs of that plane."""
    import io

    import numpy as np
    import yaml
    from PIL import Image

    from tests.helpers.api import register
    from tests.onnx_models import threshold_segmenter_3d

    report = ingest_path(engine, settings, verse_tree.root, kind="verse", name="verse")
    item_id = live_get(f"{live_server}/api/datasets/{report.dataset_id}/items").json()["items"][0]["id"]
    card = {"name": "bone-3d", "task": "segment3d", "applies_to": ["verse"],
            "input": {"layout": "NCDHW", "size": [32, 48, 48], "channels": 1, "scale": 1.0},
            "output": {"kind": "mask_logits", "classes": ["background", "bone"]}}
    with live_client(live_server, timeout=120) as api:
        model = register(api, threshold_segmenter_3d(tmp_path / "bone.onnx", (32, 48, 48), 250.0),
                         yaml.safe_dump(card)).json()
        body = api.post(f"/api/items/{item_id}/predict", json={"model_id": model["id"]}).json()
        assert body["outputs"]["labels"] == [1]

        centroid = next(a for a in api.get(f"/api/items/{item_id}").json()["annotations"] if a["kind"] == "centroid")
        j = round(centroid["geometry"]["point"][1])  # the coronal slice through a vertebra

        def labels(url: str) -> np.ndarray:
            return np.asarray(Image.open(io.BytesIO(api.get(url, params={"plane": "coronal", "slice": j}).content)))

        truth, pred = labels(f"/api/items/{item_id}/mask"), labels(body["outputs"]["mask"])
    assert truth.shape == pred.shape and truth.max() > 1 and pred.max() == 1
    want = {"tp": int(((pred > 0) & (truth > 0)).sum()), "fp": int(((pred > 0) & (truth == 0)).sum()),
            "fn": int(((truth > 0) & (pred == 0)).sum())}
    assert want["tp"] > 0

    page.goto(f"{live_server}/items/{item_id}?plane=coronal&slice={j}&layout=side&diff=1")
    page.wait_for_function(READY)
    page.wait_for_function("() => window.medviewViewer.panes()[0].diff")
    panes = page.evaluate("() => window.medviewViewer.panes()")
    assert [p["role"] for p in panes] == ["gt", "pred"] and panes[1]["width"] == truth.shape[1]
    diff = panes[0]["diff"]
    assert {k: diff[k] for k in want} == want and diff["foreground"] is True
    assert f"agree (foreground) {want['tp']}" in page.inner_text(".pane[data-role=gt] .pane-legend")
