"""Every dataset kind's demo sample opens in the same viewer page with the controls that fit it:
volumes get a plane selector, 2-D images no slice stepping, and every page's image renders."""

from __future__ import annotations

import re

import pytest

from app.datasets.ingest import ingest_path
from app.datasets.registry import available_kinds


@pytest.fixture(scope="module")
def samples(demo_samples):
    return {kind: demo_samples / kind for kind in available_kinds()}


@pytest.mark.parametrize("kind", ["deeplesion", "pcam", "bis5k", "verse", "imagefolder", "dicom", "nifti"])
def test_item_page_controls_fit_the_kind(kind, samples, engine, settings, client):
    report = ingest_path(engine, settings, samples[kind], kind=kind, name=kind)
    item = client.get(f"/api/datasets/{report.dataset_id}/items", params={"limit": 1}).json()["items"][0]
    page = client.get(f"/items/{item['id']}")
    assert page.status_code == 200, page.text[:300]
    html = page.text
    has_planes = 'aria-label="planes"' in html
    assert has_planes == (kind in ("verse", "dicom", "nifti"))
    if kind in ("pcam", "bis5k", "imagefolder"):
        state = re.search(r'id="viewer-state">(.*?)</script>', html, re.S).group(1)
        assert 'id="prev-slice"' not in html and "<dt>key slice</dt>" not in html, state[:400]
    src = re.search(r'id="slice-image" src="([^"]+)"', html).group(1).replace("&amp;", "&")
    image = client.get(src)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    thumb = client.get(item["thumbnail_url"])
    assert thumb.status_code == 200


# (kind, measuring tools offered, rows the side panel shows, rows it must not show, the edit hint's words)
FITTING = {
    "deeplesion": (["line", "bidir"], {"sex", "age", "spacing"}, set(), "Alt: short axis free"),
    "dicom": (["line", "bidir"], {"sex", "age", "spacing"}, set(), "Alt: short axis free"),
    "bis5k": (["line"], set(), {"sex", "age", "spacing"}, "brush"),
    "pcam": (["line"], set(), {"sex", "age", "spacing"}, None),
    "imagefolder": (["line"], set(), {"sex", "age", "spacing"}, None),
}


@pytest.mark.parametrize("kind", sorted(FITTING))
def test_tools_and_rows_fit_the_kind(kind, samples, engine, settings, client):
    """No RECIST on H&E or patches, no empty sex/age/spacing rows where the kind has none, and the edit hint
    names the tools of what can be edited (a mask's brush, not RECIST's short axis)."""
    tools, shown, hidden, hint = FITTING[kind]
    report = ingest_path(engine, settings, samples[kind], kind=kind, name=kind)
    item = client.get(f"/api/datasets/{report.dataset_id}/items", params={"limit": 1}).json()["items"][0]
    html = client.get(f"/items/{item['id']}").text
    state = re.search(r'id="viewer-state">(.*?)</script>', html, re.S).group(1)
    assert f'"tools": {str(tools).replace(chr(39), chr(34))}' in state.replace('","', '", "'), state[:300]
    assert ('data-tool="bidir"' in html) == ("bidir" in tools)
    # no model applies and the item has no prediction: no Prediction layer to toggle
    assert 'data-layer="pred"' not in html
    rows = set(re.findall(r"<dt>([a-z ]+)</dt>", html))
    assert shown <= rows and not hidden & rows, rows
    hint_html = re.search(r'id="edit-hint">(.*?)<button', html, re.S)
    if hint is None:
        assert hint_html is None or "Alt: short axis free" not in hint_html.group(1)
    else:
        assert hint in hint_html.group(1), hint_html.group(1)
    assert ("RECIST: drag the long axis" in html) == ("bidir" in tools)  # the keyboard help too
    assert ("short axis free" in html) == (kind in ("deeplesion", "dicom"))  # the hint and the help
    if kind == "bis5k":  # a mask has no handles: the brush edits it, no Edit tool
        assert "short axis" not in hint_html.group(1) and 'id="edit-tool"' not in html
    if kind in ("deeplesion", "dicom"):
        assert 'id="edit-tool"' in html
