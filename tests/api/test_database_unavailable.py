"""A database that cannot be reached mid-run answers 503 `{"detail": "database unavailable …"}` (no stack trace,
to the client or the log), and the app recovers by itself when it is back: on PostgreSQL the pool's pre-ping
replaces connections the server killed (a restart, `pg_terminate_backend`) instead of failing a request."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.db.session import make_engine, make_session_factory


def unreachable_url(database_url: str, tmp_path: Path) -> str:
    """A database of the same backend that cannot be opened: a closed port, or a directory as the SQLite file."""
    if database_url.startswith("postgresql"):
        return make_url(database_url).set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
    folder = tmp_path / "not-a-database"
    folder.mkdir()
    return f"sqlite:///{folder}"


@contextmanager
def app_pointed_at(app, url: str) -> Iterator[None]:
    """The app's session factories (requests and sign-in checks) on `url` for a while, then back."""
    before = (app.state.session_factory, app.state.auth.session_factory)
    engine = make_engine(url)
    app.state.session_factory = app.state.auth.session_factory = make_session_factory(engine)
    app.state.auth.forget()  # the sign-in check must reach the database too
    try:
        yield
    finally:
        app.state.session_factory, app.state.auth.session_factory = before
        engine.dispose()


def test_unreachable_database_is_a_503_and_the_app_recovers(client, app, database_url, tmp_path, caplog):
    assert client.get("/api/datasets").status_code == 200
    with app_pointed_at(app, unreachable_url(database_url, tmp_path)), caplog.at_level(logging.WARNING, "medview"):
        for url in ("/api/datasets", "/api/models", "/api/review/queues"):
            r = client.get(url)
            assert r.status_code == 503, (url, r.text)
            assert r.json() == {"detail": "database unavailable (it may be restarting); try again shortly"}
            assert r.headers["retry-after"] == "5"
        assert client.get("/api/health").status_code == 200  # no database behind it
    records = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert records and all(r.exc_info is None for r in records)  # one line each, no traceback
    assert "Traceback" not in caplog.text
    assert client.get("/api/datasets").status_code == 200


def test_an_unreachable_database_is_a_503_page_for_a_browser(client, app, database_url, tmp_path):
    with app_pointed_at(app, unreachable_url(database_url, tmp_path)):
        r = client.get("/datasets/1", headers={"accept": "text/html"})
    assert r.status_code == 503
    assert "database unavailable" in r.text and "Traceback" not in r.text


def test_connections_the_server_killed_are_replaced_on_the_next_request(client, app, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: a SQLite connection is a file handle, nothing can kill it")
    for _ in range(3):  # connections in the pool
        assert client.get("/api/datasets").status_code == 200
    name = make_url(database_url).database
    admin = create_engine(make_url(database_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name}).scalar()
    finally:
        admin.dispose()
    assert killed >= 1
    app.state.auth.forget()
    for url in ("/api/datasets", "/api/models", "/api/datasets"):
        r = client.get(url)
        assert r.status_code == 200, (url, r.text)
