"""An export checked once (`plan_export`: the dataset, the format against its kind, the filters, a non-empty
selection — NotFound / InvalidInput naming what is wrong) and written (`write_export`) into a folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Select
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.base import DatasetAdapter
from app.datasets.bulk_tuning import cyclic_gc_paused
from app.datasets.registry import get_adapter
from app.db.models import Dataset
from app.errors import InvalidInput
from app.export import selection
from app.export.context import ExportContext
from app.export.formats import Writer, check_fit, writer_for
from app.export.params import ExportParams

if TYPE_CHECKING:
    from app.pixels import PixelStore


@dataclass(frozen=True)
class ExportPlan:
    params: ExportParams
    dataset: Dataset
    adapter: DatasetAdapter
    writer: Writer
    selection: Select[tuple[int]]
    total: int


def plan_export(session: Session, params: ExportParams, dataset: Dataset | None = None) -> ExportPlan:
    """The export the parameters ask for: 404 for a missing dataset; 400 for an unknown format, one that does not
    fit the dataset's kind, a filter field the dataset lacks, or a selection with no item."""
    if dataset is None:
        from app.catalog.queries import get_dataset

        dataset = get_dataset(session, params.dataset_id)
    adapter = get_adapter(dataset.kind)
    writer = writer_for(adapter, params.format)
    ids = selection.selected_ids(dataset, params.filters)
    total = selection.count(session, ids)
    if total == 0:
        shown = ", ".join(f"{k}={','.join(v)}" for k, v in params.filters.items()) or "none"
        raise InvalidInput(f"filters: no item of dataset {dataset.name!r} matches (filters: {shown}); "
                           "nothing to export")
    check_fit(session, adapter, params.format, ids, params.annotations)
    return ExportPlan(params, dataset, adapter, writer, ids, total)


def write_export(session: Session, settings: Settings, plan: ExportPlan, out: Path, *,
                 pixels: PixelStore | None = None, advance: Callable[[int], None] | None = None) -> list[Path]:
    """Write the plan's files into the folder `out` (created); each appears complete or not at all. Returns the
    files written."""
    out.mkdir(parents=True, exist_ok=True)
    ctx = ExportContext(session, settings, plan.params, plan.dataset, plan.adapter, plan.selection, plan.total,
                        out, pixels)
    if advance is not None:
        ctx.advance = advance
    with cyclic_gc_paused():
        return plan.writer(ctx)
