"""Every URL MedView hands out, built in one place (pages, services and — as templates — the JavaScript).

Python callers use the functions; the scripts get `url_templates()` as data and only fill the `{name}` fields of a
template they were given (static/js/urls.js `fillUrl`), so no script writes an API path of its own. Ids are `int`
for real URLs; a `{name}` placeholder string makes the template (the same function, so the two cannot drift).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

Id = int | str  # an id, or a "{name}" placeholder when building a template


def query_url(path: str, filters: Mapping[str, Sequence[str]], key: str | None = None, **extra: Any) -> str:
    """`path?field=value…` with repeated fields, the key search and paging parameters (None = left out)."""
    pairs = [(f, v) for f, values in filters.items() for v in values]
    if key:
        pairs.append(("key", key))
    pairs += [(k, str(v)) for k, v in extra.items() if v is not None]
    return f"{path}?{urlencode(pairs)}" if pairs else (path or "?")


# -- pages --

def dataset_page_url(dataset_id: Id) -> str:
    return f"/datasets/{dataset_id}"


def item_page_url(item_id: Id) -> str:
    return f"/items/{item_id}"


def evaluation_page_url(model_id: Id, dataset_id: Id) -> str:
    return f"/models/{model_id}/evaluation?dataset_id={dataset_id}"


# -- JSON and image API --

def dataset_items_url(dataset_id: Id) -> str:
    return f"/api/datasets/{dataset_id}/items"


def sheet_url(dataset_id: Id) -> str:
    return f"/api/datasets/{dataset_id}/sheet"


def item_url(item_id: Id) -> str:
    return f"/api/items/{item_id}"


def render_url(item_id: Id, params: Mapping[str, Any] | None = None) -> str:
    """The rendered image; `params` (format, window, plane, …) in the given order, None values left out."""
    base = f"/api/items/{item_id}/render"
    pairs = [(k, str(v)) for k, v in (params or {}).items() if v is not None]
    return f"{base}?{urlencode(pairs)}" if pairs else base


def raw_url(item_id: Id) -> str:
    return f"/api/items/{item_id}/raw"


def mask_url(item_id: Id) -> str:
    return f"/api/items/{item_id}/mask"


def prediction_mask_url(item_id: Id, model_id: Id) -> str:
    return f"/api/items/{item_id}/predictions/{model_id}/mask"


def predict_url(item_id: Id) -> str:
    return f"/api/items/{item_id}/predict"


def jobs_url() -> str:
    return "/api/jobs"


def job_url(job_id: Id) -> str:
    return f"/api/jobs/{job_id}"


def job_cancel_url(job_id: Id) -> str:
    return f"/api/jobs/{job_id}/cancel"


def model_evaluation_url(model_id: Id) -> str:
    return f"/api/models/{model_id}/evaluation"


def thumbnail_url(item_id: int, version: int, plane: str | None = None) -> str:
    """Grid thumbnail: 256 px JPEG with ground truth, in the item's default plane (e.g. sagittal for a spine)."""
    extra = f"&plane={plane}" if plane and plane != "axial" else ""
    return f"/api/items/{item_id}/render?format=jpeg&size=256&overlays=gt{extra}&v={version}"


def url_templates() -> dict[str, str]:
    """The URLs the scripts need, as templates with `{name}` fields (static/js/urls.js fills them)."""
    return {"item_page": item_page_url("{id}"), "item": item_url("{id}"), "predict": predict_url("{id}"),
            "jobs": jobs_url(), "job": job_url("{id}"), "job_cancel": job_cancel_url("{id}"),
            "evaluation_page": evaluation_page_url("{model_id}", "{dataset_id}")}
