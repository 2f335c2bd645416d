"""Review mode on items with stored predictions (a registered PCam classifier): the verdict still swaps the next
item in place, and the swapped-in side panel lists *that* item's prediction (static/js/predictions.js binds to the
new panel on `medview:item-swapped`) — a dataset with models is the common case, so it must not fall back to a full
page load."""

from __future__ import annotations

import pytest

from tests.e2e.test_review_mode import _on, _prefetched, reader  # noqa: F401  (the reviewer's page fixture)
from tests.helpers.auth import api_token
from tests.helpers.browser import bar_widths
from tests.helpers.live import live_client

pytestmark = pytest.mark.browser


@pytest.fixture
def ingested(pcam_ingested):
    """The live server serves the PCam sample (tests/e2e/conftest.py)."""
    return pcam_ingested


def test_a_verdict_swaps_in_the_next_item_with_its_predictions(reader, live_server, settings, ingested,  # noqa: F811
                                                               pcam_model):
    rita = {"Authorization": f"Bearer {api_token(settings, 'rita', 'reviewer')}"}
    with live_client(live_server) as api:
        listed = api.get(f"/api/datasets/{ingested.dataset_id}/items", params={"sort": "id", "limit": 3}).json()
        items = [i["id"] for i in listed["items"]]
        probabilities = {}
        for item_id in items:
            r = api.post(f"/api/items/{item_id}/predict", json={"model_id": pcam_model["id"]})
            assert r.status_code == 200, r.text
            probabilities[item_id] = r.json()["outputs"]["probabilities"]
        r = api.post("/api/review/queues", headers=rita, json={
            "name": "patches", "dataset_id": ingested.dataset_id, "filters": {}, "sort": "id", "limit": 3})
        assert r.status_code == 201, r.text
        qid = r.json()["id"]
    page = reader
    page.goto(f"{live_server}/review/queues/{qid}/start")
    _on(page, items[0])
    page.wait_for_selector("#prediction-list .prediction .prob-bar")
    _prefetched(page, items[1])
    page.keyboard.press("Shift+A")
    _on(page, items[1])
    assert page.locator("#review-bar").get_attribute("data-swaps") == "1"  # swapped, not navigated
    page.wait_for_selector("#prediction-list .prediction .prob-bar")
    assert page.locator("#prediction-list .prediction").count() == 1
    for w, p in zip(bar_widths(page), probabilities[items[1]], strict=True):
        assert abs(w - p) <= 0.02
    assert page.locator("#prediction-count").inner_text() == "1"
