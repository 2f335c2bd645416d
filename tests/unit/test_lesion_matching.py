"""Lesion matching by embedding and location (app.embeddings.lesion_matching) on synthetic lesions: two studies
with the lesions listed in swapped order, a new lesion, a vanished one that rejoins later, and an embedding that
disagrees with location (two neighbouring lesions told apart by their look, a look-alike far away not linked)."""

from __future__ import annotations

import numpy as np

from app.catalog.followup import lesion_tracks
from app.embeddings.lesion_matching import LOCATION_GATE, match_lesions

_ids = iter(range(1, 10_000))


def unit(*v: float) -> np.ndarray:
    a = np.asarray(v, np.float32)
    return a / np.linalg.norm(a)


A, B, C, D = unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 1, 0), unit(0, 0, 0, 1)


def lesion(loc, mm, label="1"):
    return {"id": next(_ids), "kind": "recist", "label": label,
            "meta": {"normalized_location": list(loc), "long_mm": mm, "short_mm": mm / 2, "lesion_type_name": "x"}}


def study(name, *lesions):
    return {"study": name, "items": [{"id": next(_ids), "annotations": list(lesions)}]}


def by_study(tracks):
    return [{s: m["long_mm"] for s, m in t["by_study"].items()} for t in tracks]


def test_swapped_order_new_and_vanished_lesion_rejoining():
    a1, b1 = lesion((0.3, 0.3, 0.5), 10), lesion((0.7, 0.3, 0.5), 20)
    b2, a2, n2 = lesion((0.71, 0.31, 0.5), 22), lesion((0.31, 0.29, 0.5), 11), lesion((0.5, 0.8, 0.2), 5)
    a3 = lesion((0.3, 0.3, 0.51), 13)  # b vanished in study 3 …
    b4 = lesion((0.69, 0.3, 0.5), 30)  # … and is back in study 4
    vectors = {a1["id"]: A, a2["id"]: unit(1, 0.1, 0, 0), a3["id"]: A, b1["id"]: B, b2["id"]: unit(0.1, 1, 0, 0),
               b4["id"]: B, n2["id"]: C}
    tracks = match_lesions([study("s1", a1, b1), study("s2", b2, a2, n2), study("s3", a3), study("s4", b4)], vectors)
    assert by_study(tracks) == [{"s1": 10, "s2": 11, "s3": 13}, {"s1": 20, "s2": 22, "s4": 30}, {"s2": 5}]
    assert [t["matched_by"] for t in tracks] == ["embedding"] * 3
    assert [t["annotation_ids"] for t in tracks] == [[a1["id"], a2["id"], a3["id"]], [b1["id"], b2["id"], b4["id"]],
                                                     [n2["id"]]]
    first = tracks[0]["by_study"]
    assert first["s1"]["similarity"] is None and first["s1"]["matched_by"] is None
    assert first["s2"]["matched_by"] == "embedding"
    assert abs(first["s2"]["similarity"] - float(A @ unit(1, 0.1, 0, 0))) < 1e-3
    assert abs(first["s2"]["change"] - 0.1) < 1e-9
    assert "vector" not in tracks[0]


def test_embedding_overrules_location():
    # two lesions 0.05 apart; in study 2 the one that looks like `a` sits nearer b's old place
    a1, b1 = lesion((0.50, 0.5, 0.5), 10), lesion((0.55, 0.5, 0.5), 20)
    a2, b2 = lesion((0.545, 0.5, 0.5), 12), lesion((0.505, 0.5, 0.5), 21)
    vectors = {a1["id"]: A, b1["id"]: B, a2["id"]: A, b2["id"]: B}
    studies = [study("s1", a1, b1), study("s2", a2, b2)]
    assert by_study(match_lesions(studies, vectors)) == [{"s1": 10, "s2": 12}, {"s1": 20, "s2": 21}]
    # the location heuristic pairs them by place instead
    assert by_study(lesion_tracks(studies)) == [{"s1": 10, "s2": 21}, {"s1": 20, "s2": 12}]


def test_dissimilar_or_far_lesions_are_not_linked():
    a1 = lesion((0.5, 0.5, 0.5), 10)
    same_place_other_look = lesion((0.5, 0.5, 0.5), 10)
    look_alike_far = lesion((0.5 + LOCATION_GATE + 0.01, 0.5, 0.5), 10)
    vectors = {a1["id"]: A, same_place_other_look["id"]: D, look_alike_far["id"]: A}
    tracks = match_lesions([study("s1", a1), study("s2", same_place_other_look), study("s3", look_alike_far)], vectors)
    assert by_study(tracks) == [{"s1": 10}, {"s2": 10}, {"s3": 10}]


def test_lesions_without_vectors_fall_back_to_location():
    a1, a2 = lesion((0.5, 0.5, 0.5), 10), lesion((0.52, 0.5, 0.5), 12)
    other_type = lesion((0.5, 0.5, 0.5), 9, label="2")
    tracks = match_lesions([study("s1", a1), study("s2", a2, other_type)], {a1["id"]: A})
    assert by_study(tracks) == [{"s1": 10, "s2": 12}, {"s2": 9}]
    assert tracks[0]["matched_by"] == "location" and tracks[0]["by_study"]["s2"]["matched_by"] == "location"
    assert tracks[0]["by_study"]["s2"]["similarity"] is None
