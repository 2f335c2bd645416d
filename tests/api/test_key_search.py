"""Issue 14: key search. `search=TEXT` finds items by part of their key (a patient id finds its key slices),
a substring on ordinary datasets and a prefix (on the key index) past SUBSTRING_MAX_ITEMS; the dataset page says
"no match" when nothing matches. Both databases."""

from __future__ import annotations

import pytest

from app.catalog import keysearch


def _keys(client, ds: int, query: str = "") -> tuple[list[str], int]:
    r = client.get(f"/api/datasets/{ds}/items?limit=500&{query}")
    assert r.status_code == 200, r.text
    body = r.json()
    return [i["key"] for i in body["items"]], body["total"]


def test_patient_prefix_and_substring_find_their_keys(client, ingested):
    ds = ingested.dataset_id
    everything, total = _keys(client, ds)
    assert total == len(everything) > 3
    patient = everything[-1].split("_")[0]  # DeepLesion keys: PATIENT_STUDY_SERIES_SLICE.png
    found, n = _keys(client, ds, f"search={patient}")
    assert found and sorted(found) == sorted(k for k in everything if patient in k) and n == len(found)
    part = everything[0][3:9]  # from inside a key, upper-cased: matches ignoring case
    found, _ = _keys(client, ds, f"search={part.upper()}")
    assert everything[0] in found and all(part.lower() in k.lower() for k in found)
    # combined with a facet filter, the facets' counts and the sheet agree with the list
    facets = client.get(f"/api/datasets/{ds}/facets?search={patient}").json()
    assert facets["total"] == n and sum(facets["facets"]["split"].values()) == n
    # the counts (through the in-memory facet index: app.catalog.keysearch.indexed_counts) are the items' own,
    # and disjunctive: a split's count ignores the split filter itself
    items = client.get(f"/api/datasets/{ds}/items?limit=500&search={patient}").json()["items"]
    by_split = {s: sum(i["split"] == s for i in items) for s in facets["facets"]["split"]}
    assert facets["facets"]["split"] == by_split
    split = next(s for s, c in by_split.items() if c)
    narrowed = client.get(f"/api/datasets/{ds}/facets?search={patient}&split={split}").json()
    assert narrowed["total"] == by_split[split] and narrowed["facets"]["split"] == by_split
    # LIKE wildcards are text, not patterns
    assert _keys(client, ds, "search=%25")[1] == 0
    assert _keys(client, ds, "search=_")[1] == sum("_" in k for k in everything)


def test_large_datasets_search_by_prefix_on_the_index(client, ingested, monkeypatch):
    ds = ingested.dataset_id
    everything, _ = _keys(client, ds)
    monkeypatch.setattr(keysearch, "SUBSTRING_MAX_ITEMS", 1)
    first = everything[0]
    found, _ = _keys(client, ds, f"search={first[:4]}")
    assert sorted(found) == sorted(k for k in everything if k.startswith(first[:4]))
    assert _keys(client, ds, f"search={first[3:9]}")[1] == 0  # not a prefix: no match in prefix mode
    page = client.get(f"/datasets/{ds}?search={first[3:9]}")
    assert page.status_code == 200 and "No item key starts with" in page.text


def test_no_match_message_and_clear_link(client, ingested):
    ds = ingested.dataset_id
    assert _keys(client, ds, "search=no-such-patient") == ([], 0)
    page = client.get(f"/datasets/{ds}?search=no-such-patient&split=train")
    assert page.status_code == 200
    assert 'id="no-match"' in page.text and "No item key contains “no-such-patient” under these filters" in page.text
    assert 'href="?split=train">Clear the search' in page.text


@pytest.mark.parametrize(("query", "message"), [("search=", "it was empty"), ("search=" + "x" * 300, "at most 256")])
def test_bad_search_is_a_clear_400(client, ingested, query, message):
    r = client.get(f"/api/datasets/{ingested.dataset_id}/items?{query}")
    assert r.status_code == 400 and message in r.json()["detail"]
