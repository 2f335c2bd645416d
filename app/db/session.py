"""Engine and session factory. SQLite gets WAL, a busy timeout and foreign keys on every connection; PostgreSQL
a pre-ping on checkout, so connections that died with the server (a restart, `pg_terminate_backend`) are
replaced on the next request instead of failing it."""

from __future__ import annotations

from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

# SQLite's page cache is per connection and stays allocated while the pool keeps the connection: at 64 MB each, a
# served worker grew by ~110 MB within three rounds of bench/facets_scale.py and by the pool's size times 64 MB
# under concurrent load (issue 13). Reads are served from the facet index and the OS page cache, so 8 MB is kept;
# the bulk ingest raises its own connection to BULK_CACHE_KIB while it writes (app.datasets.ingest).
CACHE_KIB = 8192
BULK_CACHE_KIB = 65536


def unavailable_errors(url: str) -> tuple[type[Exception], ...]:
    """The errors that mean the database cannot be reached or answer now (server down or restarting, connection
    killed, pool exhausted): app.main answers these with 503, never a 500 with a stack trace. SQLite's
    OperationalError ("database is locked" past the busy timeout) is transient in the same way. psycopg's own
    error class only for a PostgreSQL URL: importing psycopg costs every SQLite command ~70 ms of start-up."""
    errors: tuple[type[Exception], ...] = (OperationalError, DisconnectionError, PoolTimeout)
    if make_url(url).get_backend_name() == "postgresql":
        try:
            import psycopg
        except ImportError:
            return errors
        errors += (psycopg.OperationalError,)
    return errors


def json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    kwargs: dict = {"json_serializer": json_dumps, "json_deserializer": orjson.loads}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # 16 KB pages for a new file (no effect on an existing one): ~10% faster bulk ingest (fewer B-tree splits
    # and WAL frames, measured on PCam's 327,680 rows) and shallower indexes at a million items
    cur.execute("PRAGMA page_size=16384")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # 64 MB page cache at most (default 2 MB): bulk ingest keeps every index's hot B-tree pages in memory
    cur.execute("PRAGMA cache_size=-8192")
    cur.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def safe_url(url: str) -> str:
    """A database URL fit for messages and logs: its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable database URL)"
