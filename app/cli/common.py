"""What the `medview` commands share: the engine, schema check, `--FIELD VALUE` filters, rows by name or id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from app.config import Settings
from app.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from app.db.models import Dataset, Model

MAX_LISTED_PROBLEMS = 25
NamedRow = TypeVar("NamedRow", "Dataset", "Model")


def engine_for(settings: Settings) -> Engine:
    from app.db.session import make_engine

    return make_engine(settings.database_url)


def ensure_schema(settings: Settings) -> None:
    from app.db.migrate import ensure_schema as migrate_to_head

    migrate_to_head(settings.database_url, settings.database_kind)


def field_filters(extra: Sequence[str]) -> dict[str, list[str]]:
    """`--FIELD VALUE` / `--FIELD=VALUE` pairs (repeat a field for OR) → filters."""
    filters: dict[str, list[str]] = {}
    rest = list(extra)
    while rest:
        token = rest.pop(0)
        if not token.startswith("--") or len(token) < 3:
            raise InvalidInput(f"unexpected argument {token!r}; filters are given as --FIELD VALUE")
        name, eq, value = token[2:].partition("=")
        if not eq:
            if not rest or rest[0].startswith("--"):
                raise InvalidInput(f"filter --{name} needs a value")
            value = rest.pop(0)
        filters.setdefault(name.replace("-", "_"), []).append(value)
    return filters


def by_name(session: Session, table: type[NamedRow], name: str, what: str) -> NamedRow:
    """The row with this name, else the one with this id (`--model 3`); NotFound naming what was asked for."""
    from sqlalchemy import select

    from app.errors import NotFound

    row = session.scalar(select(table).where(table.name == name))
    if row is None and name.isdigit():
        row = session.get(table, int(name))
    if row is None:
        raise NotFound(f"no {what} named {name!r}")
    return row
