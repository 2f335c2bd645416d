"""Browser tests: the app on a real uvicorn server in a thread, driven by Debian chromium via Playwright.

They run on SQLite only: they test pages and scripts, whose database reads and writes the API tests already run on
both SQLite and PostgreSQL (running every browser test twice cost ~2 minutes of the suite). A browser test that is
about the database opts back in with `@pytest.mark.parametrize("database_url", BOTH, indirect=True)`."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.api.security import SESSION_COOKIE
from app.datasets.ingest import ingest_path
from app.datasets.pcam import pixels
from app.datasets.pcam.synth import generate_pcam
from tests.conftest import BACKENDS, fresh_database
from tests.helpers import pcam
from tests.helpers.api import register
from tests.helpers.auth import api_token, session_cookie
from tests.helpers.live import TOKENS, live_client
from tests.helpers.wait import wait_until

BOTH = BACKENDS  # for the indirect parametrisation above

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 900}
# The longest a page step waits for its condition. The suite's other process may be building the compose test's
# image meanwhile (both cores busy for ~40 s), and a full run once saw a viewer take over Playwright's default
# 30 s to be ready: a real hang still fails, a starved machine no longer does.
STEP_TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """SQLite only (see the module docstring); `indirect` parametrisation with BOTH runs PostgreSQL too."""
    yield from fresh_database(request, request.param, tmp_path, sqlite_template)


@pytest.fixture
def live_server(settings, ingested) -> Iterator[str]:
    """Base URL of the app (this test's database, the sample indexed) served by uvicorn on 127.0.0.1."""
    import uvicorn

    from app.main import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                            ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 10, "the live server to start")
    if not server.started:
        raise RuntimeError("the live server did not start")
    base = f"http://127.0.0.1:{port}"
    TOKENS[base] = api_token(settings)
    yield base
    TOKENS.pop(base, None)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def signed_in_page(browser, settings, *user: str) -> Iterator:
    """A page with the session cookie the app would set for `user` (name, role; default an admin), failing the
    test on any JavaScript error."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.add_cookies([{"name": SESSION_COOKIE, "value": session_cookie(settings, *user), "domain": "127.0.0.1",
                          "path": "/", "httpOnly": True, "sameSite": "Lax"}])
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def page(browser, settings) -> Iterator:
    """A page signed in as an admin (same database, same secret as the live server)."""
    yield from signed_in_page(browser, settings)


# -- PCam with the centre-mean ONNX classifier (test_predictions, test_predict_wait) --------------------------

@pytest.fixture(scope="session")
def pcam_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated PCam (shared by the session; tests must not modify it)."""
    return generate_pcam(tmp_path_factory.mktemp("pcam-e2e") / "pcam", n_per_split=(6, 2, 2), seed=5).root


@pytest.fixture
def pcam_ingested(engine, settings, pcam_root):
    """The PCam sample indexed into this test's database. A module serves it on its live server (instead of the
    DeepLesion sample) by overriding `ingested` with it."""
    pixels.close_all()
    return ingest_path(engine, settings, pcam_root, kind="pcam", name="pcam")


@pytest.fixture
def pcam_model(live_server, tmp_path) -> dict:
    """The classifier registered as `pcam-baseline` through the live server."""
    with live_client(live_server) as api:
        r = register(api, pcam.classifier_onnx(tmp_path / "pcam_baseline.onnx"), pcam.card_yaml())
    assert r.status_code == 201, r.text
    return r.json()
