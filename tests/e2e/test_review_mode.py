"""Review mode in a real browser (SQLite): a reviewer works a queue of 5 generated DeepLesion items with the keyboard
only — accept, reject, comment, uncertain, undo, previous, next, accept after an edit (corrected) — ends on the done
panel and signs the queue off; the API then holds the verdicts and statuses as pressed. A verdict swaps the next
item in place (URL, breadcrumb, side panel follow; Back and Forward load the pages they name), and on a swapped-in
item the editor (RECIST drag), the comments and the brush (a BIS5k queue) work as after a page load. The queue page
(agreement, Bland–Altman plot, adjudication, sign-off) and the dataset page's "Review queue…" dialog. Screenshots go to
$MEDVIEW_SHOTS when it is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path
from tests.e2e.conftest import signed_in_page
from tests.helpers.auth import api_token
from tests.helpers.live import live_client

SHOTS = os.environ.get("MEDVIEW_SHOTS")


def _shot(page, name: str, full: bool = False) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full)


@pytest.fixture
def reader(browser, settings):
    yield from signed_in_page(browser, settings, "rita", "reviewer")


def _on(page, item_id: int) -> None:
    """Wait until review mode is ready on item `item_id` and its first pixels are drawn."""
    page.wait_for_function(
        "(id) => document.documentElement.dataset.drawnItem === String(id)"
        " && document.getElementById('review-bar')?.dataset.ready === '1'"
        " && document.getElementById('review-bar').dataset.itemId === String(id)", arg=item_id, timeout=15000)


def _swapped_to(page, item: dict, swaps: int) -> None:
    """The page shows `item` swapped in (no navigation): its URL, title, breadcrumb and side panel."""
    _on(page, item["id"])
    assert page.locator("#review-bar").get_attribute("data-swaps") == str(swaps)
    assert f"/items/{item['id']}?queue=" in page.url
    assert page.title().startswith(item["key"])
    assert page.locator("nav.crumbs span.mono").text_content() == item["key"]
    assert page.locator("aside.side h1.item-key").text_content() == item["key"]


def _prefetched(page, item_id: int) -> None:
    page.wait_for_selector(f"#review-bar[data-prefetched='{item_id}']", state="attached")


def test_keyboard_review_of_a_queue(reader, live_server, settings, ingested):
    rita = {"Authorization": f"Bearer {api_token(settings, 'rita', 'reviewer')}"}
    with live_client(live_server) as api:
        r = api.post("/api/review/queues", headers=rita, json={
            "name": "five lesions", "dataset_id": ingested.dataset_id, "filters": {}, "sort": "id", "limit": 5})
        assert r.status_code == 201, r.text
        qid = r.json()["id"]
        listed = api.get(f"/api/datasets/{ingested.dataset_id}/items", params={"sort": "id", "limit": 5}).json()
        items = [i["id"] for i in listed["items"]]
        keys = {i["id"]: i["key"] for i in listed["items"]}
    page = reader
    page.goto(f"{live_server}/review")
    assert page.locator("#review-queues tr[data-queue-id]").count() == 1
    _shot(page, "review-my-queues")
    page.goto(f"{live_server}/review/queues/{qid}/start")
    _on(page, items[0])
    assert page.locator("#review-queue-name").text_content() == "five lesions"
    assert "?queue=" in page.url  # the viewer keeps the queue in its URL

    _prefetched(page, items[1])
    page.keyboard.press("Shift+A")  # accept → the next item, swapped in
    _swapped_to(page, {"id": items[1], "key": keys[items[1]]}, 1)
    page.go_back()  # the previous item's URL: its page, loaded in full
    _on(page, items[0])
    assert page.locator("#review-bar").get_attribute("data-my-verdict") == "accept"
    page.go_forward()
    _on(page, items[1])
    assert page.locator("aside.side h1.item-key").text_content() == keys[items[1]]
    _prefetched(page, items[2])
    page.keyboard.press("Shift+R")  # reject
    _on(page, items[2])
    page.keyboard.press("Shift+C")  # comment: a box, Enter posts
    page.keyboard.type("margin unclear")
    _shot(page, "review-mode-mid-queue")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('review-status').textContent === 'comment posted'")
    page.keyboard.press("Shift+U")  # uncertain
    _on(page, items[3])
    page.keyboard.press("Shift+A")
    _on(page, items[4])
    page.keyboard.press("Shift+Z")  # undo my last verdict (accept on item 3): back there, now uncertain
    _on(page, items[3])
    assert page.locator("#review-bar").get_attribute("data-my-verdict") == "uncertain"
    page.keyboard.press("Shift+R")  # a new verdict on it → my next unread item
    _on(page, items[4])
    page.keyboard.press("Shift+P")  # previous: my item 3 with my verdict
    _on(page, items[3])
    assert page.locator("#review-bar").get_attribute("data-my-verdict") == "reject"
    page.keyboard.press("Shift+ArrowRight")  # next
    _on(page, items[4])
    # an edit saved here (the editor's event) turns the accept key into `corrected`
    page.evaluate("() => document.dispatchEvent(new CustomEvent('medview:annotation-saved', "
                  "{detail: {annotation: null, previous: null}}))")
    page.keyboard.press("Shift+A")  # the last one: the done panel
    page.wait_for_selector("#review-done")
    counts = {v: page.locator(f"#review-done dd[data-verdict={v}]").text_content()
              for v in ("accept", "reject", "uncertain", "corrected")}
    assert counts == {"accept": "1", "reject": "2", "uncertain": "1", "corrected": "1"}
    _shot(page, "review-done-panel")
    page.click("#review-sign-off")  # rita made the queue: she leads it
    page.wait_for_selector("#review-done .signed")
    page.goto(f"{live_server}/review")
    assert page.locator("tr[data-queue-id] .start").count() == 0  # nothing left, signed off
    _shot(page, "review-my-queues-done")

    with live_client(live_server) as api:
        state = api.get(f"/api/review/queues/{qid}/reader", headers=rita).json()
        assert [(m["item_id"], m["verdict"]) for m in state["mine"]] == list(zip(
            items, ["accept", "reject", "uncertain", "reject", "corrected"], strict=True))
        statuses = [api.get(f"/api/items/{i}").json()["review_status"] for i in items]
        assert statuses == ["accepted", "rejected", "in_review", "rejected", "corrected"]
        assert [c["text"] for c in api.get(f"/api/items/{items[2]}/comments").json()] == ["margin unclear"]
        assert state["queue"]["signed_off_by"] == "rita" and state["next"] is None


def _recist(cx: float, cy: float, half_long: float) -> dict:
    return {"long": [[cx - half_long, cy], [cx + half_long, cy]], "short": [[cx, cy - 4], [cx, cy + 4]]}


def test_queue_page_agreement_and_adjudication(page, live_server, settings, ingested):
    """Two readers read 6 items with RECIST readings: the queue page shows kappa, the Bland–Altman plot (a point per
    pair, the bias), the disputed items, and "Adjudication queue" makes the 1-reader queue of them."""
    heads = {name: {"Authorization": f"Bearer {api_token(settings, name, 'reviewer')}"} for name in ("rita", "rob")}
    half = {"rita": [20, 31, 15, 26, 40, 12], "rob": [19, 30, 18, 25, 37, 12]}
    verdicts = {"rita": ["accept", "reject", "accept", "accept", "corrected", "accept"],
                "rob": ["accept", "accept", "accept", "uncertain", "corrected", "accept"]}
    with live_client(live_server) as api:
        qid = api.post("/api/review/queues", json={
            "name": "double read", "dataset_id": ingested.dataset_id, "filters": {}, "sort": "id", "limit": 6,
            "readers_per_item": 2, "assignees": ["rita", "rob"]}).json()["id"]
        items = []
        for n in range(6):
            item_id = api.get(f"/api/review/queues/{qid}/next", headers=heads["rita"]).json()["item"]["id"]
            items.append(item_id)
            item = api.get(f"/api/items/{item_id}").json()
            origin = next(a["id"] for a in item["annotations"] if a["kind"] == "recist")
            for name in ("rita", "rob"):
                made = api.post(f"/api/items/{item_id}/annotations", headers=heads[name], json={
                    "kind": "recist", "geometry": _recist(150, 150, half[name][n]), "slice": item["slice"],
                    "meta": {"derived_from": origin}, "queue_id": qid})
                assert made.status_code == 201, made.text
                assert api.post(f"/api/items/{item_id}/reviews", headers=heads[name],
                                json={"verdict": verdicts[name][n], "queue_id": qid}).status_code == 201
        agreement = api.get(f"/api/review/queues/{qid}").json()["agreement"]
    page.goto(f"{live_server}/review/queues/{qid}")
    assert page.locator("svg.bland-altman circle.ba-point").count() == 6
    assert page.locator("#ba-bias").text_content() == f"{agreement['long_axis']['bias_mm']:+.2f} mm"
    assert page.locator("#kappa").text_content() == f"{agreement['kappa']:.3f}"
    assert page.locator("#disputed li").count() == 2
    _shot(page, "review-queue-agreement", full=True)
    page.click("#make-adjudication")
    page.wait_for_selector("h1:has-text('Adjudication: double read')")
    assert f"/review/queues/{qid}" not in page.url
    assert page.locator("#sign-off").count() == 0  # nobody has read the adjudication queue yet
    page.goto(f"{live_server}/review/queues/{qid}")  # the admin leads the complete queue: signs it off
    page.click("#sign-off")
    page.wait_for_selector("#signed-off")
    _shot(page, "review-queue-signed-off", full=True)


def test_review_queue_from_the_grid(page, live_server, settings, ingested):
    """"Review queue…" on the dataset page: the grid's filters and sort (first 3), then a built-in suggestion."""
    for name in ("rita", "rob"):
        api_token(settings, name, "reviewer")
    ds = ingested.dataset_id
    page.goto(f"{live_server}/datasets/{ds}?split=train&sort=-age")
    page.click("#review-queue-open")
    page.wait_for_selector("#review-queue-sources label.suggestion")  # the kind's suggestions that apply
    assert page.locator("#review-queue-sources label.suggestion").all_text_contents() == [
        " Lesions marked Possibly_noisy"]
    page.fill("#review-queue-limit", "3")
    page.select_option("#review-queue-readers", "2")
    page.fill("#review-queue-assignees", "rita, rob")
    _shot(page, "review-queue-dialog")
    page.click("#review-queue-create")
    page.wait_for_selector("#review-queue[data-queue-id]")
    qid = int(page.locator("#review-queue").get_attribute("data-queue-id"))
    with live_client(live_server) as api:
        queue = api.get(f"/api/review/queues/{qid}").json()
        grid = api.get(f"/api/datasets/{ds}/items", params={"split": "train", "sort": "-age", "limit": 3}).json()
        assert queue["filters"] == {"split": ["train"]} and queue["sort"] == "-age" and queue["readers_per_item"] == 2
        assert queue["assignees"] == ["rita", "rob"] and queue["progress"]["items"] == 3
        firsts = [api.get(f"/api/review/queues/{qid}/next", headers={
            "Authorization": f"Bearer {api_token(settings, 'rita', 'reviewer')}"}).json()["item"]["id"]]
        assert firsts == [grid["items"][0]["id"]]
    page.goto(f"{live_server}/datasets/{ds}")
    page.click("#review-queue-open")
    page.wait_for_selector("#review-queue-sources label.suggestion")
    page.check("#review-queue-sources label.suggestion input")
    assert page.input_value("#review-queue-name") == "sample: Lesions marked Possibly_noisy"
    page.click("#review-queue-create")
    page.wait_for_selector("h1:has-text('Possibly_noisy')")
    with live_client(live_server) as api:
        noisy = api.get(f"/api/datasets/{ds}/items", params={"noisy": "1", "limit": 100}).json()["total"]
        made = api.get("/api/review/queues").json()[0]
        assert made["filters"] == {"noisy": ["1"]} and made["progress"]["items"] == noisy > 0


def _to_page(page, x: float, y: float) -> tuple[float, float]:
    left, top, _, _ = page.evaluate("() => window.medviewViewer.paneBox(0)")
    sx, sy = page.evaluate("([x, y]) => window.medviewViewer.screen(0, x, y)", [x, y])
    return left + sx, top + sy


def _drag(page, points: list[list[float]]) -> None:
    page.mouse.move(*_to_page(page, *points[0]))
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(*_to_page(page, x, y), steps=5)
    page.mouse.up()


def _current(api, item_id: int, origin: dict) -> dict:
    """The current version of annotation `origin` (its lineage) on item `item_id`."""
    for a in api.get(f"/api/items/{item_id}").json()["annotations"]:
        first = api.get(f"/api/annotations/{a['id']}/history").json()[0]
        if a["kind"] == origin["kind"] and first["id"] == origin["id"]:
            return a
    raise AssertionError(f"no current version of annotation {origin['id']}")


def _queue(api, headers: dict, dataset_id: int, limit: int) -> tuple[int, list[dict]]:
    qid = api.post("/api/review/queues", headers=headers, json={
        "name": f"swap {dataset_id}", "dataset_id": dataset_id, "filters": {}, "sort": "id",
        "limit": limit}).json()["id"]
    listed = api.get(f"/api/datasets/{dataset_id}/items", params={"sort": "id", "limit": limit}).json()["items"]
    return qid, [api.get(f"/api/items/{i['id']}").json() for i in listed]


def test_edit_comment_and_brush_on_a_swapped_in_item(reader, live_server, settings, ingested, engine, tmp_path):
    """On the 2nd item of a queue, swapped in by the verdict: a RECIST drag saves a version of that item's
    annotation (and accept then records `corrected`), a comment lands on that item, a viewer key acts once (no
    listeners left over from the 1st item); on a BIS5k queue's 2nd item a brush stroke saves its mask."""
    rita = {"Authorization": f"Bearer {api_token(settings, 'rita', 'reviewer')}"}
    bis = ingest_path(engine, settings, generate_bis5k(tmp_path / "BIS5k", n_train=2, n_test=1, seed=3).root,
                      kind="bis5k", name="bis5k")
    with live_client(live_server) as api:
        qid, items = _queue(api, rita, ingested.dataset_id, 2)
        bqid, bitems = _queue(api, rita, bis.dataset_id, 2)
    page = reader
    page.goto(f"{live_server}/review/queues/{qid}/start")
    _on(page, items[0]["id"])
    _prefetched(page, items[1]["id"])
    page.keyboard.press("Shift+A")
    second = items[1]
    _swapped_to(page, second, 1)
    page.wait_for_function("() => window.medviewViewer.ready()")

    invert = page.evaluate("() => window.medviewViewer.state.invert")
    page.keyboard.press("i")  # one toggle: the first item's key listeners are gone
    assert page.evaluate("() => window.medviewViewer.state.invert") is not invert
    page.keyboard.press("i")

    recist = next(a for a in second["annotations"] if a["kind"] == "recist")
    page.keyboard.press("e")
    assert page.get_attribute("#edit-tool", "aria-pressed") == "true"
    _, b = recist["geometry"]["long"]
    target = [b[0] + 10, b[1] + 6]
    _drag(page, [b, target])
    page.wait_for_function("() => { const e = window.medviewViewer.editor(); "
                           "return e.pendingSaves === 0 && e.status.kind === 'saved'; }")
    page.fill("#comment-text", "re-measured after the swap")
    page.click("#comment-form button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#comment-list li').length === 1")
    _shot(page, "review-swapped-item-edited")
    with live_client(live_server) as api:
        mine = _current(api, second["id"], recist)
        assert mine["version"] == recist["version"] + 1 and mine["source"] == "user:rita"
        end = mine["geometry"]["long"][1]
        assert abs(end[0] - target[0]) <= 1 and abs(end[1] - target[1]) <= 1
        comments = api.get(f"/api/items/{second['id']}/comments").json()
        assert [c["text"] for c in comments] == ["re-measured after the swap"]
        assert api.get(f"/api/items/{items[0]['id']}/comments").json() == []
    page.keyboard.press("Shift+A")  # an edit was saved here: accept records corrected; nothing left → done
    page.wait_for_selector("#review-done")
    with live_client(live_server) as api:
        state = api.get(f"/api/review/queues/{qid}/reader", headers=rita).json()
        assert [(m["item_id"], m["verdict"]) for m in state["mine"]] == [
            (items[0]["id"], "accept"), (second["id"], "corrected")]

    page.goto(f"{live_server}/review/queues/{bqid}/start")  # BIS5k: a brush stroke on the swapped-in item
    _on(page, bitems[0]["id"])
    _prefetched(page, bitems[1]["id"])
    page.keyboard.press("Shift+U")
    _swapped_to(page, bitems[1], 1)
    page.wait_for_function("() => window.medviewViewer.ready()")
    before = next(a for a in bitems[1]["annotations"] if a["kind"] == "mask")
    page.keyboard.press("y")
    assert page.get_attribute("#brush-paint", "aria-pressed") == "true"
    w, h = bitems[1]["width"], bitems[1]["height"]
    _drag(page, [[w * 0.3, h * 0.5], [w * 0.5, h * 0.5], [w * 0.7, h * 0.5]])
    page.wait_for_function("() => Number(document.getElementById('viewport').dataset.brushSaves || 0) >= 1")
    _shot(page, "review-swapped-item-brushed")
    with live_client(live_server) as api:
        now = _current(api, bitems[1]["id"], before)
        assert now["version"] == before["version"] + 1
        assert now["source"] == "user:rita"
        first = next(a for a in api.get(f"/api/items/{bitems[0]['id']}").json()["annotations"] if a["kind"] == "mask")
        assert first["version"] == 1  # the first item's mask is untouched
