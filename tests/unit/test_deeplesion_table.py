"""DL_info.csv parsing and validation, on the real file's rows and on broken copies of them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from app.datasets.base import IngestError
from app.datasets.deeplesion.table import COLUMNS, read_dl_info

GOOD_ROW = {
    "File_name": "000089_01_01_037.png", "Patient_index": "89", "Study_index": "1", "Series_ID": "1",
    "Key_slice_index": "37",
    "Measurement_coordinates": "154.273, 176.808, 143.903, 209.029, 160.939, 200.511, 137.977, 191.252",
    "Bounding_boxes": "132.977, 171.808, 165.939, 214.029", "Lesion_diameters_Pixel_": "33.8477, 24.7578",
    "Normalized_lesion_location": "0.282373, 0.333694, 0.546692", "Coarse_lesion_type": "-1",
    "Possibly_noisy": "0", "Slice_range": "31, 43", "Spacing_mm_px_": "0.859375, 0.859375, 5",
    "Image_size": "512, 512", "DICOM_windows": "-175, 275", "Patient_gender": "F", "Patient_age": "71",
    "Train_Val_Test": "1",
}


def write_csv(path: Path, rows: list[dict[str, str]], columns=COLUMNS) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.mark.realdata
def test_real_dl_info_parses_every_row(realdata):
    path = realdata("deeplesion", "DL_info.csv")
    rows, problems = read_dl_info(path)
    with path.open() as fh:
        expected = sum(1 for _ in csv.DictReader(fh))
    assert problems == []
    assert len(rows) == expected == 181
    first = rows[0]
    assert first.file_name == "000089_01_01_037.png" and first.line == 2
    assert first.coords[:2] == (154.273, 176.808)
    assert first.spacing == (0.859375, 0.859375, 5.0)
    assert first.window == (-175.0, 275.0)
    assert first.long_mm == pytest.approx(33.8477 * 0.859375)
    # fractional DICOM windows and shared key slices, as in the real file
    assert any(r.window == (-182.5, 322.5) for r in rows)
    names = [r.file_name for r in rows]
    assert len(set(names)) < len(names)


def test_age_written_as_float_and_blank_age(tmp_path):
    rows, problems = read_dl_info(write_csv(tmp_path / "DL_info.csv", [
        {**GOOD_ROW, "Patient_age": "54.0"},
        {**GOOD_ROW, "File_name": "000089_01_01_038.png", "Key_slice_index": "38", "Patient_age": ""}]))
    assert problems == []
    assert rows[0].age == 54.0 and rows[1].age is None


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("Measurement_coordinates", "154.273, 176.808, 143.903", "expected 8 comma-separated numbers, got 3"),
    ("Bounding_boxes", "132.977, abc, 165.939, 214.029", "not a number"),
    ("Spacing_mm_px_", "0, 0.8, 5", "spacing must be positive"),
    ("DICOM_windows", "275, -175", "window high must exceed low"),
    ("Coarse_lesion_type", "12", "unknown lesion type 12"),
    ("Train_Val_Test", "4", "expected 1, 2 or 3"),
    ("Key_slice_index", "36", "disagrees with"),
    ("Slice_range", "40, 50", "outside"),
    ("Patient_gender", "X", "expected M or F"),
    ("Lesion_diameters_Pixel_", "nan, 3", "non-finite"),
])
def test_bad_field_is_reported_with_line_and_field(tmp_path, field, value, expected):
    other = {**GOOD_ROW, "File_name": "000089_01_01_038.png", "Key_slice_index": "38"}
    rows, problems = read_dl_info(write_csv(tmp_path / "DL_info.csv", [{**GOOD_ROW, field: value}, other]))
    assert [r.file_name for r in rows] == ["000089_01_01_038.png"]  # the good row survives
    assert len(problems) == 1
    p = problems[0]
    assert (p.row, p.field) == (2, "File_name" if field == "Key_slice_index" else field)
    assert expected in p.message
    assert str(p).startswith("DL_info.csv line 2 (000089_01_01_037.png): ")


def test_missing_column_is_fatal_and_named(tmp_path):
    columns = [c for c in COLUMNS if c != "Spacing_mm_px_"]
    with pytest.raises(IngestError, match="missing column.*Spacing_mm_px_"):
        read_dl_info(write_csv(tmp_path / "DL_info.csv", [GOOD_ROW], columns))


def test_binary_file_is_not_a_csv(tmp_path):
    path = tmp_path / "DL_info.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 10)
    with pytest.raises(IngestError, match="DL_info.csv"):
        read_dl_info(path)
