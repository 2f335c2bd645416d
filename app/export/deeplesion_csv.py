"""`deeplesion-csv`: DL_info.csv in the published 18-column format, one row per exported lesion.

A lesion whose annotation is the dataset's own row (not edited since ingest, or `--annotations dataset`) is
written field for field as the source table has it (the source row is found by the `csv_line` its first version
recorded at ingest). An edited RECIST gets `Measurement_coordinates`, `Bounding_boxes` and
`Lesion_diameters_Pixel_` recomputed from its points (app.export.geometry: axis lengths; the end points' extent
± 5 px) and `Coarse_lesion_type` from its label; every other field stays the source row's. A lesion a user added
takes its key slice's fields from another row of the same slice, its type from its label, `Possibly_noisy` 0
and `Normalized_lesion_location` approximated (x and y of its centre over the image size; z of the slice's other
lesion). Numbers are written as the published file writes them: six significant digits (`%g`), lists quoted as
"a, b", minimal quoting, `\\n` line ends. Rows keep the source table's order; added lesions follow their slice.
Retired lesions (and items outside the selection) are left out.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.datasets.deeplesion.table import COLUMNS
from app.datasets.roots import DatasetFiles
from app.db.models import Annotation, Item
from app.errors import InvalidInput
from app.export.context import ExportContext
from app.export.geometry import diameters, recist_box, recist_points
from app.export.selection import SOURCE_DATASET, annotations_of, item_chunks
from app.export.writer import atomic_text

FILE_NAME = "DL_info.csv"
DEFAULT_TABLE = "DL_info.csv"


def number(value: float) -> str:
    """A number as DL_info.csv writes it: `%g` (six significant digits, no trailing zeros, `128` not `128.0`)."""
    text = f"{value:g}"
    return "0" if text == "-0" else text


def numbers(values: Sequence[float]) -> str:
    return ", ".join(number(v) for v in values)


def read_source(ctx: ExportContext) -> tuple[list[str], dict[int, list[str]]]:
    """The source table's header and its rows by CSV line number (as ingest numbered them)."""
    table = (ctx.dataset.options or {}).get("table") or DEFAULT_TABLE
    files = DatasetFiles(Path(ctx.dataset.root), ctx.pixels.roots, ctx.pixels.limits)
    try:
        path = files.path(table)
        handle = path.open(newline="", encoding="utf-8-sig")
    except Exception as exc:  # FileRefused, OSError
        raise InvalidInput(f"format: the dataset's table {table} cannot be read ({exc})") from None
    rows: dict[int, list[str]] = {}
    with handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        for row in reader:
            rows[reader.line_num] = row
    return header, rows


def _origins(ctx: ExportContext, anns: Sequence[Any]) -> dict[int, Any]:
    """Lineage id → its first version (the dataset's row, with the csv_line it came from)."""
    lineages = {a.lineage_id for a in anns if a.lineage_id is not None}
    if not lineages:
        return {}
    return {a.id: a for a in ctx.session.scalars(select(Annotation).where(Annotation.id.in_(lineages)))}


def _line(a: Any, origins: dict[int, Any]) -> int | None:
    first = origins.get(a.lineage_id) if a.lineage_id is not None else a
    value = ((first.meta if first is not None else None) or {}).get("csv_line")
    if first is None or first.source != SOURCE_DATASET or not isinstance(value, int):
        return None
    return value


def write(ctx: ExportContext) -> list[Path]:
    header, source = read_source(ctx)
    index = {name: n for n, name in enumerate(header)}
    missing = [c for c in COLUMNS if c not in index]
    if missing:
        raise InvalidInput(f"format: the dataset's table lacks column(s) {', '.join(missing)}")
    out: list[tuple[tuple[float, float, int], list[str]]] = []
    for rows in item_chunks(ctx.session, ctx.selection, (Item.id, Item.key, Item.width, Item.height)):
        ids = [r[0] for r in rows]
        anns = annotations_of(ctx.session, ids, ctx.mode, meta=True)
        origins = _origins(ctx, [a for mine in anns.values() for a in mine])
        for item_id, _key, width, height in rows:
            recists = [a for a in anns.get(item_id, []) if a.kind == "recist"]
            lines = {a.id: _line(a, origins) for a in recists}
            known = [n for n in lines.values() if n is not None and n in source]
            template = source[min(known)] if known else _slice_template(ctx, item_id, source)
            if template is None:
                continue
            first = min(known) if known else math.inf
            for a in recists:
                line = lines[a.id]
                if line is not None and line in source and a.source == SOURCE_DATASET:
                    out.append(((first, line, a.id), source[line]))
                    continue
                base = source[line] if line is not None and line in source else template
                row = _edited(list(base), index, a, width, height, added=line is None)
                out.append(((first, line if line is not None else math.inf, a.id), row))
        ctx.advance(len(rows))
    out.sort(key=lambda entry: entry[0])
    path = ctx.out / FILE_NAME
    with atomic_text(path, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(row for _, row in out)
    return [ctx.wrote(path)]


def _slice_template(ctx: ExportContext, item_id: int, source: dict[int, list[str]]) -> list[str] | None:
    """A source row of the key slice (any version of any of its lesions knows its line): for slices whose
    dataset lesions were all retired or edited."""
    for meta in ctx.session.scalars(select(Annotation.meta).where(Annotation.item_id == item_id,
                                                                  Annotation.source == SOURCE_DATASET)):
        line = (meta or {}).get("csv_line")
        if isinstance(line, int) and line in source:
            return source[line]
    return None


def _edited(row: list[str], index: dict[str, int], a: Any, width: Any, height: Any, added: bool) -> list[str]:
    geometry = a.geometry or {}
    points = recist_points(geometry)
    row[index["Measurement_coordinates"]] = numbers([v for p in points for v in p])
    row[index["Bounding_boxes"]] = numbers(recist_box(geometry))
    row[index["Lesion_diameters_Pixel_"]] = numbers(diameters(geometry))
    if a.label is not None:
        row[index["Coarse_lesion_type"]] = a.label
    if added:
        row[index["Possibly_noisy"]] = "0"
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        old = row[index["Normalized_lesion_location"]].split(",")
        z = float(old[2]) if len(old) == 3 else 0.5
        row[index["Normalized_lesion_location"]] = numbers([
            (min(xs) + max(xs)) / 2 / (width or 512), (min(ys) + max(ys)) / 2 / (height or 512), z])
    return row
