"""Lesion matching across a patient's studies by embedding and body location (DeepLesion's lesion-graph idea).

DeepLesion does not say which measured lesion of one study is which of another. The heuristic
(app.catalog.followup.lesion_tracks) links lesions of the same coarse type whose normalised locations are close;
with per-lesion vectors (app.inference.tasks.embed, the RECIST box with context) two lesions at a similar place
that look alike are linked instead, as DeepLesion's lesion graph does (Yan et al., 2018: appearance embedding
plus location).

Studies in time order; within each, the patient's existing tracks (every track so far, not only those seen in
the previous study: a lesion missing from one study can rejoin later) are assigned to the study's lesions by
scipy's linear_sum_assignment over the cost

    cost = (1 - cosine similarity) + LOCATION_WEIGHT × location distance / LOCATION_GATE

between the lesion and the track's last lesion, allowed only when the location distance is ≤ LOCATION_GATE and
the similarity ≥ MIN_SIMILARITY. A lesion or track without a vector falls back to the heuristic's rule (same
coarse type, distance ≤ TRACK_DISTANCE) at a cost above every embedding link. Unassigned lesions start tracks.
Pure: studies and vectors in, tracks out (the same shape as lesion_tracks, plus `matched_by` and similarities).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

# Two lesions further apart than this (normalised body coordinates, fractions of the body's extent; the
# heuristic's TRACK_DISTANCE is 0.08) are never the same lesion whatever they look like: a patient's position,
# breathing and DeepLesion's coarse normalisation move a lesion by a few hundredths between studies, not by a
# sixth of the body.
LOCATION_GATE = 0.15
# Below this cosine similarity two crops are taken to show different lesions even at the same place (the
# embedding is what tells two neighbouring lesions apart; a weaker look-alike is not a match).
MIN_SIMILARITY = 0.5
# How much location counts next to appearance: at the gate's edge as much as a similarity drop of 0.5.
LOCATION_WEIGHT = 0.5
# The heuristic's gate for a lesion or track without a vector (app.catalog.followup.TRACK_DISTANCE).
FALLBACK_DISTANCE = 0.08
_FALLBACK_COST = 10.0  # above any embedding cost (≤ 1 - MIN_SIMILARITY + LOCATION_WEIGHT)
_NO = 1e9  # a forbidden pair


def _loc(ann: Mapping[str, Any]) -> list[float] | None:
    loc = (ann.get("meta") or {}).get("normalized_location")
    return [float(v) for v in loc] if isinstance(loc, list | tuple) and len(loc) == 3 else None


def _pair(ann: Mapping[str, Any], vec: np.ndarray | None, track: Mapping[str, Any]) -> tuple[float, float | None]:
    """(cost, similarity) of linking this lesion to the track; cost _NO when not allowed."""
    loc = _loc(ann)
    if loc is None or track["loc"] is None:
        return _NO, None
    distance = math.dist(loc, track["loc"])
    if vec is not None and track["vector"] is not None:
        similarity = float(np.dot(vec, track["vector"]))
        if distance > LOCATION_GATE or similarity < MIN_SIMILARITY:
            return _NO, similarity
        return (1 - similarity) + LOCATION_WEIGHT * distance / LOCATION_GATE, similarity
    if ann.get("label") == track["label"] and distance <= FALLBACK_DISTANCE:
        return _FALLBACK_COST + distance, None
    return _NO, None


def match_lesions(studies: Sequence[Mapping[str, Any]], vectors: Mapping[int, np.ndarray]) -> list[dict[str, Any]]:
    """Tracks as lesion_tracks gives them ({number, label, type, loc, by_study: {study: {long_mm, short_mm,
    change, item_id, similarity, matched_by}}, last_long, annotation_ids}) plus `matched_by`: "embedding" when
    every link of the track was made by appearance and location, else "location". `vectors`: annotation id →
    unit vector; a link's `similarity` is the cosine to the track's previous lesion (None for a track's first
    lesion or a link made without vectors)."""
    tracks: list[dict[str, Any]] = []
    for study in studies:
        lesions = [(item, a) for item in study["items"] for a in item.get("annotations", [])
                   if a.get("kind") == "recist"]
        vecs = [vectors.get(a.get("id")) for _, a in lesions]
        matched: dict[int, tuple[int, float | None]] = {}  # lesion index → (track index, similarity)
        if lesions and tracks:
            costs = np.full((len(lesions), len(tracks)), _NO)
            sims: dict[tuple[int, int], float | None] = {}
            for i, ((_, ann), vec) in enumerate(zip(lesions, vecs, strict=True)):
                for n, track in enumerate(tracks):
                    costs[i, n], sims[i, n] = _pair(ann, vec, track)
            for i, n in zip(*linear_sum_assignment(costs), strict=True):
                if costs[i, n] < _NO:
                    matched[int(i)] = (int(n), sims[i, n] if costs[i, n] < _FALLBACK_COST else None)
        for i, ((item, ann), vec) in enumerate(zip(lesions, vecs, strict=True)):
            meta = ann.get("meta") or {}
            if i in matched:
                n, similarity = matched[i]
                how = "embedding" if similarity is not None else "location"
            else:
                tracks.append({"number": len(tracks) + 1, "label": ann.get("label"),
                               "type": meta.get("lesion_type_name") or ann.get("label"), "loc": None,
                               "by_study": {}, "last_long": None, "annotation_ids": [], "matched_by": "embedding",
                               "vector": None})
                n, similarity, how = len(tracks) - 1, None, None
            track = tracks[n]
            if how == "location" or (how is None and vec is None):
                track["matched_by"] = "location"
            long_mm, short_mm = meta.get("long_mm"), meta.get("short_mm")
            change = long_mm / track["last_long"] - 1 if long_mm and track["last_long"] else None
            track["by_study"][study["study"]] = {
                "long_mm": long_mm, "short_mm": short_mm, "change": change, "item_id": item["id"],
                "similarity": round(similarity, 4) if similarity is not None else None, "matched_by": how}
            track["annotation_ids"].append(ann.get("id"))
            track["loc"] = _loc(ann) or track["loc"]
            track["last_long"] = long_mm or track["last_long"]
            track["vector"] = vec if vec is not None else track["vector"]
    for track in tracks:
        del track["vector"]
    return tracks
