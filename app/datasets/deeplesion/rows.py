"""One DL_info.csv row: the `LesionRow` it becomes, and the reference validation naming its first bad field.

The real file quotes multi-value fields as "a, b, c", writes some ages as `54.0`, has fractional
DICOM windows, and lists several lesions on the same key slice (same File_name).

`parse_row` is the definition of a valid row and of every message: the column-wise reader
(`columns.py`) accepts only rows it would accept, with the same values, and hands every row it
doubts back to it, so a problem names the same line, field and reason whichever path found it.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

COLUMNS = (
    "File_name", "Patient_index", "Study_index", "Series_ID", "Key_slice_index",
    "Measurement_coordinates", "Bounding_boxes", "Lesion_diameters_Pixel_", "Normalized_lesion_location",
    "Coarse_lesion_type", "Possibly_noisy", "Slice_range", "Spacing_mm_px_", "Image_size",
    "DICOM_windows", "Patient_gender", "Patient_age", "Train_Val_Test",
)
LESION_TYPES = {
    1: "bone", 2: "abdomen", 3: "mediastinum", 4: "liver", 5: "lung",
    6: "kidney", 7: "soft tissue", 8: "pelvis", -1: "untyped (train)",
}
SPLITS = {1: "train", 2: "val", 3: "test"}
_FILE_NAME = re.compile(r"^(\d{6})_(\d{2})_(\d{2})_(\d{3,4})\.png$")


class LesionRow(NamedTuple):  # immutable, and cheaper to build 32,735 times than a frozen dataclass
    line: int
    raw: str  # the row's fields joined, for fingerprints
    file_name: str
    patient: int
    study: int
    series: int
    key_slice: int
    coords: tuple[float, ...]  # 8: long axis (x, y, x, y) then short axis
    bbox: tuple[float, ...]  # 4
    diameters_px: tuple[float, float]
    location: tuple[float, float, float]
    lesion_type: int
    noisy: bool
    slice_range: tuple[int, int]
    spacing: tuple[float, float, float]
    image_size: tuple[int, int]
    window: tuple[float, float]
    sex: str | None
    age: float | None
    split: int
    series_dir: str  # "PPPPPP_SS_SS", the folder under Images_png/

    @property
    def slice_file(self) -> str:
        return f"{self.key_slice:03d}.png"

    @property
    def long_mm(self) -> float:
        return self.diameters_px[0] * self.spacing[0]

    @property
    def short_mm(self) -> float:
        return self.diameters_px[1] * self.spacing[0]


class RowInvalid(Exception):
    """The first bad field of a row and what is wrong with it (the Problem's field and message)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _numbers(row: dict[str, str], name: str, count: int) -> tuple[float, ...]:
    return numbers_text(row.get(name) or "", name, count)


def numbers_text(text: str, name: str, count: int) -> tuple[float, ...]:
    """`count` comma-separated finite numbers, or `RowInvalid` naming `name`."""
    try:
        values = tuple(map(float, text.split(",")))  # float() ignores surrounding spaces
    except ValueError:
        if not text.strip():
            raise RowInvalid(name, f"expected {count} comma-separated numbers, got 0 ({text!r})") from None
        raise RowInvalid(name, f"not a number in {text!r}") from None
    if len(values) != count:
        raise RowInvalid(name, f"expected {count} comma-separated numbers, got {len(values)} ({text!r})")
    if not math.isfinite(sum(values)):
        raise RowInvalid(name, f"non-finite number in {text!r}")
    return values


def _integer(row: dict[str, str], name: str) -> int:
    return integer_text(row.get(name) or "", name)


def integer_text(text: str, name: str) -> int:
    """An integer (also written `54.0` or with spaces), or `RowInvalid` naming `name`."""
    try:
        return int(text)  # the common case; "54.0" or " 3" fall through to the careful path
    except ValueError:
        pass
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        raise RowInvalid(name, f"expected an integer, got {text!r}") from None
    if not value.is_integer():
        raise RowInvalid(name, f"expected an integer, got {text!r}")
    return int(value)


def ints(values: tuple[float, ...], name: str) -> tuple[int, ...]:
    if not all(float(v).is_integer() for v in values):
        raise RowInvalid(name, f"expected whole numbers, got {values}")
    return tuple(int(v) for v in values)


def sex_text(text: str) -> str | None:
    sex = text.strip().upper() or None
    if sex not in (None, "M", "F"):
        raise RowInvalid("Patient_gender", f"expected M or F, got {sex!r}")
    return sex


def age_text(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text) if text and text.lower() != "nan" else None
    except ValueError:
        raise RowInvalid("Patient_age", f"expected a number, got {text!r}") from None


def parse_row(row: dict[str, str], line: int) -> LesionRow:
    """One CSV row → LesionRow, or `RowInvalid` naming the first bad field."""
    file_name = (row.get("File_name") or "").strip()
    m = _FILE_NAME.match(file_name)
    if not m:
        raise RowInvalid("File_name", f"expected PPPPPP_SS_SS_NNN.png, got {file_name!r}")
    patient, study, series = _integer(row, "Patient_index"), _integer(row, "Study_index"), _integer(row, "Series_ID")
    key_slice = _integer(row, "Key_slice_index")
    if (patient, study, series, key_slice) != tuple(int(g) for g in m.groups()):
        raise RowInvalid("File_name", f"{file_name!r} disagrees with Patient_index/Study_index/"
                          f"Series_ID/Key_slice_index ({patient}, {study}, {series}, {key_slice})")
    coords = _numbers(row, "Measurement_coordinates", 8)
    bbox = _numbers(row, "Bounding_boxes", 4)
    if bbox[2] < bbox[0] or bbox[3] < bbox[1]:
        raise RowInvalid("Bounding_boxes", f"x2 < x1 or y2 < y1 in {bbox}")
    diameters = _numbers(row, "Lesion_diameters_Pixel_", 2)
    if min(diameters) < 0:
        raise RowInvalid("Lesion_diameters_Pixel_", f"negative diameter {diameters}")
    location = _numbers(row, "Normalized_lesion_location", 3)
    lesion_type = _integer(row, "Coarse_lesion_type")
    if lesion_type not in LESION_TYPES:
        raise RowInvalid("Coarse_lesion_type", f"unknown lesion type {lesion_type} (expected 1–8 or -1)")
    noisy = _integer(row, "Possibly_noisy")
    if noisy not in (0, 1):
        raise RowInvalid("Possibly_noisy", f"expected 0 or 1, got {noisy}")
    slice_range = ints(_numbers(row, "Slice_range", 2), "Slice_range")
    if not slice_range[0] <= key_slice <= slice_range[1]:
        raise RowInvalid("Slice_range", f"key slice {key_slice} is outside {slice_range}")
    spacing = _numbers(row, "Spacing_mm_px_", 3)
    if min(spacing) <= 0:
        raise RowInvalid("Spacing_mm_px_", f"spacing must be positive, got {spacing}")
    image_size = ints(_numbers(row, "Image_size", 2), "Image_size")
    if min(image_size) <= 0:
        raise RowInvalid("Image_size", f"image size must be positive, got {image_size}")
    window = _numbers(row, "DICOM_windows", 2)
    if window[1] <= window[0]:
        raise RowInvalid("DICOM_windows", f"window high must exceed low, got {window}")
    sex = sex_text(row.get("Patient_gender") or "")
    age = age_text(row.get("Patient_age") or "")
    split = _integer(row, "Train_Val_Test")
    if split not in SPLITS:
        raise RowInvalid("Train_Val_Test", f"expected 1, 2 or 3, got {split}")
    return LesionRow(
        line=line, raw="|".join(map(str, row.values())), file_name=file_name,
        patient=patient, study=study, series=series, key_slice=key_slice, coords=coords, bbox=bbox,
        diameters_px=(diameters[0], diameters[1]), location=(location[0], location[1], location[2]),
        lesion_type=lesion_type, noisy=bool(noisy), slice_range=(slice_range[0], slice_range[1]),
        spacing=(spacing[0], spacing[1], spacing[2]), image_size=(image_size[0], image_size[1]),
        window=(window[0], window[1]), sex=sex, age=age, split=split, series_dir=file_name[:12],
    )


