"""DICOM grouping and geometry on plain headers: ordering along the normal, splits, duplicates, tilt, UIDs."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest

from app.datasets.dicom.headers import Header, parse_age
from app.datasets.dicom.records import canonical_shape
from app.datasets.dicom.series import build_stacks, oriented_normal
from app.imaging.volume import to_canonical

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def header(rel: str, z: float, *, series: str = "1.2.3", iop=AXIAL, ipp=None, rows: int = 4, cols: int = 5,
           sop: str | None = None, tags=("", "", ""), study: str = "1.2", number: str = "") -> Header:
    return Header(rel=rel, size=100, mtime_ns=1, transfer_syntax="1.2.840.10008.1.2.1", sop_uid=sop or f"sop.{rel}",
                  modality="CT", patient_id="P1", study_uid=study, series_uid=series, rows=rows, cols=cols,
                  frames=1, iop=iop, positions=[ipp or (0.0, 0.0, z)], pixel_spacing=(0.5, 0.7),
                  slice_thickness=2.0, spacing_between=None, window=(40.0, 400.0), instance=None,
                  stack_tags=tags, info={"series_number": number})


def test_slices_sorted_inferior_first_whatever_the_file_order():
    files = [header(f"f{n}", z) for n, z in enumerate([10.0, -5.0, 0.0, 5.0])]
    [stack], problems = build_stacks(files)
    assert problems == []
    assert [h.rel for h in stack.headers] == ["f1", "f2", "f3", "f0"]
    assert stack.key == "1.2.3" and stack.spacing == (0.7, 0.5, 5.0) and stack.orientation == "axial"
    # LPS → RAS: x and y negated; columns = row cosine × column spacing, column cosine × row spacing, normal × step
    assert np.allclose(stack.affine, [[-0.7, 0, 0, 0], [0, -0.5, 0, 0], [0, 0, 5.0, -5.0], [0, 0, 0, 1]])


def test_normal_turned_so_its_main_component_points_to_r_a_or_s():
    flipped = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)  # column cosine anterior: row × column points inferior
    assert np.allclose(oriented_normal(flipped), [0, 0, 1])
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # normal −x in LPS = towards the patient's right
    assert np.allclose(oriented_normal(sagittal), [-1, 0, 0])
    files = [header(f"s{n}", 0, iop=sagittal, ipp=(x, 0.0, 0.0)) for n, x in enumerate([-10.0, 10.0, 0.0])]
    [stack], _ = build_stacks(files)
    assert [h.positions[0][0] for h in stack.headers] == [10.0, 0.0, -10.0]  # patient left (LPS +x) first
    assert stack.orientation == "sagittal"


def test_affine_reorients_like_nibabel():
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    files = [header(f"s{n}", 0, iop=sagittal, ipp=(x, 0.0, 0.0)) for n, x in enumerate([-10.0, 10.0, 0.0])]
    [stack], _ = build_stacks(files)
    data = np.arange(5 * 4 * 3, dtype=np.int16).reshape(5, 4, 3)  # (column, row, slice)
    ours, affine = to_canonical(data, stack.affine)
    ref = nib.as_closest_canonical(nib.Nifti1Image(data, stack.affine))
    assert np.array_equal(ours, np.asanyarray(ref.dataobj)) and nib.aff2axcodes(affine) == ("R", "A", "S")
    assert canonical_shape(data.shape, stack.affine) == list(ours.shape) == [3, 5, 4]


def test_different_sizes_split_into_separate_items():
    files = [header(f"a{n}", z) for n, z in enumerate([0.0, 5.0, 10.0])] + [header("scout", 0.0, rows=8, cols=8)]
    stacks, problems = build_stacks(files)
    assert [(s.key, s.depth) for s in stacks] == [("1.2.3", 3), ("1.2.3#2", 1)]
    assert len(problems) == 1 and "split into one item each" in problems[0].message


def test_repeated_positions_split_by_echo_or_skipped():
    echoes = [header(f"e{e}{n}", z, tags=(str(e), "", "")) for e in (1, 2) for n, z in enumerate([0.0, 5.0])]
    stacks, problems = build_stacks(echoes)
    assert sorted(s.depth for s in stacks) == [2, 2] and {s.key for s in stacks} == {"1.2.3", "1.2.3#2"}
    same = [header("x0", 0.0), header("x1", 5.0), header("x2", 5.0)]
    stacks, problems = build_stacks(same)
    assert stacks == [] and "both at 5.00 mm" in problems[0].message and "skipped" in problems[0].message


def test_duplicate_copy_of_one_file_is_dropped():
    files = [header("a", 0.0, sop="9.9"), header("b", 5.0), header("copy", 0.0, sop="9.9")]
    [stack], problems = build_stacks(files)
    assert stack.depth == 2 and problems[0].file == "copy" and "duplicate copy" in problems[0].message


def test_gantry_tilt_is_noted_and_straightened():
    t = math.radians(20)
    iop = (1.0, 0.0, 0.0, 0.0, math.cos(t), math.sin(t))
    files = [header(f"t{n}", 0, iop=iop, ipp=(0.0, 0.0, 3.0 * n)) for n in range(5)]
    [stack], _ = build_stacks(files)
    assert any("gantry tilt of about 20.0°" in note and "straightened" in note for note in stack.notes)
    assert stack.spacing[2] == pytest.approx(3.0 * math.cos(t))  # distance between slice planes
    # each slice is 3·sin 20° = 1.03 mm further along the columns (0.5 mm rows): 4 × 2.05 rows → 9 more rows
    assert stack.grid is not None and stack.shape == (5, 4 + 9, 5)
    axes = stack.affine[:3, :3] / np.asarray(stack.spacing)
    assert np.allclose(axes.T @ axes, np.eye(3))  # the grid is orthogonal (straight), unlike the acquired stack


def test_straight_even_slices_get_no_grid():
    [stack], _ = build_stacks([header(f"e{n}", 2.5 * n) for n in range(6)])
    assert stack.grid is None and stack.shape == (5, 4, 6) and stack.notes == []


def test_missing_uids_get_readable_stand_ins():
    files = [header(f"scans/f{n}", z, series="", study="", number="3") for n, z in enumerate([0.0, 2.0])]
    for h in files:
        h.patient_id = ""
    [stack], problems = build_stacks(files)
    assert stack.key == "scans/CT-3" and stack.headers[0].study_uid == "study-scans"
    assert "no SeriesInstanceUID" in problems[0].message


def test_uneven_spacing_is_noted():
    files = [header(f"g{n}", z) for n, z in enumerate([0.0, 5.0, 10.0, 20.0, 25.0])]
    [stack], _ = build_stacks(files)
    assert stack.spacing[2] == 5.0 and any("varies from 5 to 10 mm" in n for n in stack.notes)
    assert stack.grid is not None and stack.shape[2] == 6  # 0–25 mm at the smallest gap: the missing slice too


@pytest.mark.parametrize("text, years", [("054Y", 54.0), ("006M", 0.5), ("003D", 0.01), ("", None), ("54", None)])
def test_patient_age(text, years):
    assert parse_age(text) == years


def test_age_from_birth_date_when_no_patient_age():
    assert parse_age("", "19650312", "20190301") == 53.0 and parse_age("", "19650312", "20190312") == 54.0
