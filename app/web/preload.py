"""What the item page asks the browser to fetch before its viewer script runs (docs/viewer.md, "First pixel").

`first_raw_urls` are the `/raw` URLs the viewer's first `load()` fetches (static/js/viewer/main.js `url()` and
`sliceOf()`), built the same way so the browser hands the preloaded responses to the viewer's fetches instead of
asking again; `first_mask_urls` the ground-truth label images that first load waits for; `module_graph` is every
ES module the viewer's entry script imports statically, directly or not, for `<link rel="modulepreload">` (the
browser then fetches them all at once instead of discovering them import by import).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
VIEWER_ENTRY = "js/viewer/main.js"
PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # static/js/viewer/geometry.js
_IMPORT = re.compile(r"""^\s*import\s+(?:[^'"]*?\s+from\s+)?["'](\.{1,2}/[^"']+)["']""", re.MULTILINE)


def first_raw_urls(viewer: Mapping[str, Any]) -> list[str]:
    """The raw-slice URLs of the viewer's first view, one per distinct pane image, in the viewer's own query order
    (`plane` for volumes, `slice` when known, `v`): three planes of a volume in the "three" layout, else one (the
    side-by-side layout's two panes show the same slice)."""
    return [f"{viewer['raw_url']}?{query}" for query in _first_view_queries(viewer)]


def first_mask_urls(viewer: Mapping[str, Any]) -> list[str]:
    """The ground-truth label-image URLs the viewer's first `load()` fetches beside the raw slices (main.js
    `needsGtMask`: the kind has masks, the ground-truth overlay is on, and its mask layer is shown or the
    difference is): one per ground-truth pane, the same views as `first_raw_urls`. The first frame waits for
    them, so they are preloaded too."""
    if not viewer.get("mask_url") or viewer.get("overlays") != "gt":
        return []
    if "mask" in (viewer.get("hide") or []) and not viewer.get("diff"):
        return []
    return [f"{viewer['mask_url']}?{query}" for query in _first_view_queries(viewer)]


def _first_view_queries(viewer: Mapping[str, Any]) -> list[str]:
    planes = viewer.get("planes") or {}
    if planes and viewer.get("layout") == "three":
        at = viewer.get("at")
        if not at:  # the viewer's defaultCursor: the middle voxel, the shown plane's axis at its slice
            at = [planes["sagittal"] // 2, planes["coronal"] // 2, planes["axial"] // 2]
            at[PLANE_AXIS[viewer["plane"]]] = viewer["slice"]
        views: list[tuple[str | None, int | None]] = [(p, at[PLANE_AXIS[p]]) for p in ("axial", "coronal", "sagittal")]
    else:
        views = [(viewer.get("plane") if planes else None, viewer.get("slice"))]
    out = []
    for plane, slice_number in views:
        params: list[tuple[str, str]] = []
        if plane:
            params.append(("plane", plane))
        if slice_number is not None:
            params.append(("slice", str(slice_number)))
        params.append(("v", str(viewer["version"])))
        out.append(urlencode(params))
    return out


@cache
def module_graph(entry: str = VIEWER_ENTRY) -> tuple[str, ...]:
    """Static paths (under static/) of the modules `entry` imports, transitively, entry excluded, in discovery
    order; read once per process (the files ship with the app)."""
    seen: list[str] = []
    todo = [entry]
    while todo:
        path = todo.pop(0)
        text = (STATIC_DIR / path).read_text(encoding="utf-8")
        for spec in _IMPORT.findall(text):
            dep = posixpath.normpath(posixpath.join(posixpath.dirname(path), spec))
            if dep != entry and dep not in seen:
                seen.append(dep)
                todo.append(dep)
    return tuple(seen)
