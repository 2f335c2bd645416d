"""Finding DICOM files by content and reading their headers (never their pixels).

Each file is read once with pydicom, keeping only the tags the index needs (`specific_tags`) and
deferring large values, so the pixel data element is located (offset and length, to catch a
truncated file) without being read. Enhanced multi-frame files also yield their per-frame positions.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.encaps import parse_fragments
from pydicom.errors import InvalidDicomError
from pydicom.misc import is_dicom
from pydicom.tag import Tag

from app.datasets.base import FileRefused
from app.datasets.roots import DatasetFiles, Limits

# Real files often hold slightly non-conformant values (a DS longer than 16 characters, a UI with a
# trailing space); pydicom warns for each on every read. They are read as they are: no warning per file.
# (A process-wide pydicom setting: thread-safe, unlike a warnings.catch_warnings() around each read.)
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

PIXEL_DATA = Tag(0x7FE0, 0x0010)
UNDEFINED_LENGTH = 0xFFFFFFFF
TAGS = [
    "SOPClassUID", "SOPInstanceUID", "Modality", "PatientID", "PatientSex", "PatientAge", "PatientBirthDate",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription", "StudyID", "AccessionNumber",
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "BodyPartExamined", "Manufacturer",
    "ManufacturerModelName", "InstanceNumber", "AcquisitionNumber", "EchoNumbers", "TemporalPositionIdentifier",
    "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
    "BitsStored", "PixelRepresentation", "ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing",
    "SliceThickness", "SpacingBetweenSlices", "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth",
    "GantryDetectorTilt", "FrameOfReferenceUID", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "PixelData", "FloatPixelData", "DoubleFloatPixelData",
]
# Objects that carry no viewable image even when they have pixel data (label masks, dose grids).
NON_IMAGE_MODALITIES = {"RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SEG", "SR", "KO", "PR", "REG", "DOC", "PLAN",
                        "FID", "RWV", "AU", "ECG", "HD"}
RAW_STARTS = (b"\x08\x00", b"\x02\x00")  # a DICOM stream without preamble starts with group 0008 or 0002


@dataclass
class Header:
    """One DICOM image file as the index sees it."""

    rel: str
    size: int
    mtime_ns: int
    transfer_syntax: str
    sop_uid: str
    modality: str
    patient_id: str
    study_uid: str
    series_uid: str
    rows: int
    cols: int
    frames: int
    iop: tuple[float, ...] | None  # row cosine (3) then column cosine (3), LPS
    positions: list[tuple[float, float, float]] | None  # ImagePositionPatient of each frame, LPS mm
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) mm
    slice_thickness: float | None
    spacing_between: float | None
    window: tuple[float, float] | None  # (centre, width) of the first VOI
    instance: int | None
    stack_tags: tuple[str, str, str]  # echo, temporal position, acquisition: what separates duplicate positions
    info: dict[str, Any] = field(default_factory=dict)  # patient/study/series descriptions, for records


@dataclass
class NonImage:
    rel: str
    modality: str
    sop_class: str


@dataclass
class Unreadable:
    rel: str
    reason: str


def walk_files(root: Path) -> Iterator[tuple[str, os.DirEntry]]:
    """Every regular file under root (sorted, hidden files and folders skipped) as (relative path, entry)."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(rel)
            elif entry.is_file():
                yield rel, entry
        stack.extend(reversed(subdirs))


def looks_like_dicom(path: str | Path) -> bool:
    try:
        return is_dicom(path)
    except OSError:
        return False


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _xyz(value: Any) -> tuple[float, float, float] | None:
    """A position (three finite numbers) or None."""
    v = _floats(value, 3)
    return (v[0], v[1], v[2]) if v is not None else None


def _pair(value: Any) -> tuple[float, float] | None:
    """A pixel spacing (two finite numbers) or None."""
    v = _floats(value, 2)
    return (v[0], v[1]) if v is not None else None


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _text(ds: Any, name: str) -> str:
    value = ds.get(name)
    return "" if value is None else str(value).strip()


def _item(seq: Any, name: str) -> Any:
    """The first item of a functional-group macro (e.g. PlanePositionSequence) inside one group item."""
    inner = getattr(seq, name, None) if seq is not None else None
    return inner[0] if inner else None


def _pixel_data_problem(fh: Any, ds: Any, size: int) -> str | None:
    """Whether the pixel data element reaches the end it declares (found without reading the pixels)."""
    raw = ds._dict.get(PIXEL_DATA)  # the deferred raw element (get_item() would read its value)
    tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
    if tell is None or length is None:
        return None
    if length != UNDEFINED_LENGTH:
        return (f"file is truncated: pixel data needs {length} bytes from offset {tell}, the file has "
                f"{size - tell}") if tell + length > size else None
    fh.seek(tell)
    try:
        _count, offsets = parse_fragments(fh)
    except (ValueError, struct.error) as exc:
        return f"compressed pixel data is malformed ({exc})"
    if not offsets:
        return "compressed pixel data has no fragments"
    fh.seek(offsets[-1] + 4)
    last = fh.read(4)
    if len(last) < 4 or offsets[-1] + 8 + struct.unpack("<I", last)[0] > size:
        return "file is truncated inside its compressed pixel data"
    return None


def read_header(root: Path | DatasetFiles, rel: str, entry: os.DirEntry | None = None,
                ) -> Header | NonImage | Unreadable:
    """One file's header (pydicom, only TAGS, pixel data deferred): opened through the dataset's `files` (a link
    outside the data roots is Unreadable, not read), its Rows × Columns (× frames) checked against the limits."""
    files = root if isinstance(root, DatasetFiles) else DatasetFiles.confined_to(root)
    try:
        path = files.path(rel)
    except FileRefused as exc:
        return Unreadable(rel, exc.reason)
    try:
        st = entry.stat() if entry is not None and not entry.is_symlink() else path.stat()
    except OSError as exc:
        return Unreadable(rel, f"cannot be read ({exc.strerror or exc})")
    try:
        with open(path, "rb") as fh:
            marked = looks_like_dicom(path)
            if not marked and fh.read(2) not in RAW_STARTS:
                return Unreadable(rel, "not a DICOM file (no DICM marker at byte 128)")
            fh.seek(0)
            ds = pydicom.dcmread(fh, defer_size=1024, specific_tags=TAGS, force=not marked)
            if "SOPClassUID" not in ds and "Rows" not in ds:
                return Unreadable(rel, "DICOM file is truncated or empty (no SOP class, no image elements)" if marked
                                  else "not a DICOM file (no DICM marker at byte 128, no DICOM elements)")
            modality = _text(ds, "Modality").upper()
            sop_class = _text(ds, "SOPClassUID")
            has_pixels = PIXEL_DATA in ds
            name = pydicom.uid.UID(sop_class).name if sop_class else "no SOP class"
            if not has_pixels and modality not in NON_IMAGE_MODALITIES and ("Rows" in ds or
                                                                            name.endswith("Image Storage")):
                return Unreadable(rel, f"DICOM without pixel data: a {name} (modality {modality or 'none'}) with no "
                                       "PixelData element; skipped")
            if modality in NON_IMAGE_MODALITIES or not has_pixels or "Rows" not in ds:
                return NonImage(rel, modality or name, name)
            bad = _pixel_data_problem(fh, ds, st.st_size)
        if bad:
            return Unreadable(rel, bad)
        return _header(ds, rel, st, files.limits)
    except (InvalidDicomError, EOFError, struct.error, ValueError, TypeError, KeyError, AttributeError,
            NotImplementedError, OverflowError) as exc:
        return Unreadable(rel, f"not a readable DICOM file ({type(exc).__name__}: {exc})")
    except OSError as exc:
        return Unreadable(rel, f"cannot be read ({exc.strerror or exc})")


def _header(ds: Any, rel: str, st: os.stat_result, limits: Limits | None = None) -> Header | Unreadable:
    limits = limits or Limits()
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if rows <= 0 or cols <= 0:
        return Unreadable(rel, f"image size {rows}×{cols} is not valid")
    too_large = limits.image_problem(cols, rows) or limits.volume_problem(
        (cols, rows, int(_first(ds.get("NumberOfFrames")) or 1)))
    if too_large:
        return Unreadable(rel, f"{too_large}; not decoded")
    spp = int(ds.get("SamplesPerPixel") or 1)
    if spp != 1:
        return Unreadable(rel, f"colour images ({spp} samples per pixel, {_text(ds, 'PhotometricInterpretation')}) "
                               "are not supported; only greyscale series are shown")
    frames = int(_first(ds.get("NumberOfFrames")) or 1)
    iop = _floats(ds.get("ImageOrientationPatient"), 6)
    ipp = _xyz(ds.get("ImagePositionPatient"))
    spacing = _pair(ds.get("PixelSpacing"))
    thickness, between = _first(ds.get("SliceThickness")), _first(ds.get("SpacingBetweenSlices"))
    window = (_first(ds.get("WindowCenter")), _first(ds.get("WindowWidth")))
    positions: list[tuple[float, float, float]] | None = [ipp] if ipp else None
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if frames > 1 or per_frame:
        first = per_frame[0] if per_frame else None
        orient = _item(shared, "PlaneOrientationSequence") or _item(first, "PlaneOrientationSequence")
        measures = _item(shared, "PixelMeasuresSequence") or _item(first, "PixelMeasuresSequence")
        voi = _item(shared, "FrameVOILUTSequence") or _item(first, "FrameVOILUTSequence")
        iop = (_floats(orient.get("ImageOrientationPatient"), 6) if orient else None) or iop
        if measures:
            spacing = _pair(measures.get("PixelSpacing")) or spacing
            thickness = _first(measures.get("SliceThickness")) or thickness
            between = _first(measures.get("SpacingBetweenSlices")) or between
        if voi and window[1] is None:
            window = (_first(voi.get("WindowCenter")), _first(voi.get("WindowWidth")))
        if per_frame and len(per_frame) == frames:
            found = [_xyz(p.ImagePositionPatient) if (p := _item(g, "PlanePositionSequence")) else None
                     for g in per_frame]
            complete = [pos for pos in found if pos is not None]
            positions = complete if len(complete) == len(found) else None
        elif ipp and iop and (between or thickness):
            normal = _cross(iop)
            step = between or thickness or 1.0
            positions = [(ipp[0] + f * step * normal[0], ipp[1] + f * step * normal[1], ipp[2] + f * step * normal[2])
                         for f in range(frames)]
    if iop and math.dist(_cross(iop), (0.0, 0.0, 0.0)) < 0.5:
        iop = None  # degenerate orientation (zero or parallel cosines): no usable geometry
    centre, width = window
    return Header(
        rel=rel, size=st.st_size, mtime_ns=st.st_mtime_ns,
        transfer_syntax=str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2"),
        sop_uid=_text(ds, "SOPInstanceUID") or str(getattr(ds.file_meta, "MediaStorageSOPInstanceUID", "") or ""),
        modality=_text(ds, "Modality").upper() or "OT",
        patient_id=_text(ds, "PatientID"), study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"), rows=rows, cols=cols, frames=frames,
        iop=iop, positions=positions if iop else None, pixel_spacing=spacing,
        slice_thickness=thickness, spacing_between=between,
        window=(centre, width) if centre is not None and width is not None and width > 0 else None,
        instance=int(v) if (v := _first(ds.get("InstanceNumber"))) is not None else None,
        stack_tags=(_text(ds, "EchoNumbers"), _text(ds, "TemporalPositionIdentifier"),
                    _text(ds, "AcquisitionNumber")),
        info={
            "sex": _text(ds, "PatientSex").upper() or None, "age": _text(ds, "PatientAge"),
            "birth_date": _text(ds, "PatientBirthDate"), "study_date": _text(ds, "StudyDate"),
            "study_time": _text(ds, "StudyTime"), "study_description": _text(ds, "StudyDescription"),
            "study_id": _text(ds, "StudyID"), "accession": _text(ds, "AccessionNumber"),
            "series_number": _text(ds, "SeriesNumber"), "series_description": _text(ds, "SeriesDescription"),
            "body_part": _text(ds, "BodyPartExamined").upper(), "manufacturer": _text(ds, "Manufacturer"),
            "model": _text(ds, "ManufacturerModelName"), "frame_of_reference": _text(ds, "FrameOfReferenceUID"),
            "gantry_tilt": _first(ds.get("GantryDetectorTilt")),
            "bits_stored": int(ds.get("BitsStored") or 0), "signed": int(ds.get("PixelRepresentation") or 0) == 1,
            "slope": _first(ds.get("RescaleSlope")), "intercept": _first(ds.get("RescaleIntercept")),
            "photometric": _text(ds, "PhotometricInterpretation"),
        },
    )


def _cross(iop: tuple[float, ...]) -> tuple[float, float, float]:
    r, c = iop[:3], iop[3:]
    return (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])


# PatientAge (VR AS) is "nnnD", "nnnW", "nnnM" or "nnnY"; real files also write fewer digits ("45Y") or put a
# space before the unit. All-zero values ("000Y", "000D") are the anonymisers' placeholder for "removed".
AGE_STRING = re.compile(r"(\d{1,3}) ?([DWMY])")
AGE_UNIT_DAYS = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}
MAX_AGE_YEARS = 130.0  # older is a typo or a placeholder ("999Y"), not an age


def parse_as(age: str) -> float | None:
    """A DICOM Age String in years (float, 2 decimals: "006M" → 0.5, "010D" → 0.03), or None when it is empty,
    malformed, the anonymisation placeholder ("000Y", "000D": zero of any unit) or past MAX_AGE_YEARS."""
    found = AGE_STRING.fullmatch(age.strip().upper())
    if found is None or int(found[1]) == 0:
        return None
    years = int(found[1]) * AGE_UNIT_DAYS[found[2]] / 365.25
    return round(years, 2) if years <= MAX_AGE_YEARS else None


def parse_age(age: str, birth_date: str = "", study_date: str = "") -> float | None:
    """The patient's age at the study in years: PatientAge (`parse_as`), else whole years from the birth and study
    dates (both YYYYMMDD); None when neither gives one (an anonymised "000Y" is unknown, never 0)."""
    years = parse_as(age)
    if years is not None:
        return years
    if len(birth_date) == 8 and len(study_date) == 8 and birth_date.isdigit() and study_date.isdigit():
        whole = int(study_date[:4]) - int(birth_date[:4]) - (study_date[4:] < birth_date[4:])
        return float(whole) if 0 <= whole <= MAX_AGE_YEARS else None
    return None
