"""The item page's "More like this" panel in a real browser: a real ONNX embedder over the PCam sample, the
listed items and scores equal to the API's answer, each a thumbnail linking to its item; and the API's detail
shown when the item has no vector yet."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers.api import register, wait_finished
from tests.helpers.live import live_client
from tests.helpers.pcam import MEAN, SCALE, STD
from tests.onnx_models import projection_embedder

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-embed15")


@pytest.fixture
def ingested(pcam_ingested):
    return pcam_ingested


@pytest.fixture
def embedder(live_server, tmp_path) -> int:
    card = {"name": "pcam-embedder", "task": "embed", "input": {"size": [96, 96], "channels": 3, "scale": SCALE,
            "mean": MEAN, "std": STD}, "output": {"kind": "embedding"}, "applies_to": ["pcam"]}
    with live_client(live_server) as api:
        r = register(api, projection_embedder(tmp_path / "e.onnx", (96, 96)), yaml.safe_dump(card))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_more_like_this(page, live_server, ingested, embedder):
    with live_client(live_server) as api:
        item = api.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]
        page.goto(f"{live_server}/items/{item['id']}")
        # a PCam patch has no patient: no "other patients" choice to offer
        assert not item.get("patient") and page.locator("#similar-form input[name=exclude_same_patient]").count() == 0
        page.click("#similar-form button[type=submit]")  # no vectors yet: the API says what to do
        error = page.locator("#similar-error")
        error.wait_for(state="visible")
        assert "has no embedding from model 'pcam-embedder' yet" in error.inner_text()

        job = api.post("/api/jobs", json={"kind": "predict", "model_id": embedder, "dataset_id": ingested.dataset_id})
        assert wait_finished(api, job.json()["id"])["status"] == "done"
        expected = api.get(f"/api/items/{item['id']}/similar", params={"model": embedder, "k": 12}).json()["items"]
    page.click("#similar-form button[type=submit]")
    page.wait_for_selector("#similar-list .similar-item img")
    assert error.is_hidden()
    links = page.eval_on_selector_all("#similar-list .similar-item a", "as => as.map(a => a.getAttribute('href'))")
    assert links == [f"/items/{x['id']}" for x in expected]
    scores = page.eval_on_selector_all("#similar-list .similar-item span", "s => s.map(e => e.textContent)")
    assert scores == [f"{x['score']:.3f}" for x in expected]
    page.wait_for_function("() => [...document.querySelectorAll('#similar-list img')].every(i => i.complete "
                           "&& i.naturalWidth > 0)")
    SHOTS.mkdir(exist_ok=True)
    page.locator("#similar").screenshot(path=str(SHOTS / "item-more-like-this.png"))
    page.click("#similar-list .similar-item a >> nth=0")
    page.wait_for_url(f"**/items/{expected[0]['id']}")
