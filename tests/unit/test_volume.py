"""Canonical orientation and display planes, checked against nibabel's own reorientation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from app.imaging.volume import (
    display_plane,
    extract_plane,
    plane_count,
    to_canonical,
    voxel_spacing,
    voxel_to_display,
)


def oblique_pir_image() -> nib.Nifti1Image:
    """A P-I-R volume (as real VerSe files) with anisotropic voxels and a distinct value per voxel."""
    data = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    affine = np.array([[0, 0, 2.0, 10], [-1.0, 0, 0, 20], [0, -1.5, 0, 30], [0, 0, 0, 1]])
    return nib.Nifti1Image(data, affine)


def test_to_canonical_matches_nibabel():
    img = oblique_pir_image()
    ours, affine = to_canonical(np.asanyarray(img.dataobj), img.affine)
    ref = nib.as_closest_canonical(img)
    assert np.array_equal(ours, np.asanyarray(ref.dataobj))
    assert np.allclose(affine, ref.affine)
    assert nib.aff2axcodes(affine) == ("R", "A", "S")
    assert voxel_spacing(affine) == pytest.approx((2.0, 1.0, 1.5))


def test_planes_are_radiological():
    vol = np.zeros((4, 5, 6), np.int16)  # i: R, j: A, k: S
    vol[3, 0, 0] = 1  # most patient-right, most posterior, most inferior
    axial = extract_plane(vol, "axial", 0)
    assert axial.shape == (5, 4) and axial[4, 0] == 1  # right on image left, posterior at the bottom
    coronal = extract_plane(vol, "coronal", 0)
    assert coronal.shape == (6, 4) and coronal[5, 0] == 1  # inferior at the bottom, right on the left
    sagittal = extract_plane(vol, "sagittal", 3)
    assert sagittal.shape == (6, 5) and sagittal[5, 4] == 1  # posterior on the right, inferior at the bottom
    assert [plane_count(vol.shape, p) for p in ("sagittal", "coronal", "axial")] == [4, 5, 6]


def test_square_pixels_keep_physical_aspect():
    vol = np.zeros((10, 20, 8), np.int16)
    image, pixel = display_plane(vol, (1.0, 1.0, 2.5), "coronal", 3)
    assert pixel == 1.0 and image.shape == (20, 10)  # 8 slices × 2.5 mm = 20 mm tall, 10 mm wide
    labels, _ = display_plane(np.ones((10, 20, 8), np.uint8) * 7, (1.0, 1.0, 2.5), "sagittal", 0, labels=True)
    assert set(np.unique(labels)) == {7}  # nearest neighbour keeps labels


def test_point_lands_on_its_voxel():
    vol = np.zeros((9, 11, 5), np.int16)
    ijk = (2, 7, 3)
    vol[ijk] = 500
    spacing = (1.0, 1.0, 3.0)
    for plane, depth in (("axial", 3), ("coronal", 7), ("sagittal", 2)):
        image, _ = display_plane(vol, spacing, plane, depth)
        x, y, d = voxel_to_display(ijk, vol.shape, spacing, plane)
        assert d == depth
        assert image[round(y), round(x)] > 0, plane
