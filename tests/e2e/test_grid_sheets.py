"""The PCam grid in a real browser: thumbnails are tiles of one contact sheet per page, with pixels (not blank),
infinite scroll appends pages of tiles from the sheet for the next cursor, and a tile opens its item."""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from PIL import Image

from app.datasets.ingest import ingest_path
from app.datasets.pcam.synth import generate_pcam

pytestmark = pytest.mark.browser

N_ITEMS = 140  # pages of 64, 64 and 12


@pytest.fixture(scope="module")
def pcam_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_pcam(tmp_path_factory.mktemp("pcam-e2e") / "pcam", n_per_split=(100, 20, 20), seed=1)


@pytest.fixture
def pcam_id(live_server, engine, settings, pcam_tree) -> int:
    return ingest_path(engine, settings, pcam_tree.root, kind="pcam", name="pcam").dataset_id


def tile_std(card) -> float:
    """Standard deviation of the card's thumbnail as shown (waits up to 10 s for the sheet to paint)."""
    thumb = card.locator(".thumb")
    thumb.scroll_into_view_if_needed()
    deadline = time.monotonic() + 10
    while True:
        pixels = np.asarray(Image.open(io.BytesIO(thumb.screenshot())).convert("RGB"), np.float64)
        if pixels.std() > 5 or time.monotonic() > deadline:
            return float(pixels.std())
        time.sleep(0.1)


def test_pcam_grid_shows_sheet_tiles_scrolls_and_opens_items(page, live_server, pcam_id):
    sheets: list[str] = []
    renders: list[str] = []
    page.on("request", lambda r: sheets.append(r.url) if "/sheet?" in r.url else
            renders.append(r.url) if "/render?" in r.url else None)
    page.goto(f"{live_server}/datasets/{pcam_id}")
    cards = page.locator("#grid .card")
    assert cards.count() == 64
    assert page.locator("#grid .card .thumb.tile").count() == 64
    assert tile_std(cards.nth(0)) > 5 and tile_std(cards.nth(9)) > 5
    # the key, split and label stay under each tile
    assert cards.nth(0).locator(".card-key").inner_text().strip()
    assert cards.nth(0).locator(".split").inner_text().strip() in ("train", "valid", "test")
    assert cards.nth(0).locator(".card-label").inner_text().strip()

    for _ in range(10):
        if cards.count() == N_ITEMS:
            break
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_timeout(300)
    assert cards.count() == N_ITEMS
    assert page.locator("#grid .card .thumb.tile").count() == N_ITEMS
    ids = [int(i) for i in cards.evaluate_all("cs => cs.map(c => c.dataset.id)")]
    assert len(set(ids)) == N_ITEMS and ids == sorted(ids)
    assert page.locator("#pager").inner_text().strip() == "End of the list."
    # one sheet a page (the first two with a cursor appended by grid.js), no per-item thumbnails
    assert len(set(sheets)) == 3 and sum("cursor=" in u for u in set(sheets)) == 2
    assert not renders
    appended = cards.nth(100)
    assert tile_std(appended) > 5 and tile_std(cards.nth(N_ITEMS - 1)) > 5

    item_id = ids[100]
    appended.locator(".thumb").click()
    page.wait_for_url(re.compile(rf"/items/{item_id}(\?|$)"))
    assert page.locator("#slice-image").count() == 1
