"""The patient page's lesion tracks by embedding in a real browser (the generated DeepLesion sample, a real ONNX
embedder): the page names the model, and the long-axis chart draws one line per track with a point per
measurement, at heights ordered as the millimetres are."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers.api import register, wait_finished
from tests.helpers.live import live_client
from tests.onnx_models import projection_embedder

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-lesions")


def test_patient_chart_of_embedding_tracks(page, live_server, ingested, deeplesion_sample, tmp_path):
    card = {"name": "dl-embedder", "task": "embed", "input": {"layout": "NCHW", "size": [64, 64], "channels": 3,
            "window": [-175, 275], "slices": 3}, "output": {"kind": "embedding"}, "applies_to": ["deeplesion"]}
    ds = ingested.dataset_id
    studies: dict[str, set[str]] = {}
    for r in deeplesion_sample.rows:
        studies.setdefault(r["File_name"][:6], set()).add(r["File_name"][:9])
    patient = next(p for p, s in sorted(studies.items()) if len(s) >= 2)
    with live_client(live_server) as api:
        r = register(api, projection_embedder(tmp_path / "e.onnx", (64, 64), pool=8), yaml.safe_dump(card))
        job = api.post("/api/jobs", json={"kind": "predict", "model_id": r.json()["id"], "dataset_id": ds})
        assert wait_finished(api, job.json()["id"])["status"] == "done"
        tracks = api.get(f"/api/datasets/{ds}/patients/{patient}").json()["tracks"]
    page.goto(f"{live_server}/datasets/{ds}/patients/{patient}")
    chart = page.locator("#track-chart svg")
    chart.wait_for(state="visible")
    assert "dl-embedder" in page.locator("#tracks-by").inner_text()
    lines = page.locator("#track-chart .track-line")
    assert lines.count() == len(tracks)
    for n, track in enumerate(tracks):
        line = lines.nth(n)
        assert line.get_attribute("data-track") == f"L{track['number']}"
        ys = [float(y) for y in line.locator("circle").evaluate_all("cs => cs.map(c => c.getAttribute('cy'))")]
        mm = [m["long_mm"] for m in track["by_study"].values()]
        assert len(ys) == len(mm)
        # higher on the chart (smaller y) for a longer axis
        assert [a > b for a, b in zip(mm, mm[1:], strict=False)] == [a < b for a, b in zip(ys, ys[1:], strict=False)]
    assert chart.bounding_box()["width"] > 200
    page.locator("section.panel >> nth=0").screenshot(path=str(SHOTS / "patient-tracks.png"))
