"""The grid's "More like this" in a real browser: one ctrl-clicked card → the grid filtered to its nearest items
(`similar=`), in the API's /similar order, with the chip that removes the filter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.api import wait_finished
from tests.helpers.live import live_client
from tests.helpers.pcam import register_embedder

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-lesions")


@pytest.fixture
def ingested(pcam_ingested):
    return pcam_ingested


def test_grid_more_like_this(page, live_server, ingested, tmp_path):
    ds = ingested.dataset_id
    with live_client(live_server) as api:
        model_id = register_embedder(api, tmp_path, "grid-embedder")
        job = api.post("/api/jobs", json={"kind": "predict", "model_id": model_id, "dataset_id": ds})
        assert wait_finished(api, job.json()["id"])["status"] == "done"
        page.goto(f"{live_server}/datasets/{ds}")
        page.wait_for_selector("#grid.virtual .card[data-id]")
        picked = int(page.locator("#grid .card[data-id] >> nth=3").get_attribute("data-id"))
        expected = [x["id"] for x in api.get(f"/api/items/{picked}/similar",
                                             params={"model": model_id, "k": 200}).json()["items"]]
    button = page.locator("#more-like-this")
    assert button.is_hidden()
    page.locator("#grid .card[data-id] >> nth=3").click(modifiers=["Control"])
    button.wait_for(state="visible")
    button.click()
    page.wait_for_url(re.compile(rf"similar={picked}&similar_model={model_id}"))
    page.wait_for_selector("#grid.virtual .card[data-id]")
    chip = page.locator("#similar-chip")
    assert f"similar to item {picked}" in " ".join(chip.text_content().split())
    page.wait_for_function("n => document.querySelectorAll('#grid .card[data-id]').length >= n",
                           arg=min(len(expected), 10))
    shown = [int(x) for x in page.eval_on_selector_all("#grid .card[data-id]", "cs => cs.map(c => c.dataset.id)")]
    assert shown == expected[:len(shown)] and len(shown) >= min(len(expected), 10)
    page.wait_for_function("() => [...document.querySelectorAll('#grid img')].every(i => i.complete)")
    page.screenshot(path=str(SHOTS / "grid-similar.png"))
    chip.click()
    page.wait_for_url(re.compile(rf"/datasets/{ds}\??$"))
    assert page.locator("#similar-chip").count() == 0
