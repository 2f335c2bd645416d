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
