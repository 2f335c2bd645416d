"""The `responses=` of routes: their error bodies and, for bytes endpoints, their media types."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Responses = dict[int | str, dict[str, Any]]

ERROR_DESCRIPTIONS = {
    400: "Invalid input (the detail says which parameter and why)",
    401: "Not signed in (send the session cookie or `Authorization: Bearer <token>`)",
    403: "Signed in without the role this needs, or a cross-site / CSRF-less write",
    404: "Not found (the detail names what is missing)",
    409: "Conflict with the current state",
    413: "Request body larger than the configured limit",
    415: "Unsupported media or file type",
    429: "Too many failed sign-ins: wait `Retry-After` seconds",
    422: "A parameter or the body does not have the expected type or bounds (the detail names the field)",
    503: "A service the request needs (the job queue) cannot be reached: nothing was stored; retry later",
}


class ErrorDetail(BaseModel):
    """Every API error: a 4xx (or 503) status and one readable sentence (validation errors included, as a string). Some
    carry more keys: a stale annotation edit's 409 has `current` (the current version), `changed_by`, `changed_at`."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="What went wrong, naming the parameter or object concerned.")


def errors(*codes: int) -> Responses:
    """`{status: ErrorDetail}` for the 4xx codes a route can answer; a 422 replaces FastAPI's default
    HTTPValidationError array, since the app's handler renders validation errors as one `detail` string."""
    return {code: {"model": ErrorDetail, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


NOT_MODIFIED: Responses = {304: {"description": "Not modified: the If-None-Match header matched the ETag"}}


def media(description: str, *media_types: str, etag: bool = True) -> Responses:
    """A 200 of bytes in one of `media_types` (documented as such, not as JSON), and the 304 that answers a
    matching If-None-Match when the endpoint sends an ETag."""
    ok: Responses = {200: {"description": description, "content": {t: {} for t in media_types}}}
    return {**ok, **NOT_MODIFIED} if etag else ok
