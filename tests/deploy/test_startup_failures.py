"""Start-up failures say what is wrong in one line and exit non-zero, without a traceback: the database
unreachable or missing (`medview serve`, `medview db upgrade` — the image's prestart — and `medview worker`),
and `medview worker` with its Redis queue down. Real processes, real refused connections."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("MEDVIEW_TEST_POSTGRES_URL", "")
REPO = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def medview(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    clean.update(MEDVIEW_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(REPO), **env)  # this tree's `app`
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=clean, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["db", "upgrade"], ["worker"]])
def test_unreachable_database_is_one_line(tmp_path, command):
    url = f"postgresql+psycopg://medview:s3cret-pw@127.0.0.1:{closed_port()}/medview"
    line = one_line(medview(command, tmp_path, MEDVIEW_DATABASE_URL=url, MEDVIEW_QUEUE_URL="redis://127.0.0.1:1/0"))
    assert line.startswith(f"medview {command[0]}: database postgresql+psycopg://medview:***@127.0.0.1:")
    assert "unavailable" in line and "refused" in line.lower()
    assert "s3cret-pw" not in line


@pytest.mark.skipif(not PG_URL, reason="MEDVIEW_TEST_POSTGRES_URL not set")
@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["db", "upgrade"]])
def test_missing_postgres_database_is_one_line(tmp_path, command):
    name = f"medview_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    line = one_line(medview(command, tmp_path, MEDVIEW_DATABASE_URL=url))
    assert f'database "{name}" does not exist' in line


def test_worker_with_redis_down_is_one_line(tmp_path):
    port = closed_port()
    result = medview(["worker"], tmp_path, MEDVIEW_DATABASE_URL=f"sqlite:///{tmp_path / 'medview.db'}",
                     MEDVIEW_QUEUE_URL=f"redis://:queue-pw@127.0.0.1:{port}/0")
    line = one_line(result)
    assert line.startswith(f"medview worker: job queue redis://:***@127.0.0.1:{port}/0 unreachable:")
    assert "refused" in line.lower() and "queue-pw" not in line


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["db", "upgrade"], ["ingest", "."]])
@pytest.mark.parametrize("blocker", ["a file where its folder should be", "a folder where the file should be"])
def test_unusable_sqlite_path_is_one_line(tmp_path, command, blocker):
    if blocker.startswith("a file"):
        (tmp_path / "blocked").write_text("not a folder")
        path, expected = tmp_path / "blocked" / "medview.db", f"File exists: {tmp_path / 'blocked'}"
    else:
        (tmp_path / "medview.db").mkdir()
        path, expected = tmp_path / "medview.db", "unable to open database file"
    line = one_line(medview(command, tmp_path, MEDVIEW_DATABASE_URL=f"sqlite:///{path}"))
    assert line.startswith(f"medview {command[0]}: database sqlite:///{path} unavailable: ") and expected in line


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["db", "upgrade"], ["models", "list"]])
def test_a_file_that_is_no_database_is_one_line(tmp_path, command):
    path = tmp_path / "medview.db"
    path.write_text("these are notes, not a database\n")
    line = one_line(medview(command, tmp_path, MEDVIEW_DATABASE_URL=f"sqlite:///{path}"))
    assert line == f"medview {command[0]}: database sqlite:///{path} cannot be used: file is not a database", line
    assert path.read_text() == "these are notes, not a database\n"  # left as it was
