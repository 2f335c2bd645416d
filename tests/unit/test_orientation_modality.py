"""Orientation markers from affines (app.imaging.orientation) and what a modality gets (app.imaging.modality,
the percentile auto-window of app.imaging.presets): the letters every plane's edges show for an identity RAS+
NIfTI, a DICOM series (LPS patient axes), flipped and permuted files, and 30° oblique ones; HU and CT presets for CT
only."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest

from app.imaging.modality import item_modality, window_policy
from app.imaging.orientation import all_markers, canonical_directions, direction_letters, plane_markers
from app.imaging.presets import PRESETS, percentile_window
from app.imaging.volume import to_canonical
from app.web.item_page import PRESET_ORDER

# what radiological convention puts at each edge when the file's axes run along the patient's (API.md)
TEXTBOOK = {
    "axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
    "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
    "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"},
}


def affine(rotation: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = np.asarray(rotation, dtype=float) * np.asarray(spacing, dtype=float)
    out[:3, 3] = origin
    return out


def rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def dicom_affine(row_cosines, column_cosines, spacing=(0.7, 0.7, 5.0)) -> np.ndarray:
    """The RAS+ affine of a DICOM series from ImageOrientationPatient (LPS) as every reader builds it: columns =
    row direction, column direction, slice normal, then LPS → RAS (x and y negated)."""
    r, c = np.asarray(row_cosines, float), np.asarray(column_cosines, float)
    lps = np.column_stack([r, c, np.cross(r, c)])
    return affine(np.diag([-1.0, -1.0, 1.0]) @ lps, spacing, (-120.0, -150.0, 300.0))


def test_identity_ras_shows_the_textbook_letters():
    assert all_markers(np.eye(4)) == TEXTBOOK
    assert all_markers(affine(np.eye(3), (0.8, 0.8, 3.0), (5, -7, 100))) == TEXTBOOK  # spacing, origin: no matter


def test_dicom_lps_series_axial_sagittal_and_coronal_acquisitions():
    axial = dicom_affine([1, 0, 0], [0, 1, 0])  # rows run to the patient's left, columns to posterior
    assert nib.aff2axcodes(axial) == ("L", "P", "S")
    assert all_markers(axial) == TEXTBOOK
    sagittal = dicom_affine([0, 1, 0], [0, 0, -1])  # a sagittal MR: rows posterior, columns inferior
    coronal = dicom_affine([1, 0, 0], [0, 0, -1])
    assert all_markers(sagittal) == all_markers(coronal) == TEXTBOOK


@pytest.mark.parametrize("codes", [("P", "I", "R"), ("L", "A", "I"), ("S", "R", "P"), ("R", "P", "I")])
def test_flipped_and_permuted_files_are_shown_canonical(codes):
    """A file stored P-I-R (the real VerSe sample), upside down or mirrored: the canonical reorientation puts it
    right, so the letters are the textbook ones, computed from the affine's columns."""
    from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform

    transform = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(codes))
    a = np.diag([1.5, 1.5, 1.5, 1.0]) @ inv_ornt_aff(transform, (10, 10, 10))
    assert nib.aff2axcodes(a) == codes
    assert all_markers(a) == TEXTBOOK


def test_the_directions_are_those_of_the_canonical_array():
    """canonical_directions reorders the affine's columns as to_canonical reorders the array (checked against it)."""
    a = dicom_affine([0, 1, 0], [0, 0, -1]) @ np.diag([1, 1, -1, 1])
    _data, canonical = to_canonical(np.zeros((4, 5, 6)), a)
    assert np.allclose(canonical_directions(a), canonical[:3, :3])


def test_oblique_30_degrees_about_the_long_axis_names_two_directions():
    """An axial series rotated 30° about S: the image's left edge points 30° from R towards A ("RA"), its top 30°
    from A towards L ("AL"); coronal and sagittal top/bottom stay S/I."""
    markers = all_markers(affine(rotation("z", 30)))
    assert markers["axial"] == {"left": "RA", "right": "LP", "top": "AL", "bottom": "PR"}
    assert markers["coronal"] == {"left": "RA", "right": "LP", "top": "S", "bottom": "I"}
    assert markers["sagittal"] == {"left": "AL", "right": "PR", "top": "S", "bottom": "I"}
    # the same rotation the other way, in a DICOM (LPS) series
    row = [math.cos(math.radians(30)), -math.sin(math.radians(30)), 0]  # towards L and A in LPS
    col = [math.sin(math.radians(30)), math.cos(math.radians(30)), 0]
    assert plane_markers(dicom_affine(row, col), "axial") == {"left": "RP", "right": "LA", "top": "AR", "bottom": "PL"}


def test_oblique_30_degrees_about_left_right_tilts_axial_top_and_sagittal():
    """A gantry-like 30° tilt about the left–right axis: axial top leans towards S, sagittal edges too; the
    left/right edges stay R/L."""
    markers = all_markers(affine(rotation("x", 30)))
    assert markers["axial"] == {"left": "R", "right": "L", "top": "AS", "bottom": "PI"}
    assert markers["sagittal"] == {"left": "AS", "right": "PI", "top": "SP", "bottom": "IA"}


def test_small_tilts_keep_single_letters():
    assert plane_markers(affine(rotation("z", 10)), "axial") == TEXTBOOK["axial"]  # cos 80° = 0.17 < 0.25


def test_direction_letters_and_degenerate_affines():
    assert direction_letters([0.2, -0.9, 0.4]) == "PS"
    assert direction_letters([0, 0, 0]) == ""
    with pytest.raises(ValueError, match="4×4"):
        plane_markers(np.eye(3), "axial")
    flat = np.eye(4)
    flat[2, 2] = 0
    with pytest.raises(ValueError, match="degenerate"):
        plane_markers(flat, "axial")


# -- modality → units and presets --------------------------------------------------------------------------------

def test_ct_gets_hounsfield_units_and_the_ct_presets():
    for meta, window in (({"modality": "CT"}, [-160, 240]), ({}, [-175, 275]), (None, [-450, 1050])):
        modality = item_modality(meta, bool(window))
        policy = window_policy(modality, True, True, PRESET_ORDER)
        assert (modality, policy.units, policy.hounsfield, policy.default) == ("CT", "HU", True, "default")
        assert set(policy.presets) == {"default", *PRESETS}


def test_mr_and_other_modalities_get_no_hu_and_no_ct_presets():
    mr = window_policy(item_modality({"modality": "mr"}, True), True, True, PRESET_ORDER)
    assert (mr.modality, mr.units, mr.hounsfield, mr.presets, mr.default) == ("MR", "", False, ("default", "auto"),
                                                                                "default")
    # no VOI in the file: the stored value range is no default: the auto-window is
    pet = window_policy(item_modality({"modality": "PT"}, True), True, False, PRESET_ORDER)
    assert (pet.units, pet.presets, pet.default) == ("", ("auto",), "auto")
    assert not set(mr.presets) & set(PRESETS) and not set(pet.presets) & set(PRESETS)


def test_images_without_a_window_offer_no_presets():
    policy = window_policy(item_modality({}, False), False, True, PRESET_ORDER)
    assert (policy.modality, policy.units, policy.presets) == (None, "", ())


def test_percentile_window():
    values = np.arange(-1000, 1001, dtype=np.int16)  # 2001 values
    low, high = percentile_window(values)
    assert (low, high) == (math.floor(np.percentile(values, 0.5)), math.ceil(np.percentile(values, 99.5)))
    assert (low, high) == (-990.0, 990.0)
    outliers = np.concatenate([np.full(10_000, 300, np.int16), np.array([-3000, 30000], np.int16)])
    assert percentile_window(outliers) == (300.0, 301.0)  # a constant image (but two outliers): one unit wide
    big = np.random.default_rng(0).normal(500, 100, 5_000_000).astype(np.float32)  # sampled, nearly exact
    low, high = percentile_window(big)
    assert abs(low - np.percentile(big, 0.5)) < 3 and abs(high - np.percentile(big, 99.5)) < 3
    for bad in (np.array([], np.int16), np.array([np.nan, np.inf], np.float32)):
        with pytest.raises(ValueError, match="no"):
            percentile_window(bad)
