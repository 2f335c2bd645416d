"""Contact sheets: a page of items as ONE image (PERFORMANCE.md: 64 PCam patches as one 8×8 JPEG cost
1.7 ms, against 64 × (request + encode) for separate thumbnails). The grid asks for a sheet per page
and maps tiles back to items from the `X-Item-Ids` header."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.datasets.base import Image2D, View
from app.errors import InvalidInput
from app.imaging.encode import encode_image
from app.imaging.overlay import gray_to_rgb
from app.imaging.presets import resolve_window
from app.pixels import ItemTarget
from app.pixels.store import PixelUnavailable
from app.render.service import Renderer

MAX_TILES = 256
BACKGROUND = 16
UNREADABLE, CROSS = 72, 170  # grey levels of an unreadable item's tile and its ✕


def check_sheet_params(cols: int, tile: int, count: int) -> None:
    if not 1 <= cols <= 32:
        raise InvalidInput(f"cols must be between 1 and 32, got {cols}")
    if not 16 <= tile <= 512:
        raise InvalidInput(f"tile must be between 16 and 512 pixels, got {tile}")
    if count > MAX_TILES:
        raise InvalidInput(f"a sheet holds at most {MAX_TILES} items, asked for {count}")


def placeholder(tile: int) -> np.ndarray:
    """The tile of an item whose pixels cannot be read: grey with a light ✕ (the page still shows the others)."""
    out = np.full((tile, tile, 3), UNREADABLE, np.uint8)
    i = np.arange(tile)
    for d in (-1, 0, 1):  # three pixels wide
        j = np.clip(i + d, 0, tile - 1)
        out[i, j] = out[i, tile - 1 - j] = CROSS
    return out


def _decoded(renderer: Renderer, flat: Sequence[ItemTarget]) -> dict[int, Image2D | None]:
    """id(target) → its decoded image; None for one that cannot be read (PixelUnavailable)."""
    try:
        return dict(zip(map(id, flat), renderer.pixels.images_for(flat), strict=True))
    except PixelUnavailable:  # one bad file in the page: read each alone to find which
        out: dict[int, Image2D | None] = {}
        for target in flat:
            try:
                out[id(target)] = renderer.pixels.image(target, View())
            except PixelUnavailable:
                out[id(target)] = None
        return out


def contact_sheet(renderer: Renderer, targets: Sequence[ItemTarget], *, cols: int, tile: int,
                  overlays: str = "none", quality: int = 90, unreadable: list[int] | None = None) -> bytes:
    """Tiles in reading order (row by row), each item fitted into tile×tile and centred, as JPEG. An item whose
    pixels cannot be read (a corrupt or missing file) is drawn as `placeholder` and its id appended to
    `unreadable`: one bad file never costs the whole page."""
    rows = max(1, -(-len(targets) // cols))
    sheet = np.empty((rows * tile, cols * tile, 3), np.uint8)
    flat = [t for t in targets if not t.ref.meta.get("default_plane")]
    decoded = _decoded(renderer, flat)
    for n, target in enumerate(targets):
        y0, x0 = (n // cols) * tile, (n % cols) * tile
        image = decoded.get(id(target))
        if overlays == "none" and image is not None and image.pixels.shape == (tile, tile, 3) \
                and image.pixels.dtype == np.uint8:
            sheet[y0:y0 + tile, x0:x0 + tile] = image.pixels  # e.g. a 96×96 patch: paste as is
            continue
        view = View(str(target.ref.meta.get("default_plane") or "axial"))
        window = resolve_window(None, None, target.window)
        try:
            if id(target) in decoded and image is None:
                raise PixelUnavailable("unreadable")
            img, _, _ = renderer.compose(target, view, window, tile, overlays)
        except PixelUnavailable:
            sheet[y0:y0 + tile, x0:x0 + tile] = placeholder(tile)
            if unreadable is not None:
                unreadable.append(target.ref.id)
            continue
        if img.ndim == 2:
            img = gray_to_rgb(img)
        h, w = img.shape[:2]
        y, x = y0 + (tile - h) // 2, x0 + (tile - w) // 2
        if (h, w) != (tile, tile):
            sheet[y0:y0 + tile, x0:x0 + tile] = BACKGROUND
        sheet[y:y + h, x:x + w] = img
    sheet[(len(targets) // cols) * tile:, (len(targets) % cols) * tile:] = BACKGROUND  # after the last tile
    return encode_image(sheet, "jpeg", quality, chroma="420")
