"""The item page: one viewer for every dataset kind, its initial state validated from the page URL.

`viewer_state` turns the URL (window, preset, slice, plane, overlays, mask mode, opacity) into the state
the viewer script starts from, so a shared link never shows a broken image; `render_url` is the first
image's URL, the same one the script would build.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import SessionDep
from app.catalog import queries
from app.errors import InvalidInput
from app.imaging.presets import OWN_WINDOW_NAMES, PRESETS, WindowError, parse_window
from app.render.service import MASK_MODES, RenderParams

router = APIRouter(include_in_schema=False)

# Viewer preset buttons in keyboard order (keys 1–8); "default" is the item's own (DICOM) window.
PRESET_ORDER = ("default", "abdomen", "soft_tissue", "mediastinum", "liver", "lung", "bone", "brain")
# The render endpoint's mask defaults: the page leaves them out of its URLs (same URLs and ETags as before).
DEFAULT_MASK_MODE = RenderParams.mask_mode
DEFAULT_OPACITY = RenderParams.opacity


def _render(request: Request, template: str, context: dict[str, Any]) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context)


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
