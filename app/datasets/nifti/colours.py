"""The fixed colour of each label value of a plain NIfTI label map (the viewer's overlay and the item page's legend).

The 7 Okabe–Ito colours (distinguishable under the common colour-vision deficiencies) cycled over label values
1, 2, 3, …; every 7 values a lighter tier, so values up to 21 all differ. A label keeps its colour across items and
datasets, which is what a reader comparing cases needs.
"""

from __future__ import annotations

_OKABE_ITO = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
              (204, 121, 167))


def colour(label: int) -> tuple[int, int, int]:
    """1 → orange, 2 → sky blue, 3 → green, 4 → yellow, 5 → blue, 6 → vermilion, 7 → purple, then lighter."""
    r, g, b = _OKABE_ITO[(label - 1) % 7]
    white = 0.3 * ((label - 1) // 7 % 3)
    return round(r + (255 - r) * white), round(g + (255 - g) * white), round(b + (255 - b) * white)


def hex_colour(label: int) -> str:
    r, g, b = colour(label)
    return f"#{r:02x}{g:02x}{b:02x}"
