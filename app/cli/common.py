"""What the `medview` commands share: the engine, schema check, `--FIELD VALUE` filters, rows by name or id."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


@contextmanager
def database_file_errors(settings: Settings) -> Iterator[None]:
    """A SQLite path that cannot be a file — a file where its folder should be, a read-only disk — is one line
    naming the path (InvalidInput), not a traceback."""
    from app.db.session import safe_url

    try:
        yield
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise InvalidInput(f"database {safe_url(settings.database_url)} unavailable: "
                           f"{exc.strerror or type(exc).__name__}{where}") from None


def ensure_schema(settings: Settings) -> None:
    """The database at the newest schema (a local SQLite file is migrated here)."""
    from app.db.migrate import ensure_schema as migrate_to_head

    with database_file_errors(settings):
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
