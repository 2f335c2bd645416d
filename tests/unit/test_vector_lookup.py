"""`vectors.lookup`: the vectors of a few ids (one patient's lesions) from a sub-store without loading it — the
latest write of an id wins, chunks added later are seen, and a folder deleted and written again is read anew."""

from __future__ import annotations

import shutil

import numpy as np

from app.inference import vectors


def test_lookup_reads_only_what_is_asked(make_settings):
    settings = make_settings()
    sub = vectors.LESIONS
    vectors.append(settings, 1, 2, [10, 11], np.array([[1.0, 0.0], [0.0, 1.0]]), sub)
    vectors.append(settings, 1, 2, [12], np.array([[1.0, 1.0]]), sub)
    got = vectors.lookup(settings, 1, 2, [11, 12, 99], sub)
    assert sorted(got) == [11, 12]
    np.testing.assert_allclose(got[12], [2 ** -0.5] * 2, atol=1e-3)
    vectors.append(settings, 1, 2, [11], np.array([[3.0, 4.0]]), sub)  # a later vector of 11 wins
    np.testing.assert_allclose(vectors.lookup(settings, 1, 2, [11], sub)[11], [0.6, 0.8], atol=1e-3)
    assert vectors.lookup(settings, 1, 2, [10], None) == {}  # the item store is another folder
    assert vectors.has_vectors(settings, 1, 2, sub) and not vectors.has_vectors(settings, 1, 2)
    shutil.rmtree(vectors.store_dir(settings, 1, 2, sub))  # deleted by hand, then written again
    vectors.append(settings, 1, 2, [20], np.array([[0.0, 1.0]]), sub)
    assert sorted(vectors.lookup(settings, 1, 2, [10, 11, 20], sub)) == [20]
