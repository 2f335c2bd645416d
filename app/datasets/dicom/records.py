"""Stacks → index records: one item per stack (kind "series", key = SeriesInstanceUID), with its patient,
study and series, facets, window and the file list the renderer needs."""

from __future__ import annotations

import hashlib
import posixpath
from collections import defaultdict
from typing import Any

import numpy as np
from nibabel.orientations import io_orientation

from app.datasets.base import ItemRecord, PatientRecord, SeriesRecord, StudyRecord
from app.datasets.dicom.headers import Header, parse_age
from app.datasets.dicom.pixels import syntax_text
from app.datasets.dicom.series import Stack
from app.imaging.presets import PRESETS

SEXES = {"M", "F", "O"}
# Part of every fingerprint: bump when what ingest derives from unchanged files changes, so a re-ingest updates
# the items (2: PatientAge "000Y" and other placeholders read as unknown, not 0).
FORMAT_VERSION = "dicom-2"


def age_band(age: float | None) -> str | None:
    if age is None:
        return None
    low = int(age // 10 * 10)
    return f"{low}-{low + 9}"


def patient_key(h: Header) -> str:
    """PatientID, or one stand-in per study when the files have none (anonymised data)."""
    if h.patient_id:
        return h.patient_id
    return "anonymous-" + hashlib.blake2b(h.study_uid.encode(), digest_size=4).hexdigest()


def canonical_shape(shape: tuple[int, int, int], affine: np.ndarray) -> list[int]:
    """The array shape after `to_canonical` (the same reordering, computed from the affine alone)."""
    out = [0, 0, 0]
    for axis, (target, _flip) in enumerate(io_orientation(affine)):
        out[int(target)] = int(shape[axis])
    return out


def own_window(stack: Stack) -> tuple[list[float], str]:
    """[low, high] from the file's first VOI (centre ± width/2), else a default; and where it came from."""
    h = stack.headers[0]
    if h.window:
        centre, width = h.window
        return [centre - width / 2, centre + width / 2], "file"
    if h.modality == "CT":
        return list(PRESETS["soft_tissue"]), "default (soft tissue; the files have no window)"
    bits, info = h.info.get("bits_stored") or 12, h.info
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if info.get("signed") else (0, 2 ** bits - 1)
    slope, intercept = info.get("slope") or 1.0, info.get("intercept") or 0.0
    ends = sorted((low * slope + intercept, high * slope + intercept))
    return ends, "default (the stored value range; the files have no window)"


def geometry_label(stack: Stack) -> str:
    """Which geometry the viewer shows, in words (the item page prints it beside the image)."""
    if stack.grid is not None:
        return stack.grid.label
    if stack.orientation == "unknown":
        return "As stored (no patient position)"
    if stack.depth < 2:
        return "Single slice"
    return f"As acquired, even {stack.spacing[2]:.3g} mm spacing"


def fingerprint(stack: Stack) -> str:
    parts = [FORMAT_VERSION, stack.key, repr(stack.frames), np.round(stack.affine, 5).tobytes().hex()]
    parts += [f"{h.rel}|{h.size}|{h.mtime_ns}" for h in stack.headers]
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()


def item_record(stack: Stack, patient: str, age: float | None, undecodable: str | None) -> ItemRecord:
    h, info = stack.headers[0], stack.headers[0].info
    rels = [x.rel for x in stack.headers]
    folder = posixpath.commonpath([posixpath.dirname(r) for r in rels])
    names = [posixpath.relpath(r, folder) if folder else r for r in rels]
    shape = canonical_shape(stack.shape, stack.affine)
    window, window_source = own_window(stack)
    notes = list(stack.notes)
    if (info.get("slope") or 1.0) % 1 or (info.get("intercept") or 0.0) % 1:
        notes.append("rescale slope/intercept are not integers: values are rounded to integers for display")
    if undecodable:
        notes.append(undecodable)
    fp = fingerprint(stack)
    sex = info.get("sex") if info.get("sex") in SEXES else None
    orientation = stack.orientation.split(" ")[0]
    meta: dict[str, Any] = {
        "folder": folder, "files": names, "affine": np.round(stack.affine, 6).tolist(),
        "canonical_shape": shape, "slices": list(range(shape[2])), "orientation": stack.orientation,
        "modality": h.modality, "patient_id": h.patient_id, "study_uid": h.study_uid,
        "study_date": info.get("study_date"), "study_description": info.get("study_description"),
        "series_uid": h.series_uid, "series_number": info.get("series_number"),
        "series_description": info.get("series_description"), "body_part": info.get("body_part"),
        "manufacturer": info.get("manufacturer"), "model": info.get("model"),
        "transfer_syntax": h.transfer_syntax, "transfer_syntax_name": syntax_text(h.transfer_syntax),
        "slice_thickness": h.slice_thickness, "window_source": window_source,
        "instances": [x.instance for x in stack.headers] if stack.frames is None else [h.instance],
        "notes": notes, "source": fp[:16],
        # the viewer's plane selector and the thumbnail's plane: the plane the series was acquired in
        "planes": {"axial": shape[2], "coronal": shape[1], "sagittal": shape[0]},
        "default_plane": acquired if (acquired := stack.orientation.removeprefix("oblique (").rstrip(")"))
        in ("axial", "coronal", "sagittal") else "axial",
    }
    meta["geometry"] = geometry_label(stack)
    if stack.grid is not None:  # what the volume loader resamples with (app.datasets.dicom.regrid)
        meta["regrid"] = {"ipp": [list(p) for p in stack.ipps], "iop": list(stack.iop),
                          "pixel": [stack.spacing[1], stack.spacing[0]]}
    if stack.frames is not None:
        meta["frames"] = stack.frames
    facets = {"modality": [h.modality], "plane": [orientation],
              "body_part": [b] if (b := info.get("body_part")) else [], "sex": [sex] if sex else [],
              "age": [a] if (a := age_band(age)) else [],
              "manufacturer": [m] if (m := info.get("manufacturer")) else []}
    return ItemRecord(
        key=stack.key, kind="series", location=rels[0], fingerprint=fp, sex=sex, age=age,
        label=f"{h.modality} {info.get('series_description') or ''}".strip()[:128],
        width=h.cols, height=h.rows, depth=stack.depth, spacing=[round(v, 6) for v in stack.spacing],
        window=window, location_index=shape[2] // 2, meta=meta, patient=patient, study=h.study_uid,
        series=h.series_uid, facets=facets)


def build_records(stacks: list[Stack], undecodable: dict[str, str]) -> tuple[
        list[ItemRecord], list[PatientRecord], list[StudyRecord], list[SeriesRecord]]:
    patients: dict[str, PatientRecord] = {}
    studies: dict[str, tuple[str, Header]] = {}
    series: dict[str, SeriesRecord] = {}
    for stack in stacks:
        h = stack.headers[0]
        pid = patient_key(h)
        record = patients.setdefault(pid, PatientRecord(pid, None))
        if record.sex is None and h.info.get("sex") in SEXES:
            record.sex = h.info["sex"]
        studies.setdefault(h.study_uid, (pid, h))
        entry = series.setdefault(h.series_uid, SeriesRecord(h.series_uid, h.study_uid, {
            "number": h.info.get("series_number"), "description": h.info.get("series_description"),
            "modality": h.modality, "body_part": h.info.get("body_part"), "stacks": 0}))
        entry.meta["stacks"] += 1
    by_patient: dict[str, list[tuple[str, Header]]] = defaultdict(list)
    for uid, (pid, h) in studies.items():
        by_patient[pid].append((uid, h))
    study_records: list[StudyRecord] = []
    ages: dict[str, float | None] = {}
    for pid, entries in by_patient.items():
        entries.sort(key=lambda e: (e[1].info.get("study_date") or "99999999", e[1].info.get("study_time") or "",
                                    e[0]))
        for order, (uid, h) in enumerate(entries, 1):
            info = h.info
            ages[uid] = parse_age(info.get("age") or "", info.get("birth_date") or "", info.get("study_date") or "")
            study_records.append(StudyRecord(uid, pid, order, ages[uid]))
    items = [item_record(s, patient_key(s.headers[0]), ages[s.headers[0].study_uid], undecodable.get(s.key))
             for s in stacks]
    return items, list(patients.values()), study_records, list(series.values())
