"""A fresh SQLite file created at the newest schema in one transaction, from a snapshot of what the migrations
build (unit: db; used by app.db.migrate.ensure_schema).

Why: the first `medview ingest` into a new local database ran Alembic's nine migrations (with their batch-mode
table copies) and imported alembic, mako and the migration scripts: ~0.4 s of CPU, 1–2 s of wall on a busy
host, for a command whose floor is a few seconds (issue 13). `sqlite_schema.sql` holds the `sql` of every
`sqlite_master` row that `alembic upgrade head` leaves in an empty SQLite file, in creation order, headed by the
head revision and a hash of the migration files. It is used only when both still match (so a new or edited
migration falls back to Alembic until the snapshot is rewritten) and only on a file with no schema at all;
tests/unit/test_fresh_schema.py proves a database made from it identical to a migrated one (`iterdump`, which
covers every table, column, type, index, constraint and row) and that the snapshot is current. PostgreSQL is
never migrated implicitly (`medview db upgrade`), so this path is SQLite's alone.

Regenerate after adding a migration: `python -m app.db.fresh_schema`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("sqlite_schema.sql")
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
_HEAD, _HASH = "-- head: ", "-- migrations sha256: "


def migrations_hash() -> str:
    """sha256 over the migration scripts (names and bytes) and env.py: what decides the schema they build."""
    digest = hashlib.sha256()
    for path in [MIGRATIONS_DIR / "env.py", *sorted((MIGRATIONS_DIR / "versions").glob("*.py"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def migrated_statements(database_path: Path) -> list[str]:
    """The schema statements of a migrated SQLite file, in creation order (its internal autoindexes, which have
    no SQL, and sqlite_sequence, which SQLite makes itself, left out)."""
    with sqlite3.connect(database_path) as conn:
        rows = conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'sqlite_sequence' "
                            "ORDER BY rowid").fetchall()
    conn.close()
    return [r[0] for r in rows]


def render_snapshot() -> str:
    """The snapshot text: Alembic run from empty into a temporary SQLite file, its schema read back."""
    from app.db.migrate import plain_heads, upgrade

    heads = plain_heads()
    if heads is None or len(heads) != 1:
        raise RuntimeError(f"a snapshot needs one plain head revision, not {heads}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.db"
        upgrade(f"sqlite:///{path}")
        statements = migrated_statements(path)
    if any(";\n" in s for s in statements):  # the separator read_snapshot splits on
        raise RuntimeError("a schema statement contains ';\\n': change the snapshot's separator")
    body = "".join(f"{s};\n" for s in statements)
    return f"{_HEAD}{next(iter(heads))}\n{_HASH}{migrations_hash()}\n{body}"


def read_snapshot(heads: set[str] | None) -> tuple[str, list[str]] | None:
    """(head revision, statements) when the snapshot matches these heads and today's migration files; else None."""
    try:
        text, current = SNAPSHOT.read_text(encoding="utf-8"), migrations_hash()
    except OSError:  # an install without the snapshot or the migration files: Alembic decides
        return None
    head_line, hash_line, body = text.split("\n", 2) if text.count("\n") >= 2 else ("", "", "")
    head = head_line.removeprefix(_HEAD)
    if not head_line.startswith(_HEAD) or heads != {head} or hash_line != f"{_HASH}{current}":
        return None
    return head, [s for s in body.split(";\n") if s.strip()]


def _has_schema(dbapi_conn: Any) -> bool:
    return bool(dbapi_conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])


def create_if_empty(dbapi_conn: Any, heads: set[str] | None) -> bool:
    """Create the newest schema on this raw sqlite3 connection when its file has no schema: one transaction that
    holds SQLite's write lock from the emptiness check to the commit, so a concurrent process waits and then finds
    the tables; a crash leaves the file empty. False (nothing done) when the file has any schema or the snapshot
    does not match the migrations. A file with a schema is recognised by a plain read first, so a command starting
    while an ingest holds the write lock does not wait for it."""
    if _has_schema(dbapi_conn):
        return False
    snapshot = read_snapshot(heads)
    if snapshot is None:
        return False
    head, statements = snapshot
    dbapi_conn.execute("BEGIN IMMEDIATE")
    try:
        if _has_schema(dbapi_conn):  # another process made it meanwhile
            dbapi_conn.execute("ROLLBACK")
            return False
        for statement in statements:
            dbapi_conn.execute(statement)
        dbapi_conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))
        dbapi_conn.execute("COMMIT")
    except BaseException:
        dbapi_conn.execute("ROLLBACK")
        raise
    return True


if __name__ == "__main__":
    SNAPSHOT.write_text(render_snapshot(), encoding="utf-8")
    sys.stderr.write(f"wrote {SNAPSHOT}\n")
