"""DICOM's patient page: the patient's studies by date and description (in study order: date, then time), each
with its series by number and description, as a radiologist reads a worklist. Study and series instance UIDs are
shown only as small print; a study with no date or description says so instead of showing its UID."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.datasets.patients import Entry, PatientPage, Section, counted, years

MODALITIES = {"CT": "CT", "MR": "MRI", "PT": "PET", "NM": "nuclear medicine", "CR": "radiograph", "DX": "radiograph",
              "MG": "mammogram", "US": "ultrasound", "XA": "angiography", "OT": "other"}


def study_date(text: str | None) -> str:
    """DICOM DA "20190301" as 2019-03-01; anything else as it is ('' when missing)."""
    text = (text or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:]}" if len(text) == 8 and text.isdigit() else text


class DicomPatientPage(PatientPage):
    def sections(self, studies: Sequence[Mapping[str, Any]], loose: Sequence[Mapping[str, Any]]) -> list[Section]:
        out = []
        for n, study in enumerate(studies, 1):
            items = sorted(study["items"], key=_series_order)
            modalities = sorted({(i.get("meta") or {}).get("modality") or "OT" for i in items})
            age = years(study.get("age"))
            details = (*((f"age {age}",) if age else ()), counted(len(items), "series", "series"),
                       ", ".join(MODALITIES.get(m, m) for m in modalities))
            out.append(Section(anchor=f"study-{n}", title=self.study_title(items[0] if items else {}), details=details,
                               uid=study["study"], study=study["study"], entries=tuple(self.entry(i) for i in items)))
        return out + super().sections([], loose)

    def entry(self, item: Mapping[str, Any]) -> Entry:
        meta = item.get("meta") or {}
        modality = meta.get("modality") or "OT"
        title = _series_title(meta)
        depth = int(item.get("depth") or 1)
        plane = str(meta.get("orientation") or "").split(" ")[0]
        details = [(f"{plane} " if plane and plane != "unknown" else "") + modality,
                   counted(depth, "slice", "slices") if depth > 1 else "1 image"]
        if meta.get("slice_thickness"):
            details.append(f"{meta['slice_thickness']:g} mm thick")
        if meta.get("body_part"):
            details.append(str(meta["body_part"]).lower())
        return Entry(item["id"], title, tuple(details), uid=str(meta.get("series_uid") or item["key"]))

    def item_title(self, item: Mapping[str, Any]) -> str | None:
        """Description (else the modality), study date, series number — the most telling first, as a narrow card
        cuts the end: `AX ABD 5mm · 2019-03-01 · #2`."""
        meta = item.get("meta") or {}
        number = str(meta.get("series_number") or "").strip()
        parts = (_series_name(meta), study_date(meta.get("study_date")), f"#{number}" if number else "")
        return " · ".join(p for p in parts if p)

    def study_title(self, item: Mapping[str, Any]) -> str:
        """`2019-03-01 · CT ABDOMEN W CONTRAST`, saying what is missing instead of showing the study's UID."""
        meta = item.get("meta") or {}
        date = study_date(meta.get("study_date")) or "date unknown"
        return f"{date} · {(meta.get('study_description') or '').strip() or 'no study description'}"


def _series_name(meta: Mapping[str, Any]) -> str:
    modality = meta.get("modality") or "OT"
    return (meta.get("series_description") or "").strip() or MODALITIES.get(modality, modality)


def _series_title(meta: Mapping[str, Any]) -> str:
    number = str(meta.get("series_number") or "").strip()
    return f"Series {number} · {_series_name(meta)}" if number else _series_name(meta)


def _series_order(item: Mapping[str, Any]) -> tuple[float, str]:
    number = str((item.get("meta") or {}).get("series_number") or "").strip()
    try:
        return (float(number), item["key"])
    except ValueError:
        return (float("inf"), item["key"])


PATIENT_PAGE = DicomPatientPage(unit="series", units="series")
