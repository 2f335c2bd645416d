"""The patient page's lesion tracks by embedding (app.embeddings.lesion_matching) where an embedding model has
lesion vectors for the dataset — the newest such model — else the timeline's own (the location heuristic).

Fast: the vectors of the patient's lesions only are read (`vectors.lookup` by annotation id), never the store.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.embeddings.lesion_matching import match_lesions
from app.embeddings.stores import newest_embedder
from app.inference.vectors import LESIONS, lookup


def with_lesion_tracks(session: Session, settings: Settings, timeline: dict[str, Any]) -> dict[str, Any]:
    """The timeline with `tracks` matched by embedding and `tracks_model` ({id, name}) when a model has vectors
    for some of the patient's lesions; otherwise unchanged, with `tracks_model` None."""
    out = {**timeline, "tracks_model": None}
    annotation_ids = [a["id"] for s in timeline["studies"] for i in s["items"] for a in i.get("annotations", [])
                      if a.get("kind") == "recist"]
    if not timeline["tracks"] or not annotation_ids:
        return out
    model = newest_embedder(session, settings, timeline["dataset_id"], LESIONS)
    if model is None:
        return out
    found = lookup(settings, model.id, timeline["dataset_id"], annotation_ids, LESIONS)
    if not found:
        return out
    return {**out, "tracks": match_lesions(timeline["studies"], found),
            "tracks_model": {"id": model.id, "name": model.name}}
