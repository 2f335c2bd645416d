"""Issue 14 in a real browser: a real ONNX classifier's predictions as badges on the PCam grid's cards (green
right, red wrong against the ground truth), the "predicted by" facet's counts, and clicking a value filters the
grid to the items predicted as that class. Screenshot: MEDVIEW_SHOTS or /tmp/shots-grid14/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.api import wait_finished
from tests.helpers.browser import settle_grid
from tests.helpers.live import live_client

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("MEDVIEW_SHOTS", "/tmp/shots-grid14"))
GREEN, RED = "rgb(18, 54, 31)", "rgb(74, 21, 24)"  # grid.css .pred-right / .pred-wrong backgrounds
CARDS = """() => [...document.querySelectorAll('#grid .card:not(.pending)')].map(c => {
  const b = c.querySelector('.pred-badge');
  return {id: Number(c.dataset.id), text: b.textContent, hidden: b.hidden, cls: b.className,
          background: getComputedStyle(b).backgroundColor};
})"""


@pytest.fixture
def ingested(pcam_ingested):
    return pcam_ingested


def predict_and_open(page, live_server: str, ds: int, model: int) -> tuple[dict, list]:  # noqa: ANN001
    """Run `model` over dataset `ds` as a job, then open its grid: (the items' JSON by id, the grid's cards)."""
    with live_client(live_server) as api:
        job = api.post("/api/jobs", json={"kind": "predict", "model_id": model, "dataset_id": ds})
        assert wait_finished(api, job.json()["id"])["status"] == "done"
        items = {i["id"]: i for i in api.get(f"/api/datasets/{ds}/items",
                                              params={"limit": 500, "model": model}).json()["items"]}
    page.goto(f"{live_server}/datasets/{ds}")
    settle_grid(page)
    cards = page.evaluate(CARDS)
    assert len(cards) == len(items)
    return items, cards


def test_badges_colours_and_predicted_facet(page, live_server, ingested, pcam_model):
    ds, model = ingested.dataset_id, pcam_model["id"]
    items, cards = predict_and_open(page, live_server, ds, model)
    for card in cards:
        badge = items[card["id"]]["prediction"]
        assert not card["hidden"] and card["text"].startswith(badge["label"])
        assert f"{badge['probability']:.2f}" in card["text"]
        assert card["background"] == {"right": GREEN, "wrong": RED}[badge["verdict"]], card
    assert {c["background"] for c in cards} == {GREEN, RED}, "the sample has right and wrong predictions"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "pcam-predictions.png"))
    facet = page.locator(f'.facet[data-field="pred:{model}"]')
    assert "predicted by pcam-baseline" in facet.locator("h3").text_content()
    counts = {name: sum(i["prediction"]["label"] == name for i in items.values()) for name in ("normal", "tumor")}
    for name, n in counts.items():
        assert int(facet.locator(f'.facet-value[data-value="{name}"]').get_attribute("data-count")) == n
    label = min((n, name) for name, n in counts.items() if n)[1]  # the rarer predicted class
    facet.locator(f'.facet-value[data-value="{label}"]').click()
    page.wait_for_url(f"**pred%3A{model}={label}**")
    settle_grid(page)
    cards = page.evaluate(CARDS)
    assert len(cards) == counts[label] and all(c["text"].startswith(label) for c in cards)
    page.screenshot(path=str(SHOTS / "pcam-predicted-filtered.png"))
    # "none" in the Predictions menu hides the badges
    page.select_option("#model-select", "")
    page.wait_for_url("**model=**")
    settle_grid(page)
    assert all(c["hidden"] for c in page.evaluate(CARDS))


def test_segmenter_dice_badges(page, live_server, engine, settings, tmp_path):
    from app.datasets.bis5k.synth import generate_bis5k
    from app.datasets.ingest import ingest_path
    from tests.helpers.api import register
    from tests.helpers.bis5k import GAIN, SIZE, THRESHOLD, card
    from tests.onnx_models import threshold_segmenter

    sample = generate_bis5k(tmp_path / "bis5k", n_train=4, n_test=2, seed=4)
    ds = ingest_path(engine, settings, sample.root, kind="bis5k", name="bis").dataset_id
    with live_client(live_server) as api:
        model = register(api, threshold_segmenter(tmp_path / "seg.onnx", (SIZE, SIZE), THRESHOLD, GAIN),
                         card()).json()["id"]
    items, cards = predict_and_open(page, live_server, ds, model)
    for c in cards:
        badge = items[c["id"]]["prediction"]
        assert c["text"] == f"Dice {badge['dice']:.2f}" and f"pred-{badge['verdict']}" in c["cls"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "bis5k-dice-badges.png"))
