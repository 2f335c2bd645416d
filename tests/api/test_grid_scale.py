"""Grid at scale through the API: live facet counts (disjunctive), sorts with value-carrying cursors (column facets,
key, kind numeric fields, per-item metrics), offset jumps, charts — each checked against the database read
directly, on both the facet-index path and the SQL path."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path
from app.datasets.pcam.synth import generate_pcam
from app.db.models import Annotation, Item, ItemFacet, ItemMetric, Model, Series
from tests.helpers.auth import signed_in


@pytest.fixture
def pcam(engine, settings, tmp_path) -> int:
    tree = generate_pcam(tmp_path / "pcam", n_per_split=(60, 14, 12), seed=2, n_slides=5)
    return ingest_path(engine, settings, tree.root, kind="pcam", name="pcam").dataset_id


def walk(client, url: str, limit: int = 7) -> list[dict]:
    """Every item of a list, following next_cursor page by page."""
    out, cursor = [], None
    for _ in range(1000):
        sep = "&" if "?" in url else "?"
        r = client.get(f"{url}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        out += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return out
    raise AssertionError("cursor loop")


def pcam_rows(engine, ds: int) -> list[dict]:
    with Session(engine) as s:
        slides = dict(s.execute(select(Series.id, Series.external_id)).all())
        return [{"id": i.id, "key": i.key, "split": i.split, "label": i.label, "slide": slides.get(i.series_id)}
                for i in s.scalars(select(Item).where(Item.dataset_id == ds).order_by(Item.id))]


def expected_counts(rows: list[dict], filters: dict[str, list[str]], fields) -> tuple[dict, int]:
    def ok(r, skip=None):
        return all(r[f] in v for f, v in filters.items() if f != skip)

    counts = {f: dict(Counter(r[f] for r in rows if ok(r, f) and r[f] is not None)) for f in fields}
    return counts, sum(ok(r) for r in rows)


@pytest.mark.parametrize("filters", [{}, {"split": ["train"]}, {"label": ["1"]},
                                     {"split": ["valid", "test"], "label": ["0"]}, {"slide": "FIRST"}])
def test_live_facets_are_disjunctive_counts_of_the_database(client, engine, pcam, filters):
    rows = pcam_rows(engine, pcam)
    if filters.get("slide") == "FIRST":
        filters = {"slide": [rows[0]["slide"]], "split": ["train"]}
    query = "&".join(f"{f}={v}" for f, vs in filters.items() for v in vs)
    r = client.get(f"/api/datasets/{pcam}/facets?{query}")
    assert r.status_code == 200, r.text
    body = r.json()
    counts, total = expected_counts(rows, filters, ("split", "label", "slide"))
    assert body["total"] == total
    for field, expected in counts.items():
        live = {v: n for v, n in body["facets"][field].items() if n}
        assert live == expected, field
    # every value the dataset has is listed (0 when the other filters exclude it)
    assert set(body["facets"]["slide"]) == {r["slide"] for r in rows}
    # the items list agrees with the total
    assert client.get(f"/api/datasets/{pcam}/items?{query}").json()["total"] == total


def test_live_facets_with_multivalued_facets_and_the_sql_path(client, engine, ingested):
    ds = ingested.dataset_id
    with Session(engine) as s:
        items = {i.id: i for i in s.scalars(select(Item).where(Item.dataset_id == ds))}
        types: dict[int, set[str]] = {}
        for item_id, value in s.execute(select(ItemFacet.item_id, ItemFacet.value)
                                        .where(ItemFacet.field == "lesion_type")):
            types.setdefault(item_id, set()).add(value)
        patient = s.scalar(select(Item.patient_id).where(Item.dataset_id == ds).limit(1))
    some_type = sorted({t for ts in types.values() for t in ts})[0]
    # index path (facet fields only), then SQL path (patient is a filter, not a facet)
    for extra, keep in (("", lambda i: True), (f"&patient={_patient_name(engine, patient)}",
                                              lambda i: i.patient_id == patient)):
        body = client.get(f"/api/datasets/{ds}/facets?lesion_type={some_type}{extra}").json()
        chosen = [i for i in items.values() if keep(i)]
        assert body["total"] == sum(some_type in types.get(i.id, ()) for i in chosen)
        assert {v: n for v, n in body["facets"]["lesion_type"].items() if n} == dict(
            Counter(t for i in chosen for t in types.get(i.id, ())))
        assert {v: n for v, n in body["facets"]["split"].items() if n} == dict(
            Counter(i.split for i in chosen if some_type in types.get(i.id, ())))


def _patient_name(engine, patient_id: int) -> str:
    from app.db.models import Patient

    with Session(engine) as s:
        return s.get(Patient, patient_id).external_id


def _value_key(v):
    try:
        return (0, float(v), v)
    except (TypeError, ValueError):
        return (1, 0.0, v)


@pytest.mark.parametrize("sort", ["id", "-id", "label", "-label", "split", "-split", "key", "-key"])
def test_sorted_walks_match_the_database(client, engine, pcam, sort):
    rows = pcam_rows(engine, pcam)
    field, desc = sort.lstrip("-"), sort.startswith("-")
    if field == "id":
        expected = sorted(rows, key=lambda r: r["id"], reverse=desc)
    elif field == "key":
        expected = sorted(rows, key=lambda r: (r["key"], r["id"]), reverse=desc)
    else:
        expected = sorted(rows, key=lambda r: (_value_key(r[field]), r["id"]), reverse=desc)
    got = walk(client, f"/api/datasets/{pcam}/items?sort={sort}")
    assert [i["id"] for i in got] == [r["id"] for r in expected]
    # filtered too: label=1 by -split
    filtered = walk(client, f"/api/datasets/{pcam}/items?label=1&sort={sort}", limit=5)
    assert [i["id"] for i in filtered] == [r["id"] for r in expected if r["label"] == "1"]


def test_offset_jumps_land_on_the_same_positions_as_walking(client, engine, pcam):
    for sort in ("id", "-label", "key"):
        full = [i["id"] for i in walk(client, f"/api/datasets/{pcam}/items?split=train&sort={sort}", limit=50)]
        for offset in (0, 1, 13, len(full) - 3, len(full), len(full) + 5):
            page = client.get(f"/api/datasets/{pcam}/items?split=train&sort={sort}&offset={offset}&limit=8").json()
            assert [i["id"] for i in page["items"]] == full[offset:offset + 8]
            if page["next_cursor"]:
                after = client.get(f"/api/datasets/{pcam}/items?split=train&sort={sort}&limit=8"
                                   f"&cursor={page['next_cursor']}").json()
                assert [i["id"] for i in after["items"]] == full[offset + 8:offset + 16]


def test_sheet_follows_sort_and_offset(client, pcam):
    items = client.get(f"/api/datasets/{pcam}/items?sort=-label&offset=10&limit=16").json()["items"]
    sheet = client.get(f"/api/datasets/{pcam}/sheet?sort=-label&offset=10&limit=16")
    assert sheet.status_code == 200
    assert [int(i) for i in sheet.headers["x-item-ids"].split(",")] == [i["id"] for i in items]


def test_metric_sort_orders_by_value_with_missing_last(client, engine, pcam):
    with Session(engine) as s:
        model = Model(name="m", task="classify", runtime="onnx", path="/nowhere.onnx", card={})
        s.add(model)
        s.flush()
        ids = list(s.scalars(select(Item.id).where(Item.dataset_id == pcam).order_by(Item.id)))
        values = {i: round(math.sin(i) * 10, 3) for i in ids[::3]}
        values[ids[3]] = values[ids[6]]  # a tie: broken by id
        s.add_all(ItemMetric(item_id=i, model_id=model.id, name="dice", value=v) for i, v in values.items())
        s.commit()
        model_id = model.id
    for sort, desc in ((f"metric:{model_id}:dice", False), (f"-metric:{model_id}:dice", True)):
        got = walk(client, f"/api/datasets/{pcam}/items?sort={sort}", limit=6)
        ranked = sorted(values, key=lambda i: (values[i], i), reverse=desc)
        missing = [i for i in ids if i not in values]
        assert [i["id"] for i in got] == ranked + (missing[::-1] if desc else missing)
        assert [i["sort_value"] for i in got[:len(ranked)]] == [values[i] for i in ranked]
        assert all(i["sort_value"] is None for i in got[len(ranked):])
    page = client.get(f"/datasets/{pcam}?sort=-metric:{model_id}:dice")
    assert page.status_code == 200
    top = max(values.values())
    assert f'<span class="card-value mono">{top:.4g}</span>' in page.text
    assert f'value="-metric:{model_id}:dice" selected' in page.text


def test_numeric_sort_of_a_kind(client, engine, settings, tmp_path):
    tree = generate_bis5k(tmp_path / "bis", n_train=6, n_test=3, seed=4)
    ds = ingest_path(engine, settings, tree.root, kind="bis5k", name="bis").dataset_id
    with Session(engine) as s:
        areas = {i.id: i.meta.get("mask_area") for i in s.scalars(select(Item).where(Item.dataset_id == ds))}
    got = walk(client, f"/api/datasets/{ds}/items?sort=-mask_area", limit=4)
    with_area = sorted((i for i in areas if areas[i] is not None), key=lambda i: (areas[i], i), reverse=True)
    assert [i["id"] for i in got][:len(with_area)] == with_area
    assert [i["sort_value"] for i in got][:len(with_area)] == [areas[i] for i in with_area]
    charts = client.get(f"/api/datasets/{ds}/charts").json()["charts"]
    hist = next(c for c in charts if c["kind"] == "histogram")
    assert hist["n"] == len(with_area) and sum(sum(s["counts"]) for s in hist["series"]) == len(with_area)


@pytest.mark.parametrize("query, fragment", [
    ("sort=bogus", "sort by one of id, key, split, label, review_status, reviewer, edited, metric:MODEL_ID:NAME"),
    ("sort=mask_area", "cannot sort pcam items by 'mask_area'"),
    ("sort=metric:x:dice", "a metric sort is metric:MODEL_ID:NAME"),
    ("sort=metric:999:dice", "there is no model 999"),
    ("sort=label&cursor=aToxMg", "belongs to sort=id, not sort=label"),
    ("cursor=%21%21", "is not valid"),
    ("cursor=czpbMV0", "is not valid"),
    ("offset=-1", "offset must be between 0"),
    ("offset=3&cursor=aToxMg", "either cursor or offset"),
    ("nope=1", "unknown filter 'nope'"),
])
def test_bad_sort_cursor_offset_are_400s(client, pcam, query, fragment):
    for path in ("items", "sheet"):
        r = client.get(f"/api/datasets/{pcam}/{path}?{query}")
        assert r.status_code == 400, (path, r.text)
        assert fragment in r.json()["detail"]
    if query.startswith("nope"):
        r = client.get(f"/api/datasets/{pcam}/facets?{query}")
        assert r.status_code == 400 and fragment in r.json()["detail"]


def test_charts_count_what_the_database_holds(client, engine, pcam, ingested):
    rows = pcam_rows(engine, pcam)
    charts = {c["title"]: c for c in client.get(f"/api/datasets/{pcam}/charts").json()["charts"]}
    split = charts["Label balance per split"]
    for series in split["series"]:
        assert series["values"] == [sum(r["split"] == c and r["label"] == series["key"] for r in rows)
                                    for c in split["categories"]]
    assert split["categories"] == ["train", "valid", "test"]
    per_slide = charts["Label balance per slide (largest slides)"]
    assert sum(map(sum, (s["values"] for s in per_slide["series"]))) == len(rows)
    ds = ingested.dataset_id
    charts = client.get(f"/api/datasets/{ds}/charts").json()["charts"]
    body_map = next(c for c in charts if c["kind"] == "scatter")
    with Session(engine) as s:
        lesions = s.execute(select(Annotation.item_id, Annotation.meta).where(
            Annotation.dataset_id == ds, Annotation.kind == "recist").order_by(Annotation.id)).all()
    assert body_map["n"] == len(lesions) == len(body_map["item"])
    assert body_map["item"] == [i for i, _ in lesions]
    assert body_map["x"][0] == pytest.approx(lesions[0][1]["normalized_location"][0], abs=1e-4)
    assert body_map["y"][0] == pytest.approx(lesions[0][1]["normalized_location"][2], abs=1e-4)
    sizes = next(c for c in charts if c["title"].startswith("Lesion size"))
    assert sizes["n"] == len(lesions)
    assert client.get("/api/datasets/999/charts").status_code == 404
    assert client.get("/api/datasets/999/facets").status_code == 404


def test_large_datasets_get_their_facet_index_built_ahead(client, engine, pcam):
    """FacetIndexes.warm (started by the app at startup) builds the index of datasets at or over its size floor,
    and leaves the others to be built on first use."""
    from app.db.models import Dataset
    from app.db.session import make_session_factory

    factory = make_session_factory(engine)
    indexes = client.app.state.catalog.indexes
    indexes.forget()
    with factory() as session:
        ds = session.get(Dataset, pcam)
        indexes.warm(factory, min_items=ds.item_count + 1)
        assert indexes.cached(pcam) is None
        indexes.warm(factory, min_items=ds.item_count)
        assert indexes.cached(pcam).total == ds.item_count


def test_catalog_state_is_per_app(make_settings, engine, pcam):
    """Two apps on one database keep their own facet indexes and charts (app.state.catalog, made in the lifespan):
    nothing is cached at module level."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    first, second = make_settings(), make_settings()
    with signed_in(TestClient(create_app(first)), first) as one, \
            signed_in(TestClient(create_app(second)), second) as two:
        assert one.get(f"/api/datasets/{pcam}/charts").status_code == 200
        assert one.get(f"/api/datasets/{pcam}/facets").status_code == 200
        a, b = one.app.state.catalog, two.app.state.catalog
        assert a is not b and a.indexes.cached(pcam) is not None
        assert b.indexes.cached(pcam) is None and b.charts.get_cached(pcam) is None
        assert a.charts.get_cached(pcam) is not None


def test_deeplesion_sorts_by_lesion_size(client, engine, ingested):
    """`sort=-lesion_size`: key slices by their largest lesion's long axis in mm (from the RECIST annotations,
    computed here independently), largest first; the cards carry the value."""
    dataset_id = ingested.dataset_id
    with Session(engine) as s:
        longest: dict[int, float] = {}
        for item_id, meta in s.execute(select(Annotation.item_id, Annotation.meta).where(
                Annotation.dataset_id == dataset_id, Annotation.kind == "recist")):
            longest[item_id] = max(longest.get(item_id, 0.0), meta["long_mm"])
    walked = walk(client, f"/api/datasets/{dataset_id}/items?sort=-lesion_size")
    assert [i["id"] for i in walked] == sorted(longest, key=lambda i: (-longest[i], -i))
    assert [i["sort_value"] for i in walked] == pytest.approx([longest[i["id"]] for i in walked])
    html = client.get(f"/datasets/{dataset_id}", params={"sort": "-lesion_size"}).text
    assert '<option value="-lesion_size" selected>lesion size ↓</option>' in html
