"""Schemathesis over `/openapi.json` (issue 13): every operation, driven by the same engine as `st run --checks
all` (examples, coverage, fuzzing and stateful phases, positive and negative data), in process against the app
on the demo data (every dataset kind, the demo models and their predictions), signed in as an admin through an
API token, on SQLite and on PostgreSQL. Bounded and seeded, so a run is repeatable: the same requests every time.

Pass means 0 server errors, 0 responses that break their documented schema, status code, media type or headers,
every undeclared method a 405 with `Allow`, negative data refused with a 4xx, and schema-valid data accepted —
where "accepted" also admits 400: the schema cannot say that an annotation is not a mask, that a slice lies past
the volume's end or that a format does not fit the dataset's kind; the service says so with a 400 naming it.

Left out (named in OPERATIONS_OFF): the routes that would sign the fuzzer itself out — revoking tokens (the
fuzzer's own has a small id), changing users (its role, `disabled`) and signing out. Everything after them would
be a 401, so the rest of the run would test nothing.
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi

from app.config import Settings
from app.datasets.ingest import ingest_path
from app.db.session import make_engine
from app.demo import build_demo
from app.main import create_app
from tests.helpers.auth import api_token

EXAMPLES = {"sqlite": 8, "postgresql": 4}  # per operation and phase; PostgreSQL's requests are slower here
PG_KINDS = ("deeplesion", "pcam", "verse")  # PostgreSQL: these samples indexed, without the demo's models
SEED = 13
OPERATIONS_OFF: list[dict[str, Any]] = [
    {"include-path": "/api/tokens/{token_id}", "include-method": "DELETE", "enabled": False},
    {"include-path": "/api/users/{username}", "include-method": "PATCH", "enabled": False},
    {"include-path": "/api/auth/logout", "enabled": False},
]


@pytest.fixture
def demo_app(make_settings, database_url: str, demo_samples: Path) -> tuple[FastAPI, str]:
    """The app on the demo data in this test's database, and an admin's API token. SQLite gets the whole demo
    (every kind, models, predictions); PostgreSQL, where building it takes minutes here, three kinds' samples —
    what differs there (integer widths, NUL in text) needs rows, not predictions."""
    settings: Settings = make_settings()
    if database_url.startswith("sqlite"):
        shutil.copytree(demo_samples, settings.data_dir / "demo")  # generated once per session (tests/conftest.py)
        settings = build_demo(settings)
    else:
        engine = make_engine(settings.database_url)
        try:
            for kind in PG_KINDS:
                ingest_path(engine, settings, demo_samples / kind, kind=kind, name=f"demo-{kind}")
        finally:
            engine.dispose()
    return create_app(settings), api_token(settings, "fuzzer", "admin")


def run_schemathesis(app: FastAPI, token: str, examples: int) -> tuple[dict[tuple[str, str], list[str]], int]:
    """({(failure code, operation): [one line per distinct failure]}, requests made)."""
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {token}"},
        "generation": {"max-examples": examples, "deterministic": True, "database": "none"},
        "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", 400, 401, 403, 404, 409,
                                                                      429, "5xx"]}},
        "operations": OPERATIONS_OFF,
    })
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config,
                                            headers={"Authorization": f"Bearer {token}"})
    failures: dict[tuple[str, str], list[str]] = defaultdict(list)
    requests = 0
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                requests += len(event.recorder.interactions)
                for checks in event.recorder.checks.values():
                    for check in checks:
                        if check.failure_info is not None:
                            failure = check.failure_info.failure
                            line = f"{failure.title}: {failure.message[:300]} | {check.failure_info.code_sample[:300]}"
                            failures[(failure.code, event.label or "?")].append(" ".join(line.split()))
            elif isinstance(event, events.NonFatalError):  # in process, a 500's exception reaches the client
                failures[("500", event.label)].append(f"{type(event.value).__name__}: {event.value}"[:300])
            elif isinstance(event, events.FatalError):
                raise event.exception
    finally:
        asgi.shutdown_lifespans()  # the app's lifespan (engine, workers) ends with the run
    return failures, requests


def test_schemathesis_finds_no_server_error_and_no_spec_violation(demo_app, database_url: str) -> None:
    app, token = demo_app
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    started = time.monotonic()
    failures, requests = run_schemathesis(app, token, EXAMPLES[backend])
    report = [f"{code} {operation} ({len(lines)}×): {sorted(set(lines))[0]}"
              for (code, operation), lines in sorted(failures.items())]
    assert requests > 500, f"only {requests} requests: the run did not reach the API"
    assert not report, f"{len(report)} kinds of failure in {requests} requests " \
                       f"({time.monotonic() - started:.0f} s):\n" + "\n".join(report)
