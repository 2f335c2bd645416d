"""PredictJobParams: the typed, bounded predict-job parameters, and the `jobs.params` JSON they store."""

from __future__ import annotations

import pytest

from app.errors import InvalidInput
from app.inference.job_params import (
    MAX_FILTER_VALUES,
    MAX_SELECTED_IDS,
    MAX_VALUE_CHARS,
    PredictJobParams,
    parse_predict_params,
)


def parse(filters: object) -> PredictJobParams:
    return parse_predict_params({"model_id": 3, "dataset_id": 7, "filters": filters})


def refused(filters: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse(filters)
    assert caught.value.status_code == 400
    return caught.value.detail


def test_values_become_string_lists_and_the_selection_is_typed() -> None:
    params = parse({"split": "train", "label": [0, 1], "noisy": True, "id": [12, "13"]})
    assert params.filters == {"split": ["train"], "label": ["0", "1"], "noisy": ["True"], "id": ["12", "13"]}
    assert params.field_filters == {"split": ["train"], "label": ["0", "1"], "noisy": ["True"]}
    assert (params.ids, params.excluded_ids) == ([12, 13], None)
    assert parse({"exclude_id": ["5"]}).excluded_ids == [5]
    assert parse(None).filters == parse({}).filters == {}


def test_the_stored_row_keeps_the_keys_rows_have_always_had() -> None:
    old_row = {"model_id": 3, "dataset_id": 7, "filters": {"split": ["train"], "id": ["1", "2"]}}
    params = PredictJobParams.from_row(old_row)
    assert params.to_row() == old_row
    assert PredictJobParams.from_row(params.to_row()) == params

    class Request(PredictJobParams):
        kind: str

    assert Request(kind="predict", **old_row).to_row() == old_row  # a request's own fields stay out
    with pytest.raises(InvalidInput, match="model_id"):
        PredictJobParams.from_row({"dataset_id": 7})


@pytest.mark.parametrize(("filters", "fragment"), [
    ({"id": ["x1"]}, "filter 'id': 'x1' is not an item id"),
    ({"exclude_id": [-1]}, "filter 'exclude_id': '-1' is not an item id"),
    ({"id": ["²"]}, "is not an item id"),  # a digit to str.isdigit, not to int()
    ({"id": ["9" * 30]}, "is not an item id"),  # beyond a 64-bit id
    ({"split": []}, "filter 'split' must be a value or a non-empty list of values"),
    ({"split": None}, "filter 'split' must be a value or a non-empty list of values"),
    ({"split": [{"a": 1}]}, "filter 'split' must be a value or a non-empty list of values"),
    ("split=train", "filters must be an object"),
])
def test_malformed_filters_are_refused_naming_the_field(filters: object, fragment: str) -> None:
    assert fragment in refused(filters)


def test_bounds_name_the_field_without_echoing_the_value() -> None:
    huge = "x" * 5_000_000
    detail = refused({"split": huge})
    assert detail == f"filters.split.0: String should have at most {MAX_VALUE_CHARS} characters"
    detail = refused({huge: "train"})
    assert "longer than 64 characters" in detail and len(detail) < 200
    detail = refused({"id": list(range(1, MAX_SELECTED_IDS + 2))})
    assert detail.startswith(f"filters.id: List should have at most {MAX_SELECTED_IDS} items")
    assert parse({"id": list(range(1, MAX_SELECTED_IDS + 1))}).ids[-1] == MAX_SELECTED_IDS
    detail = refused({"label": [str(i) for i in range(MAX_FILTER_VALUES + 1)]})
    assert detail == f"filters: filter 'label' lists {MAX_FILTER_VALUES + 1:,} values; at most {MAX_FILTER_VALUES:,}"
    assert "Dictionary should have at most 32 items" in refused({f"f{i}": "v" for i in range(33)})
