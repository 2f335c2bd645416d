"""Datasets: the list, one dataset with its facet counts, and live facet counts under filters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.api.schemas.fields import Timestamp

FacetCounts = dict[str, dict[str, int]]


class DatasetSummary(BaseModel):
    id: int
    name: str
    kind: str = Field(description="deeplesion, pcam, bis5k, verse, imagefolder, dicom, nifti, …")
    status: Literal["indexing", "ready", "failed"]
    item_count: int
    annotation_count: int
    root: str = Field(description="The indexed folder (read in place).")
    updated_at: Timestamp | None = Field(description="Last change (UTC, ISO 8601 without offset).")


class Problem(BaseModel):
    """One thing wrong with the input, located precisely enough for a user to fix it."""

    file: str = Field(description="Path relative to the dataset root.")
    row: int | None = Field(description="CSV line number (the header is line 1).")
    field: str | None
    item: str | None = Field(description="Key of the item concerned.")
    message: str
    text: str = Field(description="The whole problem as one line.")


class DatasetDetail(DatasetSummary):
    facets: FacetCounts = Field(description="`{field: {value: item count}}` for every facet field, in display order.")
    facet_labels: dict[str, dict[str, str]] = Field(description="Human names of coded facet values, per field.")
    filter_fields: list[str] = Field(description="Fields /items accepts as filters (facets plus identifiers).")
    problems: list[Problem] = Field(description="The first problems met while indexing.")
    problem_count: int
    error: str | None = Field(description="Why indexing failed (status `failed`).")
    files_warning: str | None = Field(default=None, description=(
        "Why the server cannot read the dataset's files now (its folder moved, unreadable or outside "
        "MEDVIEW_DATA_ROOTS; some sampled item files missing), or null. Checked cheaply and cached for 30 s."))


class LiveFacets(BaseModel):
    facets: FacetCounts = Field(description="Counts under the filters, every value of the dataset listed (0 when "
                                            "filtered out); disjunctive: a field's counts apply the other fields' "
                                            "filters only.")
    total: int = Field(description="Items matching all the filters.")
    filters: dict[str, list[str]] = Field(description="The filters applied, `{field: [values]}`.")
    semantics: Literal["disjunctive"]
