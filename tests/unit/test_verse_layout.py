"""Finding VerSe cases: BIDS entities, mask and centroid matching, sessions, splits, keys; and the palette."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from app.datasets.verse.labels import NAMES, PALETTE, SPINE_ORDER, span_text
from app.datasets.verse.layout import find_cases, looks_like_verse, parse_name


def touch(root: Path, *paths: str) -> None:
    for p in paths:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b"")


def test_parse_name():
    name = parse_name("sub-ct_seg-vert_label-22_msk")
    assert name.entities == (("sub", "ct"), ("seg", "vert"), ("label", "22")) and name.suffix == "msk"
    assert name.without("seg") == (("sub", "ct"), ("label", "22"))
    old = parse_name("verse004_seg")
    assert (old.entities, old.suffix, old.free) == ((), "seg", ("verse004",))


def test_bids_cases(tmp_path):
    touch(tmp_path,
          "dataset-verse20validation/rawdata/sub-gl003/sub-gl003_dir-ax_ct.nii.gz",
          "dataset-verse20validation/derivatives/sub-gl003/sub-gl003_dir-ax_seg-subreg_msk.nii.gz",
          "dataset-verse20validation/derivatives/sub-gl003/sub-gl003_dir-ax_seg-vert_msk.nii.gz",
          "dataset-verse20validation/derivatives/sub-gl003/sub-gl003_dir-ax_seg-subreg_ctd.json",
          "dataset-verse20validation/derivatives/sub-gl003/sub-gl003_dir-ax_seg-vert_snp.png",
          "03_test/rawdata/sub-b/ses-1/sub-b_ses-1_ct.nii.gz",
          "03_test/derivatives/sub-b/ses-1/sub-b_ses-1_seg-vert_msk.nii.gz",
          "03_test/derivatives/sub-b/ses-1/sub-b_ses-1_seg-vert_ctd.json",
          "03_test/derivatives/sub-b/ses-1/sub-b_ses-1_seg-subreg_ctd.json",
          "rawdata/sub-c/sub-c_split-1_ct.nii.gz", "rawdata/sub-c/sub-c_split-2_ct.nii.gz",
          "derivatives/sub-c/sub-c_split-2_seg-vert_msk.nii.gz", "derivatives/sub-c/sub-c_split-1_seg-vert_msk.nii.gz",
          "rawdata/sub-ct/sub-ct_label-22_ct.nii.gz",
          "derivatives/sub-ct/sub-ct_seg-subreg_label-22_msk.nii.gz",
          "derivatives/sub-ct/sub-ct_seg-vert_label-22_msk.nii.gz",
          "derivatives/sub-d/sub-d_seg-vert_msk.nii.gz")
    cases, problems = find_cases(tmp_path)
    got = {c.key: (c.split, c.subject, c.session, c.mask and c.mask.name, c.ctd and c.ctd.name) for c in cases}
    assert got == {
        "sub-gl003": ("val", "sub-gl003", None, "sub-gl003_dir-ax_seg-vert_msk.nii.gz",
                      "sub-gl003_dir-ax_seg-subreg_ctd.json"),
        "sub-b_ses-1": ("test", "sub-b", "1", "sub-b_ses-1_seg-vert_msk.nii.gz", "sub-b_ses-1_seg-vert_ctd.json"),
        "sub-c_split-1": (None, "sub-c", None, "sub-c_split-1_seg-vert_msk.nii.gz", None),
        "sub-c_split-2": (None, "sub-c", None, "sub-c_split-2_seg-vert_msk.nii.gz", None),
        "sub-ct": (None, "sub-ct", None, "sub-ct_seg-vert_label-22_msk.nii.gz", None),
    }
    assert [p.name for c in cases if c.key == "sub-ct" for p in c.other_masks] == [
        "sub-ct_seg-subreg_label-22_msk.nii.gz"]
    [orphan] = problems
    assert orphan.file == "derivatives/sub-d/sub-d_seg-vert_msk.nii.gz" and "without a CT" in orphan.message


def test_flat_cases_and_a_ct_alone(tmp_path):
    touch(tmp_path, "sub-verse004_ct.nii.gz", "sub-verse004_seg-vert_msk.nii.gz", "sub-verse004_seg-subreg_ctd.json",
          "verse005.nii.gz", "verse005_seg.nii.gz", "verse005_ctd.json", "example_ct.nii.gz", "notes.txt")
    cases, problems = find_cases(tmp_path)
    got = {c.key: (c.mask and c.mask.name, c.ctd and c.ctd.name) for c in cases}
    assert got == {"sub-verse004": ("sub-verse004_seg-vert_msk.nii.gz", "sub-verse004_seg-subreg_ctd.json"),
                   "verse005": ("verse005_seg.nii.gz", "verse005_ctd.json"), "example": (None, None)}
    assert problems == []


def test_detection(tmp_path):
    assert not looks_like_verse(tmp_path)
    touch(tmp_path / "ct_only", "example_ct.nii.gz")
    assert not looks_like_verse(tmp_path / "ct_only")  # a lone CT is ingestible with --kind verse, not detected
    touch(tmp_path / "flat", "sub-verse004_ct.nii.gz", "sub-verse004_seg-vert_msk.nii.gz")
    touch(tmp_path / "bids", "rawdata/sub-a/sub-a_ct.nii.gz", "derivatives/sub-a/sub-a_seg-vert_msk.nii.gz")
    assert looks_like_verse(tmp_path / "flat") and looks_like_verse(tmp_path / "bids")


def test_palette_is_fixed_distinct_and_separates_neighbours():
    assert len(PALETTE) == len(set(PALETTE.values())) == 28 and set(PALETTE) == set(NAMES)
    rgb = {k: np.array(v, float) for k, v in PALETTE.items()}
    assert min(np.linalg.norm(rgb[a] - rgb[b]) for a, b in itertools.combinations(rgb, 2)) > 20
    assert min(np.linalg.norm(rgb[a] - rgb[b]) for a, b in itertools.pairwise(SPINE_ORDER)) > 60
    assert [NAMES[n] for n in (1, 8, 19, 28, 20, 25, 26, 27)] == ["C1", "T1", "T12", "T13", "L1", "L6", "Sacrum",
                                                                  "Coccyx"]
    assert span_text({22, 19, 28}) == "T12–L3" and span_text(set()) is None
