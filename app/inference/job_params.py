"""A predict job's parameters as one typed, bounded model.

Validated once where a job is made (`POST /api/jobs` through its request body, `medview predict` and
`create_predict_job` through `parse_predict_params`), stored in `jobs.params` with `to_row()` — the JSON keys rows
have always had, `{"model_id", "dataset_id", "filters": {field: [str, …]}}`, so older rows read back unchanged —
and read back with `from_row()` by the worker.

`filters` holds item-field filters (`{field: value | [values]}`, values OR-ed within a field) and two
pseudo-filters for a grid selection: `id` (only these items) and `exclude_id` (all matching but these).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from app.errors import InvalidInput

ID_FILTERS = ("id", "exclude_id")
MAX_FILTER_FIELDS = 32
MAX_FIELD_CHARS = 64  # a filter's field name
MAX_VALUE_CHARS = 512  # one filter value
MAX_FILTER_VALUES = 1_000  # values of one item field
MAX_SELECTED_IDS = 50_000  # values of `id` / `exclude_id`
MAX_ID_DIGITS = 18  # an item id fits a signed 64-bit integer

# What a request may send (documented in OpenAPI): values are stored as strings.
FilterScalar = Annotated[str, StringConstraints(max_length=MAX_VALUE_CHARS)] | int | float | bool
FiltersInput = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=MAX_FIELD_CHARS)],
         FilterScalar | Annotated[list[FilterScalar], Field(min_length=1, max_length=MAX_SELECTED_IDS)]],
    Field(max_length=MAX_FILTER_FIELDS)]


def _as_string_lists(raw: Any) -> Any:
    """`{field: value | [values]}` → `{field: [str, …]}` (numbers as their text); bounds are checked after."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PydanticCustomError("filters_type", "filters must be an object {field: value or [values]}")
    out: dict[Any, Any] = {}
    for field, value in raw.items():
        if len(str(field)) > MAX_FIELD_CHARS:  # refused here: the key would otherwise be echoed in the error
            raise PydanticCustomError("filter_name", "filter name {field}… is longer than {limit} characters",
                                      {"field": repr(str(field)[:40]), "limit": MAX_FIELD_CHARS})
        values = value if isinstance(value, list) else [value]
        if not values or any(v is None or isinstance(v, dict | list) for v in values):
            raise PydanticCustomError("filter_values", "filter {field} must be a value or a non-empty list of "
                                      "values", {"field": repr(field)})
        out[field] = [v if isinstance(v, str) else str(v) for v in values]
    return out


FieldName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FIELD_CHARS)]
FilterValue = Annotated[str, StringConstraints(max_length=MAX_VALUE_CHARS)]
JobFilters = Annotated[
    dict[FieldName, Annotated[list[FilterValue], Field(min_length=1, max_length=MAX_SELECTED_IDS)]],
    BeforeValidator(_as_string_lists, json_schema_input_type=FiltersInput | None),
]


def bounded_filters(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    """A job's filters within bounds: `id`/`exclude_id` values are item ids, other fields list at most
    MAX_FILTER_VALUES values (a pydantic field validator of every job's `filters`)."""
    for name, values in filters.items():
        if name in ID_FILTERS:
            bad = next((v for v in values if not (v.isascii() and v.isdigit() and len(v) <= MAX_ID_DIGITS)), None)
            if bad is not None:
                raise PydanticCustomError("item_id", "filter {name}: {value} is not an item id",
                                          {"name": repr(name), "value": repr(bad[:40])})
        elif len(values) > MAX_FILTER_VALUES:
            raise PydanticCustomError("filter_values", "filter {name} lists {n} values; at most {limit}", {
                "name": repr(name), "n": f"{len(values):,}", "limit": f"{MAX_FILTER_VALUES:,}"})
    return filters


class PredictJobParams(BaseModel):
    """What a predict job runs: one model over one dataset's items that match `filters`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model_id: int = Field(description="Registered model (GET /api/models).")
    dataset_id: int = Field(description="Dataset whose items are predicted.")
    filters: JobFilters = Field(
        default_factory=dict, max_length=MAX_FILTER_FIELDS,
        description=f"Item-field filters `{{field: value or [values]}}` (any facet field; values OR-ed; at most "
                    f"{MAX_FILTER_VALUES:,} per field, {MAX_VALUE_CHARS} characters each), plus a grid selection: "
                    f"`id` (only these item ids) or `exclude_id` (all matching but these), at most "
                    f"{MAX_SELECTED_IDS:,} ids. Stored with every value as a string.")

    @field_validator("filters")
    @classmethod
    def _bounded(cls, filters: dict[str, list[str]]) -> dict[str, list[str]]:
        return bounded_filters(filters)

    @property
    def field_filters(self) -> dict[str, list[str]]:
        """The item-field filters, without the id selection."""
        return {f: v for f, v in self.filters.items() if f not in ID_FILTERS}

    @property
    def ids(self) -> list[int] | None:
        """Only these item ids (a grid selection), or None."""
        return _ints(self.filters.get("id"))

    @property
    def excluded_ids(self) -> list[int] | None:
        """Every matching item but these ids, or None."""
        return _ints(self.filters.get("exclude_id"))

    def to_row(self) -> dict[str, Any]:
        """The `jobs.params` JSON (a subclass's own fields, such as a request's `kind`, stay out)."""
        return self.model_dump(include=set(PredictJobParams.model_fields))

    @classmethod
    def from_row(cls, params: Mapping[str, Any] | None) -> PredictJobParams:
        """A stored job's parameters (InvalidInput naming the field when a row is malformed)."""
        return parse_predict_params(params or {})


def _ints(values: list[str] | None) -> list[int] | None:
    return None if values is None else [int(v) for v in values]


def validation_message(exc: ValidationError) -> str:
    """`field.path: message; …`, the shape of the API's 422 detail."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


def parse_predict_params(data: Mapping[str, Any]) -> PredictJobParams:
    """Parameters from a mapping (the CLI, stored rows, Python callers): InvalidInput (400) naming the field."""
    try:
        return PredictJobParams.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc)) from None
