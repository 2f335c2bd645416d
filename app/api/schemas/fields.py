"""Field and parameter types shared by the routes and schemas, so that `/openapi.json` states the bounds the
server enforces and a value outside them is a 422 naming the field, never a database error (a 500).

- Ids are the databases' `integer` primary keys: 1 … 2^31 − 1 (PostgreSQL's `integer`; SQLite takes up to 2^63,
  but one bound for both keeps the spec true on either). An id beyond it names nothing: 422 before any query.
- Counts and positions that reach SQL (`offset`) get the same upper bound.
- Timestamps are written by the services as ISO 8601 in UTC, *without* an offset where the column keeps none
  (`2026-12-04T16:07:49.331850`), which JSON Schema's `date-time` format (RFC 3339) does not allow, so they are
  documented as strings with that pattern rather than as `format: date-time`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Self

from fastapi import Path, Query
from pydantic import BaseModel, BeforeValidator, Field, model_validator

from app.errors import InvalidInput

MAX_ID = 2**31 - 1

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int, Query(ge=1, le=MAX_ID)]


def bounds(low: int, high: int) -> dict[str, int]:
    """`minimum`/`maximum` for a parameter whose range the service checks itself (a 400 naming the parameter and
    the range, which scripts and pages already show): documented without a second, differently worded 422."""
    return {"minimum": low, "maximum": high}


DocOffset = Annotated[int, Query(json_schema_extra=bounds(0, MAX_ID),
                                 description="Start at this position of the ordered list (a jump; then follow "
                                             "cursors).")]

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$"
Timestamp = Annotated[str, Field(pattern=TIMESTAMP_PATTERN, examples=["2026-12-04T16:07:49.331850"],
                                 description="UTC, ISO 8601 (without an offset where the database keeps none).")]



def _iso_only(value: Any) -> Any:
    if isinstance(value, str) and not re.match(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"expected an ISO 8601 date or date-time such as 2026-12-04T16:07:49, not {value[:40]!r}")
    return value


# A date-time parameter as OpenAPI's `format: date-time` means it; pydantic alone would also read "0.5" or
# "1700000000" as seconds since 1970.
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]


def nul_at(value: Any, at: str = "") -> str | None:
    """Where a NUL character hides in a parsed JSON value (`geometry.points[2]`), or None: PostgreSQL stores no
    NUL in text or JSON, so the API refuses it in every request rather than answering a database error."""
    if isinstance(value, str):
        return (at or "value") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{at}.{key}" if at else str(key)
            if "\x00" in str(key):
                return where
            if (found := nul_at(item, where)) is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if (found := nul_at(item, f"{at}[{i}]")) is not None:
                return found
    return None


class RequestBody(BaseModel):
    """Base of every JSON request body: a NUL character in any field it keeps is a 400 naming the field, like one
    in the path or query (`app.api.middleware.NulRefusal`); keys the body does not declare are ignored, NUL or
    not. Raised as `InvalidInput`, which pydantic does not wrap, so it reaches the app's error handler as it is:
    the schema cannot say "no NUL", so this is a refusal of schema-valid data (400), not a 422."""

    @model_validator(mode="after")
    def _no_nul(self) -> Self:
        for name in type(self).model_fields:
            if (where := nul_at(getattr(self, name), name)) is not None:
                shown = where.replace("\x00", "\\0")
                raise InvalidInput(f"{shown} contains a NUL character (\\u0000), which is not allowed in text")
        return self
