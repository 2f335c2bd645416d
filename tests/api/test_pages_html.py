"""The HTML pages through the in-process client: content checked against the database and the sample."""

from __future__ import annotations

import html
import json
import re
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Annotation, Item, Patient, Study
from app.web.pages import PAGE_SIZE


def cards(body: str) -> list[int]:
    """Item ids of the grid's thumbnails (the <template> card has id 0 and is left out)."""
    return [int(i) for i in re.findall(r'class="card" href="[^"]*" data-id="(\d+)"', body) if i != "0"]


def total(body: str) -> int:
    return int(re.search(r'id="total" data-total="(\d+)"', body).group(1))


def next_link(body: str) -> str | None:
    m = re.search(r'id="next-page" class="button" href="([^"]+)"', body)
    return html.unescape(m.group(1)) if m else None


def assert_html(r, status: int) -> str:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    return r.text


@pytest.fixture
def ds(ingested) -> int:
    return ingested.dataset_id


def test_index_lists_datasets_with_counts(client, ingested, ds):
    body = assert_html(client.get("/"), 200)
    row = re.search(rf'<tr>\s*<td><a class="strong" href="[^"]*/datasets/{ds}">sample</a></td>(.*?)</tr>', body, re.S)
    assert row, body
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
    assert cells[:4] == ["deeplesion", "ready", str(ingested.items), str(ingested.annotations)]
    assert 'href="/api/datasets"' in body  # the page's JSON twin


def test_dataset_page_lists_every_item_with_facets(client, ingested, ds, deeplesion_sample):
    body = assert_html(client.get(f"/datasets/{ds}"), 200)
    n = len(deeplesion_sample.key_slices)
    assert total(body) == n == ingested.items
    assert len(cards(body)) == min(n, PAGE_SIZE)
    assert body.count('loading="lazy"') == len(cards(body)) + 1  # + the template card
    # facet counts as in the CSV, with human labels
    types = Counter()
    for name in deeplesion_sample.key_slices:
        types[next(r["Coarse_lesion_type"] for r in deeplesion_sample.rows if r["File_name"] == name)] += 1
    liver = re.search(r'data-field="lesion_type" data-value="4" data-count="(\d+)"[^>]*>\s*<span class="check"[^>]*>'
                      r'</span>\s*<span class="fv-label">liver', body)
    assert liver and int(liver.group(1)) == types["4"]
    assert f'href="/api/datasets/{ds}/items?limit={PAGE_SIZE}"' in body


def test_clicking_a_facet_value_filters_and_can_be_removed(client, ds):
    page = client.get(f"/datasets/{ds}").text
    href = html.unescape(re.search(r'<a class="facet-value" href="([^"]+)" data-field="lesion_type" data-value="4"'
                                   r' data-count="(\d+)"', page).group(1))
    count = int(re.search(r'data-field="lesion_type" data-value="4" data-count="(\d+)"', page).group(1))
    assert href == "?lesion_type=4"
    body = assert_html(client.get(f"/datasets/{ds}{href}"), 200)
    assert total(body) == count == len(cards(body))
    assert 'class="facet-value active" href="?" data-field="lesion_type" data-value="4"' in body
    chip = re.search(r'<a class="chip" href="([^"]+)"[^>]*><span class="muted">lesion type</span> liver', body)
    assert chip and chip.group(1) == "?"
    # a second value of the same field ORs; a second field ANDs
    both = client.get(f"/datasets/{ds}?lesion_type=4&lesion_type=5").text
    count5 = int(re.search(r'data-field="lesion_type" data-value="5" data-count="(\d+)"', page).group(1))
    assert total(both) == count + count5
    api = client.get(f"/api/datasets/{ds}/items", params={"lesion_type": ["4", "5"], "split": "val"}).json()
    assert total(client.get(f"/datasets/{ds}?lesion_type=4&lesion_type=5&split=val").text) == api["total"]


def test_keyset_pages_follow_next_links_to_the_end(client, ds, ingested):
    seen: list[int] = []
    url = f"/datasets/{ds}?limit=4"
    for _ in range(50):
        body = assert_html(client.get(url), 200)
        page = cards(body)
        assert 1 <= len(page) <= 4
        seen += page
        nxt = next_link(body)
        if nxt is None:
            break
        assert "cursor=" in nxt and "limit=4" in nxt
        url = f"/datasets/{ds}{nxt}"
    assert len(seen) == len(set(seen)) == ingested.items
    assert seen == sorted(seen)


def test_item_page_shows_lesions_from_the_database(client, engine, ds):
    with Session(engine) as s:
        ann = s.scalars(select(Annotation).where(Annotation.dataset_id == ds).order_by(Annotation.id)).first()
        item = s.get(Item, ann.item_id)
        patient = s.get(Patient, item.patient_id).external_id
        anns = s.scalars(select(Annotation).where(Annotation.item_id == item.id)).all()
    body = assert_html(client.get(f"/items/{item.id}"), 200)
    for a in anns:
        long_mm, short_mm = a.meta["long_mm"], a.meta["short_mm"]
        assert f"{long_mm:.1f} × {short_mm:.1f}" in body
        assert a.meta["lesion_type_name"] in body
        assert f'{a.meta["slice_range"][0]}–{a.meta["slice_range"][1]}' in body
    assert f'src="/api/items/{item.id}/render?format=jpeg&amp;overlays=gt&amp;v={item.content_version}"' in body
    assert f'/datasets/{ds}/patients/{patient}"' in body and f'href="/api/items/{item.id}"' in body
    state = json.loads(re.search(r'<script type="application/json" id="viewer-state">(.*?)</script>', body, re.S)
                       .group(1))
    assert state["slices"] == item.meta["slices"] and state["key_slice"] == item.location_index
    assert state["window"] == list(item.window) and state["preset"] == "default"
    assert f"slice {item.location_index} (key) / range {item.meta['slice_range'][0]}–" in body


def test_item_page_state_comes_from_the_url(client, engine, ds):
    with Session(engine) as s:
        item = s.scalars(select(Item).where(Item.dataset_id == ds).order_by(Item.id)).first()
    other = [n for n in item.meta["slices"] if n != item.location_index][0]
    body = assert_html(client.get(f"/items/{item.id}?preset=lung&slice={other}&overlays=none"), 200)
    src = html.unescape(re.search(r'id="slice-image" src="([^"]+)"', body).group(1))
    assert src == (f"/api/items/{item.id}/render?format=jpeg&overlays=none&v={item.content_version}"
                   f"&preset=lung&slice={other}")
    assert client.get(src).headers["x-window"] == "-1350,150"
    assert 'class="preset active" data-preset="lung"' in body
    assert f"slice {other} / range" in body
    custom = client.get(f"/items/{item.id}?window=-100.5,200").text
    assert "window=-100.5%2C200" in custom and 'class="active" id="apply-window"' in custom


@pytest.mark.parametrize(("query", "fragment"), [
    ("preset=bogus", "unknown preset 'bogus'"),
    ("window=200,100", "HIGH must be greater than LOW"),
    ("slice=9999", "slice 9999 is not available"),
    ("overlays=all", "overlays must be gt or none"),
])
def test_bad_viewer_state_is_a_400_page(client, ds, ingested, query, fragment):
    item_id = client.get(f"/api/datasets/{ds}/items", params={"limit": 1}).json()["items"][0]["id"]
    body = assert_html(client.get(f"/items/{item_id}?{query}"), 400)
    assert fragment in html.unescape(body) and "MedView" in body


@pytest.mark.parametrize(("query", "fragment"), [
    ("colour=blue", "unknown filter 'colour'"),
    ("lesion_type=99", "lesion_type='99' matches no item"),
    ("cursor=%25%25%25", "cursor"),
    ("limit=0", "limit must be between 1 and 500"),
])
def test_bad_filters_on_the_dataset_page_are_400_pages(client, ds, query, fragment):
    body = assert_html(client.get(f"/datasets/{ds}?{query}"), 400)
    assert fragment in html.unescape(body)
    assert 'class="error-status">400<' in body


def test_patient_page_lists_studies_in_order_with_growth(client, engine, ds):
    with Session(engine) as s:
        # the patient with the most studies (the sample's first patient has three, its liver lesion grows)
        patients = s.scalars(select(Patient).where(Patient.dataset_id == ds)).all()
        studies = {p.external_id: s.scalars(select(Study).where(Study.patient_id == p.id)
                                            .order_by(Study.study_order)).all() for p in patients}
        pid = max(studies, key=lambda k: len(studies[k]))
        order = [st.external_id for st in studies[pid]]
        anns = s.execute(select(Annotation, Item).join(Item, Item.id == Annotation.item_id)
                         .where(Item.patient_id == next(p.id for p in patients if p.external_id == pid))).all()
        by_study = {st.id: st.external_id for st in studies[pid]}
        lesions = [(by_study[item.study_id], a.meta) for a, item in anns]
    assert len(order) >= 3
    body = assert_html(client.get(f"/datasets/{ds}/patients/{pid}"), 200)
    positions = [body.index(f'id="study-{sid}"') for sid in order]
    assert positions == sorted(positions)
    rows = re.findall(r'<tr data-study="([^"]+)">(.*?)</tr>', body, re.S)
    assert [r[0] for r in rows] == order
    # the lesion seen in every study: same normalised location; its column shows each long × short and the growth
    first = [m for sid, m in lesions if sid == order[0]]
    tracked = [m0 for m0 in first if sum(m["normalized_location"] == m0["normalized_location"] for _, m in lesions)
               == len(order)]
    assert tracked
    loc = tracked[0]["normalized_location"]
    series = [next(m for sid, m in lesions if sid == st and m["normalized_location"] == loc) for st in order]
    for (_, cells), m in zip(rows, series, strict=True):
        assert f'{m["long_mm"]:.1f} × {m["short_mm"]:.1f}' in cells
    growth = f'{(series[1]["long_mm"] / series[0]["long_mm"] - 1) * 100:+.0f}%'
    assert growth in rows[1][1]
    assert f'href="/api/datasets/{ds}/patients/{pid}"' in body


@pytest.mark.parametrize("url", ["/items/99999", "/datasets/99999", "/datasets/{ds}/patients/nobody",
                                 "/datasets/99999/patients/000001"])
def test_unknown_ids_are_404_pages(client, ds, url):
    body = assert_html(client.get(url.format(ds=ds)), 404)
    assert "not found" in body and 'class="error-status">404<' in body
    assert '<link rel="stylesheet"' in body  # styled through base.html


def test_non_numeric_id_is_a_page_not_json(client, ds):
    body = assert_html(client.get("/items/abc"), 422)
    assert "item_id" in body
