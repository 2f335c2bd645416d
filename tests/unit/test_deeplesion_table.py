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


# ---- the same lesion listed twice, a patient with two sexes, bytes that are not UTF-8 (issue 13) ----

SECOND = {**GOOD_ROW, "File_name": "000089_01_01_038.png", "Key_slice_index": "38"}


def test_identical_repeat_is_reported_with_both_lines_and_read_once(tmp_path):
    rows, problems = read_dl_info(write_csv(tmp_path / "DL_info.csv", [GOOD_ROW, SECOND, GOOD_ROW]))
    assert [r.line for r in rows] == [2, 3]
    [p] = problems
    assert (p.row, p.field, p.item) == (4, None, "000089_01_01_037.png")
    assert "repeats line 2 exactly" in p.message and "indexed once" in p.message


def test_repeat_with_a_conflicting_field_names_the_field_and_both_values(tmp_path):
    rows, problems = read_dl_info(write_csv(tmp_path / "DL_info.csv", [
        GOOD_ROW, SECOND, GOOD_ROW, {**GOOD_ROW, "Patient_gender": "M"}]))
    assert [r.line for r in rows] == [2, 3]  # each lesion once: the first listing
    assert [(p.row, p.field) for p in problems] == [(4, None), (5, "Patient_gender")]
    conflict = problems[1]
    assert "same lesion as line 2" in conflict.message
    assert "'F' on line 2, 'M' here" in conflict.message and "only line 2 is indexed" in conflict.message
    assert str(conflict).startswith("DL_info.csv line 5 (000089_01_01_037.png): Patient_gender: ")


def test_repeat_written_differently_is_still_the_same_lesion(tmp_path):
    rows, problems = read_dl_info(write_csv(tmp_path / "DL_info.csv", [
        GOOD_ROW, {**GOOD_ROW, "Patient_age": "71.0", "Bounding_boxes": "132.977,171.808,165.939,214.029"}]))
    assert len(rows) == 1
    [p] = problems
    assert p.row == 3 and "repeats line 2 with the same values" in p.message


def test_two_lesions_on_one_key_slice_are_not_a_repeat(tmp_path):
    other = {**GOOD_ROW, "Measurement_coordinates": "10, 10, 20, 20, 15, 12, 15, 18"}
    rows, problems = read_dl_info(write_csv(tmp_path / "DL_info.csv", [GOOD_ROW, other]))
    assert problems == [] and len(rows) == 2


def test_patient_with_two_sexes_is_reported_and_both_rows_kept(tmp_path):
    rows, problems = read_dl_info(write_csv(tmp_path / "DL_info.csv", [
        GOOD_ROW, {**SECOND, "Patient_gender": "M"}, {**SECOND, "File_name": "000089_01_01_039.png",
                                                      "Key_slice_index": "39", "Patient_gender": ""}]))
    assert len(rows) == 3
    [p] = problems
    assert (p.row, p.field, p.item) == (3, "Patient_gender", "000089_01_01_038.png")
    assert "patient 000089 is 'F' on line 2 but 'M' here" in p.message


def test_byte_that_is_not_utf8_skips_only_its_row_naming_line_and_column(tmp_path):
    path = write_csv(tmp_path / "DL_info.csv", [GOOD_ROW, SECOND, {**GOOD_ROW, "File_name": "000089_01_01_039.png",
                                                                   "Key_slice_index": "39"}])
    data = path.read_bytes().replace(b"F,71,1\n000089_01_01_038", b"F\xe9,71,1\n000089_01_01_038", 1)
    path.write_bytes(data)
    rows, problems = read_dl_info(path)
    assert [r.line for r in rows] == [3, 4]  # the neighbours are read
    [p] = problems
    assert (p.row, p.field, p.item) == (2, "Patient_gender", "000089_01_01_037.png")
    assert "byte 0xe9 is not UTF-8 text" in p.message and "b'F\\xe9'" in p.message and "skipped" in p.message


def test_latin1_file_name_cell_is_named_without_the_broken_name(tmp_path):
    path = write_csv(tmp_path / "DL_info.csv", [GOOD_ROW, SECOND])
    path.write_bytes(path.read_bytes().replace(b"000089_01_01_038.png", b"000089_01_01_038\xff.png"))
    rows, problems = read_dl_info(path)
    assert [r.line for r in rows] == [2]
    [p] = problems
    assert (p.row, p.field, p.item) == (3, "File_name", None) and "byte 0xff" in p.message


def test_header_that_is_not_utf8_is_fatal_and_says_so(tmp_path):
    path = write_csv(tmp_path / "DL_info.csv", [GOOD_ROW])
    path.write_bytes(path.read_bytes().replace(b"Patient_age", b"Patient_\xe2ge", 1))
    with pytest.raises(IngestError, match=r"DL_info.csv: not a readable CSV file \(line 1, the header"):
        read_dl_info(path)


def test_bom_crlf_blank_lines_and_quoted_newlines_keep_line_numbers(tmp_path):
    path = tmp_path / "DL_info.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\r\n")
        w.writeheader()
        w.writerow(GOOD_ROW)
        fh.write("\r\n")
        w.writerow({**SECOND, "Patient_age": "7\n1"})  # a quoted newline: the row ends on line 5
        w.writerow({**GOOD_ROW, "File_name": "000089_01_01_039.png", "Key_slice_index": "39"})
    rows, problems = read_dl_info(path)
    assert [r.line for r in rows] == [2, 6]
    [p] = problems
    assert (p.row, p.field) == (5, "Patient_age")
