"""HTML pages. Placeholder until the page set lands."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import SessionDep
from app.catalog import queries

router = APIRouter(include_in_schema=False)


@router.get("/")
def index(request: Request, session: SessionDep) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, "index.html", {"datasets": queries.list_datasets(session)})
