"""Patch reads from the per-process open-file cache equal h5py's own, in this process and in a forked one."""

from __future__ import annotations

import multiprocessing

import h5py
import numpy as np
import pytest

from app.datasets.base import PixelError
from app.datasets.pcam import pixels
from app.datasets.pcam.synth import file_name, generate_pcam


@pytest.fixture(scope="module")
def x_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pcam-pixels")
    generate_pcam(root / "chunked", n_per_split=(30,), splits=("train",), seed=4, x_chunks=(1, 96, 96, 3))
    generate_pcam(root / "contiguous", n_per_split=(30,), splits=("train",), seed=4)
    return [root / "chunked" / file_name("train", "x"), root / "contiguous" / file_name("train", "x")]


def _read_in_child(path, index):
    return pixels.read_patch(path, index)


def test_reads_equal_h5py_for_both_layouts(x_files):
    for path in x_files:
        with h5py.File(path, "r") as f:
            expected = f["x"][()]
        for index in (0, 7, 29):
            got = pixels.read_patch(path, index)
            assert got.dtype == np.uint8 and np.array_equal(got, expected[index])
        got[:] = 0  # callers own their copy: the next read is unaffected
        assert np.array_equal(pixels.read_patch(path, 29), expected[29])


def test_forked_worker_opens_its_own_handle(x_files):
    path = x_files[0]
    parent = pixels.read_patch(path, 3)  # the parent has the file open before the fork
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply(_read_in_child, (path, 3))
        other = pool.apply(_read_in_child, (path, 11))
    assert np.array_equal(child, parent)
    assert np.array_equal(other, pixels.read_patch(path, 11))


def test_out_of_range_and_missing_file_name_the_file(x_files, tmp_path):
    with pytest.raises(PixelError, match=r"patch 30 is not in camelyonpatch_level_2_split_train_x.h5 \(30 patches\)"):
        pixels.read_patch(x_files[0], 30)
    with pytest.raises(PixelError, match="missing"):
        pixels.read_patch(tmp_path / "gone_x.h5", 0)
    not_h5 = tmp_path / "fake_x.h5"
    not_h5.write_text("not hdf5")
    with pytest.raises(PixelError, match="cannot open fake_x.h5 as HDF5"):
        pixels.read_patch(not_h5, 0)
