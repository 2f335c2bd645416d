"""The `responses=` of routes: their error bodies and, for bytes endpoints, their media types."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
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
    503: "A service the request needs (the database, the job queue) cannot be reached: nothing was stored; retry "
         "later",
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



# Operations open to anyone (no sign-in, so no 401) and those that never touch the database (no 503).
PUBLIC = {("get", "/api/health"), ("post", "/api/auth/login")}
NO_DATABASE = {("get", "/api/health")}
WRITES = {"post", "put", "patch", "delete"}
ERROR_REF = {"$ref": "#/components/schemas/ErrorDetail"}


def add_common_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """Add to every `/api` operation of an OpenAPI document the error statuses that come from what it is, not
    from what it does, so that `/openapi.json` lists every status a route can answer without each decorator
    repeating them (in place, idempotent; an operation's own entry for a status wins):

    - 400 always: a NUL character in the path or query (`app.api.middleware.NulRefusal`), a body that cannot
      be parsed at all;
    - 401 unless it is open to anyone (`require_reader` on every router but health and sign-in);
    - 403 and 413 for writes (`RequireRole` and the CSRF check; `BodyLimit` refuses a large body unread); a
      read that needs a role declares its 403 itself;
    - 422 when it takes parameters or a body, as one `detail` string (`ErrorDetail`), replacing FastAPI's
      default array schema, which the app's handler never sends;
    - 503 when it reads the database: the database is unreachable for now.
    """
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorDetail", ErrorDetail.model_json_schema(ref_template="#/components/schemas/{model}"))
    for path, operations in doc.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, op in operations.items():
            codes = {400}
            if (method, path) not in PUBLIC:
                codes.add(401)
            if method in WRITES:
                codes |= {403, 413}
            if op.get("parameters") or op.get("requestBody"):
                codes.add(422)
            if (method, path) not in NO_DATABASE:
                codes.add(503)
            responses = op.setdefault("responses", {})
            default_422 = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if default_422.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            for code in sorted(codes):
                responses.setdefault(str(code), {"description": ERROR_DESCRIPTIONS[code],
                                                 "content": {"application/json": {"schema": ERROR_REF}}})
            op["responses"] = dict(sorted(responses.items()))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return doc


def install_common_errors(app: FastAPI) -> None:
    """`app.openapi()` (FastAPI's, cached by it) with `add_common_errors` applied."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return add_common_errors(build())

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(doc: dict[str, Any], path: str) -> str | None:
    """The `Allow` header of a 405 on `path`: every method the document has for it (several routes may share a
    path, and Starlette names only the first one's), HEAD with GET; None for a path the document lacks."""
    methods: set[str] = set()
    parts = path.split("/")
    for template, operations in doc.get("paths", {}).items():
        names = template.split("/")
        if len(names) != len(parts):
            continue
        integers = {q["name"] for op in operations.values() if isinstance(op, dict)
                    for q in op.get("parameters", []) if q.get("in") == "path"
                    and (q.get("schema") or {}).get("type") == "integer"}
        # a literal segment matches itself; a parameter any non-empty one, digits only where it is an integer
        # (`/api/models/fewshot` is not `/api/models/{model_id}`)
        if all(n == p or (n.startswith("{") and p != "" and (n.strip("{}") not in integers or p.isdigit()))
               for n, p in zip(names, parts, strict=True)):
            methods |= {m.upper() for m in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) or None
