"""The item page: one viewer for every dataset kind, its initial state validated from the page URL.

`viewer_state` turns the URL (window, preset, slice, plane, overlays, mask mode, opacity, and the client-side
viewer's invert, zoom, pan, layout, hidden layers, compared model, difference mode) into the state the viewer
script starts from, so a shared link never shows a broken image; `render_url` is the first image's URL (the
no-script first paint, shown until the raw values arrive), the same one the script would build.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.accounts.roles import at_least
from app.api.deps import SessionDep
from app.catalog import priors, queries, urls
from app.datasets.base import DatasetAdapter
from app.datasets.registry import get_adapter
from app.errors import AppError, InvalidInput
from app.imaging.modality import item_modality, modality_name, window_policy
from app.imaging.presets import AUTO_PRESET, OWN_WINDOW_NAMES, PRESETS, WindowError, choose_window, own_window
from app.inference.outputs import item_with_predictions
from app.inference.registry import applicable_models
from app.render.service import MASK_MODES, RenderParams
from app.review import queues
from app.web.preload import first_mask_urls, first_raw_urls, module_graph
from app.web.review_pages import review_urls

router = APIRouter(include_in_schema=False)

# Viewer preset buttons in keyboard order (keys 1–8); "default" is the item's own (DICOM) window.
PRESET_ORDER = ("default", "abdomen", "soft_tissue", "mediastinum", "liver", "lung", "bone", "brain")
# The render endpoint's mask defaults: the page leaves them out of its URLs (same URLs and ETags as before).
DEFAULT_MASK_MODE = RenderParams.mask_mode
DEFAULT_OPACITY = RenderParams.opacity


def _render(request: Request, template: str, context: dict[str, Any]) -> Response:
    return request.app.state.templates.TemplateResponse(request, template,
                                                        {"url_templates": urls.url_templates(), **context})


@router.get("/items/{item_id}", name="item_page")
def item_page(item_id: int, request: Request, session: SessionDep, preset: str | None = None,
              window: str | None = None, slice: int | None = None, overlays: str = "gt",
              plane: str | None = None, mask_mode: str = DEFAULT_MASK_MODE,
              opacity: str | None = None, queue: int | None = None) -> Response:
    item = item_with_predictions(session, item_id)
    principal = getattr(request.state, "principal", None)
    review = None
    if queue is not None:  # review mode (static/js/viewer/review.js): blinded as the reader of that queue
        item = queues.blinded(session, item, queue, principal.username if principal else None)
        review = {"queue_id": queue, "item_id": item_id}
    dataset = queries.dataset_summary(queries.get_dataset(session, item["dataset_id"]))
    adapter = get_adapter(dataset["kind"])
    renderer, pixels = request.app.state.renderer, request.app.state.pixels
    viewer = viewer_state(item, preset, window, slice, overlays, plane, mask_mode, opacity,
                          auto_window=lambda: renderer.auto_window(pixels.target(session, item_id, False)))
    viewer.update(client_view(item, adapter, viewer, request.query_params))
    viewer["queue"] = queue

    models = applicable_models(session, dataset["kind"], task=None)
    run_models = [m for m in models if m["task"] != "embed"]  # "Run model" for any task that shows a prediction
    embed_models = [m for m in models if m["task"] == "embed"]  # "More like this" (issue 15)
    viewer["classes"] = {str(m["id"]): m["classes"] for m in run_models}
    viewer["edit"] = edit_state(item, adapter, queries.get_dataset(session, item["dataset_id"]).facet_counts,
                                getattr(request.state, "principal", None), request)
    return _render(request, "item.html", {"item": item, "dataset": dataset, "viewer": viewer,
                                          "image_url": render_url(viewer), "run_models": run_models,
                                          "fetch_preloads": first_raw_urls(viewer) + first_mask_urls(viewer),
                                          "module_preloads": module_graph(),
                                          "embed_models": embed_models,
                                          "wording": adapter.wording, "review": review,
                                          "kind_facets": adapter.facet_fields,
                                          "item_title": adapter.patient_page.item_title(item),
                                          "study_title": adapter.patient_page.study_title(item),
                                          "follows_lesions": adapter.patient_page.followup,
                                          "followup_prior": None if review or not item.get("patient") else
                                          priors.item_prior(session, item_id, adapter.patient_page.followup),
                                          "review_urls": review_urls(request) if review else None})



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
                 opacity: str | float | None = None,
                 auto_window: Callable[[], tuple[float, float]] | None = None) -> dict[str, Any]:
    """The viewer's initial state from the page URL (validated, so a shared link never shows a broken image).

    Volumes add `planes` ({plane: slice count}) and `plane`; their slices are range(n) of the plane, and the
    middle one plays the part of the key slice (it is what the render endpoint shows without `slice`).
    `has_mask` says whether the item has a `mask` annotation (the page then shows the mask controls:
    `mask_mode` fill | contour and `opacity`). The windows offered follow the modality (`window_choices`);
    `auto_window` computes the percentile auto-window when a non-CT item offers it."""
    meta = item.get("meta") or {}
    planes = volume_planes(item)
    key_slice: int | None  # the slice shown without `slice`: a volume plane's middle, a 2-D image's own
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
    windows = window_choices(item, window, preset, auto_window)
    state: dict[str, Any] = {**windows, "overlays": overlays,
                             "slice": key_slice if slice_number is None else slice_number}
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
    return {"id": item["id"], "version": item["version"],
            "key_slice": key_slice, "slices": slices, "planes": planes, "plane": plane,
            "slice_range": meta.get("slice_range"), "render_url": urls.render_url(item["id"]),
            "has_mask": any(a.get("kind") == "mask" for a in item.get("annotations") or ()), **state}


def window_choices(item: Mapping[str, Any], window: str | None, preset: str | None,
                   auto_window: Callable[[], tuple[float, float]] | None) -> dict[str, Any]:
    """The viewer's windowing state from the item's modality (app.imaging.modality): `windowed` (grey values the
    W/L tool changes), `ct`, `modality` and its readable `modality_name`, `units` ("HU" only for CT), `presets`
    {name: [low, high]} and `preset_order` (CT: the named HU presets; MR and others: the file's own VOI window
    when it has one, and "auto", the percentile auto-window), `default_preset`, `own_window`, and the chosen
    `preset` (None for an explicit `window=LOW,HIGH`) and `window`. A preset the modality does not offer is a 400
    naming the ones it does."""
    meta = item.get("meta") or {}
    has_window = bool(item.get("window"))
    modality = item_modality(meta, has_window)
    own_from_file = meta.get("window_source", "file") == "file"
    policy = window_policy(modality, has_window, own_from_file, PRESET_ORDER)
    own = list(own_window(item.get("window")))
    out: dict[str, Any] = {"windowed": has_window, "ct": policy.hounsfield, "modality": policy.modality,
                           "modality_name": modality_name(policy.modality), "units": policy.units,
                           "own_window": own}
    if policy.hounsfield or not has_window:
        try:
            chosen = choose_window(window, preset, item.get("window"), PRESET_ORDER)
        except WindowError as exc:
            raise InvalidInput(str(exc)) from None
        return {**out, "presets": {**{n: list(w) for n, w in PRESETS.items()}, "default": own},
                "preset_order": list(policy.presets or PRESET_ORDER), "default_preset": "default",
                "preset": chosen.preset, "window": list(chosen.window)}
    presets: dict[str, list[float]] = {}
    for name in policy.presets:
        if name == AUTO_PRESET:
            try:
                if auto_window is not None:
                    presets[name] = list(auto_window())
            except AppError:  # pixels unreadable: the page still opens (its image shows why), without "auto"
                pass
        else:
            presets[name] = own
    if not presets:
        presets["default"] = own
    default = policy.default if policy.default in presets else next(iter(presets))
    out.update({"presets": presets, "preset_order": list(presets), "default_preset": default})
    if window:
        try:
            return {**out, "preset": None, "window": list(choose_window(window, None, None).window)}
        except WindowError as exc:
            raise InvalidInput(str(exc).replace(" in HU", "")) from None
    name = "default" if preset in OWN_WINDOW_NAMES and "default" in presets else (preset or default)
    if name not in presets:
        what = f"this {policy.modality} item" if policy.modality else "this item"
        why = ("it is a CT window in HU, and this item's values are not Hounsfield units" if preset in PRESETS
               else "its files have no window of their own" if preset in OWN_WINDOW_NAMES else "no such preset")
        raise InvalidInput(f"preset {preset!r} is not available for {what}: {why}; choose one of {', '.join(presets)}")
    return {**out, "preset": name, "window": presets[name]}


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
    return urls.render_url(viewer["id"], params)


# -- the client-side viewer: URL state beyond the render parameters, vector shapes, predictions -------------

LAYOUTS = ("single", "three", "side")
LAYERS = ("mask", "shapes", "pred", "measure")  # what `hide=` may name
ZOOM_RANGE = (0.05, 64.0)
TASKS = ("classify", "segment2d", "segment3d", "detect2d")


def _flag(name: str, text: str | None) -> bool:
    if text in (None, "", "0", "false"):
        return False
    if text in ("1", "true"):
        return True
    raise InvalidInput(f"{name} must be 1 or 0, not {text!r}")


def _number(name: str, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be a number from {low:g} to {high:g}, not {text!r}")
    return round(value, 4) + 0.0


def _cursor(text: str | None, planes: Mapping[str, int]) -> list[int] | None:
    """The three-plane crosshair `at=i,j,k` (canonical voxel; each within the volume)."""
    if not text:
        return None
    parts = text.split(",")
    counts = (planes["sagittal"], planes["coronal"], planes["axial"])
    if len(parts) != 3 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise InvalidInput(f"at must be three voxel indices i,j,k, not {text!r}")
    at = [int(p) for p in parts]
    if not all(0 <= v < n for v, n in zip(at, counts, strict=True)):
        raise InvalidInput(f"at={text} lies outside the volume ({counts[0]} × {counts[1]} × {counts[2]} voxels)")
    return at


def prediction_task(prediction: Mapping[str, Any]) -> str:
    """The prediction's task (H1's `task`, else what its outputs hold) so the viewer knows how to draw it."""
    task = prediction.get("task")
    if task in TASKS:
        return task
    outputs = prediction.get("outputs") or {}
    if "mask" in outputs:
        return "segment2d"
    return "detect2d" if "boxes" in outputs else "classify"


def viewer_shapes(item: Mapping[str, Any], adapter: DatasetAdapter) -> list[dict[str, Any]]:
    """Ground-truth vector shapes in image pixels (volumes: centroid points in canonical voxels, which the
    viewer maps into each plane as app.imaging.volume.voxel_to_display does), then the kind's own marks
    (`adapter.viewer_shapes`: PCam's centre box, a folder image's class name). The same shapes the dataset's
    adapter draws server-side (`overlay`), so the canvas and the rendered JPEG agree."""
    shapes: list[dict[str, Any]] = []
    for a in item.get("annotations") or ():
        geometry, meta = a.get("geometry") or {}, a.get("meta") or {}
        if a["kind"] == "recist":
            shapes.append({"type": "recist", "ann": a.get("id"), "slice": a.get("slice_index"),
                           "long": geometry.get("long"), "short": geometry.get("short"), "bbox": geometry.get("bbox"),
                           "text": str(meta.get("lesion_number") or ""), "long_mm": meta.get("long_mm"),
                           "short_mm": meta.get("short_mm")})
        elif a["kind"] == "bbox" and geometry.get("bbox"):
            shapes.append({"type": "box", "ann": a.get("id"), "slice": a.get("slice_index"), "bbox": geometry["bbox"],
                           "text": a.get("label") or ""})
        elif a["kind"] == "centroid" and geometry.get("point"):
            label = a.get("label") or ""
            shapes.append({"type": "centroid", "ann": a.get("id"), "point": geometry["point"],
                           "text": meta.get("name") or label,
                           "label": int(label) if str(label).isdigit() else 0, "colour": meta.get("colour")})
        elif a["kind"] == "line" and geometry.get("line"):
            shapes.append({"type": "line", "ann": a.get("id"), "slice": a.get("slice_index"),
                           "plane": meta.get("plane"), "line": geometry["line"], "length_mm": meta.get("length_mm")})
    return shapes + adapter.viewer_shapes(item)


def client_view(item: Mapping[str, Any], adapter: DatasetAdapter, viewer: Mapping[str, Any],
                query: Mapping[str, str]) -> dict[str, Any]:
    """What the client-side viewer adds to `viewer_state`: its URL parameters (invert, zoom, pan, layout,
    hide, model, diff — validated like the others: a bad value is a 400 page naming it), the data it
    draws itself (raw/mask URLs, geometry, vector shapes, predictions) and what the kind lets it do
    (`adapter.viewer`: measuring tools, whether the spacing maps planes) — capabilities, never a kind name."""
    layout = query.get("layout") or "single"
    if layout not in LAYOUTS:
        raise InvalidInput(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if layout == "three" and not viewer["planes"]:
        raise InvalidInput("layout=three needs a volume (three planes); this item is a 2-D image")
    hide = [h for h in (query.get("hide") or "").split(",") if h]
    if unknown := [h for h in hide if h not in LAYERS]:
        raise InvalidInput(f"hide lists unknown layers {', '.join(map(repr, unknown))}; choose from "
                           f"{', '.join(LAYERS)}")
    zoom = _number("zoom", query["zoom"], *ZOOM_RANGE) if query.get("zoom") else None
    pan = None
    if query.get("pan"):
        parts = query["pan"].split(",")
        if len(parts) != 2:
            raise InvalidInput(f"pan must be X,Y (the image point at the view's centre), not {query['pan']!r}")
        pan = [_number("pan", p, -100000, 100000) for p in parts]
    at = _cursor(query.get("at"), viewer["planes"]) if layout == "three" else None
    predictions = [{**p, "task": prediction_task(p)} for p in item.get("predictions") or ()]
    model = None
    if query.get("model"):
        ids = [p["model_id"] for p in predictions]
        if not query["model"].isdigit() or int(query["model"]) not in ids:
            have = ", ".join(map(str, ids)) or "none"
            raise InvalidInput(f"model {query['model']!r} has no prediction for this item (models: {have})")
        model = int(query["model"])
    spacing = item.get("spacing")
    spec = adapter.viewer
    return {"invert": _flag("invert", query.get("invert")), "zoom": zoom, "pan": pan, "layout": layout, "at": at,
            "hide": hide, "model": model, "diff": _flag("diff", query.get("diff")),
            "raw_url": urls.raw_url(item["id"]),
            "mask_url": urls.mask_url(item["id"]) if viewer["has_mask"] else None,
            "shape": [item.get("width") or 0, item.get("height") or 0, item.get("depth") or 1],
            "spacing": [float(v) for v in spacing] if spacing else None,
            "spacing_maps_planes": spec.spacing_maps_planes, "tools": list(spec.tools),
            "shapes": viewer_shapes(item, adapter), "centroid_slab_mm": spec.centroid_slab_mm,
            "label_gap_mm": spec.label_gap_mm, "predictions": predictions,
            "defaults": {"mask_mode": DEFAULT_MASK_MODE, "opacity": DEFAULT_OPACITY}}


# -- editing: what the signed-in user may change here, and where the writes go --------------------------------

EDIT_KEYS = ("id", "kind", "label", "geometry", "meta", "slice_index", "version", "source")


# Annotation kinds the Edit tool changes by dragging handles (edit.js); a mask is painted with the brush instead
# and a label chosen from a list.
HANDLE_KINDS = ("recist", "bbox", "line", "centroid")


def edit_state(item: Mapping[str, Any], adapter: DatasetAdapter, facet_counts: Mapping[str, Any] | None,
               principal: Any, request: Request) -> dict[str, Any]:
    """The editor's data (static/js/viewer/edit.js): the annotation kinds this dataset kind lets users make
    (`adapter.editable_annotations`), the dataset's classes (the label facet's values, as the server checks
    them), whether the signed-in user may write (annotator or above: a viewer gets no editing controls), the
    item's current annotations of those kinds with their versions, and the write URLs (filled by the script)."""
    kinds = list(adapter.editable_annotations)
    classes = sorted(str(c) for c in ((facet_counts or {}).get(adapter.label_facet) or {}))
    role = getattr(principal, "role", None)
    app = request.app
    return {
        "kinds": kinds, "classes": classes,
        "handle_kinds": [k for k in kinds if k in HANDLE_KINDS],  # the Edit tool's: no Edit tool without them
        "can_edit": bool(role and kinds and at_least(role, "annotator")),
        "can_comment": bool(role and at_least(role, "annotator")),
        "user": getattr(principal, "username", None),
        "annotations": [{k: a.get(k) for k in EDIT_KEYS} for a in item.get("annotations") or ()
                        if a.get("kind") in kinds],
        "urls": {"create": app.url_path_for("create_annotation", item_id=str(item["id"])),
                 "annotation": app.url_path_for("edit_annotation", annotation_id="{id}"),
                 "comments": app.url_path_for("list_comments", item_id=str(item["id"]))},
    }
