"""Render an item's 2-D view: pixels (`app.pixels`) → window → overlay → encode, with a response cache.

Caching encoded responses makes a repeated request cost a dictionary lookup. Each `Rendered` carries the
key of everything that affects its bytes (item content version, annotation versions, parameters) and what
the view turned out to be (`ViewInfo`); `app.api` turns those into the ETag and `X-` headers, so a changed
item is never served stale and nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
from isal import igzip

from app.datasets.base import Image2D, OverlayLayer, View
from app.errors import InvalidInput, NotFound
from app.imaging.encode import MEDIA_TYPES, encode_image, fit_size, normalise_format, resize
from app.imaging.labels import encode_label_png
from app.imaging.orientation import plane_markers
from app.imaging.overlay import Label, blend_mask, draw_shapes, gray_to_rgb, resize_labels
from app.imaging.presets import AUTO_PRESET, WindowError, percentile_window, resolve_window
from app.imaging.window import window_to_uint8
from app.lru import SizedLRU
from app.pixels import ItemTarget, PixelStore

OVERLAY_CHOICES = ("none", "gt")
MASK_MODES = ("fill", "contour")
MAX_SIZE = 4096
PLANES = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class RenderParams:
    format: str = "png"
    window: str | None = None
    preset: str | None = None
    overlays: str = "none"
    size: int | None = None
    slice: int | None = None
    plane: str | None = None
    opacity: float = 0.4
    mask_mode: str = "fill"


@dataclass(frozen=True)
class ViewInfo:
    """What a rendered view turned out to be: the plane and slice shown (the default slice resolved), the HU
    window applied (CT only), mm per output pixel, and for raw values their array shape and dtype; for label
    images the adapter's palette {label: (r, g, b)}."""

    plane: str
    slice: int | None
    window: tuple[float, float] | None = None
    pixel_mm: float | None = None
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    palette: tuple[tuple[int, tuple[int, int, int]], ...] | None = None
    orientation: tuple[str, str, str, str] | None = None  # volumes: patient-direction letters left, right, top, bottom


@dataclass(frozen=True)
class Rendered:
    """Encoded bytes plus their cache key (hashed into the ETag by the API) and the view they show."""

    body: bytes
    media_type: str
    key: Hashable
    info: ViewInfo
    content_encoding: str | None = None


class Renderer:
    """Windowed, overlaid, encoded views of items whose pixels come from `pixels`."""

    def __init__(self, pixels: PixelStore, response_cache_bytes: int):
        self.pixels = pixels
        self.responses = SizedLRU(response_cache_bytes, lambda r: len(r.body))
        # per (item, content version): the auto-window (a pass over a whole volume) and the volume's orientation
        # markers, each computed once; a few hundred bytes an entry
        self.item_facts = SizedLRU(4 * 1024 * 1024, lambda _v: 256)

    def render(self, target: ItemTarget, params: RenderParams) -> Rendered:
        fmt, window, view = self._validate(target, params)
        ann_versions = tuple((a.id, a.version) for a in target.annotations) if params.overlays == "gt" else ()
        key = (target.ref.id, target.version, ann_versions, fmt, window, params.overlays, params.size, view,
               params.opacity, params.mask_mode)
        cached = self.responses.get(key)
        if cached is not None:
            return cached
        img, image, scale = self.compose(target, view, window, params.size, params.overlays, params.opacity,
                                         params.mask_mode)
        info = ViewInfo(view.plane, image.slice, window if image.pixels.dtype == np.int16 else None,
                        image.pixel_mm / scale if image.pixel_mm else None)
        rendered = Rendered(encode_image(img, fmt), MEDIA_TYPES[fmt], key, info)
        self.responses.put(key, rendered)
        return rendered

    def compose(self, target: ItemTarget, view: View, window: tuple[float, float], size: int | None,
                overlays: str = "none", opacity: float = 0.4,
                mask_mode: str = "fill") -> tuple[np.ndarray, Image2D, float]:
        """The displayed pixels (uint8 grey or RGB) of one view: fitted to `size`, windowed, overlaid."""
        image = self.pixels.image(target, view)
        values = image.pixels
        height, width = values.shape[:2]
        out_w, out_h, scale = fit_size(width, height, size)
        values = resize(values, out_w, out_h)
        img = window_to_uint8(values, *window) if values.dtype == np.int16 else values
        if overlays == "gt":
            layer = self.pixels.overlay(target, view, image)
            if layer.mask is not None or layer.shapes:
                img = gray_to_rgb(img) if img.ndim == 2 else img.copy()
            if layer.mask is not None:
                blend_mask(img, resize_labels(layer.mask, out_w, out_h), layer.palette, opacity, mask_mode)
            if layer.shapes:
                draw_shapes(img, layer.shapes, scale)
        return img, image, scale

    def raw(self, target: ItemTarget, slice_number: int | None, plane: str | None = None) -> Rendered:
        """The stored values of one 2-D view, little-endian, gzip-compressed (the viewer's path). Compressed once
        per (item, content version, view) and kept in the response cache: a repeated request (another reader, a
        cache-less client, a conditional request) is a lookup, not a decode and a gzip."""
        view = self.pixels.view(target, plane, slice_number)
        key = ("raw", target.ref.id, target.version, view)
        cached = self.responses.get(key)
        if cached is not None:
            return cached
        image = self.pixels.image(target, view)
        values = np.ascontiguousarray(image.pixels)
        le = values.astype(values.dtype.newbyteorder("<"), copy=False)
        # ISA-L's gzip (same format, any client decodes it): ~5x faster than zlib level 1 on a 512x512 int16 CT
        # slice at 2% more bytes; zlib's compression was the largest part of a raw request under bench/load.py
        body = igzip.compress(le.tobytes(), compresslevel=2)
        markers = (self.orientation(target) or {}).get(view.plane)
        edges = (markers["left"], markers["right"], markers["top"], markers["bottom"]) if markers else None
        info = ViewInfo(view.plane, image.slice, pixel_mm=image.pixel_mm, shape=values.shape,
                        dtype=str(values.dtype), orientation=edges)
        rendered = Rendered(body, "application/octet-stream", key, info, content_encoding="gzip")
        self.responses.put(key, rendered)
        return rendered

    def labels(self, target: ItemTarget, slice_number: int | None, plane: str | None = None) -> Rendered:
        """The ground-truth label image of one view (app.imaging.labels PNG, the size of `raw` of the same view),
        taken from the adapter's overlay so it matches the server-rendered mask exactly, with the adapter's
        palette so the viewer colours it as `render` does. NotFound names why when the view has no mask."""
        view = self.pixels.view(target, plane, slice_number)
        key = ("labels", target.ref.id, target.version, tuple((a.id, a.version) for a in target.annotations), view)
        cached = self.responses.get(key)
        if cached is not None:
            return cached
        image = self.pixels.image(target, view)
        layer = self.pixels.overlay(target, view, image)
        if layer.mask is None:
            raise NotFound(self._no_mask_reason(target, layer))
        palette = tuple(sorted((layer.palette or {}).items()))
        info = ViewInfo(view.plane, image.slice, pixel_mm=image.pixel_mm, palette=palette)
        rendered = Rendered(encode_label_png(layer.mask), "image/png", key, info)
        self.responses.put(key, rendered)
        return rendered

    @staticmethod
    def _no_mask_reason(target: ItemTarget, layer: OverlayLayer) -> str:
        """Why an item shows no mask: none annotated, or the adapter's own complaint about the file."""
        masks = [a for a in target.annotations if a.kind == "mask"]
        if not masks:
            kinds = sorted({a.kind for a in target.annotations})
            has = f"only {', '.join(kinds)} annotations" if kinds else "no annotations"
            return f"item {target.ref.id} has no ground-truth mask ({target.kind} item with {has})"
        problems = [s.text for s in layer.shapes if isinstance(s, Label) and "mask" in s.text]
        detail = f": {problems[0]}" if problems else " (the mask file is missing, unreadable or of another size)"
        return f"item {target.ref.id}: its ground-truth mask cannot be shown{detail}"

    def auto_window(self, target: ItemTarget) -> tuple[float, float]:
        """The percentile auto-window (app.imaging.presets.percentile_window) of the item's whole volume, or of its
        image for a 2-D item, in the stored values' units; computed once per item content version."""
        key = ("auto", target.ref.id, target.version)
        cached = self.item_facts.get(key)
        if cached is not None:
            return cached
        try:
            values = self.pixels.volume(target).data
        except InvalidInput:  # a 2-D item
            values = self.pixels.image(target, View()).pixels
        try:
            window = percentile_window(values)
        except ValueError as exc:
            raise InvalidInput(f"item {target.ref.id}: no auto-window: {exc}") from None
        self.item_facts.put(key, window)
        return window

    def orientation(self, target: ItemTarget) -> dict[str, dict[str, str]] | None:
        """Orientation markers of a volume's three planes (app.imaging.orientation), None for 2-D items. From the
        affine the item's meta keeps (DICOM series: no pixels read, as the acquired plane's single-file path), else
        from the canonical volume the view was just cut from (VerSe, NIfTI: already in the volume cache)."""
        key = ("orientation", target.ref.id, target.version)
        hit = self.item_facts.get(key)
        if hit is not None:
            return hit or None
        affine = (target.ref.meta or {}).get("affine")
        if affine is None:
            try:
                affine = self.pixels.volume(target).affine
            except InvalidInput:  # a 2-D item: no patient geometry, no markers
                affine = None
        try:
            markers = {p: plane_markers(affine, p) for p in PLANES} if affine is not None else {}
        except ValueError:  # a degenerate affine: no markers rather than wrong ones
            markers = {}
        self.item_facts.put(key, markers)
        return markers or None

    def _validate(self, target: ItemTarget, params: RenderParams) -> tuple[str, tuple[float, float], View]:
        try:
            fmt = normalise_format(params.format)
            if params.preset == AUTO_PRESET and not params.window:
                window = self.auto_window(target)
            else:
                window = resolve_window(params.window, params.preset, target.window)
        except (ValueError, WindowError) as exc:
            raise InvalidInput(str(exc)) from None
        if params.overlays not in OVERLAY_CHOICES:
            raise InvalidInput(f"overlays must be one of {', '.join(OVERLAY_CHOICES)}, not {params.overlays!r}")
        if params.size is not None and not 8 <= params.size <= MAX_SIZE:
            raise InvalidInput(f"size must be between 8 and {MAX_SIZE}, got {params.size}")
        if not 0.0 <= params.opacity <= 1.0:
            raise InvalidInput(f"opacity must be between 0 and 1, got {params.opacity}")
        if params.mask_mode not in MASK_MODES:
            raise InvalidInput(f"mask_mode must be one of {', '.join(MASK_MODES)}, not {params.mask_mode!r}")
        return fmt, window, self.pixels.view(target, params.plane, params.slice)
