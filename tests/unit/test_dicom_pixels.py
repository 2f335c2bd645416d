"""DICOM pixels: the one-file shortcut for the acquired plane equals the full volume, and failures are PixelErrors."""

from __future__ import annotations

import numpy as np
import pytest

from app.datasets.base import ItemRef, PixelError, View
from app.datasets.dicom.adapter import DicomAdapter
from app.datasets.dicom.pixels import to_int16
from app.datasets.dicom.synth import generate_dicom
from app.datasets.volumes import VolumeCache
from app.imaging.volume import display_plane, plane_count


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom-pixels")
    generate_dicom(root, seed=3)
    return root, DicomAdapter().scan(root)


def ref(root, record) -> ItemRef:
    return ItemRef(1, root, record.location, record.location_index, record.meta, record.width, record.height,
                   record.depth, tuple(record.spacing))


def test_acquired_plane_from_one_file_equals_the_volume(scanned):
    root, result = scanned
    adapter = DicomAdapter()
    volumes = VolumeCache(256)
    checked = 0
    for record in result.items:
        item = ref(root, record)
        vol = adapter.volume(item, volumes)
        for plane in ("axial", "coronal", "sagittal"):
            single = adapter._acquired_slice(item, View(plane, None))
            if single is None:
                continue
            for index in range(plane_count(vol.data.shape, plane)):
                image = adapter.read_image(item, View(plane, index), volumes)
                expected, mm = display_plane(vol.data, vol.spacing, plane, index)
                assert np.array_equal(image.pixels, expected) and image.pixel_mm == mm and image.slice == index
                checked += 1
    # axial CT (axial), sagittal MR (sagittal); not the multi-frame, not the tilted CT (straightened: every
    # slice of it is resampled, so no view is one file's pixels)
    assert checked == 30 + 20


def test_missing_file_is_a_pixel_error_naming_it(tmp_path):
    generate_dicom(tmp_path, seed=1)
    result = DicomAdapter().scan(tmp_path)
    record = next(r for r in result.items if r.depth == 30)
    (tmp_path / record.location).unlink()
    with pytest.raises(PixelError, match=f"{record.location}: file is missing"):
        DicomAdapter().read_image(ref(tmp_path, record), View("coronal", 3), VolumeCache(64))


def test_int16_conversion_keeps_integral_values_and_rounds_others():
    values, changed = to_int16(np.array([-1024.0, 0.0, 3071.0]))
    assert values.dtype == np.int16 and values.tolist() == [-1024, 0, 3071] and not changed
    values, changed = to_int16(np.array([0.4, 1.6, 40000.0]))
    assert values.tolist() == [0, 2, 32767] and changed
