"""Issue 14, the dataset grid as a radiologist met it: VerSe's tall sagittal thumbnails overflowed the virtualised
grid's rows (images cut, captions hidden). Cards must hold any aspect ratio whole: the image inside the card's
thumbnail box, the caption below it inside the card, and no card reaching into the next row.

Screenshots: MEDVIEW_SHOTS or /tmp/shots-grid14/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.datasets.ingest import ingest_path
from app.datasets.verse.synth import generate_verse
from tests.helpers.browser import settle_grid

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("MEDVIEW_SHOTS", "/tmp/shots-grid14"))

# Every filled card's boxes: the card, its thumbnail box, the image as painted (object-fit: contain), the caption.
BOXES = """() => [...document.querySelectorAll('#grid .card:not(.pending)')].map(c => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const img = c.querySelector('img'), thumb = c.querySelector('.thumb');
  const t = box(thumb), w = t[2] - t[0], h = t[3] - t[1];
  const ratio = img.naturalWidth && img.naturalHeight ? img.naturalWidth / img.naturalHeight : 1;
  const iw = Math.min(w, h * ratio), ih = Math.min(h, w / ratio);  // the contained image's painted size
  const ib = box(img);
  const cx = (ib[0] + ib[2]) / 2, cy = (ib[1] + ib[3]) / 2;
  return {card: box(c), thumb: t, img: ib, painted: [cx - iw / 2, cy - ih / 2, cx + iw / 2, cy + ih / 2],
          key: box(c.querySelector('.card-key')), tags: box(c.querySelector('.card-tags')),
          natural: [img.naturalWidth, img.naturalHeight], complete: img.complete};
})"""


def inside(inner, outer, slack: float = 0.5) -> bool:
    return (inner[0] >= outer[0] - slack and inner[1] >= outer[1] - slack and inner[2] <= outer[2] + slack
            and inner[3] <= outer[3] + slack)


def check_cards_whole(page) -> list[dict]:
    page.wait_for_function("() => [...document.querySelectorAll('#grid .card:not(.pending) img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    cards = page.evaluate(BOXES)
    assert cards
    row_h = page.evaluate("() => window.medviewGrid.rowH")
    for c in cards:
        assert inside(c["thumb"], c["card"]) and inside(c["painted"], c["thumb"]), c
        assert inside(c["img"], c["thumb"]), c  # the <img> box itself never spills out of the thumbnail
        assert inside(c["key"], c["card"]) and inside(c["tags"], c["card"]), c  # caption visible
        assert c["key"][1] >= c["thumb"][3] - 0.5, c  # below the image, not under it
        assert c["card"][3] - c["card"][1] <= row_h, (c, row_h)  # fits its virtual row
    tops = sorted({round(c["card"][1]) for c in cards})
    for a, b in zip(tops, tops[1:], strict=False):
        assert b - a == pytest.approx(row_h, abs=1.5), tops  # rows one measured row apart: no overlap
    return cards


def test_verse_tall_sagittal_cards_fit_the_grid(page, live_server, engine, settings, tmp_path):
    verse = generate_verse(tmp_path / "verse", subjects=6, layout="bids", seed=3)
    ds = ingest_path(engine, settings, verse.root, kind="verse", name="verse").dataset_id
    page.goto(f"{live_server}/datasets/{ds}")
    settle_grid(page)
    cards = check_cards_whole(page)
    assert any(c["natural"][1] > 1.3 * c["natural"][0] for c in cards), "the sample has tall thumbnails"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "verse-grid.png"))
    # and a narrow window (two columns): still whole
    page.set_viewport_size({"width": 520, "height": 900})
    page.wait_for_function("() => window.medviewGrid.cols <= 3")
    settle_grid(page)
    check_cards_whole(page)
    page.screenshot(path=str(SHOTS / "verse-grid-narrow.png"))


@pytest.mark.realdata
def test_real_verse_cutout_card_is_whole(page, live_server, engine, settings, realdata):
    """The real CT cut-out (73×47×73, P-I-R) and its masks: the card shows the thumbnail whole."""
    ds = ingest_path(engine, settings, realdata("verse"), kind="verse", name="real-verse").dataset_id
    page.goto(f"{live_server}/datasets/{ds}")
    settle_grid(page)
    cards = check_cards_whole(page)
    assert len(cards) == 1  # the one subject of the sample, whole
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "verse-real-grid.png"))


def test_moved_folder_shows_a_warning_not_silent_broken_images(page, live_server, engine, settings, tmp_path):
    from app.catalog import readable
    from app.datasets.imagefolder.synth import generate_imagefolder

    sample = generate_imagefolder(tmp_path / "cells", per_class=2, classes=["a", "b"], size=48)
    ds = ingest_path(engine, settings, sample.root, kind="imagefolder", name="cells").dataset_id
    Path(sample.root).rename(tmp_path / "moved-away")
    readable.clear_cache()
    page.goto(f"{live_server}/datasets/{ds}")
    banner = page.locator("#files-warning")
    banner.wait_for()
    assert "no longer exists" in banner.inner_text() and banner.is_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "moved-folder-warning.png"))


def test_key_search_box_finds_a_patient_and_says_no_match(page, live_server, ingested):
    from tests.helpers.live import live_get

    ds = ingested.dataset_id
    keys = [i["key"] for i in live_get(f"{live_server}/api/datasets/{ds}/items?limit=500").json()["items"]]
    patient = keys[-1].split("_")[0]
    page.goto(f"{live_server}/datasets/{ds}")
    box = page.locator("#key-search")
    box.fill(patient)
    box.press("Enter")
    page.wait_for_url(f"**search={patient}**")
    settle_grid(page)
    shown = page.locator("#grid .card:not(.pending) .card-key").all_inner_texts()
    assert sorted(shown) == sorted(k for k in keys if patient in k)
    assert page.locator(".chip", has_text=patient).count() == 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "key-search.png"))
    box = page.locator("#key-search")
    assert box.input_value() == patient
    box.fill("no-such-key")
    box.press("Enter")
    page.wait_for_url("**search=no-such-key**")
    message = page.locator("#no-match")
    assert message.is_visible() and "No item key contains “no-such-key”" in message.inner_text()
    assert message.bounding_box()["y"] < page.viewport_size["height"] / 3  # at the top, not below the charts
    page.screenshot(path=str(SHOTS / "key-search-no-match.png"))
    message.get_by_role("link", name="Clear the search").click()
    page.wait_for_function("() => !location.search.includes('search=')")
    settle_grid(page)
    assert page.locator("#grid .card:not(.pending)").count() == len(keys)


def test_dicom_cards_are_named_by_series_not_uid(page, live_server, engine, settings, tmp_path):
    """Issue 14: DICOM cards showed 60-digit UIDs. They show the series' number, description and date (the
    listing's `title`), the UID on hover; also after the grid reloads under a filter (grid.js's cards)."""
    from app.datasets.dicom.synth import generate_dicom
    from tests.helpers.live import live_get

    root = generate_dicom(tmp_path / "export", seed=5).root
    ds = ingest_path(engine, settings, root, kind="dicom", name="dicom").dataset_id
    items = live_get(f"{live_server}/api/datasets/{ds}/items").json()["items"]
    assert all(i["title"] and i["key"] not in i["title"] for i in items)
    page.goto(f"{live_server}/datasets/{ds}")
    settle_grid(page)
    keys = page.locator("#grid .card:not(.pending) .card-key")
    assert sorted(keys.all_inner_texts()) == sorted(i["title"] for i in items)
    hover = keys.evaluate_all("ks => ks.map(k => k.title.split('\\n').at(-1))")  # the UID on hover
    assert sorted(hover) == sorted(i["key"] for i in items)
    page.locator('.facet[data-field="modality"] .facet-value[data-value="CT"]').click()
    page.wait_for_url("**modality=CT**")
    settle_grid(page)
    ct = live_get(f"{live_server}/api/datasets/{ds}/items?modality=CT").json()["items"]
    assert 0 < len(ct) < len(items)
    assert sorted(page.locator("#grid .card:not(.pending) .card-key").all_inner_texts()) == \
        sorted(i["title"] for i in ct)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "dicom-cards.png"))
