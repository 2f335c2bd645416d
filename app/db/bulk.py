"""Bulk inserts straight to the driver's executemany, for the hot write paths (ingest, prediction jobs).

SQLAlchemy's per-row parameter processing (and the ORM's bulk-insert bookkeeping) cost as much as the
database's own work on these paths (measured on DeepLesion's and PCam's full tables); here rows are plain
tuples with JSON already serialised, and columns holding one value in every row become SQL literals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Rows:
    """Rows to insert, with the columns that hold one value in every row (NULL, the dataset id, the kind,
    the timestamp…) taken out of the rows: PCam's item rows bind 8 values instead of 22, which is what
    `executemany` spends its time on (binding holds the GIL; the B-tree work does not)."""

    columns: tuple[str, ...]
    rows: list[tuple]
    constants: dict[str, Any]

    @classmethod
    def of(cls, columns: Sequence[str], rows: list[tuple], strings_inline: bool) -> Rows:
        if len(rows) < 2:  # a lone row would fold into literals only
            return cls(tuple(columns), rows, {})
        first = rows[0]
        by_column = list(zip(*rows, strict=True))  # transposed in C: a set per column finds constants cheaply
        constant = [i for i, v in enumerate(first)
                    if (v is None or type(v) is int or (strings_inline and type(v) is str))
                    and len(set(by_column[i])) == 1]
        if not constant:
            return cls(tuple(columns), rows, {})
        keep = [i for i in range(len(columns)) if i not in set(constant)]
        return cls(tuple(columns[i] for i in keep), list(zip(*(by_column[i] for i in keep), strict=True)),
                   {columns[i]: first[i] for i in constant})

    @classmethod
    def of_columns(cls, columns: Sequence[str], lists: Sequence[list], strings_inline: bool) -> Rows:
        """The same from one list per column, as a driver builds them without a Python call per row (one
        comprehension per column): constant columns found by `list.count` in C, the rest zipped into tuples."""
        n = len(lists[0]) if lists else 0
        keep: list[int] = []
        constants: dict[str, Any] = {}
        for i, values in enumerate(lists):
            first = values[0] if n else None
            if n > 1 and (first is None or type(first) is int or (strings_inline and type(first) is str)) \
                    and values.count(first) == n:
                constants[columns[i]] = first
            else:
                keep.append(i)
        return cls(tuple(columns[i] for i in keep), list(zip(*(lists[i] for i in keep), strict=True)), constants)


def _literal(value: Any) -> str:
    """An SQL literal for a constant column (None, int, or — on SQLite only — str)."""
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def insert_rows(conn, table: str, columns: Sequence[str], rows: list[tuple],
                constants: dict[str, Any] | None = None) -> None:
    """Rows of plain values (JSON already serialised) straight to the driver's executemany: facets and
    annotations are most of an ingest's rows, and SQLAlchemy's per-row parameter processing doubled
    their cost (measured on the full DeepLesion table). `constants` are written as literals (NULLs left out)."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    quote = conn.dialect.identifier_preparer.quote  # "window" is reserved in PostgreSQL
    fixed = {c: v for c, v in (constants or {}).items() if v is not None}
    names = [*columns, *fixed]
    values = [mark] * len(columns) + [_literal(v) for v in fixed.values()]
    sql = f"INSERT INTO {quote(table)} ({', '.join(map(quote, names))}) VALUES ({', '.join(values)})"
    conn.exec_driver_sql(sql, rows)
