"""Straightening tilted / unevenly spaced DICOM series (app.datasets.dicom.regrid), checked against the sphere's
known values in patient mm and against dcm2niix's `_Tilt` / `_Tilt_Eq` outputs (the reference converter)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from app.datasets.base import IngestError, ItemRef, PixelError, TooLarge, View
from app.datasets.dicom import pixels, regrid
from app.datasets.dicom.adapter import DicomAdapter
from app.datasets.roots import DatasetFiles, Limits
from app.datasets.volumes import Volume, VolumeCache, volume_view
from app.imaging.volume import to_canonical, voxel_spacing
from tests.helpers.tilted_dicom import GAPS, assert_matches, dcm2niix, diameter_mm, sphere_hu, write_sphere_series


def scanned(root: Path):
    [item] = DicomAdapter().scan(root).items
    folder = item.meta["folder"]
    return item, [f"{folder}/{n}" if folder else n for n in item.meta["files"]]


def straightened(root: Path) -> tuple[Volume, object]:
    item, files = scanned(root)
    return regrid.load_straight(root, files, None, (item.height, item.width), item.meta["regrid"]), item


def centre_index(vol: Volume, centre_lps) -> np.ndarray:
    ras = np.asarray(centre_lps, float) * [-1, -1, 1]
    return np.linalg.solve(vol.affine, [*ras, 1.0])[:3]


def test_translate_is_a_bilinear_shift_like_scipy():
    rng = np.random.default_rng(3)
    image = rng.integers(-1000, 1000, (40, 30)).astype(np.int16)
    for dy, dx in ((0.0, 0.0), (-3.25, 2.5), (7.0, -1.75), (0.4, 0.0), (-12.6, 9.1)):
        mine = regrid.translate(image, dy, dx, (52, 37), -2000.0)
        theirs = ndimage.affine_transform(image.astype(np.float32), np.ones(2), offset=(dy, dx),
                                          output_shape=(52, 37), order=1, mode="constant", cval=-2000.0)
        assert np.allclose(mine, theirs, atol=1e-3), (dy, dx)


def test_straight_even_series_has_no_grid_and_is_shown_as_stored(tmp_path):
    write_sphere_series(tmp_path / "even", [2.5] * 12)
    item, files = scanned(tmp_path / "even")
    assert "regrid" not in item.meta and item.meta["geometry"] == "As acquired, even 2.5 mm spacing"
    ref = ItemRef(1, tmp_path / "even", item.location, item.location_index, item.meta, item.width, item.height,
                  item.depth, tuple(item.spacing))
    vol = DicomAdapter().volume(ref, VolumeCache(64))
    stack = pixels.load_stack(tmp_path / "even", files, None, (item.height, item.width))
    assert np.array_equal(vol.data, to_canonical(stack.transpose(2, 1, 0), np.asarray(item.meta["affine"]))[0])


def test_tilted_uneven_sphere_is_straight_and_true_to_size_in_every_plane(tmp_path):
    info = write_sphere_series(tmp_path / "s", GAPS, tilt_deg=18.5)
    vol, item = straightened(tmp_path / "s")
    assert item.meta["geometry"] == ("Tilt-corrected 18.5°, uneven slice gaps 1.08–7 mm, resampled to even "
                                     "1.96 mm spacing")
    assert list(vol.data.shape) == item.meta["canonical_shape"]
    assert np.allclose(vol.spacing, item.spacing, atol=1e-5)
    axes = vol.affine[:3, :3] / np.asarray(vol.spacing)
    assert np.allclose(axes.T @ axes, np.eye(3), atol=1e-6)  # an orthogonal grid: no shear left
    # every voxel against the sphere's value at that voxel's patient position
    ijk = np.stack(np.meshgrid(*map(np.arange, vol.data.shape), indexing="ij"), -1).reshape(-1, 3)
    lps = (ijk @ vol.affine[:3, :3].T + vol.affine[:3, 3]) * [-1, -1, 1]
    truth = sphere_hu(lps, info["centre"], info["radius"]).reshape(vol.data.shape)
    ramp = np.abs(truth) < 900  # away from the ramp's clipped ends (not linear: 7 mm gaps blur the knee)
    assert np.abs(vol.data - truth)[ramp].mean() < 15 and np.abs(vol.data - truth).mean() < 3
    centre = centre_index(vol, info["centre"])
    for plane, axis in (("sagittal", 0), ("coronal", 1), ("axial", 2)):
        image = volume_view(vol, View(plane, int(round(centre[axis]))))
        for d in diameter_mm(image.pixels, image.pixel_mm):
            assert d == pytest.approx(2 * info["radius"], abs=0.5), plane


def test_the_acquired_stack_at_the_median_gap_would_measure_wrong(tmp_path):
    """What the viewer showed before: slices stacked at the median gap along the normal, unsheared."""
    info = write_sphere_series(tmp_path / "s", GAPS, tilt_deg=18.5)
    item, files = scanned(tmp_path / "s")
    stack = pixels.load_stack(tmp_path / "s", files, None, (item.height, item.width))
    grid = regrid.grid_of(item.meta["regrid"], (item.width, item.height))
    old = np.asarray(item.meta["affine"], float).copy()
    old[:3, 2] *= float(np.median(np.diff(grid.positions))) / grid.spacing[2]
    data, canonical = to_canonical(stack.transpose(2, 1, 0), old)
    naive = Volume(data, canonical, voxel_spacing(canonical))
    # the largest superior–inferior extent of the sphere in any sagittal slice (the plane the tilt shears): its
    # diameter, 40 mm; stacked as acquired it measures 38.6 mm (sheared by 18.5°, slices at the median 4 mm gap)
    tallest = max(diameter_mm(*_view(naive, "sagittal", k))[0] for k in range(naive.data.shape[0]))
    assert abs(tallest - 2 * info["radius"]) > 1.0
    vol, _ = straightened(tmp_path / "s")
    for plane, axis in (("sagittal", 0), ("coronal", 1)):
        tallest = max(diameter_mm(*_view(vol, plane, k))[0] for k in range(vol.data.shape[axis]))
        assert tallest == pytest.approx(2 * info["radius"], abs=0.5), plane


def test_matches_dcm2niix_tilt_eq_on_a_tilted_uneven_series(tmp_path):
    write_sphere_series(tmp_path / "s", GAPS, tilt_deg=18.5)
    reference = dcm2niix(tmp_path / "s", tmp_path / "d2n")
    assert "Tilt_Eq" in reference, sorted(reference)
    vol, _ = straightened(tmp_path / "s")
    assert_matches(vol, nib.as_closest_canonical(nib.load(reference["Tilt_Eq"])))


@pytest.mark.realdata
def test_matches_dcm2niix_tilt_on_the_real_philips_phantom(tmp_path, realdata):
    root = realdata("dicom_ct_tilt", "philips_tilt_phantom")
    reference = dcm2niix(root, tmp_path / "d2n")
    assert "Tilt" in reference, sorted(reference)
    item, files = scanned(root)
    assert item.meta["geometry"] == "Tilt-corrected 18.5°, resampled to even 2.37 mm spacing"
    vol = regrid.load_straight(root, files, None, (item.height, item.width), item.meta["regrid"])
    assert_matches(vol, nib.as_closest_canonical(nib.load(reference["Tilt"])))


def _view(vol: Volume, plane: str, k: int) -> tuple[np.ndarray, float]:
    image = volume_view(vol, View(plane, k))
    return image.pixels, image.pixel_mm


# -- bad input ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [{}, {"ipp": [[0, 0, 0]], "iop": [1, 0, 0, 0, 1, 0], "pixel": [1, 1]},
                                  {"ipp": "x", "iop": [1, 0], "pixel": [1, 1]},
                                  {"ipp": [[0, 0, 0], [0, 0, 2], [0, 0, 4]], "iop": [1, 0, 0, 0, 1, 0],
                                   "pixel": [1, 1]}])
def test_unusable_stored_geometry_is_a_pixel_error_naming_the_file(tmp_path, spec):
    """meta.regrid edited, truncated, or describing slices that need no straightening: a clear error, no 500."""
    write_sphere_series(tmp_path / "s", [2.0, 3.0], tilt_deg=10)
    item, files = scanned(tmp_path / "s")
    with pytest.raises(PixelError, match=f"{files[0]}: the series' stored slice geometry cannot be used"):
        regrid.load_straight(tmp_path / "s", files, None, (item.height, item.width), spec)


def test_straightened_grid_over_the_voxel_limit_is_refused_before_decoding(tmp_path):
    write_sphere_series(tmp_path / "s", GAPS, tilt_deg=18.5)
    item, files = scanned(tmp_path / "s")
    access = DatasetFiles.confined_to(tmp_path / "s", Limits(volume_voxels=128 * 128 * 19 * 2))  # acquired fits
    with pytest.raises(TooLarge, match="straightened series is 128×153×38 voxels exceeds"):
        regrid.load_straight(access, files, None, (item.height, item.width), item.meta["regrid"])
    with pytest.raises(IngestError) as refused:  # at ingest: reported, not indexed (here: nothing left)
        DicomAdapter().scan(tmp_path / "s", files=access)
    assert any("is 128×153×38 voxels exceeds MEDVIEW_MAX_VOLUME_VOXELS" in p.message for p in refused.value.problems)
