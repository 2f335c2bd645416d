"""Run Alembic migrations programmatically (`medview db upgrade`, and serve/demo for a local SQLite file)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# alembic (with mako and pygments) is imported only to migrate, or when the quick check below cannot decide:
# `is_current` runs at the start of every command, and the import alone is ~0.15 s of it
_ASSIGNMENT = re.compile(r"^(revision|down_revision|branch_labels|depends_on)\b[^=\n]*=(.*)$", re.M)


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def plain_heads() -> set[str] | None:
    """The head revisions read from the migration files' `revision = …` / `down_revision = …` lines, for a plain
    linear history (one string or None each, no branch labels or dependencies); None when a file is anything
    else, so that alembic decides. tests/unit/test_cli_imports.py checks it against alembic's own heads."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        if path.name.startswith("_"):
            continue
        found: dict[str, object] = {}
        for name, value in _ASSIGNMENT.findall(path.read_text(encoding="utf-8")):
            try:
                found[name] = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                return None
        revision, parent = found.get("revision"), found.get("down_revision", "missing")
        if not isinstance(revision, str) or not (parent is None or isinstance(parent, str)) \
                or found.get("branch_labels") is not None or found.get("depends_on") is not None:
            return None
        revisions.add(revision)
        if parent is not None:
            parents.add(parent)
    return (revisions - parents) or None


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration (so the app may start on it). The quick path — the
    version table against the files' plain heads — answers only "current"; anything else is alembic's call."""
    heads = plain_heads()
    if heads is not None:
        with engine.connect() as conn:
            if inspect(conn).has_table("alembic_version"):
                stored = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
                if stored == heads:
                    return True
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config(str(engine.url))).get_heads())
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        return set(MigrationContext.configure(conn).get_current_heads()) == heads


def ensure_schema(database_url: str, database_kind: str) -> None:
    """A local SQLite file is brought up to date here; any other database must already be (`medview db upgrade`,
    run once rather than by every process), or InvalidInput with that advice."""
    from app.db.session import make_engine
    from app.errors import InvalidInput

    engine = make_engine(database_url)
    try:
        current = database_kind == "sqlite" and _created_fresh(engine) or is_current(engine)
    finally:
        engine.dispose()
    if current:
        return
    if database_kind != "sqlite":
        raise InvalidInput(f"database {database_kind} is not at the newest schema; run `medview db upgrade` first")
    upgrade(database_url)


def _created_fresh(engine: Engine) -> bool:
    """A SQLite file with no schema yet gets the newest one in one transaction from app.db.fresh_schema's
    snapshot (proven identical to running the migrations), not through Alembic: ~0.4 s of a first ingest."""
    import sqlite3

    from sqlalchemy.exc import DBAPIError

    from app.db.fresh_schema import create_if_empty

    with engine.connect() as conn:
        try:
            return create_if_empty(conn.connection.dbapi_connection, plain_heads())
        except sqlite3.Error as exc:  # as SQLAlchemy wraps it: the commands report it in one line, no traceback
            raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc
