"""How the ingest tunes the process and its SQLite connection for bulk writes: the cyclic garbage collector paused
while millions of acyclic scan objects live, WAL checkpoints deferred and a larger page cache while writing."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.db.session import BULK_CACHE_KIB, CACHE_KIB


@contextmanager
def checkpoints_deferred(conn) -> Iterator[None]:
    """SQLite in WAL mode copies the log back into the database (and syncs) whenever a commit leaves it over
    1,000 pages: with 10,000-row batches that was every commit, 0.6 s of PCam's ingest. The ingest's own
    commits skip it; the next ordinary commit (or closing the database) checkpoints once. The connection's page
    cache is raised to app.db.session's bulk size meanwhile (served connections keep a small one)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.dbapi_connection  # a PRAGMA through SQLAlchemy would begin a transaction
    raw.execute("PRAGMA wal_autocheckpoint=0")
    raw.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")  # every index's hot B-tree pages stay in memory
    try:
        yield
    finally:
        raw.execute("PRAGMA wal_autocheckpoint=1000")
        raw.execute(f"PRAGMA cache_size=-{CACHE_KIB}")  # the pool keeps the connection: give the cache back


_gc_lock = threading.Lock()
_gc_pauses = 0  # ingests / exports running with the cyclic collector paused (a server's threads may run several)
_gc_resume = False  # whether the collector was on when the first of them paused it


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Run the block with Python's cyclic garbage collector off, process-wide and nesting (reference counting
    still frees everything dropped; cycles made meanwhile are collected once it is back on). A scan builds
    millions of small acyclic objects and an export's writer hundreds of thousands of dicts and lists; the
    collector's repeated passes over that growing heap cost ~40% of a full DeepLesion scan and more than half of a
    COCO export (1.9 s → 0.8 s). Free them before the block ends: the collector's first pass after a pause walks
    every object made meanwhile that is still alive (0.3 s of a full DeepLesion ingest, issue 13)."""
    global _gc_pauses, _gc_resume
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_resume:
                gc.enable()
