"""Render an item's 2-D view: read (decoded-image cache) → window → overlay → encode (response cache).

Caching the decoded image takes the ~2 ms PNG decode (or a volume's plane extraction) out of every
window change; caching encoded responses makes a repeated request cost a dictionary lookup. ETags
hash everything that affects the bytes (item content version, annotation versions, parameters), so
a changed item is never served stale. What an image is and how its ground truth is drawn belong to
the dataset's adapter (`read_image`, `overlay`); this module only composes and encodes.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.datasets.base import PLANES, Image2D, ItemRef, PixelError, View
from app.datasets.registry import get_adapter
from app.db.models import Annotation, Dataset, Item
from app.errors import Forbidden, InvalidInput, NotFound
from app.imaging.encode import MEDIA_TYPES, encode_image, fit_size, normalise_format, resize
from app.imaging.labels import encode_label_png
from app.imaging.overlay import blend_mask, draw_shapes, gray_to_rgb, resize_labels
from app.imaging.presets import WindowError, resolve_window
from app.imaging.window import window_to_uint8
from app.render.cache import SizedLRU

OVERLAY_CHOICES = ("none", "gt")
MASK_MODES = ("fill", "contour")
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
    opacity: float = 0.4
    mask_mode: str = "fill"


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    etag: str
    headers: dict[str, str] | None = None


class AnnotationView(NamedTuple):
    id: int
    version: int
    kind: str
    label: str | None
    slice_index: int | None
    geometry: dict
    meta: dict


@dataclass(frozen=True)
class RenderTarget:
    ref: ItemRef
    kind: str
    window: tuple[float, float] | None
    version: int
    annotations: tuple[AnnotationView, ...]


def load_target(session: Session, item_id: int, with_annotations: bool,
                allowed_roots: Sequence[Path]) -> RenderTarget:
    """What the renderer needs of an item; refuses datasets outside the configured data roots."""
    return load_targets(session, [item_id], with_annotations, allowed_roots)[0]


# Built once: rows, not ORM objects (a page is 64+ items), and no per-call statement cache-key work.
_TARGET_ROWS = select(Item.id, Item.dataset_id, Item.location, Item.location_index, Item.meta, Item.width, Item.height,
                      Item.depth, Item.spacing, Item.window, Item.content_version, Item.label).where(
    Item.id.in_(bindparam("ids", expanding=True)))


def load_targets(session: Session, item_ids: Sequence[int], with_annotations: bool,
                 allowed_roots: Sequence[Path]) -> list[RenderTarget]:
    """RenderTargets for a page of items in three queries (items, their datasets, their annotations)."""
    items = {row.id: row for row in session.execute(_TARGET_ROWS, {"ids": list(item_ids)})}
    datasets = {d.id: d for d in session.scalars(select(Dataset).where(
        Dataset.id.in_({i.dataset_id for i in items.values()})))}
    anns: dict[int, list[AnnotationView]] = {}
    if with_annotations and items:
        for a in session.scalars(select(Annotation).where(Annotation.item_id.in_(list(items)),
                                                          Annotation.superseded_by.is_(None)).order_by(Annotation.id)):
            anns.setdefault(a.item_id, []).append(
                AnnotationView(a.id, a.version, a.kind, a.label, a.slice_index, a.geometry or {}, a.meta or {}))
    roots = {}
    for ds in datasets.values():
        roots[ds.id] = Path(ds.root)
        if not any(roots[ds.id] == r or roots[ds.id].is_relative_to(r) for r in allowed_roots):
            raise Forbidden(f"dataset {ds.name!r} lies outside MEDVIEW_DATA_ROOTS; its pixels are not served")
    out = []
    for item_id in item_ids:
        item = items.get(item_id)
        if item is None:
            raise NotFound(f"item {item_id} not found")
        ds = datasets[item.dataset_id]
        root = roots[ds.id]
        ref = ItemRef(item.id, root, item.location, item.location_index, item.meta or {}, item.width or 0,
                      item.height or 0, item.depth or 1, tuple(item.spacing) if item.spacing else None, item.label)
        out.append(RenderTarget(ref, ds.kind, tuple(item.window) if item.window else None, item.content_version,
                                tuple(anns.get(item_id, ()))))
    return out


def _etag(key: Any) -> str:
    return '"' + hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest() + '"'


class Renderer:
    def __init__(self, slice_cache_bytes: int, response_cache_bytes: int):
        self.images = SizedLRU(slice_cache_bytes, lambda im: im.pixels.nbytes)
        self.responses = SizedLRU(response_cache_bytes, lambda r: len(r.body))

    def image(self, target: RenderTarget, view: View) -> Image2D:
        """The decoded view, cached unless the adapter keeps whole volumes cached itself (then cutting a
        plane again is cheaper than keeping every plane ever shown)."""
        adapter = get_adapter(target.kind)
        cache = getattr(adapter, "cache_images", True)
        key = (str(target.ref.dataset_root), target.ref.location, target.ref.location_index, view, target.version)
        image = self.images.get(key) if cache else None
        if image is None:
            try:
                image = adapter.read_image(target.ref, view)
            except PixelError as exc:
                raise PixelUnavailable(str(exc)) from None
            image.pixels.setflags(write=False)
            if cache:
                self.images.put(key, image)
        return image

    def images_for(self, targets: Sequence[RenderTarget], view: View = View()) -> list[Image2D]:
        """Decoded views of many items: cache hits, then one batched read per kind whose adapter can
        (`read_images`, e.g. consecutive HDF5 rows in one slice), then single (cached) reads for the rest."""
        out: list[Image2D | None] = [None] * len(targets)
        keys = [(str(t.ref.dataset_root), t.ref.location, t.ref.location_index, view, t.version) for t in targets]
        missing: dict[str, list[int]] = {}
        for n, (t, key) in enumerate(zip(targets, keys, strict=True)):
            out[n] = self.images.get(key)
            if out[n] is None:
                missing.setdefault(t.kind, []).append(n)
        for kind, positions in missing.items():
            adapter = get_adapter(kind)
            if hasattr(adapter, "read_images") and getattr(adapter, "cache_images", True):
                try:
                    images = adapter.read_images([targets[n].ref for n in positions])
                except PixelError:
                    images = [None] * len(positions)  # each is read alone below and reports its own problem
                for n, image in zip(positions, images, strict=True):
                    out[n] = image  # not cached: a batch re-read costs less than churning the LRU with a page
            for n in positions:
                if out[n] is None:
                    out[n] = self.image(targets[n], view)
        return out  # type: ignore[return-value]

    def render(self, target: RenderTarget, params: RenderParams) -> Rendered:
        fmt, window, view = self._validate(target, params)
        ann_versions = tuple((a.id, a.version) for a in target.annotations) if params.overlays == "gt" else ()
        key = (target.ref.id, target.version, ann_versions, fmt, window, params.overlays, params.size, view,
               params.opacity, params.mask_mode)
        cached = self.responses.get(key)
        if cached is not None:
            return cached
        img, image, scale = self.compose(target, view, window, params.size, params.overlays, params.opacity,
                                         params.mask_mode)
        headers = {"X-Slice": "" if image.slice is None else str(image.slice), "X-Plane": view.plane}
        if image.pixels.dtype == np.int16:
            headers["X-Window"] = f"{window[0]:g},{window[1]:g}"
        if image.pixel_mm:
            headers["X-Pixel-Spacing"] = f"{image.pixel_mm / scale:g}"
        rendered = Rendered(encode_image(img, fmt), MEDIA_TYPES[fmt], _etag(key), headers)
        self.responses.put(key, rendered)
        return rendered

    def compose(self, target: RenderTarget, view: View, window: tuple[float, float], size: int | None,
                overlays: str = "none", opacity: float = 0.4,
                mask_mode: str = "fill") -> tuple[np.ndarray, Image2D, float]:
        """The displayed pixels (uint8 grey or RGB) of one view: fitted to `size`, windowed, overlaid."""
        image = self.image(target, view)
        values = image.pixels
        height, width = values.shape[:2]
        out_w, out_h, scale = fit_size(width, height, size)
        values = resize(values, out_w, out_h)
        img = window_to_uint8(values, *window) if values.dtype == np.int16 else values
        if overlays == "gt":
            layer = get_adapter(target.kind).overlay(target.ref, target.annotations, view, image)
            if layer.mask is not None or layer.shapes:
                img = gray_to_rgb(img) if img.ndim == 2 else img.copy()
            if layer.mask is not None:
                blend_mask(img, resize_labels(layer.mask, out_w, out_h), layer.palette, opacity, mask_mode)
            if layer.shapes:
                draw_shapes(img, layer.shapes, scale)
        return img, image, scale

    def raw(self, target: RenderTarget, slice_number: int | None, plane: str | None = None) -> Rendered:
        """The stored values of one 2-D view, gzip-compressed, with shape/dtype headers (the viewer's path)."""
        view = self._view(target, plane, slice_number)
        image = self.image(target, view)
        values = np.ascontiguousarray(image.pixels)
        le = values.astype(values.dtype.newbyteorder("<"), copy=False)
        body = gzip.compress(le.tobytes(), compresslevel=1)
        headers = {"X-Shape": ",".join(map(str, values.shape)), "X-Dtype": str(values.dtype),
                   "X-Slice": "" if image.slice is None else str(image.slice), "X-Plane": view.plane,
                   "Content-Encoding": "gzip"}
        if image.pixel_mm:
            headers["X-Pixel-Spacing"] = f"{image.pixel_mm:g}"
        return Rendered(body, "application/octet-stream", _etag(("raw", target.ref.id, target.version, view)),
                        headers)

    def labels(self, target: RenderTarget, slice_number: int | None, plane: str | None = None) -> Rendered:
        """The ground-truth label image of one view (app.imaging.labels PNG, the size of `raw` of the same view),
        taken from the adapter's overlay so it matches the server-rendered mask exactly. `X-Palette` carries the
        adapter's colours (`label:r,g,b;…`) so the viewer colours it as `render` does. NotFound names why when
        the view has no mask."""
        view = self._view(target, plane, slice_number)
        key = ("labels", target.ref.id, target.version, tuple((a.id, a.version) for a in target.annotations), view)
        cached = self.responses.get(key)
        if cached is not None:
            return cached
        image = self.image(target, view)
        layer = get_adapter(target.kind).overlay(target.ref, target.annotations, view, image)
        if layer.mask is None:
            raise NotFound(self._no_mask_reason(target, layer))
        palette = ";".join(f"{label}:{r},{g},{b}" for label, (r, g, b) in sorted((layer.palette or {}).items()))
        headers = {"X-Slice": "" if image.slice is None else str(image.slice), "X-Plane": view.plane,
                   "X-Palette": palette}
        if image.pixel_mm:
            headers["X-Pixel-Spacing"] = f"{image.pixel_mm:g}"
        rendered = Rendered(encode_label_png(layer.mask), "image/png", _etag(key), headers)
        self.responses.put(key, rendered)
        return rendered

    @staticmethod
    def _no_mask_reason(target: RenderTarget, layer: Any) -> str:
        """Why an item shows no mask: none annotated, or the adapter's own complaint about the file."""
        masks = [a for a in target.annotations if a.kind == "mask"]
        if not masks:
            kinds = sorted({a.kind for a in target.annotations})
            has = f"only {', '.join(kinds)} annotations" if kinds else "no annotations"
            return f"item {target.ref.id} has no ground-truth mask ({target.kind} item with {has})"
        problems = [s.text for s in layer.shapes if getattr(s, "text", None) and "mask" in s.text]
        detail = f": {problems[0]}" if problems else " (the mask file is missing, unreadable or of another size)"
        return f"item {target.ref.id}: its ground-truth mask cannot be shown{detail}"

    def _view(self, target: RenderTarget, plane: str | None, slice_number: int | None) -> View:
        plane = plane or "axial"
        if plane not in PLANES:
            raise InvalidInput(f"plane must be one of {', '.join(PLANES)}, not {plane!r}")
        try:
            available = get_adapter(target.kind).slices(target.ref, plane)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        if slice_number is not None and slice_number not in available:
            span = f"{available[0]}–{available[-1]}" if len(available) else "none"
            raise InvalidInput(f"slice {slice_number} is not available for this item in the {plane} plane "
                               f"(available: {span})")
        return View(plane, slice_number)

    def _validate(self, target: RenderTarget, params: RenderParams) -> tuple[str, tuple[float, float], View]:
        try:
            fmt = normalise_format(params.format)
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
        return fmt, window, self._view(target, params.plane, params.slice)
