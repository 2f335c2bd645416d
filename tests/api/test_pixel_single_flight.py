"""One decode per view at a time (app.pixels.store): requests that arrive while the same view is being decoded wait
for that decode instead of reading the file again, and share its error when it fails; other views decode
alongside. The adapter's read is the real one (a real DeepLesion slice from disk), held at a barrier so that the
requests meet inside it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from app.datasets.base import View
from app.datasets.registry import get_adapter
from app.db.models import Item
from app.db.session import make_session_factory
from app.pixels import PixelStore
from app.pixels.store import PixelUnavailable

WAITERS = 3


def _targets(engine, store: PixelStore, dataset_id: int, n: int):
    with make_session_factory(engine)() as session:
        ids = session.scalars(select(Item.id).where(Item.dataset_id == dataset_id).order_by(Item.id).limit(n)).all()
        return store.targets(session, list(ids), False)


@pytest.fixture
def counted_reads(monkeypatch):
    """Counts the DeepLesion adapter's reads per slice; each read waits until `release` is set."""
    adapter = get_adapter("deeplesion")
    real = adapter.read_image
    calls: list[str] = []
    entered = threading.Semaphore(0)
    release = threading.Event()

    def read_image(ref, view, volumes):
        calls.append(ref.location)
        entered.release()
        assert release.wait(10), "the test never released the read"
        return real(ref, view, volumes)

    monkeypatch.setattr(adapter, "read_image", read_image)
    return calls, entered, release


def test_concurrent_requests_for_one_view_decode_it_once(engine, settings, ingested, counted_reads):
    calls, entered, release = counted_reads
    store = PixelStore.from_settings(settings)
    target, other = _targets(engine, store, ingested.dataset_id, 2)
    with ThreadPoolExecutor(max_workers=WAITERS + 2) as pool:
        first = pool.submit(store.image, target, View())
        assert entered.acquire(timeout=10)  # the first request is decoding now
        waiting = [pool.submit(store.image, target, View()) for _ in range(WAITERS)]
        elsewhere = pool.submit(store.image, other, View())
        assert entered.acquire(timeout=10)  # another view decodes beside it, not behind it
        release.set()
        images = [first.result(10), *(f.result(10) for f in waiting)]
        assert elsewhere.result(10).pixels.shape == images[0].pixels.shape
    assert sorted(calls) == sorted([target.ref.location, other.ref.location])  # one read per view
    assert all(im is images[0] for im in images)  # the waiters got the decoder's image
    assert store.image(target, View()) is images[0] and len(calls) == 2  # and it is cached


def test_waiters_share_the_decoders_error_and_the_next_request_tries_again(engine, settings, ingested,
                                                                          counted_reads):
    calls, entered, release = counted_reads
    store = PixelStore.from_settings(settings)
    (target,) = _targets(engine, store, ingested.dataset_id, 1)
    path = Path(target.ref.dataset_root) / target.ref.location
    good = path.read_bytes()
    path.write_bytes(good[:200])  # truncated: the PNG cannot be decoded
    try:
        with ThreadPoolExecutor(max_workers=WAITERS + 1) as pool:
            first = pool.submit(store.image, target, View())
            assert entered.acquire(timeout=10)
            waiting = [pool.submit(store.image, target, View()) for _ in range(WAITERS)]
            release.set()
            for future in (first, *waiting):
                with pytest.raises(PixelUnavailable, match="could not be decoded"):
                    future.result(10)
        assert len(calls) == 1
    finally:
        path.write_bytes(good)
    assert store.image(target, View()).pixels.size > 0 and len(calls) == 2  # a failure is not cached
