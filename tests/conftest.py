"""Fixtures as factories: settings(tmp) → app(settings) → client(app), each test on its own database.

The database fixture runs every test that uses it on SQLite, and also on PostgreSQL when
MEDVIEW_TEST_POSTGRES_URL is set (.ci/run sets it on machines that have one). Each test gets a
fresh database copied from a migrated template, so migrations run once per session, not per test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db.migrate import upgrade
from tests.helpers.realdata import REALDATA


def _redis_db_per_xdist_worker() -> None:
    """Under pytest-xdist (the README runs the suite with `-n 2`) the Redis tests of two workers would flush and
    read one database at once: worker gwN takes the URL's database number (default 0) + N instead. Set here,
    before any test module reads MEDVIEW_TEST_REDIS_URL, and inherited by the processes the tests start."""
    worker, url = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("MEDVIEW_TEST_REDIS_URL", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and url):
        return
    parts = urlsplit(url)
    path = parts.path.strip("/")
    db = (int(path) if path.isdigit() else 0) + int(worker[2:])
    os.environ["MEDVIEW_TEST_REDIS_URL"] = urlunsplit(parts._replace(path=f"/{db % 16}"))


_redis_db_per_xdist_worker()
PG_URL = os.environ.get("MEDVIEW_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("realdata") and not REALDATA.is_dir():
        pytest.skip(f"real samples not present at {REALDATA} (../shared/realdata or MEDVIEW_REALDATA_DIR)")


@pytest.fixture
def realdata(request: pytest.FixtureRequest):
    """`realdata(*parts)`: a path in the real samples, skipping the test when it is not on this machine.
    Only for tests marked `realdata`, so that every other test runs on generated data."""
    if request.node.get_closest_marker("realdata") is None:
        pytest.fail(f"{request.node.nodeid} reads the real samples: mark it @pytest.mark.realdata", pytrace=False)

    def path(*parts: str) -> Path:
        found = REALDATA.joinpath(*parts)
        if not found.exists():
            pytest.skip(f"real sample {found} not present")
        return found

    return path


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dbtemplate") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not PG_URL:
        yield ""
        return
    name = f"medview_tpl_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    upgrade(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    yield from fresh_database(request, request.param, tmp_path, sqlite_template)


def fresh_database(request: pytest.FixtureRequest, backend: str, tmp_path: Path, sqlite_template: Path
                   ) -> Iterator[str]:
    """A test's own database on `backend`, copied from the migrated template; dropped afterwards."""
    if backend == "sqlite":
        path = tmp_path / "medview.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"medview_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def make_settings(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, database_url: str):
    def factory(**overrides) -> Settings:
        values = {"database_url": database_url, "data_dir": tmp_path / "data",
                  "data_roots": f"{tmp_path}:{tmp_path_factory.getbasetemp()}:{REALDATA}",
                  "slice_cache_mb": 64, "render_cache_mb": 16, "allowed_hosts": "testserver,127.0.0.1,localhost"}
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return factory


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings):
    from app.main import create_app

    return create_app(settings)


@pytest.fixture
def anon_client(app):
    """A client that has not signed in."""
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture
def client(anon_client, settings: Settings):
    """A client signed in as an admin through a real API token (`Authorization: Bearer`)."""
    from tests.helpers.auth import api_token

    anon_client.headers["Authorization"] = f"Bearer {api_token(settings)}"
    return anon_client


@pytest.fixture(scope="session")
def deeplesion_sample(tmp_path_factory: pytest.TempPathFactory):
    """A generated DeepLesion tree in the real layout (shared by the session; tests must not modify it)."""
    from app.datasets.deeplesion.synth import generate_deeplesion

    root = tmp_path_factory.mktemp("deeplesion") / "DeepLesion"
    return generate_deeplesion(root, patients=5, seed=3)


@pytest.fixture(scope="session")
def demo_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every kind's demo sample, generated once per session in `medview demo`'s layout (`<kind>/` with its
    `.complete` marker): copy it under a data dir's `demo/` and the demo skips generating. Tests must not
    modify it (ingest only reads)."""
    from app.demo import DEMO_SAMPLES, _sample_generator

    root = tmp_path_factory.mktemp("demo-samples")
    for kind in DEMO_SAMPLES:
        generate = _sample_generator(kind)
        if generate is None:
            continue
        (root / kind).mkdir()
        generate(root / kind)
        (root / kind / ".complete").write_text("ok\n")
    return root


@pytest.fixture
def engine(settings: Settings):
    from app.db.session import make_engine

    eng = make_engine(settings.database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def ingested(engine, settings: Settings, deeplesion_sample):
    """The generated sample indexed into this test's database; returns the IngestReport."""
    from app.datasets.ingest import ingest_path

    return ingest_path(engine, settings, deeplesion_sample.root, kind="deeplesion", name="sample")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands the compose test's timings to the controller, which prints them."""
    from tests.deploy.engine import TIMINGS

    output = getattr(session.config, "workeroutput", None)
    if output is not None and TIMINGS:
        output["compose_timings"] = dict(TIMINGS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # noqa: ANN001 - xdist's controller hook
    from tests.deploy.engine import TIMINGS

    TIMINGS.update(getattr(node, "workeroutput", {}).get("compose_timings", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The compose test's timings at the end of the run (in one process, or gathered from the xdist workers)."""
    from tests.deploy.engine import TIMINGS

    if TIMINGS and not hasattr(terminalreporter.config, "workerinput"):
        steps = ", ".join(f"{step} {seconds:g} s" for step, seconds in TIMINGS.items())
        terminalreporter.write_line(f"compose test timings: {steps} (total {sum(TIMINGS.values()):.0f} s)")
