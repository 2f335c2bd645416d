"""VerSe vertebra labels: numbers, names, anatomical order, regions and the fixed display palette.

Label numbers are VerSe's (1–7 C1–C7, 8–19 T1–T12, 20–25 L1–L6, 26 sacrum, 27 coccyx, 28 T13, a
transitional thoracic vertebra that sits between T12 and L1).

Palette: the 7 Okabe–Ito colours (distinguishable under the common colour-vision deficiencies) cycled
along the spine in anatomical order, so neighbouring vertebrae always differ in hue and any 7 consecutive
ones are all different; every 7 positions the lightness tier changes (cervical lighter, upper thoracic
palest, lower thoracic darker, lumbar to coccyx the plain colours), which makes all 28 colours distinct.
The text labels at the centroids carry the identity; the colours separate neighbours. Names are drawn
in the vertebra's colour lightened halfway to white, readable on dark and bright tissue alike.
"""

from __future__ import annotations

NAMES: dict[int, str] = {
    **{n: f"C{n}" for n in range(1, 8)},
    **{n: f"T{n - 7}" for n in range(8, 20)},
    **{n: f"L{n - 19}" for n in range(20, 26)},
    26: "Sacrum",
    27: "Coccyx",
    28: "T13",
}
LABELS_BY_NAME: dict[str, int] = {name: n for n, name in NAMES.items()}
# Anatomical order, cranial to caudal (T13 between T12 and L1).
SPINE_ORDER: tuple[int, ...] = (*range(1, 20), 28, *range(20, 28))
REGIONS: dict[str, tuple[int, ...]] = {
    "cervical": tuple(range(1, 8)),
    "thoracic": (*range(8, 20), 28),
    "lumbar": tuple(range(20, 26)),
    "sacrococcygeal": (26, 27),
}

_OKABE_ITO = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
              (204, 121, 167))
# (towards white, towards black) per tier of 7 positions along SPINE_ORDER
_TIERS = ((0.25, 0.0), (0.5, 0.0), (0.0, 0.4), (0.0, 0.0))


def _tint(rgb: tuple[int, int, int], white: float, black: float) -> tuple[int, int, int]:
    def mix(c: int) -> int:
        return round((c + (255 - c) * white) * (1 - black))

    return mix(rgb[0]), mix(rgb[1]), mix(rgb[2])


PALETTE: dict[int, tuple[int, int, int]] = {
    label: _tint(_OKABE_ITO[pos % 7], *_TIERS[pos // 7]) for pos, label in enumerate(SPINE_ORDER)
}


TEXT_COLOURS: dict[int, tuple[int, int, int]] = {label: _tint(rgb, 0.5, 0.0) for label, rgb in PALETTE.items()}


def name(label: int) -> str:
    return NAMES.get(label, str(label))


def spine_sorted(labels: set[int] | list[int]) -> list[int]:
    """Vertebra labels in anatomical order (cranial first)."""
    return sorted(labels, key=SPINE_ORDER.index)


def regions_of(labels: set[int] | list[int]) -> list[str]:
    present = set(labels)
    return [region for region, members in REGIONS.items() if present.intersection(members)]


def span_text(labels: set[int] | list[int]) -> str | None:
    """'T12–L5' for the vertebrae present (None when there are none)."""
    ordered = spine_sorted(labels)
    if not ordered:
        return None
    first, last = NAMES[ordered[0]], NAMES[ordered[-1]]
    return first if first == last else f"{first}–{last}"


def hex_colour(label: int) -> str:
    r, g, b = PALETTE[label]
    return f"#{r:02x}{g:02x}{b:02x}"
