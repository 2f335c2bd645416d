"""The column-wise DL_info.csv reader gives exactly what row-by-row `parse_row` gives: same rows, same values,
same problem (line, field, message) for every broken row — on hundreds of rows broken in every field."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from app.datasets.deeplesion.rows import COLUMNS, RowInvalid, parse_row
from app.datasets.deeplesion.table import read_dl_info

ODD = {  # valid-but-unusual and invalid cells per column
    "File_name": ["", "x.png", "000089_01_01_37.png", " {name} ", "{name}\t", "1000089_01_01_037.png"],
    "Patient_index": ["89.0", " 89", "89.5", "x", "", "1_0", "-89", "99999999999999999999", "1e1"],
    "Study_index": ["1.0", "2", "", "01"],
    "Series_ID": ["1 ", "0x1", "1.000"],
    "Key_slice_index": ["{key}.0", "{key}.5", "", "+{key}"],
    "Measurement_coordinates": ["1, 2, 3", "1,2,3,4,5,6,7,x", "", "1,2,3,4,5,6,7,nan", "1,2,3,4,5,6,7,inf",
                                "1e308,1e308,1,1,1,1,1,1", "1_0,2,3,4,5,6,7,8", " 1 , 2 ,3,4,5,6,7,8",
                                "1,2,3,4,5,6,7,8,"],
    "Bounding_boxes": ["10, 10, 5, 20", "10, 10, 20, 5", "1,2,3", "a,b,c,d", "0,0,0,0", "-1e300,-1e300,0,0"],
    "Lesion_diameters_Pixel_": ["-1, 2", "3", "3, 2, 1", "1e-300, 0", "nan, 2"],
    "Normalized_lesion_location": ["1,2", "x,y,z", "0,0,0", "1e301,0,0"],
    "Coarse_lesion_type": ["0", "9", "-1.0", "8", "-2", "x", "1e0"],
    "Possibly_noisy": ["2", "1.0", "-0", "yes", "1"],
    "Slice_range": ["{key}, {key}", "{key}.5, 50", "50, 60", "0, 1e20", "1, 2, 3", "-5, {key}"],
    "Spacing_mm_px_": ["0, 1, 1", "1, -1, 1", "1,1", "nan,1,1", "1e-300, 1, 1"],
    "Image_size": ["512.0, 512", "512.5, 512", "0, 512", "512", "1e20, 512", "-512, 512"],
    "DICOM_windows": ["275, -175", "0, 0", "1", "-1000.5, -999.5"],
    "Patient_gender": ["m", " f ", "X", "", "male"],
    "Patient_age": ["", "nan", "NaN", "54.0", "x", "inf", " 7 ", "1e2"],
    "Train_Val_Test": ["0", "4", "2.0", "", "3"],
}

BASE = {
    "Measurement_coordinates": "154.273, 176.808, 143.903, 209.029, 160.939, 200.511, 137.977, 191.252",
    "Bounding_boxes": "132.977, 171.808, 165.939, 214.029", "Lesion_diameters_Pixel_": "33.8477, 24.7578",
    "Normalized_lesion_location": "0.282373, 0.333694, 0.546692", "Coarse_lesion_type": "-1",
    "Possibly_noisy": "0", "Spacing_mm_px_": "0.859375, 0.859375, 5", "Image_size": "512, 512",
    "DICOM_windows": "-175, 275", "Patient_gender": "F", "Patient_age": "71", "Train_Val_Test": "1",
}


def make_rows(seed: int, n: int) -> list[list[str]]:
    """n rows, each its own patient (no repeats, no sex conflicts), about half broken in one or two fields."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        patient, key = 1000 + i, rnd.choice([rnd.randint(1, 300)] * 20 + [1234, 12345])  # 5 digits: bad name
        name = f"{patient:06d}_01_01_{key:03d}.png"
        row = {**BASE, "File_name": name, "Patient_index": str(patient), "Study_index": "1", "Series_ID": "1",
               "Key_slice_index": str(key), "Slice_range": f"{max(key - 6, 0)}, {key + 6}"}
        for column in rnd.sample(COLUMNS, rnd.choice((0, 0, 1, 2))):
            row[column] = rnd.choice(ODD[column]).format(key=key, name=name)
        out.append([row[c] for c in COLUMNS])
    return out


def reference(path: Path) -> tuple[list, list]:
    """What read_dl_info gave before it went column-wise: csv.DictReader and parse_row, row by row."""
    rows, problems = [], []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        for raw in reader:
            try:
                rows.append(parse_row(raw, reader.line_num))
            except RowInvalid as bad:
                problems.append((reader.line_num, bad.field, bad.message, (raw.get("File_name") or "").strip() or None))
    return rows, problems


@pytest.mark.parametrize("seed", range(6))
def test_column_wise_equals_row_by_row(tmp_path, seed):
    path = tmp_path / "DL_info.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        w.writerows(make_rows(seed, 400))
    rows, problems = read_dl_info(path)
    expected_rows, expected_problems = reference(path)
    assert 50 < len(expected_problems) < 300  # both kinds well represented
    assert rows == expected_rows
    assert [(p.row, p.field, p.message, p.item) for p in problems] == expected_problems


@pytest.mark.parametrize("shape", ["short_rows", "long_rows", "reordered", "extra_column", "repeated_column"])
def test_odd_shapes_equal_row_by_row(tmp_path, shape):
    data = make_rows(7, 60)
    header = list(COLUMNS)
    if shape == "short_rows":
        data = [r[: len(r) - (i % 3)] for i, r in enumerate(data)]
    elif shape == "long_rows":
        data = [r + ["x"] * (i % 2) for i, r in enumerate(data)]
    elif shape == "reordered":
        order = list(reversed(range(len(header))))
        header, data = [header[i] for i in order], [[r[i] for i in order] for r in data]
    elif shape == "extra_column":
        header, data = ["Note", *header], [["n|ote", *r] for r in data]
    else:
        header, data = [*header, "Patient_age"], [[*r, "33"] for r in data]
    path = tmp_path / "DL_info.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(data)
    rows, problems = read_dl_info(path)
    expected_rows, expected_problems = reference(path)
    assert rows == expected_rows
    assert [(p.row, p.field, p.message, p.item) for p in problems] == expected_problems
