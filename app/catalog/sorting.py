"""Sort orders of item lists and their keyset cursors (opaque, carrying the sort value).

An order is a sequence of *segments*, each a keyset range:
- `id` (default): one segment ordered by id;
- a column facet (`split`, `label`, `sex`): one segment per value, in value order, then the items without a
  value; inside a segment, by id. With the dataset's facet index (app.catalog.counts) a segment is a slice of
  an in-memory id array, so a sort by label over 1 M filtered items costs what an id page costs;
- an expression (`key`, a numeric field its adapter declares in `numeric_sorts` such as BIS5k `mask_area`, or
  `metric:MODEL_ID:NAME`): the items with a value ordered by (value, id), then the items without one by id
  ("missing last").
`-FIELD` reverses the order of values and of ids; items without a value stay last. The cursor holds the
sort, the segment, the value and the last id, so a page never depends on OFFSET; `offset=N` (a jump) is
turned into the cursor of item N-1 once.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, exists, func, null, select
from sqlalchemy.orm import Session

from app.datasets.base import NumericSort
from app.datasets.facets import COLUMN_FACETS, DERIVED_FACETS, derived_sort_expression
from app.datasets.registry import get_adapter
from app.db.models import Dataset, Item, ItemMetric, Model
from app.errors import InvalidInput

METRIC_HINT = "metric:MODEL_ID:NAME"


@dataclass(frozen=True)
class Sort:
    name: str  # without the leading "-": "id", "label", "mask_area", "metric:3:dice"
    descending: bool = False
    metric: tuple[int, str] | None = None

    @property
    def text(self) -> str:
        return ("-" if self.descending else "") + self.name

    @property
    def is_column(self) -> bool:
        """A grouped sort: one segment per value of a single-valued facet (a column, or a derived review facet:
        `edited`, and `reviewer` by each item's alphabetically first reviewer)."""
        return self.name in COLUMN_FACETS or self.name in DERIVED_FACETS

    @property
    def shows_value(self) -> bool:
        """Cards show the sort value (metric, numeric field) unless it is already on the card."""
        return self.name not in ("id", "key", "split", "label", "review_status")


DEFAULT = Sort("id")


def allowed_sorts(kind: str) -> list[str]:
    adapter = get_adapter(kind)
    columns = [f for f in (*COLUMN_FACETS, *DERIVED_FACETS) if f in adapter.facet_fields]
    return ["id", "key", *columns, *adapter.numeric_sorts, METRIC_HINT]


def numeric_expression(spec: NumericSort) -> ColumnElement[Any]:
    """The SQL value of an adapter's numeric sort field (read from the item's own row; no index: the kinds that
    declare one have ≤ 35k items): an item column, or a number in the item's JSON meta."""
    if spec.column is not None:
        return Item.__table__.c[spec.column]
    return Item.meta[spec.meta].as_float()


def parse_sort(session: Session, ds: Dataset, text: str | None) -> Sort:
    """`FIELD` or `-FIELD`; InvalidInput naming the allowed fields (and an unknown metric model)."""
    if not text:
        return DEFAULT
    descending = text.startswith("-")
    name = text[1:] if descending else text
    allowed = allowed_sorts(ds.kind)
    if name.startswith("metric:"):
        parts = name.split(":", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2]:
            raise InvalidInput(f"sort={text!r}: a metric sort is {METRIC_HINT}, e.g. metric:1:dice")
        model_id = int(parts[1])
        if session.get(Model, model_id) is None:
            raise InvalidInput(f"sort={text!r}: there is no model {model_id}")
        return Sort(name, descending, (model_id, parts[2]))
    if name not in allowed:
        raise InvalidInput(f"cannot sort {ds.kind} items by {name!r}; sort by one of {', '.join(allowed)} "
                           "(prefix - for descending)")
    return Sort(name, descending)


def sort_expression(sort: Sort, kind: str):
    """The SQL value a non-id sort orders by (metrics: the joined ItemMetric.value)."""
    if sort.metric:
        return ItemMetric.value
    if sort.name == "key":
        return Item.key
    if sort.name in DERIVED_FACETS:
        return derived_sort_expression(sort.name)
    if sort.is_column:
        return COLUMN_FACETS[sort.name]
    return numeric_expression(get_adapter(kind).numeric_sorts[sort.name])


def value_order(values, descending: bool) -> list:
    """Column-segment order: numeric-aware ascending (or reversed); None (no value) always last."""
    def key(v: str) -> tuple[int, float, str]:
        try:
            return (0, float(v), v)
        except ValueError:
            return (1, 0.0, v)

    present = sorted((v for v in values if v is not None), key=key, reverse=descending)
    return present + ([None] if None in values else [])


# -- cursors -------------------------------------------------------------------------------

def encode_cursor(sort: Sort, last_id: int, segment: str = "", value: Any = None) -> str:
    # the default keeps the id-only cursor format handed out before sorting existed
    raw = f"i:{last_id}".encode() if sort == DEFAULT else b"s:" + orjson.dumps([sort.text, segment, value, last_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort = DEFAULT) -> tuple[str, Any, int]:
    """(segment, value, last id) of a cursor made for `sort`; InvalidInput when it is not one."""
    bad = f"cursor {cursor!r} is not valid (use next_cursor from the previous page)"
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, _, body = raw.partition(b":")
        if kind == b"i":
            made_for, segment, value, last = DEFAULT.text, "", None, int(body.decode())
        elif kind == b"s":
            made_for, segment, value, last = orjson.loads(body)
            if not isinstance(last, int) or not isinstance(segment, str):
                raise ValueError
        else:
            raise ValueError
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidInput(bad) from None
    if made_for != sort.text:
        raise InvalidInput(f"cursor {cursor!r} belongs to sort={made_for}, not sort={sort.text} "
                           "(start again without a cursor)")
    return segment, value, last


# -- SQL segments (datasets without a facet index, filters it does not cover, expression sorts) ----------

def sql_segments(session: Session, base, sort: Sort, kind: str) -> list[tuple[str, Any, Any]]:
    """[(segment, group value, SELECT of (id, sort value) for that segment)] in order."""
    if sort == DEFAULT or sort.name == "id":
        return [("", None, base.with_only_columns(Item.id, Item.id))]
    expr = sort_expression(sort, kind)
    if sort.is_column:
        values = value_order(list(session.scalars(base.with_only_columns(expr).distinct())), sort.descending)
        return [("g", v, base.with_only_columns(Item.id, expr).where(expr == v if v is not None else expr.is_(None)))
                for v in values]
    if sort.metric:
        model_id, name = sort.metric
        on = and_(ItemMetric.item_id == Item.id, ItemMetric.model_id == model_id, ItemMetric.name == name)
        valued = base.with_only_columns(Item.id, ItemMetric.value).join(ItemMetric, on)
        missing = base.with_only_columns(Item.id, null()).where(~exists().where(on))
        return [("v", None, valued), ("n", None, missing)]
    return [("v", None, base.with_only_columns(Item.id, expr).where(expr.is_not(None))),
            ("n", None, base.with_only_columns(Item.id, expr).where(expr.is_(None)))]


def sql_page(session: Session, stmt, segment: str, sort: Sort, kind: str, after: tuple[Any, int] | None,
             limit: int) -> list[tuple[int, Any]]:
    """Up to `limit` (id, value) rows of one segment after (value, id)."""
    desc = sort.descending
    id_order = Item.id.desc() if desc else Item.id.asc()
    if segment != "v":  # ordered by id only
        if after is not None:
            stmt = stmt.where(Item.id < after[1] if desc else Item.id > after[1])
        return [tuple(r) for r in session.execute(stmt.order_by(id_order).limit(limit))]
    expr = sort_expression(sort, kind)
    value_order_by = expr.desc() if desc else expr.asc()
    rows: list[tuple[int, Any]] = []
    if after is not None:
        value, last = after
        same = stmt.where(expr == value, Item.id < last if desc else Item.id > last)
        rows = [tuple(r) for r in session.execute(same.order_by(id_order).limit(limit))]
        stmt = stmt.where(expr < value if desc else expr > value)
    if len(rows) < limit:
        rows += [tuple(r) for r in session.execute(stmt.order_by(value_order_by, id_order).limit(limit - len(rows)))]
    return rows


def sql_count(session: Session, stmt) -> int:
    return session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def sql_row_at(session: Session, stmt, segment: str, sort: Sort, kind: str, n: int) -> tuple[int, Any] | None:
    """The (id, value) at position n of one segment (OFFSET: used once per jump, not per page)."""
    desc = sort.descending
    id_order = Item.id.desc() if desc else Item.id.asc()
    if segment == "v":
        expr = sort_expression(sort, kind)
        stmt = stmt.order_by(expr.desc() if desc else expr.asc(), id_order)
    else:
        stmt = stmt.order_by(id_order)
    row = session.execute(stmt.offset(n).limit(1)).first()
    return tuple(row) if row else None


def metric_sorts(session: Session, dataset_id: int) -> list[tuple[str, str]]:
    """(sort value, display name) of every per-item metric some model has on this dataset: one probe item per
    model (its metric names), never a scan of item_metrics."""
    out = []
    for model_id, model_name in session.execute(select(Model.id, Model.name).order_by(Model.id)).all():
        probe = session.scalar(select(ItemMetric.item_id).join(Item, Item.id == ItemMetric.item_id)
                               .where(ItemMetric.model_id == model_id, Item.dataset_id == dataset_id).limit(1))
        if probe is None:
            continue
        names = session.scalars(select(ItemMetric.name).where(ItemMetric.item_id == probe,
                                                              ItemMetric.model_id == model_id)).all()
        out += [(f"metric:{model_id}:{name}", f"{model_name}: {name}") for name in sorted(names)]
    return out
