"""The item page's mask controls (fill / contour, opacity) through the in-process client: shown only for items with a
mask, carried from the page URL into the viewer state and the image URL, and bad values refused with a 400 page."""

from __future__ import annotations

import html
import json
import re

import pytest

from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path


@pytest.fixture(scope="module")
def bis5k_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_bis5k(tmp_path_factory.mktemp("bis5k-controls") / "BIS5k", n_train=2, n_test=1, seed=0)


@pytest.fixture
def bis5k_item(engine, settings, bis5k_tree, client) -> dict:
    """The BIS5k item with the largest mask."""
    report = ingest_path(engine, settings, bis5k_tree.root, kind="bis5k", name="bis5k")
    biggest = max(bis5k_tree.images, key=lambda i: i.foreground)
    page = client.get(f"/api/datasets/{report.dataset_id}/items", params={"key": biggest.image}).json()
    assert page["total"] == 1
    return client.get(f"/api/items/{page['items'][0]['id']}").json()


def viewer(body: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="viewer-state">(.*?)</script>', body, re.S)
                      .group(1))


def image_src(body: str) -> str:
    return html.unescape(re.search(r'id="slice-image" src="([^"]+)"', body).group(1))


def assert_html(r, status: int) -> str:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def test_bis5k_page_shows_the_mask_controls_with_defaults(client, bis5k_item):
    body = assert_html(client.get(f"/items/{bis5k_item['id']}"), 200)
    assert 'aria-label="mask display"' in body
    assert re.search(r'<button type="button" class="mask-mode active" data-mask-mode="fill" aria-pressed="true"', body)
    assert re.search(r'<button type="button" class="mask-mode" data-mask-mode="contour" aria-pressed="false"', body)
    slider = re.search(r'<input type="range" id="mask-opacity"[^>]*>', body).group(0)
    for attr in ('min="0"', 'max="1"', 'step="0.05"', 'value="0.4"'):
        assert attr in slider, slider
    assert "disabled" not in slider
    assert re.search(r'<output id="mask-opacity-value" for="mask-opacity">40%</output>', body)
    assert "<kbd>m</kbd> mask fill / contour" in body  # the keyboard help
    # the Overlays toggle comes first, then the mask group
    assert body.index('id="toggle-overlays"') < body.index('aria-label="mask display"')
    state = viewer(body)
    assert state["has_mask"] is True and state["mask_mode"] == "fill" and state["opacity"] == 0.4
    # defaults stay out of the image URL: the same URL (and ETag) as before the controls existed
    assert image_src(body) == f"/api/items/{bis5k_item['id']}/render?format=jpeg&overlays=gt&v={bis5k_item['version']}"


def test_deeplesion_page_has_no_mask_controls(client, ingested):
    item_id = client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]["id"]
    body = assert_html(client.get(f"/items/{item_id}"), 200)
    assert "mask-opacity" not in body and "data-mask-mode" not in body and "mask fill / contour" not in body
    state = viewer(body)
    assert state["has_mask"] is False and state["mask_mode"] == "fill" and state["opacity"] == 0.4


def test_mask_state_from_the_url_reaches_the_image(client, bis5k_item):
    item_id = bis5k_item["id"]
    body = assert_html(client.get(f"/items/{item_id}?mask_mode=contour&opacity=0.7"), 200)
    state = viewer(body)
    assert state["mask_mode"] == "contour" and state["opacity"] == 0.7
    assert re.search(r'class="mask-mode active" data-mask-mode="contour" aria-pressed="true"', body)
    assert re.search(r'class="mask-mode" data-mask-mode="fill" aria-pressed="false"', body)
    slider = re.search(r'<input type="range" id="mask-opacity"[^>]*>', body).group(0)
    assert 'value="0.7"' in slider and "disabled" in slider  # opacity does not apply to contours
    assert ">70%</output>" in body
    src = image_src(body)
    assert src == (f"/api/items/{item_id}/render?format=jpeg&overlays=gt&v={bis5k_item['version']}"
                   "&mask_mode=contour&opacity=0.7")
    shown, default = client.get(src), client.get(image_src(client.get(f"/items/{item_id}").text))
    assert shown.status_code == default.status_code == 200
    assert shown.headers["content-type"] == "image/jpeg"
    assert shown.content != default.content and shown.headers["etag"] != default.headers["etag"]
    # each parameter on its own reaches the image too, and changes it
    fill70 = image_src(client.get(f"/items/{item_id}?opacity=0.70").text)
    assert fill70.endswith("&opacity=0.7") and "mask_mode" not in fill70
    contour = image_src(client.get(f"/items/{item_id}?mask_mode=contour").text)
    assert contour.endswith("&mask_mode=contour") and "opacity" not in contour
    assert len({client.get(u).content for u in (fill70, contour)} | {default.content}) == 3
    # contours are drawn at full colour: the opacity does not change them (so the page disables the slider)
    assert client.get(contour).content == shown.content
    # the defaults spelt out are the default URL
    assert image_src(client.get(f"/items/{item_id}?mask_mode=fill&opacity=0.4").text) == image_src(
        client.get(f"/items/{item_id}").text)


@pytest.mark.parametrize(("query", "fragment"), [
    ("mask_mode=outline", "mask_mode must be fill or contour, not 'outline'"),
    ("mask_mode=", "mask_mode must be fill or contour, not ''"),
    ("opacity=1.5", "opacity must be a number from 0 to 1, not '1.5'"),
    ("opacity=-0.1", "opacity must be a number from 0 to 1, not '-0.1'"),
    ("opacity=abc", "opacity must be a number from 0 to 1, not 'abc'"),
    ("opacity=nan", "opacity must be a number from 0 to 1, not 'nan'"),
])
def test_bad_mask_values_are_400_pages(client, bis5k_item, query, fragment):
    body = assert_html(client.get(f"/items/{bis5k_item['id']}?{query}"), 400)
    assert fragment in html.unescape(body)
    assert 'class="error-status">400<' in body and "MedView" in body


@pytest.mark.parametrize(("query", "fragment"), [
    ("layout=four", "layout must be one of single, three, side"),
    ("layout=three", "layout=three needs a volume"),
    ("zoom=0", "zoom must be a number from 0.05 to 64"),
    ("zoom=abc", "zoom must be a number"),
    ("pan=12", "pan must be X,Y"),
    ("pan=1,x", "pan must be a number"),
    ("hide=mask,stuff", "hide lists unknown layers 'stuff'"),
    ("model=7", "model '7' has no prediction for this item"),
    ("invert=yes", "invert must be 1 or 0"),
    ("diff=2", "diff must be 1 or 0"),
])
def test_bad_client_view_parameters_are_a_400_page(client, bis5k_item, query, fragment):
    body = assert_html(client.get(f"/items/{bis5k_item['id']}?{query}"), 400)
    assert html.escape(fragment, quote=True) in body or fragment in html.unescape(body), body[-800:]


def test_client_view_parameters_reach_the_viewer_state(client, bis5k_item):
    body = assert_html(client.get(f"/items/{bis5k_item['id']}?invert=1&zoom=2.5&pan=10.5,20&layout=side"
                                  "&hide=shapes,measure&diff=1"), 200)
    state = viewer(body)
    assert (state["invert"], state["zoom"], state["pan"], state["layout"], state["hide"], state["diff"]) == \
        (True, 2.5, [10.5, 20.0], "side", ["shapes", "measure"], True)
    assert state["mask_url"] == f"/api/items/{bis5k_item['id']}/mask"
    assert state["raw_url"] == f"/api/items/{bis5k_item['id']}/raw"
    # capabilities from the adapter, not a kind name to branch on
    assert "kind" not in state and state["tools"] == ["line"] and state["spacing_maps_planes"] is False
    assert state["defaults"] == {"mask_mode": "fill", "opacity": 0.4}
    # the first paint does not change: client-side parameters stay out of the render URL
    assert image_src(body) == f"/api/items/{bis5k_item['id']}/render?format=jpeg&overlays=gt&v={bis5k_item['version']}"
