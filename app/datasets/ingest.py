"""The ingest driver: scan a folder with its adapter, then write it in batches, idempotently.

Guarantees (ARCHITECTURE.md, "Errors, safety"):
- the whole folder is scanned and validated before anything is written, so a fatal problem
  (missing column, nothing readable) leaves the database untouched;
- items are written one batch per transaction and the dataset is `indexing` until the last batch
  and the counts are written, then `ready`; a crash leaves `indexing`, and re-running resumes:
  items whose source fingerprint is unchanged are skipped, changed ones are updated in place
  (same id, content_version + 1), vanished ones are removed;
- every bad row or file becomes a `Problem` in the report; good items are still indexed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import JSON, BindParameter, Engine, bindparam, delete, func, insert, select, update

from app.config import Settings
from app.datasets.base import IngestError, ItemRecord, LazyItems, Problem, ProgressFn, ScanResult, no_progress
from app.datasets.bulk_tuning import checkpoints_deferred, cyclic_gc_paused
from app.datasets.columns import ITEM_COLUMNS, ItemColumns, batches, item_rows, record_rows, sort_out
from app.datasets.facets import COLUMN_FACETS, facet_counts
from app.datasets.registry import detect_kind, get_adapter
from app.datasets.roots import DataRoots, DatasetFiles
from app.db.base import utcnow
from app.db.bulk import Rows, insert_rows
from app.db.models import Annotation, Dataset, Item, ItemFacet, Patient, Series, Study
from app.db.session import json_dumps as dumps
from app.errors import Conflict, InvalidInput

MAX_STORED_PROBLEMS = 1000
_dumps = orjson.dumps  # `_dumps(v).decode()` is app.db.session.json_dumps(v), without a call per value


@dataclass
class IngestReport:
    dataset_id: int
    name: str
    kind: str
    root: str
    items: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    annotations: int = 0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def problem_count(self) -> str:
        """"no problems", "1 problem", "3 problems": the count as a console line says it."""
        n = len(self.problems)
        return "no problems" if n == 0 else f"{n} problem{'' if n == 1 else 's'}"


def resolve_root(path: str | Path, settings: Settings) -> Path:
    """An existing folder inside one of the configured data roots, or a clear InvalidInput."""
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise InvalidInput(f"{path}: no such folder")
    if not root.is_dir():
        raise InvalidInput(f"{path}: not a folder (give the dataset's root folder)")
    allowed = settings.allowed_roots
    if not DataRoots(allowed).contains(root):
        raise InvalidInput(f"{root} is outside the data roots ({':'.join(map(str, allowed))}); "
                           "add it to MEDVIEW_DATA_ROOTS")
    return root


def ingest_path(engine: Engine, settings: Settings, path: str | Path, *, kind: str | None = None,
                name: str | None = None, progress: ProgressFn = no_progress) -> IngestReport:
    started = time.perf_counter()
    root = resolve_root(path, settings)
    kind = kind or detect_kind(root)
    with cyclic_gc_paused():  # the scan is dropped (on _scan_and_write's return) before the collector resumes
        report = _scan_and_write(engine, settings, root, kind, name or root.name, progress)
    report.seconds = time.perf_counter() - started
    return report


def _scan_and_write(engine: Engine, settings: Settings, root: Path, kind: str, name: str,
                    progress: ProgressFn) -> IngestReport:
    adapter = get_adapter(kind)
    work_dir = settings.data_dir.resolve() / "work" / kind
    files = DatasetFiles.for_ingest(root, settings, work_dir)  # every file the adapter opens is checked here
    try:
        scan = adapter.scan(root, progress, work_dir=work_dir, files=files)  # IngestError: nothing written
    except IngestError as exc:
        exc.problems = relative_problems(exc.problems, root, work_dir)
        raise
    scan.problems = relative_problems(scan.problems, root, work_dir)
    dataset_id, ds_name = _begin(engine, root, kind, name, scan)
    report = IngestReport(dataset_id, ds_name, kind, str(root), problems=list(scan.problems))
    try:
        _write(engine, dataset_id, scan, report, settings.ingest_batch, progress)
        _finish(engine, dataset_id, adapter.facet_fields, adapter.link_facets, report)
    except Exception as exc:
        with engine.begin() as conn:
            conn.execute(update(Dataset).where(Dataset.id == dataset_id)
                         .values(status="failed", error=f"ingest stopped: {exc}"))
        raise
    return report


def relative_problems(problems: list[Problem], root: Path, work_dir: Path) -> list[Problem]:
    """The problems with any absolute server path (the dataset root, the work folder; an exception's text may
    carry one) cut back to what the user knows: a path relative to the dataset root, a work copy's file name."""
    prefixes = sorted({f"{p}/" for p in (root, root.resolve(), work_dir, work_dir.resolve())}, key=len, reverse=True)
    def scrub(text: str) -> str:
        for prefix in prefixes:
            text = text.replace(prefix, "")
        return text

    out = []
    for p in problems:
        if any(prefix in p.message or prefix in p.file or prefix in (p.item or "") for prefix in prefixes):
            p = Problem(scrub(p.file), scrub(p.message), p.row, p.field, scrub(p.item) if p.item else p.item)
        out.append(p)
    return out


def _begin(engine: Engine, root: Path, kind: str, name: str, scan: ScanResult) -> tuple[int, str]:
    with engine.begin() as conn:
        existing = conn.execute(select(Dataset.id, Dataset.name, Dataset.kind)
                                .where(Dataset.root == str(root))).first()
        clash = conn.execute(select(Dataset.root).where(Dataset.name == name)).scalar()
        if existing is None:
            if clash is not None:
                raise Conflict(f"a dataset named {name!r} already exists (at {clash}); pass --name")
            key = conn.execute(insert(Dataset).values(
                name=name, kind=kind, root=str(root), status="indexing", options=scan.options,
                facet_counts={}, problems=[], item_count=0, annotation_count=0, ingest_generation=1,
                created_at=utcnow(), updated_at=utcnow())).inserted_primary_key
            assert key is not None  # a single-row insert() always reports its primary key
            return key[0], name
        if existing.kind != kind:
            raise Conflict(f"{root} is already indexed as {existing.kind}, not {kind}")
        if clash is not None and clash != str(root):
            raise Conflict(f"a dataset named {name!r} already exists (at {clash}); pass --name")
        conn.execute(update(Dataset).where(Dataset.id == existing.id).values(
            name=name, status="indexing", options=scan.options, error=None,
            ingest_generation=Dataset.ingest_generation + 1, updated_at=utcnow()))
        return existing.id, name


def _upsert_ids(conn, model, dataset_id: int, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert the rows whose external_id is new; return external_id → id for all of them. Plain tuples through
    `insert_rows` (JSON columns serialised here as SQLAlchemy would, None as 'null'): DeepLesion has 26k
    patients, studies and series, and SQLAlchemy's per-row parameter processing was a measurable part of them."""
    known = dict(conn.execute(select(model.external_id, model.id).where(model.dataset_id == dataset_id)).all())
    fresh = [r for r in rows if r["external_id"] not in known]
    if fresh:
        columns = list(fresh[0])
        as_json = [isinstance(model.__table__.c[c].type, JSON) for c in columns]
        lists = [[dataset_id] * len(fresh), *([dumps(r[c]) for r in fresh] if j else [r[c] for r in fresh]
                                              for c, j in zip(columns, as_json, strict=True))]
        values = list(zip(*lists, strict=True))  # built a column at a time: no generator per row
        for chunk in _chunks(values, 5000):
            insert_rows(conn, model.__tablename__, ("dataset_id", *columns), list(chunk))
    if fresh:
        known = dict(conn.execute(select(model.external_id, model.id)
                                  .where(model.dataset_id == dataset_id)).all())
    return known


def _refresh_studies(conn, dataset_id: int, rows: list[dict[str, Any]]) -> None:
    """A re-ingest corrects the order and age of studies already indexed (e.g. a DICOM "000Y" age once read as 0)."""
    known = {e: (o, a) for e, o, a in conn.execute(select(Study.external_id, Study.study_order, Study.age)
                                                   .where(Study.dataset_id == dataset_id))}
    for r in rows:
        if known.get(r["external_id"], (r["study_order"], r["age"])) != (r["study_order"], r["age"]):
            conn.execute(update(Study).where(Study.dataset_id == dataset_id, Study.external_id == r["external_id"])
                         .values(study_order=r["study_order"], age=r["age"]))


def _write(engine: Engine, dataset_id: int, scan: ScanResult, report: IngestReport, batch: int,
           progress: ProgressFn) -> None:
    with engine.begin() as conn:
        patients = _upsert_ids(conn, Patient, dataset_id,
                               [{"external_id": p.external_id, "sex": p.sex} for p in scan.patients])
        study_rows = [{"external_id": s.external_id, "patient_id": patients[s.patient], "study_order": s.order,
                       "age": s.age} for s in scan.studies]
        studies = _upsert_ids(conn, Study, dataset_id, study_rows)
        _refresh_studies(conn, dataset_id, study_rows)
        series = _upsert_ids(conn, Series, dataset_id, [
            {"external_id": s.external_id, "study_id": studies[s.study] if s.study else None, "meta": s.meta}
            for s in scan.series])
        existing = {key: (item_id, fp) for key, item_id, fp in conn.execute(
            select(Item.key, Item.id, Item.fingerprint).where(Item.dataset_id == dataset_id))}
    links = (patients, studies, series)
    seen: set[str] = set()
    total = len(scan.items)
    now = utcnow().isoformat(sep=" ")  # formatted once: the driver's per-row datetime adapter was measurable
    sqlite = engine.dialect.name == "sqlite"

    with engine.connect() as conn, checkpoints_deferred(conn):
        for n_done, chunk in _batched_items(scan.items, batch):
            if isinstance(chunk, ItemColumns):
                _write_columns(conn, dataset_id, chunk, existing, seen, report, links, now, sqlite)
                progress("writing items", n_done, total)
                continue
            if existing:
                todo_new, todo_changed = _sort_out(chunk, existing, seen, report)
            else:  # a first ingest: every record is new, nothing can vanish
                todo_new, todo_changed = chunk, []
            if todo_new or todo_changed:
                rows = record_rows(dataset_id, todo_new, links, now, sqlite)
                with conn.begin():
                    _write_batch(conn, dataset_id, todo_new, rows, todo_changed, links, now, sqlite)
            report.added += len(todo_new)
            report.updated += len(todo_changed)
            progress("writing items", n_done, total)
    vanished = [item_id for key, (item_id, _) in existing.items() if key not in seen]
    with engine.begin() as conn:
        for chunk_ids in _chunks(vanished, 5000):
            conn.execute(delete(ItemFacet).where(ItemFacet.item_id.in_(chunk_ids)))
            conn.execute(delete(Annotation).where(Annotation.item_id.in_(chunk_ids)))
            conn.execute(delete(Item).where(Item.id.in_(chunk_ids)))
    report.removed = len(vanished)


def _write_columns(conn, dataset_id: int, block: ItemColumns, existing: dict[str, tuple[int, str]], seen: set[str],
                   report: IngestReport, links: tuple[dict[str, int], ...], now: str, sqlite: bool) -> None:
    """One batch given as columns (`app.datasets.columns`): new items bound straight from the lists; changed ones
    (a re-ingest) as records through `_write_batch`."""
    changed: list[tuple[int, ItemRecord]] = []
    if existing:
        block, changed, unchanged = sort_out(block, existing, seen)
        report.unchanged += unchanged
    fixed = {"dataset_id": dataset_id, "sex": None, "age": None, "spacing": None, "window": None,
             "patient_id": None, "study_id": None, "created_at": now, "content_version": 1,
             "review_status": "unreviewed"}
    with conn.begin():
        if block.count:
            columns, rows, constants = item_rows(block, ITEM_COLUMNS, fixed, links[2].get, sqlite)
            insert_rows(conn, Item.__tablename__, columns, rows, constants)  # no annotation or tag rows to link
        if changed:
            _write_batch(conn, dataset_id, [], Rows(ITEM_COLUMNS, [], {}), changed, links, now, sqlite)
    report.added += block.count
    report.updated += len(changed)


def _sort_out(chunk: list[ItemRecord], existing: dict[str, tuple[int, str]], seen: set[str],
              report: IngestReport) -> tuple[list[ItemRecord], list[tuple[int, ItemRecord]]]:
    """A re-ingest's batch split into new records and changed ones (with their item ids); unchanged are counted."""
    new: list[ItemRecord] = []
    changed: list[tuple[int, ItemRecord]] = []
    for rec in chunk:
        seen.add(rec.key)
        old = existing.get(rec.key)
        if old is None:
            new.append(rec)
        elif old[1] != rec.fingerprint:
            changed.append((old[0], rec))
        else:
            report.unchanged += 1
    return new, changed


def _item_values(dataset_id: int, rec: ItemRecord, links: tuple[dict[str, int], ...]) -> dict[str, Any]:
    patients, studies, series = links
    return {
        "dataset_id": dataset_id, "key": rec.key, "kind": rec.kind, "split": rec.split, "label": rec.label,
        "sex": rec.sex, "age": rec.age, "width": rec.width, "height": rec.height, "depth": rec.depth,
        "spacing": rec.spacing, "window": rec.window, "location": rec.location,
        "location_index": rec.location_index, "meta": rec.meta, "fingerprint": rec.fingerprint,
        "patient_id": patients.get(rec.patient) if rec.patient else None,
        "study_id": studies.get(rec.study) if rec.study else None,
        "series_id": series.get(rec.series) if rec.series else None,
    }


def _write_batch(conn, dataset_id: int, new: list[ItemRecord], new_rows: Rows,
                 changed: list[tuple[int, ItemRecord]], links: tuple[dict[str, int], ...], now: str,
                 strings_inline: bool) -> None:
    """One batch: `new_rows` are the `record_rows` of `new`, built by the caller. Annotation and facet rows bind
    only what varies; the dataset id, source, version (and on SQLite the timestamp) are SQL literals."""
    ids: list[tuple[int, ItemRecord]] = list(changed)
    if new:
        # Plain executemany, then one SELECT for the new ids: RETURNING through SQLAlchemy cost 3× the insert.
        insert_rows(conn, Item.__tablename__, new_rows.columns, new_rows.rows, new_rows.constants)
        ids += list(zip(_new_item_ids(conn, dataset_id, [r.key for r in new]), new, strict=True))
    if changed:
        changed_ids = [i for i, _ in changed]
        conn.execute(delete(ItemFacet).where(ItemFacet.item_id.in_(changed_ids)))
        conn.execute(delete(Annotation).where(Annotation.item_id.in_(changed_ids),
                                              Annotation.source == "dataset"))
        values: dict[str, BindParameter[Any]] = {
            c: bindparam(c) for c in _item_values(dataset_id, changed[0][1], links)}
        stmt = (update(Item).where(Item.id == bindparam("_id"))
                .values(**values, content_version=Item.content_version + 1))
        conn.execute(stmt, [{**_item_values(dataset_id, r, links), "_id": i} for i, r in changed])
    fixed: dict[str, Any] = {"dataset_id": dataset_id, "source": "dataset", "version": 1}
    columns: tuple[str, ...] = ("item_id", "kind", "label", "geometry", "meta", "slice_index")
    annotations: list[tuple[Any, ...]]
    if strings_inline:
        fixed["created_at"] = now
        annotations = [(item_id, a.kind, a.label, _dumps(a.geometry).decode(), _dumps(a.meta).decode(),
                        a.slice_index) for item_id, rec in ids for a in rec.annotations]
    else:  # a quoted literal is not bound to PostgreSQL's timestamp type: bind it per row
        columns += ("created_at",)
        annotations = [(item_id, a.kind, a.label, _dumps(a.geometry).decode(), _dumps(a.meta).decode(),
                        a.slice_index, now) for item_id, rec in ids for a in rec.annotations]
    if annotations:
        insert_rows(conn, Annotation.__tablename__, columns, annotations, fixed)
    facets = [(item_id, f, v)
              for item_id, rec in ids for f, values in rec.facets.items() if f not in COLUMN_FACETS
              for v in (values if len(values) == 1 else dict.fromkeys(values))]  # most facets hold one value
    if facets:
        insert_rows(conn, ItemFacet.__tablename__, ("item_id", "field", "value"), facets, {"dataset_id": dataset_id})


def _new_item_ids(conn, dataset_id: int, new: list[str]) -> list[int]:
    """Ids of the rows just inserted, in order. SQLite gives one writer's executemany consecutive rowids
    ending at last_insert_rowid(), which the first and last keys confirm; otherwise (PostgreSQL, or any
    doubt) look them up by key."""
    if conn.dialect.name == "sqlite":
        last = conn.exec_driver_sql("SELECT last_insert_rowid()").scalar()
        first = last - len(new) + 1
        ends = dict(conn.execute(select(Item.id, Item.key).where(Item.id.in_([first, last]))).all())
        if ends.get(first) == new[0] and ends.get(last) == new[-1]:
            return list(range(first, last + 1))
    found: dict[str, int] = {}
    for keys in _chunks(new, 5000):
        found.update(conn.execute(select(Item.key, Item.id).where(Item.dataset_id == dataset_id,
                                                                  Item.key.in_(keys))).all())
    return [found[k] for k in new]


def _finish(engine: Engine, dataset_id: int, facet_fields: Sequence[str], links: Mapping[str, str],
            report: IngestReport) -> None:
    with engine.begin() as conn:
        items = conn.execute(select(func.count()).select_from(Item).where(Item.dataset_id == dataset_id)).scalar_one()
        annotations = conn.execute(select(func.count()).select_from(Annotation)
                                   .where(Annotation.dataset_id == dataset_id)).scalar_one()
        counts = facet_counts(conn, dataset_id, facet_fields, links)
        conn.execute(update(Dataset).where(Dataset.id == dataset_id).values(
            status="ready", item_count=items, annotation_count=annotations, facet_counts=counts,
            problems=[p.as_dict() for p in report.problems[:MAX_STORED_PROBLEMS]], error=None,
            updated_at=utcnow()))
    if engine.dialect.name == "postgresql":
        # Fresh planner statistics for what the ingest wrote (~0.3 s). Without them PostgreSQL plans from its
        # empty-table guess until autovacuum runs (minutes later; never where it is off): bench/load.py saw one
        # filtered, age-sorted grid page run for over a minute on 32k items (a nested loop for "1 row").
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE items, item_facets, annotations, patients, studies, series")
    report.items, report.annotations = items, annotations


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def _batched_items(items: Iterable[ItemRecord], size: int) -> Iterator[tuple[int, list[ItemRecord] | ItemColumns]]:
    """(items done, batch): lists of records, or a columns part of `LazyItems` sliced into `ItemColumns`."""
    chunk: list[ItemRecord] = []
    done = 0
    for part in items.parts() if isinstance(items, LazyItems) else [items]:
        if isinstance(part, ItemColumns):
            for block in batches(part, size):
                done += block.count
                yield done, block
            continue
        for rec in part:
            chunk.append(rec)
            if len(chunk) >= size:
                done += len(chunk)
                yield done, chunk
                chunk = []
    if chunk:
        yield done + len(chunk), chunk


__all__ = ["IngestError", "IngestReport", "ingest_path", "resolve_root"]
