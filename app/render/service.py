"""Render an item's 2-D image: read (decoded-slice cache) → window → overlay → encode (response cache).

Caching the decoded slice takes the ~2 ms PNG decode out of every window change; caching encoded
responses makes a repeated request cost a dictionary lookup. ETags hash everything that affects
the bytes (item content version, annotation versions, parameters), so a changed item is never
served stale.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.catalog.queries import get_dataset, get_item, item_annotations
from app.datasets.base import ItemRef, PixelError
from app.datasets.registry import get_adapter
from app.errors import Forbidden, InvalidInput, NotFound
from app.imaging.encode import MEDIA_TYPES, encode_image, fit_size, normalise_format, resize
from app.imaging.overlay import Shape, draw_shapes, gray_to_rgb, recist_shapes
from app.imaging.presets import WindowError, resolve_window
from app.imaging.window import window_to_uint8
from app.render.cache import SizedLRU

OVERLAY_CHOICES = ("none", "gt")
MAX_SIZE = 4096


class PixelUnavailable(NotFound):
    """The item exists but its pixels cannot be read (file missing, corrupt)."""


@dataclass(frozen=True)
class RenderParams:
    format: str = "png"
    window: str | None = None
    preset: str | None = None
    overlays: str = "none"
    size: int | None = None
    slice: int | None = None
    plane: str | None = None


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    etag: str
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class RenderTarget:
    ref: ItemRef
    kind: str
    window: tuple[float, float] | None
    version: int
    width: int
    height: int
    annotations: tuple[Any, ...]


def load_target(session: Session, item_id: int, with_annotations: bool,
                allowed_roots: Sequence[Path]) -> RenderTarget:
    """What the renderer needs of an item; refuses datasets outside the configured data roots."""
    item = get_item(session, item_id)
    ds = get_dataset(session, item.dataset_id)
    root = Path(ds.root)
    if not any(root == r or root.is_relative_to(r) for r in allowed_roots):
        raise Forbidden(f"dataset {ds.name!r} lies outside MEDVIEW_DATA_ROOTS; its pixels are not served")
    anns = tuple((a.id, a.version, a.kind, a.slice_index, a.geometry, a.meta)
                 for a in item_annotations(session, item_id)) if with_annotations else ()
    ref = ItemRef(item.id, root, item.location, item.location_index, item.meta or {})
    window = tuple(item.window) if item.window else None
    return RenderTarget(ref, ds.kind, window, item.content_version, item.width or 0, item.height or 0, anns)


class Renderer:
    def __init__(self, slice_cache_bytes: int, response_cache_bytes: int):
        self.slices = SizedLRU(slice_cache_bytes, lambda a: a.nbytes)
        self.responses = SizedLRU(response_cache_bytes, lambda r: len(r.body))

    def pixels(self, target: RenderTarget, slice_number: int | None) -> np.ndarray:
        key = (str(target.ref.dataset_root), target.ref.location, slice_number, target.version)
        arr = self.slices.get(key)
        if arr is None:
            try:
                arr = get_adapter(target.kind).read_slice(target.ref, slice_number)
            except PixelError as exc:
                raise PixelUnavailable(str(exc)) from None
            arr.setflags(write=False)
            self.slices.put(key, arr)
        return arr

    def render(self, target: RenderTarget, params: RenderParams) -> Rendered:
        fmt, window, slice_number = self._validate(target, params)
        shapes = self._shapes(target, slice_number) if params.overlays == "gt" else []
        ann_versions = tuple((a[0], a[1]) for a in target.annotations) if shapes else ()
        key = (target.ref.id, target.version, ann_versions, fmt, window, params.overlays, params.size,
               slice_number)
        cached = self.responses.get(key)
        if cached is not None:
            return cached
        values = self.pixels(target, slice_number)
        height, width = values.shape[:2]
        out_w, out_h, scale = fit_size(width, height, params.size)
        values = resize(values, out_w, out_h)
        grey = window_to_uint8(values, *window) if values.dtype == np.int16 else values
        img = grey
        if shapes:
            img = gray_to_rgb(grey) if grey.ndim == 2 else grey.copy()
            draw_shapes(img, shapes, scale)
        etag = '"' + hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest() + '"'
        rendered = Rendered(encode_image(img, fmt), MEDIA_TYPES[fmt], etag, {
            "X-Window": f"{window[0]:g},{window[1]:g}", "X-Slice": str(slice_number)})
        self.responses.put(key, rendered)
        return rendered

    def raw(self, target: RenderTarget, slice_number: int | None, plane: str | None = None) -> Rendered:
        """The stored values of one 2-D image, gzip-compressed, with shape/dtype headers (the viewer's path)."""
        self._check_plane(target, plane)
        slice_number = self._slice_number(target, slice_number)
        values = np.ascontiguousarray(self.pixels(target, slice_number))
        le = values.astype(values.dtype.newbyteorder("<"), copy=False)
        body = gzip.compress(le.tobytes(), compresslevel=1)
        etag = '"' + hashlib.blake2b(repr(("raw", target.ref.id, target.version, slice_number)).encode(),
                                     digest_size=12).hexdigest() + '"'
        headers = {"X-Shape": ",".join(map(str, values.shape)), "X-Dtype": str(values.dtype),
                   "X-Slice": str(slice_number), "Content-Encoding": "gzip"}
        return Rendered(body, "application/octet-stream", etag, headers)

    def _slice_number(self, target: RenderTarget, slice_number: int | None) -> int | None:
        if slice_number is None:
            return target.ref.location_index
        available = get_adapter(target.kind).slice_numbers(target.ref)
        if slice_number not in available:
            span = f"{available[0]}–{available[-1]}" if available else "none"
            raise InvalidInput(f"slice {slice_number} is not available for this item (available: {span})")
        return slice_number

    def _validate(self, target: RenderTarget, params: RenderParams):
        try:
            fmt = normalise_format(params.format)
            window = resolve_window(params.window, params.preset, target.window)
        except (ValueError, WindowError) as exc:
            raise InvalidInput(str(exc)) from None
        if params.overlays not in OVERLAY_CHOICES:
            raise InvalidInput(f"overlays must be one of {', '.join(OVERLAY_CHOICES)}, not {params.overlays!r}")
        if params.size is not None and not 8 <= params.size <= MAX_SIZE:
            raise InvalidInput(f"size must be between 8 and {MAX_SIZE}, got {params.size}")
        self._check_plane(target, params.plane)
        return fmt, window, self._slice_number(target, params.slice)

    @staticmethod
    def _check_plane(target: RenderTarget, plane: str | None) -> None:
        if plane not in (None, "axial"):
            raise InvalidInput(f"{target.kind} items are single axial images; plane {plane!r} is not available")

    @staticmethod
    def _shapes(target: RenderTarget, slice_number: int | None) -> list[Shape]:
        shapes: list[Shape] = []
        for _id, _version, kind, slice_index, geometry, meta in target.annotations:
            if slice_index is not None and slice_index != slice_number:
                continue
            if kind in ("recist", "bbox"):
                shapes += recist_shapes(geometry, meta.get("lesion_number"))
        return shapes
