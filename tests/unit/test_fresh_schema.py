"""A fresh SQLite file made from app.db.fresh_schema's snapshot is the database the migrations make: same
schema text for every table, column, type, index and constraint, same rows (alembic_version), same pragmas;
the snapshot is current; it is used only on an empty file and only while it matches the migrations."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from app.db import fresh_schema
from app.db.fresh_schema import SNAPSHOT, create_if_empty, read_snapshot, render_snapshot
from app.db.migrate import ensure_schema, is_current, plain_heads, upgrade
from app.db.session import make_engine


def _elements(create_table: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """A CREATE TABLE split at its top-level commas: (head, column definitions in order, table constraints
    sorted). Alembic's batch mode rebuilds a table with its constraints in set order, which varies from one
    run of the migrations to the next (string hashing), so that order is not part of what a schema is."""
    head, _, body = create_table.partition("(")
    body = body[:body.rindex(")")]
    parts, depth, quote, current = [], 0, "", []
    for ch in body:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    keywords = ("CONSTRAINT", "PRIMARY KEY", "UNIQUE", "FOREIGN KEY", "CHECK")
    constraints = tuple(sorted(p for p in parts if p.upper().startswith(keywords)))
    return head.strip(), tuple(p for p in parts if not p.upper().startswith(keywords)), constraints


def _describe(path: Path) -> dict[str, object]:
    """Everything a schema is, read back from the file: every table's CREATE (constraints as a set), columns
    (name, type, NOT NULL, default, primary key, in order), foreign keys, indexes (named ones by their SQL, the
    ones SQLite makes for UNIQUE / PRIMARY KEY by their columns), triggers and views, every row, and the pragmas
    a database keeps."""
    conn = sqlite3.connect(path)
    try:
        master = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        tables = sorted(name for kind, name, _, _ in master if kind == "table")
        creates = {name: _elements(sql) for kind, name, _, sql in master if kind == "table"}
        others = sorted((kind, name, table, sql) for kind, name, table, sql in master
                        if kind != "table" and sql is not None)
        columns = {t: conn.execute(f'PRAGMA table_xinfo("{t}")').fetchall() for t in tables}
        foreign = {}
        for t in tables:
            groups: dict[int, list[tuple]] = {}
            for fk_id, seq, ref, src, dst, on_update, on_delete, match in conn.execute(
                    f'PRAGMA foreign_key_list("{t}")'):
                groups.setdefault(fk_id, []).append((seq, ref, src, dst, on_update, on_delete, match))
            foreign[t] = sorted(tuple(sorted(g)) for g in groups.values())
        indexes = {}
        for t in tables:
            found = []
            for _, name, unique, origin, partial in conn.execute(f'PRAGMA index_list("{t}")'):
                cols = tuple(r[2] for r in conn.execute(f'PRAGMA index_xinfo("{name}")') if r[5])
                found.append((name if origin == "c" else origin, unique, partial, cols))
            indexes[t] = sorted(found)
        rows = sorted(line for line in conn.iterdump() if line.startswith("INSERT"))
        pragmas = {p: conn.execute(f"PRAGMA {p}").fetchone()[0]
                   for p in ("page_size", "journal_mode", "user_version", "application_id", "auto_vacuum")}
        return {"tables": tables, "creates": creates, "others": others, "columns": columns, "foreign": foreign,
                "indexes": indexes, "rows": rows, "pragmas": pragmas}
    finally:
        conn.close()


def test_the_snapshot_matches_todays_migration_files() -> None:
    assert read_snapshot(plain_heads()) is not None, \
        "app/db/sqlite_schema.sql is stale: run `python -m app.db.fresh_schema`"
    assert SNAPSHOT.read_text(encoding="utf-8").count("CREATE TABLE") == render_snapshot().count("CREATE TABLE")


def test_a_fresh_file_from_the_snapshot_equals_a_migrated_one(tmp_path: Path) -> None:
    migrated, fresh = tmp_path / "migrated.db", tmp_path / "fresh.db"
    upgrade(f"sqlite:///{migrated}")
    engine = make_engine(f"sqlite:///{fresh}")  # the app's own connection pragmas (page size, WAL) on both
    with engine.connect() as conn:
        assert create_if_empty(conn.connection.dbapi_connection, plain_heads())
    assert is_current(engine)
    engine.dispose()
    a, b = _describe(migrated), _describe(fresh)
    assert len(a["tables"]) > 15 and any("alembic_version" in line for line in a["rows"])
    assert sum(len(i) for i in a["indexes"].values()) > 30
    for part in a:
        assert a[part] == b[part], f"{part} differs between migrated and snapshot databases"


def test_ensure_schema_takes_the_snapshot_path_and_leaves_a_usable_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    ensure_schema(url, "sqlite")
    ensure_schema(url, "sqlite")  # the second call finds it current
    conn = sqlite3.connect(tmp_path / "cli.db")
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(next(iter(plain_heads())),)]
    conn.execute("INSERT INTO datasets (name, kind, root, status, item_count, annotation_count, options, "
                 "facet_counts, ingest_generation, problems, created_at, updated_at) VALUES ('d', 'pcam', '/d', "
                 "'ready', 0, 0, '{}', '{}', 1, '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
    conn.commit()
    conn.close()


def test_a_file_with_any_schema_is_left_to_alembic(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x INTEGER)")
    conn.commit()
    assert not create_if_empty(conn, plain_heads())
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]
    conn.close()


def test_a_snapshot_that_does_not_match_the_migrations_is_not_used(tmp_path: Path, monkeypatch) -> None:
    assert read_snapshot(plain_heads()) is not None
    assert read_snapshot({"0008"}) is None  # a head the snapshot was not made at
    monkeypatch.setattr(fresh_schema, "migrations_hash", lambda: "0" * 64)  # a migration file edited since
    assert read_snapshot(plain_heads()) is None
    conn = sqlite3.connect(tmp_path / "empty.db")
    assert not create_if_empty(conn, plain_heads())
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()
    monkeypatch.undo()
    monkeypatch.setattr(fresh_schema, "SNAPSHOT", tmp_path / "missing.sql")  # an install without it
    assert read_snapshot(plain_heads()) is None


def test_two_processes_creating_the_same_fresh_file_make_one_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def create() -> None:
        start.wait()
        try:
            ensure_schema(url, "sqlite")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = sqlite3.connect(tmp_path / "race.db")
    assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
    conn.close()


def test_a_failure_part_way_leaves_the_file_empty(tmp_path: Path, monkeypatch) -> None:
    snapshot = read_snapshot(plain_heads())
    assert snapshot is not None
    head, statements = snapshot
    broken = [*statements[:5], "CREATE TABLE datasets (x INTEGER)", *statements[5:]]  # a clash, part way
    monkeypatch.setattr(fresh_schema, "read_snapshot", lambda heads: (head, broken))
    conn = sqlite3.connect(tmp_path / "half.db")
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        create_if_empty(conn, plain_heads())
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()


def test_a_command_on_a_made_database_does_not_wait_for_an_ingests_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    ensure_schema(f"sqlite:///{path}", "sqlite")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a long ingest transaction holds the write lock
    try:
        other = sqlite3.connect(path, timeout=0.2)  # waiting for the lock would raise "database is locked"
        assert not create_if_empty(other, plain_heads())
        other.close()
        ensure_schema(f"sqlite:///{path}", "sqlite")
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_driver_error_reaches_the_commands_as_sqlalchemy_reports_it(tmp_path: Path, monkeypatch) -> None:
    # the commands print SQLAlchemy's OperationalError as one line (app.cli.main); a bare sqlite3 error would be
    # a traceback
    from sqlalchemy.exc import OperationalError

    snapshot = read_snapshot(plain_heads())
    assert snapshot is not None
    monkeypatch.setattr(fresh_schema, "read_snapshot", lambda heads: (snapshot[0], ["CREATE TABLE (broken"]))
    with pytest.raises(OperationalError, match="syntax error"):
        ensure_schema(f"sqlite:///{tmp_path / 'x.db'}", "sqlite")
