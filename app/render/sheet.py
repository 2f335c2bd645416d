"""Contact sheets: a page of items as ONE image (PERFORMANCE.md: 64 PCam patches as one 8×8 JPEG cost
1.7 ms, against 64 × (request + encode) for separate thumbnails). The grid asks for a sheet per page
and maps tiles back to items from the `X-Item-Ids` header."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.datasets.base import View
from app.errors import InvalidInput
from app.imaging.encode import encode_image
from app.imaging.overlay import gray_to_rgb
from app.imaging.presets import resolve_window
from app.pixels import ItemTarget
from app.render.service import Renderer

MAX_TILES = 256
BACKGROUND = 16


def check_sheet_params(cols: int, tile: int, count: int) -> None:
    if not 1 <= cols <= 32:
        raise InvalidInput(f"cols must be between 1 and 32, got {cols}")
    if not 16 <= tile <= 512:
        raise InvalidInput(f"tile must be between 16 and 512 pixels, got {tile}")
    if count > MAX_TILES:
        raise InvalidInput(f"a sheet holds at most {MAX_TILES} items, asked for {count}")


def contact_sheet(renderer: Renderer, targets: Sequence[ItemTarget], *, cols: int, tile: int,
                  overlays: str = "none", quality: int = 90) -> bytes:
    """Tiles in reading order (row by row), each item fitted into tile×tile and centred, as JPEG."""
    rows = max(1, -(-len(targets) // cols))
    sheet = np.empty((rows * tile, cols * tile, 3), np.uint8)
    flat = [t for t in targets if not t.ref.meta.get("default_plane")]
    decoded = dict(zip(map(id, flat), renderer.pixels.images_for(flat), strict=True))
    for n, target in enumerate(targets):
        y0, x0 = (n // cols) * tile, (n % cols) * tile
        image = decoded.get(id(target))
        if overlays == "none" and image is not None and image.pixels.shape == (tile, tile, 3) \
                and image.pixels.dtype == np.uint8:
            sheet[y0:y0 + tile, x0:x0 + tile] = image.pixels  # e.g. a 96×96 patch: paste as is
            continue
        view = View(str(target.ref.meta.get("default_plane") or "axial"))
        window = resolve_window(None, None, target.window)
        img, _, _ = renderer.compose(target, view, window, tile, overlays)
        if img.ndim == 2:
            img = gray_to_rgb(img)
        h, w = img.shape[:2]
        y, x = y0 + (tile - h) // 2, x0 + (tile - w) // 2
        if (h, w) != (tile, tile):
            sheet[y0:y0 + tile, x0:x0 + tile] = BACKGROUND
        sheet[y:y + h, x:x + w] = img
    sheet[(len(targets) // cols) * tile:, (len(targets) % cols) * tile:] = BACKGROUND  # after the last tile
    return encode_image(sheet, "jpeg", quality, chroma="420")
