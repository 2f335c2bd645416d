"""DeepLesion adapter: key slices as items, each lesion row as a RECIST annotation."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.datasets.base import (
    AnnotationRecord,
    ChartSpec,
    DatasetAdapter,
    FileRefused,
    Image2D,
    IngestError,
    ItemRecord,
    ItemRef,
    NumericSort,
    OverlayLayer,
    PatientRecord,
    PixelError,
    Problem,
    ProgressFn,
    ScanResult,
    SeriesRecord,
    StudyRecord,
    View,
    no_progress,
)
from app.datasets.declarations import DETECTOR_MISSES, POSSIBLY_NOISY
from app.datasets.deeplesion import pixels
from app.datasets.deeplesion.table import COLUMNS, LESION_TYPES, SPLITS, LesionRow, read_dl_info
from app.datasets.patients import LESION_FOLLOWUP
from app.datasets.roots import DatasetFiles
from app.datasets.volumes import VolumeCache
from app.imaging.overlay import recist_shapes
from app.imaging.window import deeplesion_raw_to_hu

META_VERSION = "meta-2"  # bump when item meta gains a field: the next ingest rewrites every item once

CSV_NAME = "DL_info.csv"


def age_band(age: float | None) -> str | None:
    if age is None:
        return None
    low = int(age // 10 * 10)
    return f"{low}-{low + 9}"


def find_table(root: Path) -> Path | None:
    direct = root / CSV_NAME
    if direct.is_file():
        return direct
    for candidate in sorted(root.glob("*.csv")):
        try:
            with candidate.open(encoding="utf-8-sig") as fh:
                header = fh.readline()
        except (OSError, UnicodeDecodeError):
            continue
        if "File_name" in header and "Measurement_coordinates" in header:
            return candidate
    return None


class DeepLesionAdapter(DatasetAdapter):
    kind = "deeplesion"
    export_formats = {"csv": "table", "coco": "coco", "deeplesion-csv": "deeplesion-csv",  # docs/export.md
                      "nifti": "lesion-subvolumes"}
    facet_fields = ("split", "lesion_type", "sex", "age", "noisy")
    patient_page = LESION_FOLLOWUP  # key slices per study, lesions tracked across studies
    editable_annotations = ("recist", "bbox", "line")
    queue_suggestions = (POSSIBLY_NOISY, DETECTOR_MISSES)
    filter_fields = ("patient", "study")
    facet_labels = {
        "lesion_type": {str(k): v for k, v in LESION_TYPES.items()},
        "noisy": {"0": "no", "1": "possibly noisy"},
        "sex": {"M": "male", "F": "female"},
    }
    label_facet = "lesion_type"  # an item's label is its lesion type code
    numeric_sorts = {"age": NumericSort(column="age"), "lesion_size": NumericSort(meta="max_long_mm")}
    charts = (
        ChartSpec("lesion_map", "Lesion locations (normalised x against z, by lesion type)", group="lesion_type"),
        ChartSpec("lesion_sizes", "Lesion size (RECIST long diameter)", unit="mm"),
        ChartSpec("histogram", "Age at the study, per key slice", value="age", group="sex", missing="unknown",
                  bins=(0.0, 105.0, 5.0), unit="years"),
    )
    values_are_hu = True

    def detect(self, root: Path) -> bool:
        return find_table(root) is not None

    def scan(self, root: Path, progress: ProgressFn = no_progress, work_dir: Path | None = None,
             files: DatasetFiles | None = None) -> ScanResult:
        access = files or DatasetFiles.confined_to(root)
        table = find_table(root)
        if table is None:
            raise IngestError(f"{root}: no {CSV_NAME} (or CSV with DeepLesion's columns) found")
        try:
            access.path(table.relative_to(root))
        except FileRefused as exc:
            raise IngestError(str(exc), [Problem(exc.rel, exc.reason)]) from None
        rows, problems = read_dl_info(table)
        progress("reading table", len(rows), len(rows))
        if not rows:
            reason = f"{table.name}: no valid lesion rows"
            raise IngestError(reason + (f" ({len(problems)} invalid)" if problems else ""), problems)
        slices = pixels.list_slices(root, access)
        problems += slices.problems
        by_file: dict[str, list[LesionRow]] = defaultdict(list)
        for row in rows:
            by_file[row.file_name].append(row)
        found: list[ItemRecord] = []
        result = ScanResult(items=found, problems=problems, options={"table": table.name, "zips": slices.zips})
        patients: dict[str, PatientRecord] = {}
        studies: dict[str, StudyRecord] = {}
        series: dict[str, SeriesRecord] = {}
        total = len(by_file)
        for n, (file_name, lesions) in enumerate(by_file.items(), 1):
            item = self._key_slice(access, table.name, file_name, lesions, slices, result)
            if n % 2000 == 0 or n == total:
                progress("checking key slices", n, total)
            if item is None:
                continue
            first = lesions[0]
            found.append(item)
            if first.series_dir in series:  # most key slices share their series (and so study, patient)
                continue
            pid, sid = f"{first.patient:06d}", f"{first.patient:06d}_{first.study:02d}"
            if pid not in patients:
                patients[pid] = PatientRecord(pid, first.sex)
            if sid not in studies:
                studies[sid] = StudyRecord(sid, pid, first.study, first.age)
            series[first.series_dir] = SeriesRecord(first.series_dir, sid, {
                "slices_listed": len(listed.names) if (listed := slices.series.get(first.series_dir)) else 0,
                "spacing": list(first.spacing)})
        if not result.items:
            raise IngestError(f"{table.name}: none of the {len(rows)} lesion rows has a readable key slice",
                              result.problems)
        result.patients, result.studies, result.series = (list(patients.values()), list(studies.values()),
                                                          list(series.values()))
        return result

    def _key_slice(self, access: DatasetFiles, table: str, file_name: str, lesions: list[LesionRow],
                   slices: pixels.SliceIndex, result: ScanResult) -> ItemRecord | None:
        first = lesions[0]
        files = slices.series.get(first.series_dir)
        location = files.location(first.key_slice) if files else None
        if location is None or files is None:
            wanted = f"{pixels.IMAGES_DIR}/{first.series_dir}/{first.slice_file}"
            where = " or ".join([pixels.IMAGES_DIR + "/", *slices.zips]) if slices.zips else pixels.IMAGES_DIR + "/"
            for row in lesions:
                result.problems.append(Problem(table, f"key slice {wanted} not found (looked in {where})",
                                               row=row.line, field="File_name", item=file_name))
            return None
        width, height, bad = pixels.check_slice_file(access, location, files.real)
        if bad:
            for row in lesions:
                result.problems.append(Problem(table, f"{location}: {bad}", row=row.line, item=file_name))
            return None
        if (width, height) != first.image_size:
            result.problems.append(Problem(
                table, f"Image_size says {first.image_size[0]}×{first.image_size[1]} but {location} is "
                f"{width}×{height}; the file's size is used", row=first.line, field="Image_size", item=file_name))
        low, high = first.slice_range
        numbers = files.numbers_between(low, high)
        annotations = [self._lesion(row, i) for i, row in enumerate(lesions, 1)]
        if len(lesions) == 1:  # 98% of key slices: skip the set, sort and generator machinery
            types, noisy, max_long = [str(first.lesion_type)], first.noisy, round(first.long_mm, 2)
        else:
            types = sorted({str(r.lesion_type) for r in lesions}, key=int)
            noisy, max_long = any(r.noisy for r in lesions), max(round(r.long_mm, 2) for r in lesions)
        fingerprint = hashlib.blake2b(  # META_VERSION: a re-ingest refreshes items indexed with older meta
            "\n".join([META_VERSION, location, *(r.raw for r in lesions), pixels.numbers_text(numbers)]).encode(),
            digest_size=16).hexdigest()
        return ItemRecord(
            key=file_name, kind="key_slice", location=location, fingerprint=fingerprint,
            split=SPLITS[first.split], label=",".join(types), sex=first.sex, age=first.age,
            width=width, height=height, depth=1, spacing=list(first.spacing), window=list(first.window),
            location_index=first.key_slice,
            meta={
                "series_dir": first.series_dir, "slice_range": list(first.slice_range), "slices": numbers,
                "train_val_test": first.split, "lesion_types": [LESION_TYPES[int(t)] for t in types],
                "possibly_noisy": noisy, "csv_lines": [r.line for r in lesions],
                "max_long_mm": max_long,  # the `lesion_size` sort key
            },
            patient=f"{first.patient:06d}", study=f"{first.patient:06d}_{first.study:02d}",
            series=first.series_dir, annotations=annotations,
            facets={
                "split": [SPLITS[first.split]], "lesion_type": types, "sex": [first.sex] if first.sex else [],
                "age": [b] if (b := age_band(first.age)) else [],
                "noisy": ["1" if noisy else "0"],
            },
        )

    @staticmethod
    def _lesion(row: LesionRow, number: int) -> AnnotationRecord:
        c = row.coords
        mm = row.spacing[0]
        return AnnotationRecord(
            kind="recist", label=str(row.lesion_type), slice_index=row.key_slice,
            geometry={"long": [[c[0], c[1]], [c[2], c[3]]], "short": [[c[4], c[5]], [c[6], c[7]]],
                      "bbox": list(row.bbox)},
            meta={
                "lesion_number": number, "lesion_type_name": LESION_TYPES[row.lesion_type],
                "long_px": row.diameters_px[0], "short_px": row.diameters_px[1],
                "long_mm": round(row.diameters_px[0] * mm, 2), "short_mm": round(row.diameters_px[1] * mm, 2),
                "possibly_noisy": row.noisy, "normalized_location": list(row.location),
                "slice_range": list(row.slice_range), "csv_line": row.line,
            },
        )

    # -- pixels -----------------------------------------------------------------------------
    def slices(self, item: ItemRef, plane: str) -> list[int]:
        if plane != "axial":
            raise ValueError(f"DeepLesion key slices are axial images; plane {plane!r} is not available")
        return list(item.meta.get("slices") or [item.location_index])

    def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
        number = item.location_index if view.slice is None else view.slice
        location = item.location
        if number is None:
            raise PixelError(f"{location}: the item has no slice number (re-ingest the dataset)")
        if number != item.location_index:
            if number is None or number not in (item.meta.get("slices") or []):
                raise PixelError(f"slice {number} is not available for this key slice "
                                 f"(available: {self._range_text(item)})")
            location = f"{location.rpartition('/')[0]}/{pixels.slice_file_name(number)}"
        data = pixels.read_slice_bytes(item.access, location)  # confined and size-checked before reading
        hu = deeplesion_raw_to_hu(pixels.decode_slice(data, location))
        return Image2D(hu, number, item.spacing[0] if item.spacing else None)

    def overlay(self, item: ItemRef, annotations: Sequence[Any], view: View, image: Image2D,
                volumes: VolumeCache) -> OverlayLayer:
        """RECIST axes, box and lesion number, on the key slice only (where they were measured)."""
        shapes = []
        for a in annotations:
            if a.kind == "recist" and a.slice_index in (None, image.slice):
                shapes += recist_shapes(a.geometry, (a.meta or {}).get("lesion_number"))
        return OverlayLayer(shapes)

    @staticmethod
    def _range_text(item: ItemRef) -> str:
        numbers = item.meta.get("slices") or []
        return f"{numbers[0]}–{numbers[-1]}" if numbers else "the key slice only"


__all__ = ["COLUMNS", "DeepLesionAdapter"]
