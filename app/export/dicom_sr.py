"""`dicom-sr`: a DICOM series' measurements as TID 1500 Measurement Reports (highdicom Comprehensive 3D SR).

One report per series and observer — `<series>_sr_<observer>.dcm` —, the observer being the measurements' author:
a user (`user:<name>`, a person observer) or the dataset itself (`dataset`, a device observer named after the
dataset). Each RECIST is two planar ROI measurement groups (finding "Lesion"; TID 1410 allows one region and
no other coordinates per group): its long axis — a POLYLINE on the source instance it was drawn on (pixel
coordinates of that image: column, row from its top left corner) — with the measurement Long axis (SCT
103339001) in mm, then its short axis with Short axis (SCT 103340004); their tracking identifiers name the
MedView annotation and the axis. Each `line` annotation is a group with a Length (SCT 410668003). Lengths
are distances in patient space between the end points. A measurement drawn on a plane that is not the one the
series was acquired in lies on no single instance: its points are then SCOORD3D in the series' frame of
reference (LPS mm).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.db.models import Item
from app.export.context import ExportContext
from app.export.dicom_source import ON_SLICE, NotASeries, SourceSeries, read_source, safe_name
from app.export.selection import annotations_of, item_chunks
from app.export.writer import atomic_save

log = logging.getLogger(__name__)

SR_NAME = "{key}_sr_{observer}.dcm"
MEASURED = ("recist", "line")
LONG_AXIS = ("103339001", "Long axis")
SHORT_AXIS = ("103340004", "Short axis")
LENGTH = ("410668003", "Length")
LESION = ("52988006", "Lesion")
STRUCTURE = ("91723000", "Anatomical structure")


class Placed:
    """A drawn segment placed on the source: its patient-space end points and its SR coordinates."""

    def __init__(self, series: SourceSeries, segment: Sequence[Sequence[float]], plane: str, index: int):
        source = [series.display_to_source(p, plane, index) for p in segment]
        self.lps = [series.patient_lps(v) for v in source]
        self.length_mm = float(np.linalg.norm(self.lps[1] - self.lps[0]))
        stack = {round(float(v[2])) for v in source}
        self.on_instance = len(stack) == 1 and all(abs(float(v[2]) - round(float(v[2]))) < ON_SLICE for v in source)
        self.instance: Any = None
        self.frame: int | None = None
        if self.on_instance:
            s = stack.pop()
            if not 0 <= s < series.source_shape[2]:
                raise NotASeries(f"slice {s} is outside the series")
            self.instance, self.frame = series.instance_of(s)
        # DICOM pixel coordinates: (0, 0) is the top left corner of the top left pixel, whose centre is (0.5, 0.5)
        self.pixels = np.array([[float(v[0]) + 0.5, float(v[1]) + 0.5] for v in source], dtype=np.float32)
        self.frame_of_reference = str(series.datasets[0].get("FrameOfReferenceUID") or "")

    def region(self) -> Any:
        import highdicom as hd

        if self.on_instance:
            return hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=self.pixels,
                                     source_image=self._source_image())
        return hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
                                   graphic_data=np.array(self.lps, dtype=np.float32),
                                   frame_of_reference_uid=self.frame_of_reference)

    def _source_image(self) -> Any:
        import highdicom as hd

        frames = [self.frame] if self.frame is not None else None
        return hd.sr.SourceImageForRegion.from_source_image(self.instance, referenced_frame_numbers=frames)


def observer_name(source: str | None) -> str:
    return (source or "dataset").removeprefix("user:")


def person_name(username: str) -> str:
    """A user name as a DICOM person name: the family name component (a trailing caret marks it as one)."""
    return username.replace("^", " ").replace("=", " ")[:60] + "^"


def _group(annotation: Any, axis: str, code: tuple[str, str], placed: Placed, finding: tuple[str, str]) -> Any:
    """One planar ROI group: the segment's POLYLINE as its region and its length as the measurement."""
    import highdicom as hd
    from pydicom.sr.coding import Code

    lineage = annotation.lineage_id or annotation.id
    tracking = hd.sr.TrackingIdentifier(
        uid=hd.UID(), identifier=f"MedView annotation {lineage} version {annotation.version} {axis}".strip())
    measurement = hd.sr.Measurement(name=Code(code[0], "SCT", code[1]), value=round(placed.length_mm, 3),
                                    unit=Code("mm", "UCUM", "millimeter"))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, referenced_region=placed.region(),
        finding_type=Code(finding[0], "SCT", finding[1]), measurements=[measurement])


def measurement_groups(series: SourceSeries, annotation: Any, default_slice: int) -> list[Any]:
    """The planar ROI groups of one RECIST (its long axis, then its short axis) or line annotation."""
    g = annotation.geometry or {}
    plane = str((annotation.meta or {}).get("plane") or "axial")
    index = annotation.slice_index if annotation.slice_index is not None else default_slice
    if annotation.kind == "recist":
        return [_group(annotation, "long axis", LONG_AXIS, Placed(series, g["long"], plane, index), LESION),
                _group(annotation, "short axis", SHORT_AXIS, Placed(series, g["short"], plane, index), LESION)]
    return [_group(annotation, "", LENGTH, Placed(series, g["line"], plane, index), STRUCTURE)]


def observation_context(source: str | None, dataset_name: str) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if source and source.startswith("user:"):
        person = hd.sr.ObserverContext(observer_type=codes.DCM.Person,
                                       observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                                           name=person_name(observer_name(source)),
                                           login_name=observer_name(source)))
        return hd.sr.ObservationContext(observer_person_context=person)
    device = hd.sr.ObserverContext(observer_type=codes.DCM.Device,
                                   observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                                       uid=hd.UID(), name=f"MedView dataset {dataset_name}"[:64]))
    return hd.sr.ObservationContext(observer_device_context=device)


def build_report(series: SourceSeries, annotations: Sequence[Any], source: str | None, dataset_name: str) -> Any:
    """One Comprehensive 3D SR holding the annotations' measurement groups, by one observer."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    default = series.ref.location_index or 0
    groups = [group for a in annotations for group in measurement_groups(series, a, default)]
    report = hd.sr.MeasurementReport(observation_context=observation_context(source, dataset_name),
                                     procedure_reported=codes.LN.CTUnspecifiedBodyRegion
                                     if str(series.datasets[0].get("Modality")) == "CT"
                                     else codes.SCT.ImagingProcedure,
                                     imaging_measurements=groups)
    return hd.sr.Comprehensive3DSR(
        evidence=series.datasets, content=report, series_instance_uid=hd.UID(), series_number=901,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="MedView", is_complete=True)


def write(ctx: ExportContext) -> list[Path]:
    written: list[Path] = []
    for rows in item_chunks(ctx.session, ctx.selection, (Item.id, Item.key), size=50):
        keys = {r[0]: r[1] for r in rows}
        anns = annotations_of(ctx.session, list(keys), ctx.mode, meta=True)
        measured = {i: [a for a in anns.get(i, []) if a.kind in MEASURED] for i in keys}
        for target in ctx.pixels.targets(ctx.session, [i for i, m in measured.items() if m], False):
            ref = target.ref
            by_observer: dict[str, list[Any]] = {}
            for a in measured[ref.id]:
                by_observer.setdefault(a.source or "dataset", []).append(a)
            try:
                series = read_source(ref)
                reports = [(source, build_report(series, group, source, ctx.dataset.name))
                           for source, group in sorted(by_observer.items())]
            except (NotASeries, KeyError, TypeError, ValueError) as exc:
                log.warning("export: item %d: %s; no SR written", ref.id, exc)
                continue
            for source, report in reports:
                name = SR_NAME.format(key=safe_name(keys[ref.id]), observer=safe_name(observer_name(source)))
                out = ctx.out / name
                atomic_save(out, report.save_as)
                written.append(ctx.wrote(out))
        ctx.advance(len(rows))
    return written
