"""The virtualised grid in a real browser on a 20,000-patch PCam: the DOM stays bounded while scrolling, a jump to the
middle and to the end shows the right items (checked against the API), filters and sort change the list and the live
facet counts, multi-select counts and exports what was selected; screenshots are checked for non-blank pixels."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from app.datasets.ingest import ingest_path
from app.datasets.pcam.synth import make_large_pcam
from tests.helpers.browser import AT_BOTTOM, settle_grid
from tests.helpers.live import live_client

pytestmark = pytest.mark.browser

N_TRAIN, N_VALID, N_TEST = 19_456, 256, 288
TOTAL = N_TRAIN + N_VALID + N_TEST
MAX_CARDS = 200  # what a 1400×900 viewport plus buffer rows may hold


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pcam-big") / "pcam"
    make_large_pcam(root, n_train=N_TRAIN, n_valid=N_VALID, n_test=N_TEST, pool=16, n_slides=6)
    return root


@pytest.fixture
def api(live_server):
    with live_client(live_server) as client:
        yield client


@pytest.fixture
def big_id(live_server, engine, settings, big_tree) -> int:
    return ingest_path(engine, settings, big_tree, kind="pcam", name="pcam-big").dataset_id


def shown(page) -> list[tuple[int, int]]:
    """(position, id) of the loaded cards in the DOM."""
    return [(int(p), int(i)) for p, i in page.locator("#grid .card:not(.pending)").evaluate_all(
        "cs => cs.map(c => [c.dataset.pos, c.dataset.id])")]


def settle(page) -> None:
    settle_grid(page, timeout=15000)


def press_end(page) -> None:
    """The End key scrolls to the bottom of the page (smoothly, over some frames)."""
    page.keyboard.press("End")
    page.wait_for_function(AT_BOTTOM)


def grid_std(page) -> float:
    """Grey-level spread of the viewport right of the facet sidebar (a blank page is ~0)."""
    pixels = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("L"), np.float64)
    return float(pixels[:, 260:].std())


def test_scroll_jump_and_end_keep_the_dom_bounded(page, live_server, big_id, api):
    page.goto(f"{live_server}/datasets/{big_id}")
    settle(page)
    first = shown(page)
    assert first[0] == (0, api.get(f"/api/datasets/{big_id}/items?limit=1").json()["items"][0]["id"])
    assert page.locator("#grid .card").count() < MAX_CARDS
    assert grid_std(page) > 5
    # the grid is as tall as every row: the scrollbar spans all 20,000 items
    assert page.evaluate("document.getElementById('grid').offsetHeight") > TOTAL / 10 * 150
    # drag to the middle: the cards there are the items at those positions
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight / 2)")
    settle(page)
    middle = shown(page)
    assert middle and 0.4 * TOTAL < middle[0][0] < 0.6 * TOTAL
    assert page.locator("#grid .card").count() < MAX_CARDS
    start = middle[0][0]
    expected = [i["id"] for i in api.get(f"/api/datasets/{big_id}/items",
                                         params={"offset": start, "limit": len(middle)}).json()["items"]]
    assert [i for _, i in middle] == expected
    # small scrolls from there follow cursors (no gaps, no repeats)
    for _ in range(5):
        page.evaluate("window.scrollBy(0, 400)")
    settle(page)
    after = shown(page)
    assert [p for p, _ in after] == list(range(after[0][0], after[0][0] + len(after)))
    # the end: the last card is the last item
    press_end(page)
    settle(page)
    end = shown(page)
    assert end[-1][0] == TOTAL - 1
    last = api.get(f"/api/datasets/{big_id}/items", params={"offset": TOTAL - 1}).json()["items"][0]["id"]
    assert end[-1][1] == last
    # "Go to #": the requested position is on screen
    page.fill("#jump-input", "12345")
    page.dispatch_event("#jump-input", "change")
    settle(page)
    assert 12344 in [p for p, _ in shown(page)]
    assert page.locator("#grid .card").count() < MAX_CARDS
    page.screenshot(path="/tmp/test-grid-scale-jump.png")


def test_filters_sort_and_live_counts(page, live_server, big_id, api):
    page.goto(f"{live_server}/datasets/{big_id}")
    settle(page)
    page.locator('.facet-value[data-field="split"][data-value="valid"]').click()
    page.wait_for_url(re.compile(r"split=valid"))
    settle(page)
    assert int(page.get_attribute("#total", "data-total")) == N_VALID
    live = api.get(f"/api/datasets/{big_id}/facets", params={"split": "valid"}).json()["facets"]
    for value, n in live["label"].items():
        assert int(page.get_attribute(f'.facet-value[data-field="label"][data-value="{value}"]', "data-count")) == n
    # other splits keep their own (disjunctive) counts, so they can be added
    assert int(page.get_attribute('.facet-value[data-field="split"][data-value="train"]', "data-count")) == N_TRAIN
    page.select_option("#sort-select", "-label")
    page.wait_for_url(re.compile(r"sort=-label"))
    settle(page)
    labels = page.locator("#grid .card:not(.pending) .card-label").all_inner_texts()
    assert labels[0] == "tumor"
    expected = [i["id"] for i in api.get(f"/api/datasets/{big_id}/items",
                                         params={"split": "valid", "sort": "-label", "limit": 20}).json()["items"]]
    assert [i for _, i in shown(page)][:20] == expected
    # scrolling to the end of a sorted, filtered list reaches its last item
    press_end(page)
    settle(page)
    assert shown(page)[-1][0] == N_VALID - 1
    assert page.locator("#grid .card:not(.pending) .card-label").last.inner_text() == "normal"


def test_multi_select_counts_and_exports(page, live_server, big_id):
    page.goto(f"{live_server}/datasets/{big_id}?label=1")
    settle(page)
    assert page.is_hidden("#selection-bar")
    cards = page.locator("#grid .card:not(.pending)")
    a, b, c = (int(cards.nth(k).get_attribute("data-id")) for k in (0, 3, 9))
    cards.nth(0).click(modifiers=["Control"])
    cards.nth(3).click(modifiers=["Control"])
    assert page.inner_text("#selection-count") == "2"
    assert page.locator("#grid .card.selected").count() == 2
    assert page.url.endswith("label=1")  # ctrl-click selects, it does not open the item
    cards.nth(9).click(modifiers=["Shift"])  # range from the last clicked card
    assert page.inner_text("#selection-count") == "8"
    page.click("#select-copy")
    chosen = json.loads(page.input_value("#selection-json"))
    assert chosen["dataset_id"] == big_id and chosen["filters"] == {"label": ["1"]}
    assert chosen["ids"][:2] == [a, b] and c in chosen["ids"] and chosen["count"] == 8
    total = int(page.get_attribute("#total", "data-total"))
    page.click("#select-all")
    assert page.inner_text("#selection-count") == f"{total:,}"
    cards.nth(1).click(modifiers=["Control"])  # deselect one of "all matching"
    assert page.inner_text("#selection-count") == f"{total - 1:,}"
    chosen = json.loads(page.input_value("#selection-json"))
    assert chosen["all_matching"] is True and len(chosen["exclude_ids"]) == 1
    page.screenshot(path="/tmp/test-grid-scale-select.png")
    assert grid_std(page) > 5
    page.keyboard.press("Escape")
    assert page.is_hidden("#selection-bar")
