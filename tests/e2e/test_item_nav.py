"""Next / previous on the item page follow the grid it was opened from: open an item from a filtered, sorted
grid, press `.` twice and `,` once, and land on the right items in the grid's order, with "n of N" shown."""

from __future__ import annotations

import re

import pytest

from tests.helpers.live import live_client

pytestmark = pytest.mark.browser
SHOTS = "/tmp/shots-research"


def test_next_previous_follow_the_grid_filter_and_sort(page, live_server, ingested):
    ds = ingested.dataset_id
    query = {"split": ["train", "test"], "sort": "-key"}
    with live_client(live_server) as api:
        order = [i["id"] for i in api.get(f"/api/datasets/{ds}/items", params={**query, "limit": 500}).json()["items"]]
    assert len(order) >= 4
    page.goto(f"{live_server}/datasets/{ds}?split=train&split=test&sort=-key")
    first = page.locator(f'#grid a.card[data-id="{order[0]}"]')
    first.wait_for()
    first.click()
    page.wait_for_url(re.compile(rf"/items/{order[0]}\?list="))
    page.locator("#item-nav[data-ready='1']").wait_for()
    assert page.locator("#item-nav-position").inner_text() == "1"
    assert page.locator("#item-nav-total").inner_text() == f"{len(order):,}"
    assert page.locator("#item-nav-prev").get_attribute("aria-disabled") == "true"
    for n in (1, 2):
        page.keyboard.press(".")
        page.wait_for_url(re.compile(rf"/items/{order[n]}\?list="))
        page.locator("#item-nav[data-ready='1']").wait_for()
        assert page.locator("#item-nav-position").inner_text() == str(n + 1)
    page.screenshot(path=f"{SHOTS}/item_nav.png")
    page.keyboard.press(",")
    page.wait_for_url(re.compile(rf"/items/{order[1]}\?list="))
    page.locator("#item-nav[data-ready='1']").wait_for()
    back = page.locator("#item-nav-grid").get_attribute("href") or ""
    assert "split=train&split=test" in back and "sort=-key" in back

    # opened without a grid (a link, review mode): no list, no bar at all (not an empty "of in the grid")
    page.goto(f"{live_server}/items/{order[1]}")
    page.wait_for_function("() => document.documentElement.dataset.drawnItem !== undefined")
    assert page.locator("#item-nav").count() == 1 and not page.locator("#item-nav").is_visible()
