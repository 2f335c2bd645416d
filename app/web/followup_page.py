"""The follow-up page (issue 14): a prior and a current study of one patient side by side, linked W/L, zoom, pan and
slice (static/js/viewer/followup.js, built on the viewer's panes and pixels).

`GET /items/{item_id}/followup?prior=ID`: the item is the current study, `prior` the earlier one (without it, the
item's prior by app.catalog.priors: the same lesion's previous key slice, else the best matching series of the
nearest earlier study). The earlier study is always on the left. Each pane's state is the item page's own
(`viewer_state` + `client_view`), plus where its slices lie along each plane's axis in patient mm (volumes with an
affine), so slices link by position, and its RECIST measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import SessionDep
from app.catalog import priors, queries
from app.catalog.followup import lesion_tracks
from app.datasets.dicom.patient import study_date
from app.datasets.registry import get_adapter
from app.errors import InvalidInput
from app.inference.outputs import item_with_predictions
from app.web.item_page import _render, client_view, render_url, viewer_state, volume_planes

router = APIRouter(include_in_schema=False)

PLANES = ("sagittal", "coronal", "axial")  # canonical axis 0, 1, 2 (app.imaging.volume.PLANE_AXIS)


def plane_positions(meta: Mapping[str, Any]) -> dict[str, list[float]] | None:
    """{plane: [mm of slice 0, mm per slice]} along the patient axis each plane's slices count (R, A, S), from the
    item's affine and canonical shape (DICOM series); None without them. Two studies of one patient share the
    scanner's patient coordinates closely enough to find 'the slice at the same height'."""
    affine, shape = meta.get("affine"), meta.get("canonical_shape")
    if not affine or not shape or len(shape) != 3:
        return None
    from nibabel.orientations import axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

    try:
        a = np.asarray(affine, dtype=float)
        ornt = io_orientation(a)
        stored = [int(shape[int(target)]) for target, _flip in ornt]  # the array's shape before reordering
        canonical = a @ inv_ornt_aff(ornt_transform(ornt, axcodes2ornt(("R", "A", "S"))), stored)
    except (ValueError, IndexError):
        return None
    centre = np.array([(n - 1) / 2 for n in shape] + [1.0])
    out = {}
    for axis, plane in enumerate(PLANES):
        at0 = centre.copy()
        at0[axis] = 0
        out[plane] = [round(float(canonical[axis] @ at0), 4), round(float(canonical[axis, axis]), 6)]
    return out


def _side(request: Request, session: SessionDep, item: Mapping[str, Any], adapter: Any, role: str,
          plane: str | None) -> dict[str, Any]:
    """One pane's state: the item page's viewer state, where its slices lie, its header and its measurements."""
    renderer, pixels = request.app.state.renderer, request.app.state.pixels
    viewer = viewer_state(item, None, None, None, "gt", plane,
                          auto_window=lambda: renderer.auto_window(pixels.target(session, item["id"], False)))
    viewer.update(client_view(item, adapter, viewer, {}))
    meta = item.get("meta") or {}
    study = priors.study_of(session, item["id"])
    lesions = [{"number": (a.get("meta") or {}).get("lesion_number"), "label": a.get("label"),
                "type": (a.get("meta") or {}).get("lesion_type_name") or a.get("label"),
                "long_mm": (a.get("meta") or {}).get("long_mm"), "short_mm": (a.get("meta") or {}).get("short_mm"),
                "slice": a.get("slice_index")}
               for a in item.get("annotations") or () if a.get("kind") == "recist"]
    return {"role": role, "item": {k: item.get(k) for k in ("id", "key", "age", "study", "label", "width", "height",
                                                            "depth")},
            "study": study, "date": study_date(meta.get("study_date")),
            "description": " · ".join(d for d in (meta.get("study_description"), meta.get("series_description")) if d),
            "lesions": lesions, "render_url": render_url(viewer),
            "viewer": {**viewer, "positions": plane_positions(meta)}}


def lesion_changes(session: SessionDep, patient_id: int, prior_id: int, current_id: int) -> list[dict[str, Any]]:
    """Lesion tracks measured on both key slices: {number, type, prior {long_mm, short_mm}, current {…}, change}."""
    tracks = lesion_tracks(priors.patient_studies(session, patient_id))
    out = []
    for t in tracks:
        by_item = {m["item_id"]: m for m in t["by_study"].values()}
        before, after = by_item.get(prior_id), by_item.get(current_id)
        if before and after and before["long_mm"] and after["long_mm"]:
            out.append({"number": t["number"], "type": t["type"], "prior": before, "current": after,
                        "change": after["long_mm"] / before["long_mm"] - 1})
    return out


@router.get("/items/{item_id}/followup", name="followup_page")
def followup_page(item_id: int, request: Request, session: SessionDep, prior: int | None = None) -> Response:
    current = item_with_predictions(session, item_id)  # 404 for an unknown item
    dataset = queries.dataset_summary(queries.get_dataset(session, current["dataset_id"]))
    adapter = get_adapter(dataset["kind"])
    patient_id = queries.get_item(session, item_id).patient_id
    if not current.get("patient") or patient_id is None:
        raise InvalidInput(f"item {item_id} ({current['key']}) belongs to no patient: a follow-up view compares two "
                           "studies of one patient")
    if prior is None:
        prior = priors.item_prior(session, item_id, adapter.patient_page.followup)
        if prior is None:
            raise InvalidInput(f"item {item_id} ({current['key']}) has no earlier study of "
                               f"{adapter.wording.patient} {current['patient']} to compare with; give prior=ID")
    if prior == item_id:
        raise InvalidInput(f"prior must be another item than {item_id}: a follow-up view compares two studies")
    other = item_with_predictions(session, prior)
    if other["dataset_id"] != current["dataset_id"]:
        elsewhere = queries.get_dataset(session, other["dataset_id"]).name
        raise InvalidInput(f"prior item {prior} is in another dataset ({elsewhere}) than item {item_id} "
                           f"({dataset['name']}): a follow-up view compares two studies of one patient in one dataset")
    if other.get("patient") != current["patient"]:
        raise InvalidInput(f"prior item {prior} is of {adapter.wording.patient} {other.get('patient') or 'none'}, "
                           f"item {item_id} of {adapter.wording.patient} {current['patient']}: a follow-up view "
                           "compares two studies of the same patient")
    left, right = other, current
    before, after = ((priors.study_of(session, i["id"]) or {}).get("order") for i in (left, right))
    if before is not None and after is not None and before > after:  # the earlier study on the left
        left, right = right, left
    # two volumes open in one plane (the later study's own), so their slices can link by position
    both_volumes = bool(volume_planes(left) and volume_planes(right))
    plane = ((right.get("meta") or {}).get("default_plane") or "axial") if both_volumes else None
    sides = [_side(request, session, left, adapter, "prior", plane),
             _side(request, session, right, adapter, "current", plane)]
    changes = lesion_changes(session, patient_id, left["id"], right["id"]) if adapter.patient_page.followup else []
    return _render(request, "followup.html", {
        "dataset": dataset, "wording": adapter.wording, "patient": current["patient"], "sides": sides,
        "changes": changes, "state": {"sides": [s["viewer"] for s in sides], "changes": changes}})
