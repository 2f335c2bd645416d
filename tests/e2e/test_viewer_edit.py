"""Editing annotations in the viewer, in Debian chromium on the generated DeepLesion sample (SQLite): an annotator
drags a RECIST long-axis endpoint with the Edit tool, the drag end saves a new version (checked through the API:
the endpoint where it was dropped, the short axis still perpendicular and crossing, `long_mm` recomputed); a
change made behind the page's back turns the next drag into the conflict dialog naming the other user, and "Keep
mine" saves over their version (the chain checked); comments are listed and added; an image-folder item's class is
changed from the side panel; a viewer gets no editing controls. Screenshots go to /tmp/shots-edit/."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.api.security import SESSION_COOKIE
from app.datasets.annotation_rules import segments_intersect
from app.datasets.imagefolder.synth import generate_imagefolder
from app.datasets.ingest import ingest_path
from tests.e2e.conftest import VIEWPORT
from tests.e2e.deeplesion_items import pick_item
from tests.helpers.auth import api_token, session_cookie
from tests.helpers.live import live_client

pytestmark = pytest.mark.browser

READY = "() => window.medviewViewer && window.medviewViewer.ready()"
SAVED = ("() => { const e = window.medviewViewer.editor(); "
         "return e && e.pendingSaves === 0 && e.status.kind === 'saved'; }")
SHOTS = Path(os.environ.get("MEDVIEW_SHOTS", "/tmp/shots-edit"))


@contextmanager
def signed_in_page(browser, settings, name: str, role: str) -> Iterator:
    context = browser.new_context(viewport=VIEWPORT)
    context.add_cookies([{"name": SESSION_COOKIE, "value": session_cookie(settings, name, role),
                          "domain": "127.0.0.1", "path": "/", "httpOnly": True, "sameSite": "Lax"}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def to_page(page, x: float, y: float) -> tuple[float, float]:
    left, top, _, _ = page.evaluate("() => window.medviewViewer.paneBox(0)")
    sx, sy = page.evaluate("([x, y]) => window.medviewViewer.screen(0, x, y)", [x, y])
    return left + sx, top + sy


def drag(page, start: list[float], end: list[float], *, screenshot: str | None = None) -> None:
    """Press on image point `start`, move to image point `end` in steps, release."""
    page.mouse.move(*to_page(page, *start))
    page.mouse.down()
    page.mouse.move(*to_page(page, *end), steps=6)
    if screenshot:
        shot(page, screenshot)
    page.mouse.up()


def recist_of(api, item_id: int, lineage: int) -> dict:
    for a in api.get(f"/api/items/{item_id}").json()["annotations"]:
        if a["kind"] == "recist" and api.get(f"/api/annotations/{a['id']}/history").json()[0]["id"] == lineage:
            return a
    raise AssertionError(f"no current version of annotation {lineage}")


def assert_perpendicular_and_crossing(g: dict) -> None:
    (a, b), (c, d) = g["long"], g["short"]
    u = (b[0] - a[0], b[1] - a[1])
    v = (d[0] - c[0], d[1] - c[1])
    assert abs(u[0] * v[0] + u[1] * v[1]) / (math.hypot(*u) * math.hypot(*v)) < 0.01
    assert segments_intersect(g["long"], g["short"])


def test_drag_recist_saves_a_version_conflict_keep_mine_and_comments(browser, live_server, settings, ingested):
    item = pick_item(live_server, ingested.dataset_id)
    original = next(a for a in item["annotations"] if a["kind"] == "recist")
    lineage, spacing = original["id"], item["spacing"][0]
    with signed_in_page(browser, settings, "anna", "annotator") as page:
        page.goto(f"{live_server}/items/{item['id']}")
        page.wait_for_function(READY)
        page.keyboard.press("e")
        assert page.get_attribute("#edit-tool", "aria-pressed") == "true"
        assert page.locator('.pane circle[data-layer="edit"]').count() >= 4  # the four RECIST endpoints

        (a, b) = original["geometry"]["long"]
        target = [b[0] + 12, b[1] + 7]
        drag(page, b, target, screenshot="edit_recist_mid_drag.png")
        page.wait_for_function(SAVED)
        with live_client(live_server) as api:
            v2 = recist_of(api, item["id"], lineage)
        assert v2["version"] == 2 and v2["source"] == "user:anna"
        g = v2["geometry"]
        assert g["long"][0] == pytest.approx(a, abs=1e-6)  # the other end stays
        assert math.dist(g["long"][1], target) <= 1.0
        assert_perpendicular_and_crossing(g)
        assert v2["meta"]["long_mm"] == pytest.approx(round(math.dist(*g["long"]) * spacing, 2), abs=0.011)
        short_before = math.dist(*original["geometry"]["short"])
        assert math.dist(*g["short"]) == pytest.approx(short_before, abs=0.05)  # its length is kept
        row = page.locator(f'tr.lesion-row[data-annotation="{v2["id"]}"] .lesion-size')  # the side panel follows
        shown = [float(v) for v in row.inner_text().split(" × ")]
        assert shown == pytest.approx([v2["meta"]["long_mm"], v2["meta"]["short_mm"]], abs=0.051)

        # behind the page's back: bob moves it (version 3); the page still holds version 2
        bob = {"Authorization": f"Bearer {api_token(settings, 'bob', 'annotator')}"}
        shifted = {k: [[x + 2, y] for x, y in g[k]] for k in ("long", "short")}
        with live_client(live_server) as api:
            r = api.put(f"/api/annotations/{v2['id']}", json={"version": 2, "geometry": shifted}, headers=bob)
        assert r.status_code == 200, r.text
        start = g["long"][0]
        mine = [start[0] - 6, start[1] - 4]
        drag(page, start, mine)
        dialog = page.locator("#conflict-dialog")
        dialog.wait_for(state="visible")
        assert "bob" in page.text_content("#conflict-text")
        shot(page, "edit_conflict_dialog.png")
        page.click("#conflict-keep")
        page.wait_for_function(SAVED)
        with live_client(live_server) as api:
            chain = api.get(f"/api/annotations/{lineage}/history").json()
        assert [(h["version"], h["created_by"]) for h in chain] == [(1, None), (2, "anna"), (3, "bob"), (4, "anna")]
        assert [h["current"] for h in chain] == [False, False, False, True]
        v4 = chain[-1]["geometry"]
        assert math.dist(v4["long"][0], mine) <= 1.0 and math.dist(v4["long"][1], g["long"][1]) <= 1e-6
        assert_perpendicular_and_crossing(v4)

        # undo (z): version 4's previous geometry (version 2's, anna's own) saved as version 5
        page.keyboard.press("z")
        page.wait_for_function("() => window.medviewViewer.editor().status.text.includes('v5')")
        with live_client(live_server) as api:
            v5 = api.get(f"/api/annotations/{lineage}/history").json()[-1]
        assert v5["version"] == 5 and v5["geometry"]["long"] == g["long"]

        # comments: one attached to the selected annotation
        page.fill("#comment-text", "long axis re-measured on the key slice")
        page.check("#comment-attach")
        page.click("#comment-form button[type=submit]")
        page.wait_for_function("() => document.querySelectorAll('#comment-list li').length === 1")
        with live_client(live_server) as api:
            comments = api.get(f"/api/items/{item['id']}/comments").json()
        assert comments[0]["author"] == "anna" and comments[0]["annotation_id"] == v5["id"]
        shot(page, "edit_comments_panel.png")

        # a length measurement saved as a `line` annotation (Shift+S saves every unsaved one)
        page.keyboard.press("l")
        drag(page, [300, 300], [350, 340])
        page.keyboard.press("Shift+S")
        page.wait_for_function("() => !window.medviewViewer.measurements().length"
                               " && window.medviewViewer.editor().pendingSaves === 0")
        with live_client(live_server) as api:
            lines = [a for a in api.get(f"/api/items/{item['id']}").json()["annotations"] if a["kind"] == "line"]
        assert len(lines) == 1 and lines[0]["source"] == "user:anna" and lines[0]["slice_index"] == item["slice"]
        assert lines[0]["geometry"]["line"] == [[300, 300], [350, 340]]
        assert lines[0]["meta"]["length_mm"] == pytest.approx(round(math.hypot(50, 40) * spacing, 2))
        assert page.locator('.pane line[data-layer="gt"][data-id="line"]').count() == 1

        # a refused edit (Alt: the short axis end moves freely, here past the long axis' length) → 400: the
        # server's reason beside the shape, the shape back where it was, no new version
        page.keyboard.press("e")
        c, d = g["short"]
        out = [c[0] + 3 * (c[0] - d[0]), c[1] + 3 * (c[1] - d[1])]
        page.keyboard.down("Alt")
        drag(page, c, out)
        page.keyboard.up("Alt")
        page.wait_for_function("() => window.medviewViewer.editor().status.kind === 'error'")
        assert "longer than the long axis" in page.text_content('.pane text[data-layer="edit"]')
        shape = page.evaluate(f"() => window.medviewViewer.state.shapes.find(s => s.ann === {v5['id']})")
        assert shape["short"] == g["short"]
        with live_client(live_server) as api:
            assert api.get(f"/api/annotations/{lineage}/history").json()[-1]["version"] == 5


def test_image_folder_label_select_and_no_edit_tool_for_a_viewer(browser, live_server, settings, ingested, engine,
                                                               tmp_path):
    folder = generate_imagefolder(tmp_path / "folder", per_class=2)
    ds = ingest_path(engine, settings, folder.root, kind="imagefolder", name="folder").dataset_id
    with live_client(live_server) as api:
        first = api.get(f"/api/datasets/{ds}/items", params={"limit": 1}).json()["items"][0]
        item = api.get(f"/api/items/{first['id']}").json()
    old = next(a for a in item["annotations"] if a["kind"] == "label")
    with signed_in_page(browser, settings, "anna", "annotator") as page:
        page.goto(f"{live_server}/items/{item['id']}")
        page.wait_for_function(READY)
        options = page.eval_on_selector_all("#edit-label option", "os => os.map(o => o.value)")
        assert old["label"] in options and len(options) >= 2
        assert page.locator("#edit-tool").count() == 0  # labels only: nothing to drag
        new = next(o for o in options if o and o != old["label"])
        page.select_option("#edit-label", new)
        page.wait_for_function(SAVED)
        shot(page, "edit_label_select.png")
    with live_client(live_server) as api:
        history = api.get(f"/api/annotations/{old['id']}/history").json()
    assert [(h["version"], h["label"]) for h in history] == [(1, old["label"]), (2, new)]

    # a new box drawn with the Edit tool; then, in a two-reader queue, a RECIST edit is the reader's own reading
    lesion = pick_item(live_server, ingested.dataset_id)
    recist = next(a for a in lesion["annotations"] if a["kind"] == "recist")
    with live_client(live_server) as api:
        queue = api.post("/api/review/queues", json={"name": "double", "dataset_id": ingested.dataset_id,
                                                     "readers_per_item": 2}).json()
    # queue readings are a reader's (reviewer role): the box and the reading are made by a reviewer here
    with signed_in_page(browser, settings, "rhea", "reviewer") as page:
        page.goto(f"{live_server}/items/{lesion['id']}")
        page.wait_for_function(READY)
        page.keyboard.press("e")
        drag(page, [40, 40], [90, 70])
        page.wait_for_function(SAVED)
        page.evaluate("(q) => window.medviewViewer.editor().setQueue({queueId: q, readersPerItem: 2})", queue["id"])
        end = recist["geometry"]["long"][1]
        drag(page, end, [end[0] + 5, end[1] + 5])
        page.wait_for_function("() => { const e = window.medviewViewer.editor(); return e.pendingSaves === 0 &&"
                               " [...e.records.values()].some(a => a.meta.derived_from); }")
    with live_client(live_server) as api:
        current = api.get(f"/api/items/{lesion['id']}").json()["annotations"]
    boxes = [a for a in current if a["kind"] == "bbox"]
    assert len(boxes) == 1 and boxes[0]["geometry"]["bbox"] == pytest.approx([40, 40, 90, 70], abs=1.0)
    assert boxes[0]["slice_index"] == lesion["slice"] and boxes[0]["source"] == "user:rhea"
    assert recist["id"] in {a["id"] for a in current}  # the shared annotation is not edited over
    reading = next(a for a in current if a["kind"] == "recist" and a["source"] == "user:rhea")
    assert reading["meta"]["derived_from"] == recist["id"] and reading["meta"]["queue_id"] == queue["id"]
    assert math.dist(reading["geometry"]["long"][1], [end[0] + 5, end[1] + 5]) <= 1.0

    with signed_in_page(browser, settings, "vera", "viewer") as page:
        page.goto(f"{live_server}/items/{lesion['id']}")
        page.wait_for_function(READY)
        assert page.locator("#edit-tool").count() == 0 and page.locator("#edit-panel").count() == 0
        assert page.locator("#comment-form").count() == 0 and page.locator("#comments-panel").count() == 1
        page.keyboard.press("e")
        assert page.evaluate("() => window.medviewViewer.editor()") is None
        assert page.locator('.pane circle[data-layer="edit"]').count() == 0
