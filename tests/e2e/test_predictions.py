"""The item page's Run model control in a real browser: a PCam patch through a real ONNX classifier, the
probability bars against the API's probabilities, and the stored prediction shown again after a reload."""

from __future__ import annotations

import pytest

from tests.helpers.browser import bar_widths
from tests.helpers.live import live_client

pytestmark = pytest.mark.browser


@pytest.fixture
def ingested(pcam_ingested):
    """The live server serves the PCam sample (tests/e2e/conftest.py), not the DeepLesion one."""
    return pcam_ingested


def test_run_model_shows_probability_bars(page, live_server, ingested, pcam_model):
    with live_client(live_server) as api:
        item = api.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]
    page.goto(f"{live_server}/items/{item['id']}")
    assert page.locator("#prediction-list .prediction").count() == 0
    with page.expect_response(lambda r: r.url.endswith(f"/api/items/{item['id']}/predict")) as info:
        page.click("#run-model-button")
    body = info.value.json()
    probabilities = body["outputs"]["probabilities"]
    page.wait_for_selector("#prediction-list .prediction .prob-bar")
    widths = bar_widths(page)
    assert len(widths) == len(probabilities) == 2
    for w, p in zip(widths, probabilities, strict=True):
        assert abs(w - p) <= 0.02
    top = max(range(2), key=lambda i: probabilities[i])
    rows = page.locator("#prediction-list .prob-row")
    assert "predicted" in rows.nth(top).get_attribute("class")
    assert "predicted" not in rows.nth(1 - top).get_attribute("class")
    verdict = page.locator("#prediction-list .verdict")
    assert verdict.get_attribute("data-correct") == str(body["metrics"]["correct"]).lower()
    assert ("✓" if body["metrics"]["correct"] else "✗") in verdict.inner_text()

    page.reload()
    page.wait_for_selector("#prediction-list .prediction .prob-bar")
    assert page.locator("#prediction-list .prediction").count() == 1
    for w, p in zip(bar_widths(page), probabilities, strict=True):
        assert abs(w - p) <= 0.02
    assert page.locator("#prediction-count").inner_text() == "1"


def test_run_model_error_shows_detail(page, live_server, ingested, pcam_model):
    with live_client(live_server) as api:
        item = api.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]
    page.goto(f"{live_server}/items/{item['id']}")
    # the model is gone after the page was rendered: the API's 404 detail is shown
    page.evaluate("document.querySelector('#run-model-select option').value = '999'")
    page.click("#run-model-button")
    error = page.locator("#predict-error")
    error.wait_for(state="visible")
    assert "model 999 not found" in error.inner_text()


def test_dataset_page_runs_a_job_on_the_selection_with_live_progress(page, live_server, ingested, pcam_model):
    """Ctrl-click two cards, Start job: the job covers exactly those items, its row shows progress to done with
    an evaluation link, and the stored predictions are those two items' — then a job over all matching items."""
    page.goto(f"{live_server}/datasets/{ingested.dataset_id}?split=train")
    page.wait_for_function("() => window.medviewGrid && document.querySelectorAll('.card[data-id]').length >= 4")
    page.evaluate("document.getElementById('dataset-jobs').open = true")
    cards = page.locator(".card[data-id]")
    chosen = sorted(int(cards.nth(i).get_attribute("data-id")) for i in (0, 2))
    cards.nth(0).click(modifiers=["Control"])
    cards.nth(2).click(modifiers=["Control"])
    assert page.inner_text("#jobs-scope") == "on the 2 selected items"
    page.click("#jobs-start")
    row = page.locator(".job").first
    page.wait_for_function("() => document.querySelector('.job')?.dataset.status === 'done'", timeout=30000)
    assert "2 / 2 · done" in row.inner_text() and "pcam-baseline" in row.inner_text()
    assert row.locator("a", has_text="Evaluation").get_attribute("href") == \
        f"/models/{pcam_model['id']}/evaluation?dataset_id={ingested.dataset_id}"
    assert float(row.locator("progress").get_attribute("value")) == 2
    with live_client(live_server) as api:
        predicted = [i["id"] for i in api.get(f"/api/datasets/{ingested.dataset_id}/items",
                                               params={"limit": 100}).json()["items"]
                     if api.get(f"/api/items/{i['id']}").json()["predictions"]]
        job = api.get("/api/jobs", params={"dataset_id": ingested.dataset_id}).json()[0]
    assert predicted == chosen
    assert job["params"]["filters"] == {"split": ["train"], "id": [str(i) for i in chosen]}

    page.keyboard.press("Escape")  # clear the selection: the next job takes every item matching the filters
    assert page.inner_text("#jobs-scope") == "on the 6 items matching the filters"
    page.click("#jobs-start")
    page.wait_for_function("() => document.querySelectorAll('.job').length === 2 && "
                           "document.querySelector('.job').dataset.status === 'done'", timeout=30000)
    assert "6 / 6 · done" in page.locator(".job").first.inner_text()
    page.reload()  # the page lists the dataset's jobs again after a reload
    assert page.locator(".job").count() == 2
