"""HTML pages: the same catalog services as the JSON API, rendered with Jinja (datasette-style).

Each route resolves its object, calls one service and renders one template; each page links its
JSON twin. The small helpers below only shape service output for display (filter links, viewer
state); they never touch SQL or files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app import ingest_jobs
from app.api.datasets import dataset_files_warning, filters_from, shown_root
from app.api.deps import CatalogDep, SessionDep
from app.catalog import keysearch, predicted, priors, queries, sorting, urls
from app.catalog.followup import TRACK_DISTANCE, track_pairs
from app.catalog.listing import ID_FIELD, PRED_PREFIX, id_filter
from app.catalog.urls import query_url
from app.datasets.base import REVIEW_FACETS
from app.datasets.registry import available_kinds, get_adapter
from app.embeddings.lesion_matching import LOCATION_GATE, MIN_SIMILARITY
from app.embeddings.map import embedders_with_vectors
from app.embeddings.patient_tracks import with_lesion_tracks
from app.embeddings.similar import MAX_K as SIMILAR_MAX_K
from app.embeddings.similar_filter import similar_page
from app.embeddings.stores import newest_embedder
from app.errors import InvalidInput
from app.inference.jobs import job_summary, list_jobs
from app.inference.registry import applicable_models
from app.render.sheet import MAX_TILES
from app.web.lesion_chart import track_charts

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 60
# A kind whose adapter declares `sheet_page_size` gets each grid page's thumbnails as ONE contact sheet
# (/api/datasets/{id}/sheet) instead of one render request per item (a multiple of SHEET_COLS: whole sheet rows).
SHEET_COLS = 8
FACET_SHOWN = 15  # values listed per facet before "N more"
SHEET_TILE = 96


def _render(request: Request, template: str, context: dict[str, Any]) -> Response:
    return request.app.state.templates.TemplateResponse(request, template,
                                                        {"url_templates": urls.url_templates(), **context})


@router.get("/", name="index_page")
def index_page(request: Request, session: SessionDep) -> Response:
    """The datasets; for admins also "Add dataset…" (an ingest job, static/js/ingest.js) and the newest ingests."""
    context: dict[str, Any] = {"datasets": queries.list_datasets(session)}
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.role == "admin":
        roots = [str(p) for p in request.app.state.settings.allowed_roots]
        context["ingest"] = {"kinds": available_kinds(), "roots": roots,
                             "jobs": [job_summary(j) for j in ingest_jobs.list_ingest_jobs(session)]}
        context["url_templates"] = {**urls.url_templates(), "datasets": "/api/datasets",
                                    "dataset_page": urls.dataset_page_url("{id}")}
    return _render(request, "index.html", context)


@router.get("/datasets/{dataset_id}", name="dataset_page")
def dataset_page(dataset_id: int, request: Request, session: SessionDep, catalog: CatalogDep,
                 limit: int | None = None, cursor: str | None = None, key: str | None = None,
                 sort: str | None = None, model: str | None = None, similar: int | None = None,
                 similar_model: int | None = None, similar_k: int | None = None) -> Response:
    """The facets, charts and grid; with `similar=ITEM` the grid lists ITEM's nearest items (the similar filter,
    app.embeddings.similar_filter) with a chip that removes it."""
    detail = queries.dataset_detail(session, dataset_id)
    models = predicted.models_with_predictions(session, dataset_id)
    shown_model = chosen_model(session, models, model, filters_from(request))
    adapter = get_adapter(detail["kind"])
    filters = filters_from(request)
    check_facet_values(detail, filters)
    key = key or None
    page_size = adapter.sheet_page_size or PAGE_SIZE
    limit = page_size if limit is None else limit
    model_param = str(shown_model.id) if shown_model is not None else None
    settings = request.app.state.settings
    similar_params: dict[str, Any] = {}
    if similar is not None:
        page = similar_page(session, settings, dataset_id, filters, item_id=similar, model_id=similar_model,
                            k=similar_k or SIMILAR_MAX_K, key=key, limit=limit, cursor=cursor, sort=sort,
                            badge_model=model_param, with_ids=True)
        similar_params = {"similar": similar, "similar_model": page["similar"]["model_id"], "similar_k": similar_k}
    else:
        page = queries.list_items(session, catalog, dataset_id, filters, key=key, limit=limit, cursor=cursor,
                                  sort=sort, model=model_param)
    sort = None if page["sort"] in ("id", "similar") else page["sort"]
    live = queries.live_facet_counts(session, catalog, dataset_id, filters, key)
    # the sheet shares the page's filters, key, sort, limit and cursor, so tile n is item n (not a similar list)
    sheet_api = sheet_url(dataset_id, filters, key, limit, sort) if adapter.sheet_page_size and not similar else None
    tiles = tile_styles(f"{sheet_api}&{urlencode({'cursor': cursor})}" if cursor else sheet_api,
                        len(page["items"])) if sheet_api else []
    files_warning = dataset_files_warning(session, dataset_id, settings,
                                          shown_root(detail["root"], request, settings))
    embedder = newest_embedder(session, settings, dataset_id)
    return _render(request, "dataset.html", {
        "search_mode": keysearch.search_mode(queries.get_dataset(session, dataset_id)),
        "search_clear_url": query_url("", {f: v for f, v in filters.items() if f != keysearch.SEARCH_FIELD}, key,
                                      sort=sort, **similar_params),
        "dataset": detail, "files_warning": files_warning, "page": page, "filters": filters, "key": key or "",
        "limit": limit, "sort": sort or "",
        "facets": facet_view({**detail, "facets": live["facets"]}, filters, key, sort)
        + prediction_facet(session, detail, shown_model, filters, key, sort),
        "prediction_models": models, "model": shown_model, "model_param": model_param or "",
        "chips": active_chips(detail, filters, key, sort), "label_names": adapter.label_names(),
        "similar": page.get("similar"), "similar_params": {k: v for k, v in similar_params.items() if v is not None},
        "similar_clear_url": query_url("", filters, key, sort=sort, model=model_param),
        "more_like_this_model": embedder,
        "items_api": query_url(urls.dataset_items_url(dataset_id), filters, key, sort=sort, limit=limit,
                               model=model_param, **similar_params),
        "next_url": query_url("", filters, key, sort=sort, limit=None if limit == page_size else limit,
                              cursor=page["next_cursor"], model=model_param, **similar_params)
        if page["next_cursor"] else None,
        "sheet_api": sheet_api or "", "tiles": tiles, "sort_options": sort_options(session, detail, sort),
        "selection_base": {"dataset_id": dataset_id, "filters": filters, **({"key": key} if key else {}),
                           **({"similar": page["similar"]} if similar is not None else {})},
        "run_models": applicable_models(session, detail["kind"], task=None),
        "map_models": embedders_with_vectors(session, settings, queries.get_dataset(session, dataset_id)),
        "jobs": list_jobs(session, dataset_id, limit=5),
        "first_page": {"items": [{k: v for k, v in i.items() if not (sheet_api and k == "thumbnail_url")}
                                 for i in page["items"]], "next_cursor": page["next_cursor"], "cursor": cursor or ""},
    })


def chosen_model(session, models: Sequence[Mapping[str, Any]], model: str | None,
                 filters: Mapping[str, Sequence[str]]) -> Any:
    """The model whose predictions the cards show: `model=ID`, none for `model=` (empty), else the one a
    `pred:ID` filter names, else the newest model with predictions on this dataset (None when there is none)."""
    if model == "":
        return None
    if model is None:
        named = [f[len(PRED_PREFIX):] for f in filters if f.startswith(PRED_PREFIX)]
        model = named[0] if named else str(models[-1]["id"]) if models else None
    return predicted.get_model(session, model) if model else None


def prediction_facet(session, detail: Mapping[str, Any], model: Any, filters: Mapping[str, Sequence[str]],
                     key: str | None, sort: str | None) -> list[dict]:
    """The "predicted by MODEL" facet (classifiers): its values toggle the `pred:ID=CLASS` filter."""
    if model is None or model.task != "classify":
        return []
    field = f"{PRED_PREFIX}{model.id}"
    counts = predicted.facet(session, queries.get_dataset(session, detail["id"]), model, filters, key)
    view = facet_view({"facets": {field: counts}, "facet_labels": {}}, filters, key, sort)
    for facet in view:
        facet["title"] = f"predicted by {model.name}"
    return view


def sort_options(session, detail: Mapping[str, Any], current: str | None) -> list[dict[str, Any]]:
    """The sort menu: every allowed field both ways, and the metrics models have on this dataset."""
    names = [(f, f.replace("_", " ")) for f in sorting.allowed_sorts(detail["kind"]) if f != sorting.METRIC_HINT]
    names += sorting.metric_sorts(session, detail["id"])
    out = []
    for value, label in names:
        for text, arrow in ((value, "↑"), (f"-{value}", "↓")):
            out.append({"value": "" if text == "id" else text, "label": f"{label} {arrow}",
                        "selected": (current or "") == ("" if text == "id" else text)})
    if current and not any(o["selected"] for o in out):  # a metric sort linked from elsewhere
        out.append({"value": current, "label": current, "selected": True})
    return out


@router.get("/datasets/{dataset_id}/patients/{patient}", name="patient_page")
def patient_page(dataset_id: int, patient: str, request: Request, session: SessionDep) -> Response:
    """A patient's items as the kind's adapter groups them (`patient_page`); DeepLesion's with lesion follow-up."""
    timeline = with_lesion_tracks(session, request.app.state.settings,
                                  queries.patient_timeline(session, dataset_id, patient))
    dataset = queries.dataset_detail(session, dataset_id)
    adapter = get_adapter(dataset["kind"])
    tracks = timeline["tracks"]
    studies = [s["study"] for s in timeline["studies"]]
    return _render(request, "patient.html", {
        "priors": {} if adapter.patient_page.followup else priors.priors_of_patient(session, dataset_id, patient),
        "track_pairs": track_pairs(tracks, studies),
        "timeline": timeline, "dataset": dataset, "label_names": adapter.label_names(), "page": adapter.patient_page,
        "wording": adapter.wording, "tracks": tracks,
        "track_of": {a: f"L{t['number']}" for t in tracks for a in t["annotation_ids"]},
        "track_distance": TRACK_DISTANCE, "location_gate": LOCATION_GATE, "min_similarity": MIN_SIMILARITY,
        "track_charts": track_charts(timeline["studies"], tracks)})


def _num(x: float) -> str:
    """At most 3 decimals, no trailing zeros (as the scripts write numbers)."""
    return f"{x:.3f}".rstrip("0").rstrip(".")


# -- dataset page helpers ---------------------------------------------------------------------

def sheet_url(dataset_id: int, filters: Mapping[str, Sequence[str]], key: str | None, limit: int,
              sort: str | None = None) -> str | None:
    """The contact-sheet URL of the grid's pages (without a cursor), or None when the page is too large for one
    sheet (the grid then falls back to per-item thumbnails)."""
    if not 1 <= limit <= MAX_TILES:
        return None
    return query_url(urls.sheet_url(dataset_id), filters, key, sort=sort, limit=limit, cols=SHEET_COLS,
                     tile=SHEET_TILE, overlays="gt")


def tile_styles(url: str, count: int, cols: int = SHEET_COLS) -> list[str]:
    """For each of `count` tiles of the sheet at `url` (row by row, `cols` a row), the inline CSS that shows
    just that tile as the background of a square box (grid.js computes the same)."""
    rows = max(1, -(-count // cols))
    out = []
    for n in range(count):
        col, row = n % cols, n // cols
        x = 100 * col / (cols - 1) if cols > 1 else 0
        y = 100 * row / (rows - 1) if rows > 1 else 0
        out.append(f'background-image: url("{url}"); background-size: {cols * 100}% {rows * 100}%; '
                   f"background-position: {_num(x)}% {_num(y)}%")
    return out


def _toggled(filters: Mapping[str, Sequence[str]], field: str, value: str) -> dict[str, list[str]]:
    out = {f: list(v) for f, v in filters.items()}
    values = out.setdefault(field, [])
    if value in values:
        values.remove(value)
    else:
        values.append(value)
    return {f: v for f, v in out.items() if v}


def facet_view(detail: Mapping[str, Any], filters: Mapping[str, Sequence[str]], key: str | None,
               sort: str | None = None) -> list[dict]:
    """Each facet field with its values: display label, live count, share of the largest, active, toggle link.
    A field with many values (PCam's 810 slides) lists them by count, shows the first FACET_SHOWN and the selected
    ones, and puts the rest behind "N more" (`more`)."""
    out = []
    for field, counts in detail["facets"].items():
        names = detail["facet_labels"].get(field, {})
        top = max(counts.values(), default=1) or 1
        active = set(filters.get(field, ()))
        values = [{"value": v, "label": names.get(v, v), "code": v if v in names and names[v] != v else "",
                   "count": n, "share": round(100 * n / top), "active": v in active,
                   "href": query_url("", _toggled(filters, field, v), key, sort=sort)}
                  for v, n in counts.items()]
        if len(values) > FACET_SHOWN:  # a long list: the values with the most items under these filters first
            values.sort(key=lambda v: -v["count"])
        shown = [v for n, v in enumerate(values) if n < FACET_SHOWN or v["active"]]
        more = [v for n, v in enumerate(values) if n >= FACET_SHOWN and not v["active"]]
        out.append({"field": field, "title": field.replace("_", " "), "values": shown, "more": more})
    return out


def active_chips(detail: Mapping[str, Any], filters: Mapping[str, Sequence[str]], key: str | None,
                 sort: str | None = None) -> list[dict]:
    chips = []
    for field, values in filters.items():
        if field == ID_FIELD:  # one chip for a list of ids (the map's lasso), not one per id
            count = len(id_filter(values))
            chips.append({"field": "selected", "label": f"{count:,} item{'s' if count != 1 else ''}",
                          "href": query_url("", {f: v for f, v in filters.items() if f != field}, key, sort=sort)})
            continue
        names = detail["facet_labels"].get(field, {})
        for v in values:
            chips.append({"field": field.replace("_", " "), "label": names.get(v, v),
                          "href": query_url("", _toggled(filters, field, v), key, sort=sort)})
    if key:
        chips.append({"field": "key", "label": key, "href": query_url("", filters, sort=sort)})
    return chips


def check_facet_values(detail: Mapping[str, Any], filters: Mapping[str, Sequence[str]]) -> None:
    """A facet value the dataset does not have is a mistyped link: say which values exist (400)."""
    for field, values in filters.items():
        known = detail["facets"].get(field)
        if known is None or field in REVIEW_FACETS:
            continue  # unknown fields are refused by the service; patient/study are free text; review values are live
        for v in values:
            if v not in known:
                names = detail["facet_labels"].get(field, {})
                choices = ", ".join(f"{k} ({names[k]})" if k in names else k for k in known)
                raise InvalidInput(f"{field}={v!r} matches no item of {detail['name']}; "
                                   f"{field} values are: {choices or 'none'}")

