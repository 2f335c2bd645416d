"""`dicom-seg`: each exported DICOM series' current mask as one DICOM Segmentation (highdicom, BINARY).

`<series>_seg.dcm` per series with a mask: one segment per label value present, named by the dataset kind's label
names (`DatasetAdapter.mask_labels`, "label N" for others), with a recommended display colour (CIELab) and a
segmented property category/type (SCT); its frames are the mask on each source instance's own pixel grid (the
canonical label volume mapped back, `dicom_source.SourceSeries.source_labels`), referencing the source instances
(SOP Instance UIDs; a multi-frame source's frame numbers). Frames without any label are left out (highdicom's
`omit_empty_frames`). Several mask annotations of one series are merged (a later one's labels win).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from app.db.models import Item
from app.export.context import ExportContext
from app.export.dicom_source import NotASeries, SourceSeries, read_source, safe_name
from app.export.masks import MaskUnavailable, mask_array
from app.export.selection import annotations_of, item_chunks
from app.export.writer import atomic_save

log = logging.getLogger(__name__)

SEG_NAME = "{key}_seg.dcm"
# recommended display colours (sRGB) for segments 1, 2, …; turned into CIELab for the file
COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))
# segmented property (category, type) for a label name; anything else is an anatomical structure
PROPERTIES = {
    "lesion": (("49755003", "Morphologically abnormal structure"), ("52988006", "Lesion")),
    "organ": (("91723000", "Anatomical structure"), ("113343008", "Organ")),
}
DEFAULT_PROPERTY = (("85756007", "Tissue"), ("85756007", "Tissue"))


def _canonical_labels(ctx: ExportContext, series: SourceSeries, masks: list[Any]) -> np.ndarray | None:
    combined: np.ndarray | None = None
    for a in masks:
        try:
            labels = mask_array(series.ref, a)
        except MaskUnavailable as exc:
            log.warning("export: %s", exc)
            continue
        if labels.ndim == 2 and series.canonical_shape[2] == 1 and labels.shape == series.canonical_shape[1::-1]:
            labels = labels[::-1, ::-1].T[:, :, np.newaxis]  # a single axial image: the display view back
        if tuple(labels.shape) != series.canonical_shape:
            log.warning("export: the mask of item %d is %s, its series %s; not written", series.ref.id,
                        labels.shape, series.canonical_shape)
            continue
        combined = labels if combined is None else np.where(labels > 0, labels, combined)
    return combined


def segment_descriptions(values: list[int], names: dict[int, str]) -> list[Any]:
    import highdicom as hd
    from pydicom.sr.coding import Code

    out = []
    for number, value in enumerate(values, 1):
        name = names.get(value) or f"label {value}"
        (cat_code, cat_name), (type_code, type_name) = PROPERTIES.get(name.lower(), DEFAULT_PROPERTY)
        out.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name,
            segmented_property_category=Code(cat_code, "SCT", cat_name),
            segmented_property_type=Code(type_code, "SCT", type_name),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            tracking_uid=hd.UID(), tracking_id=f"{name} (label {value})",
            display_color=hd.color.CIELabColor.from_rgb(*COLOURS[(value - 1) % len(COLOURS)])))
    return out


def build_segmentation(series: SourceSeries, canonical: np.ndarray, names: dict[int, str]) -> Any | None:
    """The Segmentation of `canonical` labels on this series, or None when it holds no label."""
    import highdicom as hd

    stack = series.source_labels(canonical)  # (stack index, rows, columns)
    values = [int(v) for v in np.unique(stack) if v]
    if not values:
        return None
    numbered = np.zeros(stack.shape, np.uint8)
    for number, value in enumerate(values, 1):
        numbered[stack == value] = number
    if series.frames is not None:  # one multi-frame source: its frames in file order
        pixel_array = np.zeros_like(numbered)
        pixel_array[np.asarray(series.frames)] = numbered
    else:
        pixel_array = numbered
    return hd.seg.Segmentation(
        source_images=series.datasets, pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(values, names),
        series_instance_uid=hd.UID(), series_number=900, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="MedView", manufacturer_model_name="MedView export", software_versions="1",
        device_serial_number="1", content_label="MASKS", content_description="Masks exported by MedView")


def write(ctx: ExportContext) -> list[Path]:
    written: list[Path] = []
    names = {int(k): str(v) for k, v in ctx.adapter.mask_labels.items()}
    for rows in item_chunks(ctx.session, ctx.selection, (Item.id, Item.key), size=10):
        keys = {r[0]: r[1] for r in rows}
        anns = annotations_of(ctx.session, list(keys), ctx.mode)
        for target in ctx.pixels.targets(ctx.session, [i for i in keys if any(
                a.kind == "mask" for a in anns.get(i, []))], False):
            ref = target.ref
            masks = [a for a in anns.get(ref.id, []) if a.kind == "mask"]
            try:
                series = read_source(ref)
                canonical = _canonical_labels(ctx, series, masks)
                seg = build_segmentation(series, canonical, names) if canonical is not None else None
            except NotASeries as exc:
                log.warning("export: item %d: %s; no SEG written", ref.id, exc)
                continue
            if seg is None:
                continue
            out = ctx.out / SEG_NAME.format(key=safe_name(keys[ref.id]))
            atomic_save(out, seg.save_as)
            written.append(ctx.wrote(out))
        ctx.advance(len(rows))
    return written
