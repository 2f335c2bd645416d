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

from app.api.datasets import filters_from
from app.api.deps import SessionDep
from app.catalog import queries
from app.catalog.followup import TRACK_DISTANCE
from app.errors import InvalidInput
from app.imaging.presets import OWN_WINDOW_NAMES, PRESETS, WindowError, parse_window
from app.render.service import MASK_MODES, RenderParams
from app.render.sheet import MAX_TILES

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 60
# Kinds whose grid fetches each page's thumbnails as ONE contact sheet (/api/datasets/{id}/sheet) instead of one
# render request per item, with their page size (a multiple of SHEET_COLS: whole sheet rows).
SHEET_PAGE_SIZES = {"pcam": 64}
SHEET_COLS = 8
SHEET_TILE = 96
# Viewer preset buttons in keyboard order (keys 1–8); "default" is the item's own (DICOM) window.
PRESET_ORDER = ("default", "abdomen", "soft_tissue", "mediastinum", "liver", "lung", "bone", "brain")
# The render endpoint's mask defaults: the page leaves them out of its URLs (same URLs and ETags as before).
DEFAULT_MASK_MODE = RenderParams.mask_mode
DEFAULT_OPACITY = RenderParams.opacity


def _render(request: Request, template: str, context: dict[str, Any]) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context)


@router.get("/", name="index_page")
def index_page(request: Request, session: SessionDep) -> Response:
    return _render(request, "index.html", {"datasets": queries.list_datasets(session)})


@router.get("/datasets/{dataset_id}", name="dataset_page")
def dataset_page(dataset_id: int, request: Request, session: SessionDep, limit: int | None = None,
                 cursor: str | None = None, key: str | None = None) -> Response:
    detail = queries.dataset_detail(session, dataset_id)
    filters = filters_from(request)
    check_facet_values(detail, filters)
    page_size = SHEET_PAGE_SIZES.get(detail["kind"], PAGE_SIZE)
    limit = page_size if limit is None else limit
    page = queries.list_items(session, dataset_id, filters, key=key or None, limit=limit, cursor=cursor)
    # the sheet shares the page's filters, key, limit and cursor, so tile n is item n
    sheet_api = sheet_url(dataset_id, filters, key, limit) if detail["kind"] in SHEET_PAGE_SIZES else None
    tiles = tile_styles(f"{sheet_api}&{urlencode({'cursor': cursor})}" if cursor else sheet_api,
                        len(page["items"])) if sheet_api else []
    return _render(request, "dataset.html", {
        "dataset": detail, "page": page, "filters": filters, "key": key or "", "limit": limit,
        "facets": facet_view(detail, filters, key), "chips": active_chips(detail, filters, key),
        "label_names": label_names(detail), "items_api": query_url(f"/api/datasets/{dataset_id}/items",
                                                                      filters, key, limit=limit),
        "next_url": query_url("", filters, key, limit=None if limit == page_size else limit,
                              cursor=page["next_cursor"]) if page["next_cursor"] else None,
        "sheet_api": sheet_api or "", "tiles": tiles,
    })


@router.get("/items/{item_id}", name="item_page")
def item_page(item_id: int, request: Request, session: SessionDep, preset: str | None = None,
              window: str | None = None, slice: int | None = None, overlays: str = "gt",
              plane: str | None = None, mask_mode: str = DEFAULT_MASK_MODE,
              opacity: str | None = None) -> Response:
    item = queries.item_detail(session, item_id)
    dataset = queries.dataset_summary(queries.get_dataset(session, item["dataset_id"]))
    viewer = viewer_state(item, preset, window, slice, overlays, plane, mask_mode, opacity)
    from app.web.model_pages import applicable_models  # model_pages imports this module

    return _render(request, "item.html", {"item": item, "dataset": dataset, "viewer": viewer,
                                          "image_url": render_url(viewer),
                                          "run_models": applicable_models(session, dataset["kind"])})


@router.get("/datasets/{dataset_id}/patients/{patient}", name="patient_page")
def patient_page(dataset_id: int, patient: str, request: Request, session: SessionDep) -> Response:
    timeline = queries.patient_timeline(session, dataset_id, patient)
    dataset = queries.dataset_detail(session, dataset_id)
    tracks = timeline["tracks"]
    return _render(request, "patient.html", {
        "timeline": timeline, "dataset": dataset, "label_names": label_names(dataset), "tracks": tracks,
        "track_of": {a: f"L{t['number']}" for t in tracks for a in t["annotation_ids"]},
        "track_distance": TRACK_DISTANCE})


# -- dataset page helpers ---------------------------------------------------------------------

def query_url(path: str, filters: Mapping[str, Sequence[str]], key: str | None = None, **extra: Any) -> str:
    """`path?field=value…` with repeated fields, the key search and paging parameters (None = left out)."""
    pairs = [(f, v) for f, values in filters.items() for v in values]
    if key:
        pairs.append(("key", key))
    pairs += [(k, str(v)) for k, v in extra.items() if v is not None]
    return f"{path}?{urlencode(pairs)}" if pairs else (path or "?")


def sheet_url(dataset_id: int, filters: Mapping[str, Sequence[str]], key: str | None, limit: int) -> str | None:
    """The contact-sheet URL of the grid's pages (without a cursor), or None when the page is too large for one
    sheet (the grid then falls back to per-item thumbnails)."""
    if not 1 <= limit <= MAX_TILES:
        return None
    return query_url(f"/api/datasets/{dataset_id}/sheet", filters, key, limit=limit, cols=SHEET_COLS,
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


def facet_view(detail: Mapping[str, Any], filters: Mapping[str, Sequence[str]], key: str | None) -> list[dict]:
    """Each facet field with its values: display label, count, share of the largest, active, toggle link."""
    out = []
    for field, counts in detail["facets"].items():
        names = detail["facet_labels"].get(field, {})
        top = max(counts.values(), default=1) or 1
        active = set(filters.get(field, ()))
        out.append({"field": field, "title": field.replace("_", " "), "values": [
            {"value": v, "label": names.get(v, v), "code": v if v in names and names[v] != v else "",
             "count": n, "share": round(100 * n / top), "active": v in active,
             "href": query_url("", _toggled(filters, field, v), key)}
            for v, n in counts.items()]})
    return out


def active_chips(detail: Mapping[str, Any], filters: Mapping[str, Sequence[str]], key: str | None) -> list[dict]:
    chips = []
    for field, values in filters.items():
        names = detail["facet_labels"].get(field, {})
        for v in values:
            chips.append({"field": field.replace("_", " "), "label": names.get(v, v),
                          "href": query_url("", _toggled(filters, field, v), key)})
    if key:
        chips.append({"field": "key", "label": key, "href": query_url("", filters)})
    return chips


def check_facet_values(detail: Mapping[str, Any], filters: Mapping[str, Sequence[str]]) -> None:
    """A facet value the dataset does not have is a mistyped link: say which values exist (400)."""
    for field, values in filters.items():
        known = detail["facets"].get(field)
        if known is None:
            continue  # unknown fields are refused by the service; patient/study are free text
        for v in values:
            if v not in known:
                names = detail["facet_labels"].get(field, {})
                choices = ", ".join(f"{k} ({names[k]})" if k in names else k for k in known)
                raise InvalidInput(f"{field}={v!r} matches no item of {detail['name']}; "
                                   f"{field} values are: {choices or 'none'}")


def label_names(detail: Mapping[str, Any]) -> dict[str, str]:
    """Display names for item labels: DeepLesion labels are lesion-type codes."""
    labels = detail["facet_labels"]
    return labels.get("label") or (labels.get("lesion_type", {}) if detail["kind"] == "deeplesion" else {})


# -- item page helpers ------------------------------------------------------------------------

PLANE_KEYS = ("axial", "coronal", "sagittal")


def volume_planes(item: Mapping[str, Any]) -> dict[str, int]:
    """Slice counts per plane of a volume item: `meta.planes` when the adapter stored it, else the canonical
    (i, j, k) = (width, height, depth) of a `volume` item; {} for 2-D images."""
    planes = (item.get("meta") or {}).get("planes")
    if isinstance(planes, Mapping) and all(isinstance(planes.get(p), int) for p in PLANE_KEYS):
        return {p: int(planes[p]) for p in PLANE_KEYS}
    if item.get("kind") == "volume" and item.get("width") and item.get("height") and item.get("depth"):
        return {"axial": int(item["depth"]), "coronal": int(item["height"]), "sagittal": int(item["width"])}
    return {}


def parse_opacity(text: str | float | None) -> float:
    """The mask opacity from the page URL (taken as a string, so that `opacity=abc` is a 400 page like the
    other viewer values, not a 422), rounded to 3 decimals as the viewer writes it."""
    if text is None or text == "":
        return DEFAULT_OPACITY
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise InvalidInput(f"opacity must be a number from 0 to 1, not {text!r}")
    return round(value, 3) + 0.0  # + 0.0: no "-0" in URLs


def viewer_state(item: Mapping[str, Any], preset: str | None, window: str | None, slice_number: int | None,
                 overlays: str, plane: str | None = None, mask_mode: str = DEFAULT_MASK_MODE,
                 opacity: str | float | None = None) -> dict[str, Any]:
    """The viewer's initial state from the page URL (validated, so a shared link never shows a broken image).

    Volumes add `planes` ({plane: slice count}) and `plane`; their slices are range(n) of the plane, and the
    middle one plays the part of the key slice (it is what the render endpoint shows without `slice`).
    `has_mask` says whether the item has a `mask` annotation (the page then shows the mask controls:
    `mask_mode` fill | contour and `opacity`)."""
    meta = item.get("meta") or {}
    planes = volume_planes(item)
    if planes:
        plane = plane or meta.get("default_plane") or "axial"
        if plane not in planes:
            raise InvalidInput(f"plane must be one of {', '.join(PLANE_KEYS)}, not {plane!r}")
        slices = list(range(planes[plane]))
        key_slice = planes[plane] // 2
    else:
        if plane not in (None, "axial"):
            raise InvalidInput(f"plane {plane!r} is not available for this item: it is a 2-D image")
        plane = None
        # a 2-D image steps through slices only when its adapter lists some (DeepLesion's neighbours);
        # location_index means something else for a patch or a photo (an HDF5 row, nothing)
        slices = [int(n) for n in meta.get("slices") or []]
        key_slice = item.get("slice") if slices else None
    own = [float(v) for v in item["window"]] if item.get("window") else list(PRESETS["soft_tissue"])
    state: dict[str, Any] = {"preset": "default", "window": own, "overlays": overlays,
                             "slice": key_slice if slice_number is None else slice_number}
    if window:
        try:
            state["window"], state["preset"] = list(parse_window(window)), None
        except WindowError as exc:
            raise InvalidInput(str(exc)) from None
    elif preset and preset not in OWN_WINDOW_NAMES:
        if preset not in PRESETS:
            raise InvalidInput(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_ORDER)}")
        state["window"], state["preset"] = list(PRESETS[preset]), preset
    if overlays not in ("gt", "none"):
        raise InvalidInput(f"overlays must be gt or none, not {overlays!r}")
    if mask_mode not in MASK_MODES:
        raise InvalidInput(f"mask_mode must be {' or '.join(MASK_MODES)}, not {mask_mode!r}")
    state["mask_mode"] = mask_mode
    state["opacity"] = parse_opacity(opacity)
    if slice_number is not None and slice_number not in slices:
        span = f"{slices[0]}–{slices[-1]}" if slices else "the key slice only"
        where = f" in the {plane} plane" if planes else ""
        raise InvalidInput(f"slice {slice_number} is not available for this item{where} (available: {span})")
    return {"id": item["id"], "version": item["version"], "ct": bool(item.get("window")),
            "key_slice": key_slice, "slices": slices, "planes": planes, "plane": plane,
            "slice_range": meta.get("slice_range"), "own_window": own,
            "presets": {**{n: list(w) for n, w in PRESETS.items()}, "default": own},
            "preset_order": list(PRESET_ORDER), "render_url": f"/api/items/{item['id']}/render",
            "has_mask": any(a.get("kind") == "mask" for a in item.get("annotations") or ()), **state}


def _num(x: float) -> str:
    """A number as viewer.js writes it (at most 3 decimals, no trailing zeros)."""
    return f"{x:.3f}".rstrip("0").rstrip(".")


def render_url(viewer: Mapping[str, Any]) -> str:
    """Same URL the viewer's JS builds, so the first paint needs no script."""
    params: dict[str, Any] = {"format": "jpeg", "overlays": viewer["overlays"], "v": viewer["version"]}
    if viewer["preset"] is None:
        params["window"] = f"{_num(viewer['window'][0])},{_num(viewer['window'][1])}"
    elif viewer["preset"] != "default":
        params["preset"] = viewer["preset"]
    if viewer.get("planes"):
        params["plane"] = viewer["plane"]
    if viewer["slice"] is not None and viewer["slice"] != viewer["key_slice"]:
        params["slice"] = viewer["slice"]
    if viewer.get("mask_mode", DEFAULT_MASK_MODE) != DEFAULT_MASK_MODE:
        params["mask_mode"] = viewer["mask_mode"]
    if viewer.get("opacity", DEFAULT_OPACITY) != DEFAULT_OPACITY:
        params["opacity"] = _num(viewer["opacity"])
    return f"{viewer['render_url']}?{urlencode(params)}"
