"""The exports page (`/exports`, reviewers and admins): start an export (dataset, format, the grid's filters,
current or original annotations) and follow every export — progress, result size, download. The form posts
`POST /api/exports` from static/js/exports.js; `/exports?dataset_id=N&FIELD=VALUE…` (the grid's "Export…" link)
fills the form with that dataset and filters."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.api.datasets import filters_from
from app.api.deps import SessionDep
from app.api.security import Principal, RequireRole
from app.catalog import queries
from app.datasets.registry import get_adapter
from app.export import jobs as export_jobs

router = APIRouter(include_in_schema=False)
Reviewer = Annotated[Principal, Depends(RequireRole("reviewer"))]


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@router.get("/exports", name="exports_page")
def exports_page(request: Request, session: SessionDep, _: Reviewer) -> Response:
    query = {k: v for k, v in filters_from(request).items() if k != "dataset_id"}
    chosen = request.query_params.get("dataset_id")
    datasets: list[dict[str, Any]] = []
    for d in queries.list_datasets(session):
        formats = sorted(get_adapter(d["kind"]).export_formats)
        datasets.append({"id": d["id"], "name": d["name"], "kind": d["kind"], "formats": formats})
    exports = export_jobs.list_exports(session, 100)
    for e in exports:
        e["size"] = _size(e["bytes"])
        e["filters_text"] = urlencode(e["filters"], doseq=True)
    return request.app.state.templates.TemplateResponse(request, "exports.html", {
        "datasets": datasets, "exports": exports,
        "chosen": int(chosen) if chosen and chosen.isdigit() else (datasets[0]["id"] if datasets else None),
        "filters_text": urlencode(query, doseq=True),
        "url_templates": {"exports": "/api/exports", "export": "/api/exports/{id}"},
    })
