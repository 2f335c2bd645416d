"""`/raw` is compressed once per (item, content version, view) and kept in the renderer's response cache
(MEDVIEW_RENDER_CACHE_MB): a repeated request is a lookup (the pixel layer is not asked again, the same bytes
come back), a conditional request with the ETag is a 304, a pinned URL (`v=` the current version) is immutable,
and an edit that bumps the item's content version changes the ETag. The item page preloads exactly the URL the
viewer fetches first (app/web/preload.py; tests/e2e/test_first_pixel.py checks the browser's side)."""

from __future__ import annotations

import re
from html import unescape

import numpy as np

from app.datasets.ingest import ingest_path
from app.datasets.verse.synth import generate_verse
from app.web.preload import module_graph
from tests.helpers.auth import api_token


def _key_item(client, dataset_id: int) -> dict:
    for summary in client.get(f"/api/datasets/{dataset_id}/items", params={"limit": 50}).json()["items"]:
        item = client.get(f"/api/items/{summary['id']}").json()
        if any(a["kind"] == "recist" for a in item["annotations"]) and len(item["meta"]["slices"]) > 1:
            return item
    raise AssertionError("no key slice with RECIST and neighbours in the sample")


def test_repeated_raw_comes_from_the_cache(client, app, settings, ingested):
    item = _key_item(client, ingested.dataset_id)
    renderer = app.state.renderer
    reads: list[object] = []
    image = renderer.pixels.image

    def counted(target, view):
        reads.append(view)
        return image(target, view)
    renderer.pixels.image = counted  # the pixel layer: asked for a decode only on a cache miss

    url = f"/api/items/{item['id']}/raw"
    pinned = {"slice": item["slice"], "v": item["version"]}
    first = client.get(url, params=pinned)
    assert first.status_code == 200 and first.headers["content-encoding"] == "gzip"
    assert "immutable" in first.headers["cache-control"]
    assert len(reads) == 1
    entries, hits = len(renderer.responses), renderer.responses.hits
    second = client.get(url, params=pinned)
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert len(reads) == 1  # no second decode, no second gzip
    assert renderer.responses.hits == hits + 1 and len(renderer.responses) == entries
    values = np.frombuffer(second.content, "<i2").reshape(512, 512)  # httpx decoded the gzip
    assert values.min() < -500 < values.max()  # HU of a CT slice

    # conditional: 304 without a body, and without a decode either
    again = client.get(url, params=pinned, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == first.headers["etag"]
    assert len(reads) == 1
    unpinned = client.get(url, params={"slice": item["slice"]})
    assert unpinned.headers["cache-control"] == "no-cache" and unpinned.content == first.content

    # another view of the item is another entry: a miss, then cached too
    other = item["meta"]["slices"][0] if item["meta"]["slices"][0] != item["slice"] else item["meta"]["slices"][-1]
    neighbour = client.get(url, params={"slice": other, "v": item["version"]})
    assert neighbour.headers["etag"] != first.headers["etag"] and len(reads) == 2
    assert len(renderer.responses) == entries + 1


def test_raw_without_a_cache_budget_answers_the_same(client, make_settings, ingested):
    from fastapi.testclient import TestClient

    from app.main import create_app

    item = _key_item(client, ingested.dataset_id)
    url = f"/api/items/{item['id']}/raw"
    cached = client.get(url)
    body = cached.content
    narrowed = make_settings(render_cache_mb=0)
    nocache = create_app(narrowed)
    with TestClient(nocache) as other:
        other.headers["Authorization"] = f"Bearer {api_token(narrowed)}"
        r1, r2 = other.get(url), other.get(url)
        assert r1.content == r2.content == body and r1.headers["etag"] == cached.headers["etag"]
        assert len(nocache.state.renderer.responses) == 0


def test_content_version_bump_changes_the_raw_etag(client, app, settings, ingested):
    item = _key_item(client, ingested.dataset_id)
    url = f"/api/items/{item['id']}/raw"
    before = client.get(url, params={"v": item["version"]})
    ann = next(a for a in item["annotations"] if a["kind"] == "recist")
    moved = {"long": [[100, 150], [160, 150]], "short": [[130, 140], [130, 160]]}
    annotator = {"Authorization": f"Bearer {api_token(settings, 'ann', 'annotator')}"}
    r = client.put(f"/api/annotations/{ann['id']}", json={"version": 1, "geometry": moved}, headers=annotator)
    assert r.status_code == 200, r.text
    version = client.get(f"/api/items/{item['id']}").json()["version"]
    assert version == item["version"] + 1
    after = client.get(url, params={"v": version})
    assert after.headers["etag"] != before.headers["etag"]
    assert after.content == before.content  # same pixels, new version: a fresh entry, not a stale one
    assert "immutable" in after.headers["cache-control"]
    # the old ETag no longer matches: a browser holding it gets the bytes again
    stale = client.get(url, params={"v": version}, headers={"If-None-Match": before.headers["etag"]})
    assert stale.status_code == 200 and stale.content == before.content


def _links(html: str, rel: str) -> list[str]:
    return [unescape(h) for h in re.findall(rf'<link rel="{rel}"(?: as="fetch")? href="([^"]+)"', html)]


def test_item_page_preloads_the_viewers_first_raw_and_modules(client, engine, settings, ingested, tmp_path):
    item = _key_item(client, ingested.dataset_id)
    html = client.get(f"/items/{item['id']}").text
    assert _links(html, "preload") == [f"/api/items/{item['id']}/raw?slice={item['slice']}&v={item['version']}"]
    assert re.search(r'<link rel="preload" as="fetch" href="[^"]+" crossorigin>', html)
    other = next(s for s in item["meta"]["slices"] if s != item["slice"])
    html = client.get(f"/items/{item['id']}", params={"slice": other, "layout": "side"}).text
    assert _links(html, "preload") == [f"/api/items/{item['id']}/raw?slice={other}&v={item['version']}"]
    modules = {m.split("/static/", 1)[1].split("/", 1)[1] for m in _links(html, "modulepreload")}  # after v-<hash>/
    assert modules == {"js/viewer/main.js", *module_graph()}
    assert {"js/viewer/pixels.js", "js/viewer/pane.js", "js/viewer/geometry.js"} <= modules  # nested imports too
    # the editing tools and review mode are imported after the first frame (main.js): not preloaded
    assert not modules & {"js/viewer/edit.js", "js/viewer/comments.js", "js/viewer/brush.js", "js/viewer/review.js"}

    tree = generate_verse(tmp_path / "verse", subjects=1, layout="bids", seed=3)
    report = ingest_path(engine, settings, tree.root, kind="verse", name="verse")
    vol = client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"][0]
    vol = client.get(f"/api/items/{vol['id']}").json()
    v = vol["version"]
    base = f"/api/items/{vol['id']}/raw"
    mask = f"/api/items/{vol['id']}/mask"
    html = client.get(f"/items/{vol['id']}", params={"plane": "coronal"}).text
    middle = vol["height"] // 2  # coronal slices run along j (the canonical height)
    # the raw values and the vertebra mask of the view: the viewer's first frame waits for both
    assert _links(html, "preload") == [f"{base}?plane=coronal&slice={middle}&v={v}",
                                       f"{mask}?plane=coronal&slice={middle}&v={v}"]
    html = client.get(f"/items/{vol['id']}", params={"layout": "three"}).text
    mid = (vol["width"] // 2, vol["height"] // 2, vol["depth"] // 2)
    views = [f"plane=axial&slice={mid[2]}&v={v}", f"plane=coronal&slice={mid[1]}&v={v}",
             f"plane=sagittal&slice={mid[0]}&v={v}"]
    assert _links(html, "preload") == [f"{base}?{q}" for q in views] + [f"{mask}?{q}" for q in views]
    for url in _links(html, "preload"):  # each preloaded view exists
        assert client.get(url).status_code == 200
    # no mask asked for when the viewer will not draw it: its layer hidden (unless the difference needs it), or
    # the ground truth off
    for params, masks in (({"hide": "mask"}, 0), ({"hide": "mask", "diff": "1"}, 1), ({"overlays": "none"}, 0)):
        html = client.get(f"/items/{vol['id']}", params={"plane": "coronal", **params}).text
        assert sum("/mask?" in u for u in _links(html, "preload")) == masks, params
