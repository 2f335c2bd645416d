"""The PCam grid fetches each page's thumbnails as ONE contact sheet: tile n of the sheet the page references is
card n of the page (checked against the sheet's X-Item-Ids); other kinds keep one thumbnail per item."""

from __future__ import annotations

import html
import re

import pytest

from app.datasets.ingest import ingest_path
from app.datasets.pcam.adapter import PCamAdapter
from app.datasets.pcam.synth import generate_pcam

SHEET = re.compile(
    r'class="thumb tile" role="img" aria-label="[^"]*" style="background-image: url\(&#34;([^"]+?)&#34;\)')


def cards(body: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="card" href="[^"]*" data-id="(\d+)"', body) if i != "0"]


def sheet_urls(body: str) -> list[str]:
    return [html.unescape(u) for u in SHEET.findall(body)]


@pytest.fixture
def pcam(engine, settings, tmp_path) -> int:
    tree = generate_pcam(tmp_path / "pcam", n_per_split=(40, 8, 8), seed=1)
    return ingest_path(engine, settings, tree.root, kind="pcam", name="pcam").dataset_id


def check_page(client, url: str) -> tuple[list[int], str]:
    """Cards of the page at `url`, asserting every card shows a tile of ONE sheet whose X-Item-Ids are the cards;
    returns (card ids, the sheet's X-Next-Cursor)."""
    r = client.get(url)
    assert r.status_code == 200, r.text[:500]
    body = r.text
    ids, urls = cards(body), sheet_urls(body)
    assert ids and len(urls) == len(ids) and len(set(urls)) == 1
    assert "/render?" not in body  # no per-item thumbnails, not even in the card <template>
    sheet = client.get(urls[0])
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/jpeg"
    assert [int(i) for i in sheet.headers["x-item-ids"].split(",")] == ids
    return ids, sheet.headers["x-next-cursor"]


def test_pcam_page_uses_one_sheet_whose_tiles_are_the_cards(client, pcam):
    size = PCamAdapter.sheet_page_size
    assert size % 8 == 0
    ids, next_cursor = check_page(client, f"/datasets/{pcam}")
    assert len(ids) == min(size, 56) and not next_cursor
    body = client.get(f"/datasets/{pcam}").text
    assert f'data-sheet="/api/datasets/{pcam}/sheet?limit={size}&amp;cols=8&amp;tile=96&amp;overlays=gt"' in body
    # 56 tiles: 7 rows of 8; the first at the top left, the tenth second in the second row
    styles = re.findall(r'class="thumb tile"[^>]* style="([^"]+)"', body)
    assert styles[0].endswith("background-size: 800% 700%; background-position: 0% 0%")
    assert styles[9].endswith("background-position: 14.286% 16.667%")
    assert styles[-1].endswith("background-position: 100% 100%")


def test_pcam_pages_follow_the_cursor(client, pcam):
    seen: list[int] = []
    url = f"/datasets/{pcam}?limit=24"
    while url:
        ids, next_cursor = check_page(client, url)
        assert not set(ids) & set(seen)
        seen += ids
        body = client.get(url).text
        m = re.search(r'id="next-page" class="button" href="([^"]+)"', body)
        url = f"/datasets/{pcam}{html.unescape(m.group(1))}" if m else ""
        assert bool(url) == bool(next_cursor) and (not url or f"cursor={next_cursor}" in url)
    assert len(seen) == 56 and seen == sorted(seen)


def test_pcam_sheet_follows_filters_key_and_limit(client, pcam):
    ids, _ = check_page(client, f"/datasets/{pcam}?split=valid&limit=5")
    assert len(ids) == 5
    body = client.get(f"/datasets/{pcam}?split=valid&limit=5").text
    url = sheet_urls(body)[0]
    assert "split=valid" in url and "limit=5" in url
    assert "background-size: 800% 100%" in body  # one row


def test_pcam_page_too_large_for_a_sheet_falls_back_to_thumbnails(client, pcam):
    body = client.get(f"/datasets/{pcam}?limit=300").text
    assert len(cards(body)) == 56 and not sheet_urls(body) and "/render?" in body


def test_deeplesion_page_keeps_per_item_thumbnails(client, ingested):
    body = client.get(f"/datasets/{ingested.dataset_id}").text
    ids = cards(body)
    assert ids and not sheet_urls(body) and 'data-sheet=""' in body
    thumbs = re.findall(r'<img loading="lazy" decoding="async" alt="[^"]*" src="([^"]+)"', body)
    assert len(thumbs) == len(ids)
    assert all("/render?" in t for t in thumbs)
