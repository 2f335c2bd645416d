"""The follow-up view's data from the catalog: a patient's studies with their items' meta (what the prior rules of
app.catalog.followup read), each item's prior, and the study an item belongs to (order, age)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.catalog.followup import lesion_tracks, series_priors, track_priors
from app.catalog.queries import annotation_dict
from app.db.models import Annotation, Item, Patient, Study


def patient_studies(session: Session, patient_id: int) -> list[dict[str, Any]]:
    """The patient's studies in study order, each {study, order, age, items: [{id, key, meta, annotations}]}
    (RECIST annotations only, for lesion tracks)."""
    studies = session.scalars(select(Study).where(Study.patient_id == patient_id)
                              .order_by(Study.study_order, Study.external_id)).all()
    items = session.execute(select(Item.id, Item.key, Item.meta, Item.study_id)
                            .where(Item.patient_id == patient_id).order_by(Item.key)).all()
    recist: dict[int, list[dict[str, Any]]] = {}
    ids = [i.id for i in items]
    if ids:
        for a in session.scalars(select(Annotation).where(Annotation.item_id.in_(ids), Annotation.kind == "recist",
                                                          Annotation.is_current()).order_by(Annotation.id)):
            recist.setdefault(a.item_id, []).append(annotation_dict(a))
    return [{"study": s.external_id, "order": s.study_order, "age": s.age,
             "items": [{"id": i.id, "key": i.key, "meta": i.meta or {}, "annotations": recist.get(i.id, [])}
                       for i in items if i.study_id == s.id]} for s in studies]


def patient_priors(studies: list[dict[str, Any]], tracks: list[dict[str, Any]] | None = None) -> dict[int, int]:
    """item id → its prior: the same lesion's previous key slice where a lesion track links them (DeepLesion),
    else the best matching series of the nearest earlier study (app.catalog.followup.series_priors)."""
    return {**series_priors(studies), **track_priors(tracks or [], [s["study"] for s in studies])}


def item_prior(session: Session, item_id: int, follows_lesions: bool) -> int | None:
    """The prior of one item (None when its patient has no earlier study with a match)."""
    patient_id = session.scalar(select(Item.patient_id).where(Item.id == item_id))
    if patient_id is None:
        return None
    studies = patient_studies(session, patient_id)
    tracks = lesion_tracks(studies) if follows_lesions else None
    return patient_priors(studies, tracks).get(item_id)


def study_of(session: Session, item_id: int) -> dict[str, Any] | None:
    """{study, order, age, count (the patient's studies)} of the item's study, None when it has none."""
    row = session.execute(select(Study.external_id, Study.study_order, Study.age, Study.patient_id)
                          .join(Item, Item.study_id == Study.id).where(Item.id == item_id)).first()
    if row is None:
        return None
    count = len(session.scalars(select(Study.id).where(Study.patient_id == row.patient_id)).all())
    return {"study": row.external_id, "order": row.study_order, "age": row.age, "count": count}


def priors_of_patient(session: Session, dataset_id: int, patient: str) -> dict[int, int]:
    """item id → its prior series (app.catalog.followup.series_priors) for a patient given by external id ({} for
    an unknown patient): the patient page's "compare with prior" links."""
    patient_id = session.scalar(select(Patient.id).where(Patient.dataset_id == dataset_id,
                                                         Patient.external_id == patient))
    return series_priors(patient_studies(session, patient_id)) if patient_id is not None else {}
