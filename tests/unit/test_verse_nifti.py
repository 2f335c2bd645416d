"""NIfTI headers at ingest (completeness without decoding) and volumes for display (HU, labels, canonical)."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from app.datasets.verse import nifti
from app.datasets.verse.nifti import NiftiError, label_centres, load_ct, load_labels, read_header, to_hu_int16


def pir_image(data: np.ndarray) -> nib.Nifti1Image:
    affine = np.array([[0, 0, 1.5, -78.0], [-1.5, 0, 0, -135.0], [0, -2.0, 0, -34.0], [0, 0, 0, 1]])
    return nib.Nifti1Image(data, affine)


def test_header_geometry_is_canonical(tmp_path):
    path = tmp_path / "a_ct.nii.gz"
    nib.save(pir_image(np.zeros((5, 6, 7), np.int16)), str(path))
    header = read_header(path)
    assert header.axcodes == ("P", "I", "R") and header.shape == (5, 6, 7)
    canonical = nib.as_closest_canonical(nib.load(str(path)))
    assert header.canonical_shape == canonical.shape == (7, 5, 6)
    assert header.canonical_spacing == pytest.approx((1.5, 1.5, 2.0))
    assert np.allclose(header.canonical_affine, canonical.affine)


def test_truncation_is_found_from_the_header_and_trailer(tmp_path):
    path = tmp_path / "a_ct.nii.gz"
    nib.save(pir_image(np.random.default_rng(0).integers(-1000, 1000, (30, 30, 30)).astype(np.int16)), str(path))
    data = path.read_bytes()
    path.write_bytes(data[:-2000])
    with pytest.raises(NiftiError, match="truncated"):
        read_header(path)
    raw = tmp_path / "b_ct.nii"
    nib.save(pir_image(np.zeros((30, 30, 30), np.int16)), str(raw))
    raw.write_bytes(raw.read_bytes()[:10_000])
    with pytest.raises(NiftiError, match="file is truncated: 10000 bytes"):
        read_header(raw)


def test_multi_member_gzip_is_complete(tmp_path):
    path = tmp_path / "a_ct.nii.gz"
    nib.save(pir_image(np.arange(8 * 8 * 8, dtype=np.int16).reshape(8, 8, 8)), str(path))
    body = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(body[:700]) + gzip.compress(body[700:]))  # trailer ISIZE ≠ total size
    assert read_header(path).shape == (8, 8, 8)
    assert np.array_equal(load_ct(path).data, np.asanyarray(nib.as_closest_canonical(nib.load(str(path))).dataobj))


def test_ct_values_become_int16_hu(tmp_path):
    hu = np.array([[[-1024, 0], [40, 1500]]], np.int16)
    path = tmp_path / "u_ct.nii.gz"
    img = pir_image((hu.astype(np.int32) + 1024).astype(np.uint16))
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, str(path))
    vol = load_ct(path)
    want = np.asanyarray(nib.as_closest_canonical(nib.load(str(path))).dataobj)
    assert vol.data.dtype == np.int16 and np.array_equal(vol.data, want)
    assert to_hu_int16(np.array([40000, -40000], np.int32)).tolist() == [32767, -32768]
    assert to_hu_int16(np.array([1.6, np.nan])).tolist() == [2, -1024]


def test_float64_mask_to_uint8_labels_and_centres(tmp_path, monkeypatch):
    mask = np.zeros((6, 7, 40), np.float64)  # 40 slices: several slabs when SLAB_BYTES is small
    mask[1:3, 2:5, 3:9] = 22.0
    mask[4, 6, 30] = 20.0
    path = tmp_path / "a_seg-vert_msk.nii.gz"
    nib.save(pir_image(mask), str(path))
    monkeypatch.setattr(nifti, "SLAB_BYTES", 6 * 7 * 8 * 5)  # 5 slices per slab
    labels = load_labels(path)
    centres = label_centres(path, read_header(path))
    canonical = np.asanyarray(nib.as_closest_canonical(nib.load(str(path))).dataobj)
    assert labels.data.dtype == np.uint8 and np.array_equal(labels.data, canonical.astype(np.uint8))
    for label in (20, 22):
        centre, count = centres[label]
        assert count == (canonical == label).sum()
        assert centre == pytest.approx(np.argwhere(canonical == label).mean(axis=0))


def test_not_nifti(tmp_path):
    path = tmp_path / "x_ct.nii.gz"
    path.write_text("hello")
    with pytest.raises(NiftiError, match="not a readable NIfTI file"):
        read_header(path)
    four_d = tmp_path / "y_ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.int16), np.eye(4)), str(four_d))
    with pytest.raises(NiftiError, match="expected a 3-D volume"):
        read_header(four_d)
