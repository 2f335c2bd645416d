"""The few-shot page of an embedding model in a real browser: "Draw curve" draws the API's label curve (one dot
per point, the table of means), "Train classifier" registers a classifier (POST with the CSRF header) and links to
its evaluation, and "Review uncertain first" makes an uncertainty-ordered review queue and links to it.
Screenshots go to MEDVIEW_SHOTS_DIR when set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.helpers.api import wait_finished
from tests.helpers.live import live_client
from tests.helpers.pcam import register_embedder

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("MEDVIEW_SHOTS_DIR")


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


@pytest.fixture
def ingested(pcam_ingested):
    return pcam_ingested


def test_train_and_see_the_curve(page, live_server, ingested, tmp_path):
    with live_client(live_server) as api:
        embed_id = register_embedder(api, tmp_path)
        job = api.post("/api/jobs", json={"kind": "predict", "model_id": embed_id, "dataset_id": ingested.dataset_id})
        assert wait_finished(api, job.json()["id"])["status"] == "done"
        expected = api.get(f"/api/models/{embed_id}/fewshot-curve",
                           params={"dataset_id": ingested.dataset_id, "draws": 3}).json()
    page.goto(f"{live_server}/models")
    page.click(f"tr[data-model-id='{embed_id}'] a.fewshot-link")
    page.wait_for_url(f"**/models/{embed_id}/fewshot")
    page.fill("#fewshot-curve-form input[name=draws]", "3")
    page.click("#fewshot-curve-run")
    page.wait_for_selector("#fewshot-curve svg circle.curve-dot")
    assert page.locator("#fewshot-curve circle.curve-dot").count() == len(expected["points"]) >= 1
    means = page.eval_on_selector_all("#fewshot-curve-table tbody tr td:nth-child(2)",
                                      "ts => ts.map(t => t.textContent)")
    assert means == [f"{p['mean']:.3f}" for p in expected["points"]]

    page.fill("#fewshot-train-form input[name=per_class]", "1")
    page.select_option("#fewshot-train-form select[name=method]", "svm")
    page.click("#fewshot-train-run")
    link = page.wait_for_selector("#fewshot-new-evaluation")
    assert "Registered pcam-embedder-fewshot-svm-1" in page.text_content("#fewshot-train-status")
    # the "Trained on" list shows the new classifier without a reload
    expect(page.locator("#fewshot-trained tbody tr a")).to_have_text(["pcam-embedder-fewshot-svm-1"])
    page.click("#fewshot-trained button.uncertainty-queue")  # the swapped-in row's button works
    expect(page.locator("#fewshot-trained .queue-status a")).to_contain_text("items)")
    _shot(page, "fewshot-page.png")
    link.click()
    page.wait_for_url("**/evaluation?dataset_id=*")
    assert page.text_content("#metric-n").strip() == str(len(ingested_ids(live_server, ingested.dataset_id)) - 2)

    page.goto(f"{live_server}/models/{embed_id}/fewshot?dataset_id={ingested.dataset_id}")
    page.click("#fewshot-trained button.uncertainty-queue")
    queue_link = page.wait_for_selector("#fewshot-trained .queue-status a")
    assert "items)" in queue_link.text_content()
    _shot(page, "fewshot-page-queue.png")
    queue_link.click()
    page.wait_for_url("**/review/queues/*")


def ingested_ids(live_server: str, dataset_id: int) -> list[int]:
    with live_client(live_server) as api:
        return [i["id"] for i in api.get(f"/api/datasets/{dataset_id}/items", params={"limit": 100}).json()["items"]]
