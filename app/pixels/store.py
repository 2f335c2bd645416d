"""`PixelStore`: an item's decoded views, overlays and volumes, cached per app.

Caching the decoded image takes the ~2 ms PNG decode (or a volume's plane extraction) out of every window
change and every model batch that meets the same item again; volumes are kept whole in the `VolumeCache`
(decompressing a .nii.gz costs ~0.5 s). What an image *is* and how its ground truth is drawn belong to the
dataset's adapter; this module only chooses the adapter, caches and turns its failures into API errors.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.base import PLANES, Image2D, NotAVolume, OverlayLayer, PixelError, View
from app.datasets.registry import get_adapter
from app.datasets.roots import DataRoots, Limits
from app.datasets.stored_masks import MaskStore
from app.datasets.volumes import Volume, VolumeCache
from app.errors import InvalidInput, NotFound
from app.lru import SizedLRU
from app.pixels.targets import ItemTarget, load_targets

MB = 1024 * 1024


class PixelUnavailable(NotFound):
    """The item exists but its pixels cannot be read (file missing, corrupt)."""


def _unavailable(target: ItemTarget, exc: PixelError) -> PixelUnavailable:
    """The adapter's reason, with the server's folders cut out should a library's message carry one: users see
    paths relative to the dataset, never where the server keeps it."""
    text = str(exc)
    files = target.ref.access
    for folder in sorted({str(target.ref.dataset_root), str(files.root), *(str(r) for r in files.roots.paths),
                          *([str(files.work)] if files.work else [])}, key=len, reverse=True):
        text = text.replace(folder.rstrip("/") + "/", "")
    return PixelUnavailable(text)


class _Flight:
    """One decode in progress: the requests that want the same view wait for its image (or its error)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._image: Image2D | None = None
        self._error: BaseException | None = None

    def done(self, image: Image2D) -> None:
        self._image = image
        self._event.set()

    def failed(self, error: BaseException) -> None:
        self._error = error
        self._event.set()

    def wait(self) -> Image2D:
        self._event.wait()
        if self._error is not None:
            raise self._error
        assert self._image is not None
        return self._image


class PixelStore:
    """Decoded 2-D views (byte-bounded LRU) and canonical volumes of items under `roots`.

    Confinement and size limits: every ItemRef this store hands an adapter carries a `DatasetFiles` (these roots,
    `limits`, and `work`, the app's folder of decompressed copies); adapters open each file through it, so a link
    inside a dataset that leads outside the roots, or a header declaring more than MEDVIEW_MAX_*, is a PixelError
    naming the item's file relative to its dataset, turned into PixelUnavailable (404) here."""

    def __init__(self, roots: DataRoots, image_cache_bytes: int, volumes: VolumeCache, limits: Limits | None = None,
                 work: Path | None = None, masks: MaskStore | None = None):
        self.roots = roots
        self.images = SizedLRU(image_cache_bytes, lambda im: im.pixels.nbytes)
        self.volumes = volumes
        self.limits = limits or Limits()
        self.work = work
        self.masks = masks  # user-edited masks (app.datasets.stored_masks), read by the adapters through ItemRef
        self._decoding: dict[tuple[Any, ...], _Flight] = {}  # views being decoded now, by cache key
        self._decoding_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> PixelStore:
        limits = Limits.from_settings(settings)
        return cls(DataRoots(settings.allowed_roots), settings.slice_cache_mb * MB,
                   VolumeCache(settings.volume_cache_mb), limits, settings.data_dir.resolve() / "work",
                   MaskStore(settings.data_dir.resolve() / "masks", limits))

    # -- items ----------------------------------------------------------------------------------------
    def targets(self, session: Session, item_ids: Sequence[int], with_annotations: bool) -> list[ItemTarget]:
        return load_targets(session, item_ids, with_annotations, self.roots, self.limits, self.work, self.masks)

    def target(self, session: Session, item_id: int, with_annotations: bool) -> ItemTarget:
        return load_targets(session, [item_id], with_annotations, self.roots, self.limits, self.work, self.masks)[0]

    def view(self, target: ItemTarget, plane: str | None, slice_number: int | None) -> View:
        """A checked view: a known plane the item has, and a slice number that exists in it (InvalidInput
        naming the available range otherwise); `slice_number=None` is the adapter's default slice."""
        plane = plane or "axial"
        if plane not in PLANES:
            raise InvalidInput(f"plane must be one of {', '.join(PLANES)}, not {plane!r}")
        try:
            available = get_adapter(target.kind).slices(target.ref, plane)
        except (ValueError, PixelError) as exc:
            raise InvalidInput(str(exc)) from None
        if slice_number is not None and slice_number not in available:
            span = f"{available[0]}–{available[-1]}" if len(available) else "none"
            raise InvalidInput(f"slice {slice_number} is not available for this item in the {plane} plane "
                               f"(available: {span})")
        return View(plane, slice_number)

    # -- pixels ---------------------------------------------------------------------------------------
    @staticmethod
    def _key(target: ItemTarget, view: View) -> tuple[Any, ...]:
        ref = target.ref
        return str(ref.dataset_root), ref.location, ref.location_index, view, target.version

    def image(self, target: ItemTarget, view: View) -> Image2D:
        """The decoded view, cached unless the adapter keeps whole volumes (then cutting a plane again is
        cheaper than keeping every plane ever shown). One decode per view at a time: a request that finds the
        same view being decoded waits for it (a first visit asks for the server image and the preloaded `/raw`
        of the same slice at once)."""
        adapter = get_adapter(target.kind)
        if not adapter.cache_images:
            return self._read(target, view)
        key = self._key(target, view)
        image = self.images.get(key)
        if image is not None:
            return image
        with self._decoding_lock:
            flight = self._decoding.get(key)
            mine = flight is None
            if flight is None:
                flight = self._decoding[key] = _Flight()
        if not mine:
            return flight.wait()
        try:
            image = self._read(target, view)
            self.images.put(key, image)
            flight.done(image)
            return image
        except BaseException as exc:
            flight.failed(exc)
            raise
        finally:
            with self._decoding_lock:
                del self._decoding[key]

    def _read(self, target: ItemTarget, view: View) -> Image2D:
        try:
            image = get_adapter(target.kind).read_image(target.ref, view, self.volumes)
        except PixelError as exc:
            raise _unavailable(target, exc) from None
        image.pixels.setflags(write=False)
        return image

    def images_for(self, targets: Sequence[ItemTarget], view: View = View()) -> list[Image2D]:
        """Decoded views of many items: cache hits, then one batched read per kind (`read_images`, e.g.
        consecutive HDF5 rows in one slice), then single (cached) reads for what the batch could not read."""
        out: list[Image2D | None] = [self.images.get(self._key(t, view)) for t in targets]
        missing: dict[str, list[int]] = {}
        for n, t in enumerate(targets):
            if out[n] is None:
                missing.setdefault(t.kind, []).append(n)
        for kind, positions in missing.items():
            adapter = get_adapter(kind)
            if adapter.cache_images and view == View():
                try:
                    batch = adapter.read_images([targets[n].ref for n in positions])
                except PixelError:
                    batch = [None] * len(positions)  # each is read alone below and reports its own problem
                for n, image in zip(positions, batch, strict=True):
                    out[n] = image  # not cached: a batch re-read costs less than churning the LRU with a page
            for n in positions:
                if out[n] is None:
                    out[n] = self.image(targets[n], view)
        return [image for image in out if image is not None]

    def overlay(self, target: ItemTarget, view: View, image: Image2D) -> OverlayLayer:
        """The ground truth of this view as the adapter draws it (vector shapes and/or a label mask)."""
        return get_adapter(target.kind).overlay(target.ref, target.annotations, view, image, self.volumes)

    def volume(self, target: ItemTarget) -> Volume:
        """The item's canonical volume, as the viewer's planes are cut from it (InvalidInput for a 2-D item)."""
        try:
            return get_adapter(target.kind).volume(target.ref, self.volumes)
        except NotAVolume as exc:
            raise InvalidInput(f"item {target.ref.id}: {exc}") from None
        except PixelError as exc:
            raise _unavailable(target, exc) from None

    def label_volume(self, target: ItemTarget) -> Volume | None:
        """The item's ground-truth label volume in the same canonical grid, or None (none, unreadable)."""
        return get_adapter(target.kind).label_volume(target.ref, target.annotations, self.volumes)

    def clear(self) -> None:
        self.images.clear()
        self.volumes.clear()
