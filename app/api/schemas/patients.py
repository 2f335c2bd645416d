"""GET /api/datasets/{id}/patients/{patient}: a patient's studies in order, lesions tracked across them (DeepLesion),
and the patient page's sections as the dataset kind groups and names the patient's items (app.datasets.patients)."""

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
    similarity: float | None = Field(None, description="Cosine similarity of this lesion's embedding to the "
                                                        "track's previous lesion (null: first lesion, or no "
                                                        "embedding link).")
    matched_by: str | None = Field(None, description="How this lesion was linked to the track's previous one: "
                                                     "`embedding` or `location`; null for the track's first.")


class LesionTrack(BaseModel):
    """Lesions of several studies taken to be one lesion: by embedding similarity and location when an
    embedding model has lesion vectors for the dataset, else by close normalised locations and the same type."""

    number: int
    label: str | None = Field(description="Lesion type code.")
    type: str | None = Field(description="Lesion type name.")
    loc: list[float] | None = Field(description="Last normalised location (fractions of the body's extent).")
    by_study: dict[str, TrackMeasurement] = Field(description="Measurement per study id.")
    last_long: float | None = Field(description="Last long diameter, mm.")
    annotation_ids: list[int]
    matched_by: str = Field("location", description="`embedding`: every link made by lesion embedding and "
                                                    "location; `location`: by the type + location heuristic.")


class TracksModel(BaseModel):
    id: int
    name: str


class SectionItem(ItemSummary):
    title: str = Field(description="What the item is, in the kind's words (DICOM: series number and description).")
    details: list[str] = Field(description="Short phrases about the item (slices, ground truth, size).")
    uid: str = Field(description="The item's long identifier (DICOM SeriesInstanceUID, VerSe key), shown as "
                                 "small print.")


class PatientSection(BaseModel):
    """One group of the patient's items: a DICOM study, a VerSe session, a DeepLesion study."""

    anchor: str = Field(description="Page fragment of the section (`#anchor`).")
    title: str = Field(description="Heading (DICOM: study date and description).")
    details: list[str]
    uid: str = Field(description="The group's long identifier (DICOM StudyInstanceUID), or empty.")
    study: str | None = Field(description="The dataset's study id when the section is one study.")
    items: list[SectionItem]


class PatientTimeline(BaseModel):
    dataset_id: int
    patient: str
    sex: str | None
    studies: list[StudyTimeline] = Field(description="The patient's studies in order (a VerSe subject without "
                                                     "sessions has none: its volumes are in `sections`).")
    tracks: list[LesionTrack] = Field(description="Lesions tracked across studies (DeepLesion; empty otherwise).")
    tracks_model: TracksModel | None = Field(None, description="The embedding model whose lesion vectors matched "
                                                              "the tracks (the newest with lesion vectors for the "
                                                              "dataset); null: the location heuristic.")
    summary: list[str] = Field(description="Phrases about the patient (sex, counts, ages) as the page title shows.")
    sections: list[PatientSection] = Field(description="Every item of the patient, grouped as its kind does.")
