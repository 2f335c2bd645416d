"""The PCam grid in a real browser: thumbnails are tiles of one contact sheet per page, with pixels (not blank),
infinite scroll appends pages of tiles from the sheet for the next cursor, and a tile opens its item."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from app.datasets.ingest import ingest_path
from app.datasets.pcam.synth import generate_pcam
from tests.helpers.browser import settle_grid
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.browser

N_ITEMS = 140  # pages of 64, 64 and 12


@pytest.fixture(scope="module")
def pcam_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_pcam(tmp_path_factory.mktemp("pcam-e2e") / "pcam", n_per_split=(100, 20, 20), seed=1)


@pytest.fixture
def pcam_id(live_server, engine, settings, pcam_tree) -> int:
    return ingest_path(engine, settings, pcam_tree.root, kind="pcam", name="pcam").dataset_id


def tile_std(card) -> float:
    """Standard deviation of the card's thumbnail as shown, once the sheet has painted it (not blank)."""
    thumb = card.locator(".thumb")
    thumb.scroll_into_view_if_needed()

    def painted() -> float:
        std = float(np.asarray(Image.open(io.BytesIO(thumb.screenshot())).convert("RGB"), np.float64).std())
        return std if std > 5 else 0.0

    return wait_until(painted, 10, f"the thumbnail of {card} to show pixels")


def seen_ids(page) -> list[int]:
    return [int(i) for i in page.locator("#grid .card:not(.pending)").evaluate_all("cs => cs.map(c => c.dataset.id)")]


def test_pcam_grid_shows_sheet_tiles_scrolls_and_opens_items(page, live_server, pcam_id):
    sheets: list[str] = []
    renders: list[str] = []
    page.on("request", lambda r: sheets.append(r.url) if "/sheet?" in r.url else
            renders.append(r.url) if "/render?" in r.url else None)
    page.goto(f"{live_server}/datasets/{pcam_id}")
    cards = page.locator("#grid .card:not(.pending)")
    cards.first.wait_for()
    assert page.locator("#grid .card .thumb.tile").count() == cards.count() > 8
    assert tile_std(cards.nth(0)) > 5 and tile_std(cards.nth(9)) > 5
    # the key, split and label stay under each tile
    assert cards.nth(0).locator(".card-key").inner_text().strip()
    assert cards.nth(0).locator(".split").inner_text().strip() in ("train", "valid", "test")
    assert cards.nth(0).locator(".card-label").inner_text().strip()

    seen: set[int] = set(seen_ids(page))
    for _ in range(20):
        page.evaluate("window.scrollBy(0, 500)")
        settle_grid(page)
        seen |= set(seen_ids(page))
    assert len(seen) == N_ITEMS
    ids = seen_ids(page)
    assert ids == sorted(ids) and ids[-1] == max(seen)
    # one sheet a page (the next two with the cursor grid.js follows), no per-item thumbnails
    assert len(set(sheets)) == 3 and sum("cursor=" in u for u in set(sheets)) == 2
    assert not renders
    last = page.locator(f'#grid .card[data-id="{max(seen)}"]')
    assert tile_std(last) > 5

    item_id = ids[-5]
    page.locator(f'#grid .card[data-id="{item_id}"] .thumb').click()
    page.wait_for_url(re.compile(rf"/items/{item_id}(\?|$)"))
    assert page.locator("#slice-image").count() == 1
