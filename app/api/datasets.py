from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import SessionDep, json_response
from app.catalog import queries

router = APIRouter(prefix="/api/datasets")


def filters_from(request: Request) -> dict[str, list[str]]:
    """Every query parameter that is not paging is a facet filter (repeat a field for OR)."""
    out: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        if name not in queries.RESERVED_PARAMS:
            out.setdefault(name, []).append(value)
    return out


@router.get("")
def list_datasets(session: SessionDep) -> Response:
    return json_response(queries.list_datasets(session))


@router.get("/{dataset_id}")
def get_dataset(dataset_id: int, session: SessionDep) -> Response:
    return json_response(queries.dataset_detail(session, dataset_id))


@router.get("/{dataset_id}/items")
def list_items(dataset_id: int, request: Request, session: SessionDep, limit: int = queries.DEFAULT_LIMIT,
               cursor: str | None = None, key: str | None = None) -> Response:
    page = queries.list_items(session, dataset_id, filters_from(request), key=key, limit=limit, cursor=cursor)
    return json_response(page)


@router.get("/{dataset_id}/patients/{patient}")
def patient(dataset_id: int, patient: str, session: SessionDep) -> Response:
    return json_response(queries.patient_timeline(session, dataset_id, patient))
