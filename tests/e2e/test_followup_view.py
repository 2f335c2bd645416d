"""The follow-up page in chromium (issue 14): two DICOM studies of one patient, prior | current. Both panes draw;
linked, a W/L drag on the prior changes the current's W/L, a wheel on the current moves the prior to the slice
nearest the same height in mm, and zoom is shared in screen pixels per mm; unlinked, none of that crosses over.
Then DeepLesion key slices of one lesion track: RECIST drawn, slices linked by the offset from each key slice."""

from __future__ import annotations

import pytest

from app.datasets.ingest import ingest_path
from tests.api.test_followup_pages import two_studies
from tests.helpers.live import live_get

pytestmark = pytest.mark.browser

IDLE = "window.medviewFollowup && window.medviewFollowup.ready()"  # drawn, nothing loading
READY = f"() => {IDLE}"
PANES = "() => window.medviewFollowup.panes()"


def wl_text(page, role: str) -> str:
    return page.inner_text(f'.pane[data-side="{role}"] .wl-readout')


def centre(page, n: int) -> tuple[float, float]:
    x, y, w, h = page.evaluate("(n) => window.medviewFollowup.paneBox(n)", n)
    return x + w / 2, y + h / 2


def test_linked_window_slice_and_zoom_then_unlinked(page, live_server, engine, settings, tmp_path, ingested):
    two_studies(tmp_path / "fu")
    ds = ingest_path(engine, settings, tmp_path / "fu", kind="dicom", name="followup").dataset_id
    items = live_get(f"{live_server}/api/datasets/{ds}/items", params={"limit": 10}).json()["items"]
    ids = {live_get(f"{live_server}/api/items/{i['id']}").json()["meta"]["series_description"]: i["id"] for i in items}
    page.goto(f"{live_server}/items/{ids['AX ABD 3mm']}/followup?prior={ids['AX ABD 5mm']}")
    page.wait_for_function(READY)

    prior, current = page.evaluate(PANES)
    assert (prior["role"], current["role"]) == ("prior", "current")
    # the prior opens at the slice nearest the current's height: z = 200 + 5 k against 190 + 3 × 7 = 211
    assert current["slice"] == 7 and current["position"] == pytest.approx(211)
    assert prior["slice"] == 2 and prior["position"] == pytest.approx(210)
    for n in (0, 1):  # both canvases show the phantom: soft tissue grey in the middle, not black
        grey = page.evaluate("(n) => window.medviewFollowup.pixel(n, 32, 32)", n)
        assert 40 < grey[0] < 250, grey

    # W/L: a drag on the prior sets both windows
    assert wl_text(page, "current") == wl_text(page, "prior") == "W 400  L 40 HU"
    x, y = centre(page, 0)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y + 30, steps=4)
    page.mouse.up()
    page.wait_for_function(f"() => {IDLE} && window.medviewFollowup.panes()[1].window[1] - "
                           "window.medviewFollowup.panes()[1].window[0] !== 400")
    assert wl_text(page, "current") == wl_text(page, "prior") != "W 400  L 40 HU"
    assert " HU · x " in page.inner_text('.pane[data-side="prior"] .corner.bc')  # the value under the pointer

    # slice: a wheel notch on the current moves the prior to the nearest slice in mm
    x1, y1 = centre(page, 1)
    page.mouse.move(x1, y1)
    page.mouse.wheel(0, 100)
    page.wait_for_function(f"() => {IDLE} && window.medviewFollowup.panes()[1].slice === 8")
    prior, current = page.evaluate(PANES)
    assert current["position"] == pytest.approx(214) and prior["slice"] == 3  # 214 mm → (214 − 200) / 5 = 2.8

    # zoom: "+" on the current; both panes show the same screen pixels per mm
    before = current["scale"]
    page.click("#zoom-in")
    page.wait_for_function(f"(s) => {IDLE} && window.medviewFollowup.panes()[1].scale > s * 1.2", arg=before)
    prior, current = page.evaluate(PANES)
    assert prior["scale"] == pytest.approx(current["scale"])
    page.screenshot(path=str(tmp_path / "followup.png"))

    # unlinked: each pane on its own
    page.click("#link-toggle")
    assert page.get_attribute("#link-toggle", "aria-pressed") == "false"
    left_wl, right_wl = wl_text(page, "prior"), wl_text(page, "current")
    right_px = page.evaluate("(n) => window.medviewFollowup.pixel(n, 32, 32)", 1)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 40, y - 40, steps=4)
    page.mouse.up()
    page.wait_for_function(f"(t) => {IDLE} && document.querySelector('.pane[data-side=prior] .wl-readout')"
                           ".textContent !== t", arg=left_wl)
    assert wl_text(page, "current") == right_wl
    assert page.evaluate("(n) => window.medviewFollowup.pixel(n, 32, 32)", 1) == right_px
    page.mouse.move(x1, y1)
    page.mouse.wheel(0, 100)
    page.wait_for_function(f"() => {IDLE} && window.medviewFollowup.panes()[1].slice === 9")
    assert page.evaluate(PANES)[0]["slice"] == 3
    page.click("#zoom-in")
    page.wait_for_function(f"() => {IDLE} && window.medviewFollowup.panes()[1].scale > "
                           "window.medviewFollowup.panes()[0].scale * 1.2")

    # DeepLesion key slices (the live server's sample): linked by the offset from each key slice, RECIST drawn
    pid = live_get(f"{live_server}/api/items/1").json()["patient"]
    data = live_get(f"{live_server}/api/datasets/{ingested.dataset_id}/patients/{pid}").json()
    order = [s["study"] for s in data["studies"]]
    track = next(t for t in data["tracks"] if len(t["by_study"]) >= 2)
    (_, before), (_, after) = sorted(track["by_study"].items(), key=lambda kv: order.index(kv[0]))[:2]
    page.goto(f"{live_server}/items/{after['item_id']}/followup?prior={before['item_id']}")
    page.wait_for_function(READY)
    keys = [p["slice"] for p in page.evaluate(PANES)]
    assert page.locator('.pane[data-side="prior"] .pane-svg line[data-id="long"]').count() >= 1
    x0, y0 = centre(page, 0)
    page.mouse.move(x0, y0)
    page.mouse.wheel(0, 100)
    page.wait_for_function(f"(k) => {IDLE} && window.medviewFollowup.panes()[0].slice === k + 1", arg=keys[0])
    assert page.evaluate(PANES)[1]["slice"] == keys[1] + 1
    assert "key +1" in page.inner_text('.pane[data-side="current"] .corner.br')
