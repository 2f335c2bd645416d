"""GET /api/datasets/{id}/patients/{patient}: a patient's studies in order and lesions tracked across them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.api.schemas.items import AnnotationOut, ItemSummary


class TimelineItem(ItemSummary):
    annotations: list[AnnotationOut]


class StudyTimeline(BaseModel):
    study: str = Field(description="The dataset's study id.")
    order: int | None = Field(description="Position among the patient's studies.")
    age: float | None = Field(description="Patient age at the study, years.")
    items: list[TimelineItem]


class TrackMeasurement(BaseModel):
    long_mm: float | None = Field(description="RECIST long diameter, mm.")
    short_mm: float | None = Field(description="RECIST short diameter, mm.")
    change: float | None = Field(description="Relative change of the long diameter since the track's previous "
                                             "measurement (0.1 = 10 % larger).")
    item_id: int


class LesionTrack(BaseModel):
    """Lesions of several studies taken to be one lesion (close normalised locations, same coarse type)."""

    number: int
    label: str | None = Field(description="Lesion type code.")
    type: str | None = Field(description="Lesion type name.")
    loc: list[float] | None = Field(description="Last normalised location (fractions of the body's extent).")
    by_study: dict[str, TrackMeasurement] = Field(description="Measurement per study id.")
    last_long: float | None = Field(description="Last long diameter, mm.")
    annotation_ids: list[int]


class PatientTimeline(BaseModel):
    dataset_id: int
    patient: str
    sex: str | None
    studies: list[StudyTimeline]
    tracks: list[LesionTrack]
