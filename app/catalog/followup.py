"""Follow-up: which lesions in a patient's studies are the same lesion, so growth can be shown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

# Lesions in two studies are taken to be the same lesion when their DeepLesion normalised locations
# (fractions of the body's extent) are this close and their coarse types agree.
TRACK_DISTANCE = 0.08


def lesion_tracks(studies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group RECIST lesions across studies into tracks so growth is visible.

    DeepLesion has no lesion identity across studies, so within each study the closest pairs of
    (lesion, existing track of the same coarse type) are matched first, by the distance of their
    normalised locations (≤ TRACK_DISTANCE, each track at most once per study); unmatched lesions
    start new tracks, numbered in order of first appearance. A track maps study id →
    {long_mm, short_mm, change (of the long diameter since the track's previous measurement), item_id,
    similarity (None: no embedding here), matched_by ("location" for a link, None for the track's first)};
    every track's `matched_by` is "location" (app.embeddings.lesion_matching gives "embedding" ones).
    """
    tracks: list[dict[str, Any]] = []
    for study in studies:
        lesions = [(item, a) for item in study["items"] for a in item.get("annotations", [])
                   if a.get("kind") == "recist"]
        locs = [(a.get("meta") or {}).get("normalized_location") for _, a in lesions]
        pairs = sorted((math.dist(loc, t["loc"]), i, n)
                       for i, ((_, a), loc) in enumerate(zip(lesions, locs, strict=True))
                       for n, t in enumerate(tracks) if t["label"] == a.get("label") and t["loc"] and loc)
        matched: dict[int, int] = {}
        for d, i, n in pairs:
            if d <= TRACK_DISTANCE and i not in matched and n not in matched.values():
                matched[i] = n
        for i, (item, ann) in enumerate(lesions):
            meta = ann.get("meta") or {}
            if i not in matched:
                tracks.append({"number": len(tracks) + 1, "label": ann.get("label"),
                               "type": meta.get("lesion_type_name") or ann.get("label"), "loc": None,
                               "by_study": {}, "last_long": None, "annotation_ids": [],
                               "matched_by": "location"})
                matched[i] = len(tracks) - 1
            track = tracks[matched[i]]
            how = "location" if track["by_study"] else None
            long_mm, short_mm = meta.get("long_mm"), meta.get("short_mm")
            change = long_mm / track["last_long"] - 1 if long_mm and track["last_long"] else None
            track["by_study"][study["study"]] = {"long_mm": long_mm, "short_mm": short_mm, "change": change,
                                                 "item_id": item["id"], "similarity": None, "matched_by": how}
            track["annotation_ids"].append(ann.get("id"))
            track["loc"] = meta.get("normalized_location") or track["loc"]
            track["last_long"] = long_mm or track["last_long"]
    return tracks


# -- priors: which earlier item a follow-up view compares an item with ---------------------------------------

def description_words(meta: Mapping[str, Any]) -> set[str]:
    """The words of a series' description (upper case, letters and digits), e.g. {'AX', 'ABD', '5MM'}."""
    text = "".join(c if c.isalnum() else " " for c in str(meta.get("series_description") or "").upper())
    return set(text.split())


def series_match(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two series (their item meta) a radiologist would hang side by side: the same modality, and descriptions
    sharing a word (or both without one) or the same body part."""
    if (a.get("modality") or None) != (b.get("modality") or None):
        return False
    wa, wb = description_words(a), description_words(b)
    part = (a.get("body_part") or "").upper()
    return bool(wa & wb) or (not wa and not wb) or bool(part and part == (b.get("body_part") or "").upper())


def series_priors(studies: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """item id → the id of its prior: in the nearest earlier study (`studies` in study order, each with `items`
    having `id` and `meta`) that has a matching series (`series_match`), the one whose description shares the most
    words, then the same acquired plane, then the lowest id."""
    out: dict[int, int] = {}
    for n, study in enumerate(studies):
        for item in study["items"]:
            meta = item.get("meta") or {}
            for earlier in reversed(studies[:n]):
                found = [i for i in earlier["items"] if series_match(meta, i.get("meta") or {})]
                if found:
                    words, plane = description_words(meta), meta.get("orientation")
                    best = min(found, key=lambda i: (-len(words & description_words(i.get("meta") or {})),
                                                     (i.get("meta") or {}).get("orientation") != plane, i["id"]))
                    out[item["id"]] = best["id"]
                    break
    return out


def track_priors(tracks: Sequence[Mapping[str, Any]], study_order: Sequence[str]) -> dict[int, int]:
    """item id → the key slice of the same lesion in the track's previous study (the first track that has one);
    `study_order`: the patient's study ids in order."""
    rank = {s: n for n, s in enumerate(study_order)}
    out: dict[int, int] = {}
    for track in tracks:
        seen = sorted(track["by_study"].items(), key=lambda kv: rank.get(kv[0], len(rank)))
        for (_, before), (_, after) in zip(seen, seen[1:], strict=False):
            if before["item_id"] != after["item_id"]:
                out.setdefault(after["item_id"], before["item_id"])
    return out


def track_pairs(tracks: Sequence[Mapping[str, Any]], study_order: Sequence[str]) -> dict[tuple[int, str], int]:
    """(track number, study id) → the prior key slice of that lesion (the track's previous study), for the patient
    page's compare links."""
    rank = {s: n for n, s in enumerate(study_order)}
    out: dict[tuple[int, str], int] = {}
    for track in tracks:
        seen = sorted(track["by_study"].items(), key=lambda kv: rank.get(kv[0], len(rank)))
        for (_, before), (study, after) in zip(seen, seen[1:], strict=False):
            if before["item_id"] != after["item_id"]:
                out[(track["number"], study)] = before["item_id"]
    return out
