"""app.catalog.counts.FacetIndex read by request threads while a verdict in another thread moves items into new
cells (found by bench/load.py: a reader saw the longer cell list with the shorter counts array, a 500)."""

from __future__ import annotations

import threading

import numpy as np

from app.catalog.counts import FacetIndex


def make_index(n: int = 2000) -> FacetIndex:
    cells = [(("train",), ("a",)), (("test",), ("b",))]
    ids = np.arange(1, n + 1, dtype=np.int32)
    cell_of = (ids % 2).astype(np.int32)
    return FacetIndex(("split", "reviewer"), ("split", "reviewer"), cells, ids, cell_of,
                      np.bincount(cell_of, minlength=2))


def test_counts_stay_consistent_while_items_move_into_new_cells() -> None:
    index = make_index()
    started = threading.Event()

    def writer() -> None:
        started.set()
        for k in range(3000):
            index.set_signature(1 + k % 2000, (("train",), (f"reader{k}",)))  # a new cell every time

    thread = threading.Thread(target=writer)
    thread.start()
    started.wait()
    reads = 0
    try:
        while thread.is_alive() or reads < 200:  # reads go on as long as the writer adds cells, at least 200
            filters = {"split": ["train"]} if reads % 2 else {}
            counts, total = index.counts(filters)
            assert sum(counts["split"].values()) == index.total  # split's counts ignore its own filter
            assert 0 < total <= index.total
            assert index.total_for(filters) <= index.total
            assert sum(index.value_counts({}, "split").values()) == index.total
            ids = index.matching_ids({"split": ["test"] if reads % 3 else ["train"]})
            assert np.all(np.diff(ids) > 0)
            reads += 1
    finally:
        thread.join()
    assert len(index.cells) > 100  # the writer really added cells while the reads ran
