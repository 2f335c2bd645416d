"""HTTP for images: the ETag, cache and `X-` headers of a rendered view, and conditional requests.

Headers a viewer relies on (docs/api.md): `X-Plane`, `X-Slice` (the slice shown, the default resolved),
`X-Window` (`LOW,HIGH` in the values' units — HU for CT — grey-value renders), `X-Pixel-Spacing` (mm per output
pixel), `X-Shape` / `X-Dtype` (raw values), `X-Orientation` (raw values of a volume: the patient-direction letters
at the image's left, right, top and bottom edges, `R,L,A,P`), `X-Palette` (`label:r,g,b;…`, label images).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable

from fastapi import Request
from fastapi.responses import Response

from app.render.service import Rendered, ViewInfo

# Private: a shared proxy must not keep patient pixels; the browser may keep a version-pinned URL for good.
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def etag(key: Hashable) -> str:
    """A strong ETag from everything that affects the bytes (repr of a tuple of plain values)."""
    return '"' + hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest() + '"'


def view_headers(info: ViewInfo) -> dict[str, str]:
    headers = {"X-Plane": info.plane, "X-Slice": "" if info.slice is None else str(info.slice)}
    if info.window is not None:
        headers["X-Window"] = f"{info.window[0]:g},{info.window[1]:g}"
    if info.pixel_mm:
        headers["X-Pixel-Spacing"] = f"{info.pixel_mm:g}"
    if info.shape is not None:
        headers["X-Shape"] = ",".join(map(str, info.shape))
    if info.dtype is not None:
        headers["X-Dtype"] = info.dtype
    if info.orientation is not None:
        headers["X-Orientation"] = ",".join(info.orientation)
    if info.palette is not None:
        headers["X-Palette"] = ";".join(f"{label}:{r},{g},{b}" for label, (r, g, b) in info.palette)
    return headers


def image_response(request: Request, rendered: Rendered, version: int) -> Response:
    """Bytes with an ETag; long-lived caching when the URL names the item's current version (`v=`)."""
    tag = etag(rendered.key)
    pinned = request.query_params.get("v") == str(version)
    headers = {"ETag": tag, "Cache-Control": IMMUTABLE if pinned else REVALIDATE, **view_headers(rendered.info)}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    if rendered.content_encoding:
        headers["Content-Encoding"] = rendered.content_encoding
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)
