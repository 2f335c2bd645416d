"""Centroid files: the frame named by `direction` → canonical voxels, checked against nibabel's own reorientation."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from app.datasets.verse.centroids import CentroidError, canonical_points, parse_centroids
from app.datasets.verse.nifti import read_header

MARK = (2, 5, 3)  # a voxel of the stored array


def stored_image(tmp_path, codes: str, oblique_deg: float = 6.0):
    """A 7×9×11 volume stored with axes `codes`, anisotropic and oblique, with one marked voxel."""
    data = np.zeros((7, 9, 11), np.int16)
    data[MARK] = 1000
    t = np.radians(oblique_deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    # column a of the affine points along codes[a] (R, A, S positive), scaled by the axis' voxel size
    unit = {"R": [1, 0, 0], "L": [-1, 0, 0], "A": [0, 1, 0], "P": [0, -1, 0], "S": [0, 0, 1], "I": [0, 0, -1]}
    affine = np.eye(4)
    columns = [np.array(unit[c], float) * z for c, z in zip(codes, (0.8, 1.5, 2.5), strict=True)]
    affine[:3, :3] = rot @ np.column_stack(columns)
    affine[:3, 3] = [12.0, -40.0, 300.0]
    img = nib.Nifti1Image(data, affine)
    path = tmp_path / f"{codes}_ct.nii.gz"
    nib.save(img, str(path))
    assert nib.aff2axcodes(affine) == tuple(codes)
    return path, img


def mark_in(img: nib.Nifti1Image) -> list[float]:
    return [float(v) for v in np.argwhere(np.asanyarray(img.dataobj) == 1000)[0]]


@pytest.mark.parametrize("codes", ["PIR", "LPS", "RAS", "ASL"])
@pytest.mark.parametrize("direction", ["PIR", "RAS", "LPS", "SLA", "IRP"])
def test_frame_maps_to_canonical_voxels(tmp_path, codes, direction):
    path, img = stored_image(tmp_path, codes)
    framed = img.as_reoriented(ornt_transform(io_orientation(img.affine), axcodes2ornt(tuple(direction))))
    x, y, z = mark_in(framed)  # where VerSe would write the centroid: voxels of the reoriented array
    text = json.dumps([{"direction": list(direction)}, {"label": 22, "X": x, "Y": y, "Z": z}])
    points = canonical_points(parse_centroids(text), read_header(path))
    assert points == {22: pytest.approx(mark_in(nib.as_closest_canonical(img)))}


def test_zoom_of_a_resampled_frame(tmp_path):
    path, img = stored_image(tmp_path, "PIR")
    x, y, z = mark_in(img)  # frame = the stored axes, but its voxels are twice as large along X
    text = json.dumps([{"direction": ["P", "I", "R"], "zoom": [1.6, 1.5, 2.5]}, {"label": 8, "X": x / 2, "Y": y,
                                                                               "Z": z}])
    points = canonical_points(parse_centroids(text), read_header(path))
    assert points[8] == pytest.approx(mark_in(nib.as_closest_canonical(img)))


def test_labels_and_special_values():
    entries = [{"direction": ["P", "I", "R"]},
               {"label": 20, "X": 1, "Y": 2, "Z": 3},
               {"label": "L3", "X": 4, "Y": 5, "Z": 6},  # a name
               {"label": 50 * 256 + 24, "X": 7, "Y": 8, "Z": 9},  # TPTBox: vertebral body of L5
               {"label": 41 * 256 + 24, "X": 0, "Y": 0, "Z": 0},  # TPTBox: arch landmark, not a centroid
               {"label": 25, "X": "nan", "Y": "nan", "Z": "nan"},  # L6 listed but not visible
               {"label": 20, "X": 9, "Y": 9, "Z": 9},  # duplicate
               {"label": 21, "X": "left", "Y": 1, "Z": 1},
               {"label": "X1", "X": 1, "Y": 1, "Z": 1}]
    ctd = parse_centroids(json.dumps(entries))
    assert ctd.direction == ("P", "I", "R")
    assert ctd.points == {20: (1.0, 2.0, 3.0), 22: (4.0, 5.0, 6.0), 24: (7.0, 8.0, 9.0)}
    assert ctd.skipped == 1 and ctd.hidden == [25]
    assert [n for n, _ in ctd.issues] == [7, 8, 9]
    assert "listed twice" in ctd.issues[0][1] and "numeric X, Y and Z" in ctd.issues[1][1]


@pytest.mark.parametrize(("text", "fragment", "field"), [
    ("{not json", "not valid JSON", None),
    ('{"direction": ["P", "I", "R"]}', "expected a JSON list", None),
    ('[{"label": 20, "X": 1, "Y": 2, "Z": 3}]', "first element must be", "direction"),
    ('[{"direction": ["P", "I", "P"]}]', "does not name three different axes", "direction"),
    ('[{"direction": ["P", "I"]}]', "three axis codes", "direction"),
    ('[{"direction": ["P", "I", "R"], "zoom": [1, 0, 1]}]', "zoom must be", "zoom"),
])
def test_unusable_files(text, fragment, field):
    with pytest.raises(CentroidError) as err:
        parse_centroids(text)
    assert fragment in str(err.value) and err.value.field == field
