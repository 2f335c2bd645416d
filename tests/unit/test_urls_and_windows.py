"""One URL builder (app.catalog.urls) and one window precedence rule (app.imaging.presets.choose_window)."""

from __future__ import annotations

import re

import pytest

from app.catalog import urls
from app.imaging.presets import PRESETS, WindowError, choose_window, resolve_window
from app.web.item_page import PRESET_ORDER


def test_templates_are_the_functions_with_placeholders():
    t = urls.url_templates()
    fill = lambda template, **p: re.sub(r"\{(\w+)\}", lambda m: str(p[m.group(1)]), template)  # noqa: E731
    assert fill(t["item_page"], id=7) == urls.item_page_url(7) == "/items/7"
    assert fill(t["item"], id=7) == urls.item_url(7) == "/api/items/7"
    assert fill(t["predict"], id=7) == urls.predict_url(7) == "/api/items/7/predict"
    assert t["jobs"] == urls.jobs_url() == "/api/jobs"
    assert fill(t["job"], id=3) == "/api/jobs/3" and fill(t["job_cancel"], id=3) == "/api/jobs/3/cancel"
    assert fill(t["evaluation_page"], model_id=2, dataset_id=5) == "/models/2/evaluation?dataset_id=5"


def test_render_and_thumbnail_urls():
    assert urls.render_url(4) == "/api/items/4/render"
    assert urls.render_url(4, {"format": "jpeg", "window": "-160,240", "slice": None, "v": 2}) == \
        "/api/items/4/render?format=jpeg&window=-160%2C240&v=2"
    assert urls.thumbnail_url(4, 2) == "/api/items/4/render?format=jpeg&size=256&overlays=gt&v=2"
    assert urls.thumbnail_url(4, 2, "sagittal") == \
        "/api/items/4/render?format=jpeg&size=256&overlays=gt&plane=sagittal&v=2"
    assert urls.query_url(urls.dataset_items_url(1), {"split": ["a", "b"]}, "k", limit=5, cursor=None) == \
        "/api/datasets/1/items?split=a&split=b&key=k&limit=5"


@pytest.mark.parametrize(("window", "preset", "own", "expected"), [
    ("-100,100", "lung", (1.0, 2.0), ((-100.0, 100.0), None)),  # an explicit window wins
    (None, "lung", (1.0, 2.0), (PRESETS["lung"], "lung")),  # then a named preset
    (None, "dicom", (1.0, 2.0), ((1.0, 2.0), "default")),  # the item's own under any of its names
    (None, None, (1.0, 2.0), ((1.0, 2.0), "default")),
    (None, None, None, (PRESETS["soft_tissue"], "default")),  # no own window: soft tissue
])
def test_one_window_precedence_rule(window, preset, own, expected):
    chosen = choose_window(window, preset, own)
    assert (chosen.window, chosen.preset) == expected
    assert resolve_window(window, preset, own) == expected[0]


def test_unknown_preset_names_the_choices_given():
    with pytest.raises(WindowError, match=r"unknown preset 'x'; choose one of default, abdomen"):
        choose_window(None, "x", None, PRESET_ORDER)
    with pytest.raises(WindowError, match=r"unknown preset 'x'; choose one of soft_tissue"):
        choose_window(None, "x", None)
