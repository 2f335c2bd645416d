"""A prediction that outlives MEDVIEW_PREDICT_WAIT_SECONDS: the endpoint answers 202 and stores it when done;
the item page says it is running, polls, and shows the bars once it is stored."""

from __future__ import annotations

import pytest

from tests.helpers import pcam
from tests.helpers.api import register
from tests.helpers.browser import bar_widths
from tests.helpers.live import live_client
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def ingested(pcam_ingested):
    """The live server serves the PCam sample (tests/e2e/conftest.py), not the DeepLesion one."""
    return pcam_ingested


@pytest.fixture
def settings(make_settings):
    return make_settings(predict_wait_seconds=1e-6)  # no prediction is that fast (the slow model least of all): 202


@pytest.fixture
def slow_model(live_server, tmp_path) -> dict:
    """A real classifier that takes a noticeable time per item: the 202 does not depend on the scheduling."""
    with live_client(live_server) as api:
        r = register(api, pcam.slow_classifier_onnx(tmp_path / "slow.onnx"), pcam.card_yaml(name="slow"))
    assert r.status_code == 201, r.text
    return r.json()


def test_a_long_prediction_answers_202_and_is_stored(live_server, ingested, slow_model):
    with live_client(live_server) as api:
        item = api.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]
        r = api.post(f"/api/items/{item['id']}/predict", json={"model_id": slow_model["id"]})
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "running" and f"GET /api/items/{item['id']}" in r.json()["detail"]
        stored = wait_until(lambda: api.get(f"/api/items/{item['id']}").json()["predictions"], 20,
                            "the prediction to be stored")
        assert [p["model_id"] for p in stored] == [slow_model["id"]]
        assert len(stored[0]["outputs"]["probabilities"]) == 2
        missing = api.post(f"/api/items/{item['id']}/predict", json={"model_id": 9999})
        assert missing.status_code == 404 and "9999" in missing.json()["detail"]  # refused before any wait


def test_item_page_waits_for_a_202_prediction(page, live_server, ingested, slow_model):
    with live_client(live_server) as api:
        item = api.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]
    page.goto(f"{live_server}/items/{item['id']}")
    with page.expect_response(lambda r: r.url.endswith("/predict")) as info:
        page.click("#run-model-button")
    assert info.value.status == 202
    page.wait_for_selector("#prediction-list .prediction .prob-bar", timeout=20000)
    with live_client(live_server) as api:
        stored = api.get(f"/api/items/{item['id']}").json()["predictions"][0]["outputs"]["probabilities"]
    for w, p in zip(bar_widths(page), stored, strict=True):
        assert abs(w - p) <= 0.02
    assert page.locator("#predict-error").is_hidden()
