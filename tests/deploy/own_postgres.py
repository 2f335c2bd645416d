"""A PostgreSQL server of the test's own (initdb into a temporary folder, a free port, trust on loopback), which the
test may stop and start at will — never the machine's shared server. Run as the `postgres` user when the tests run
as root (PostgreSQL refuses root). Skips when the binaries are absent."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.processes import free_port

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class OwnPostgres:
    def __init__(self, folder: Path):
        bindir = next((d for d in BIN_DIRS if (d / "initdb").is_file()), None)
        if bindir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin")
        self.bin = bindir
        self.folder = folder
        self.data = folder / "pgdata"
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run the test's own PostgreSQL")
            self.user = "postgres"
        folder.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(folder, self.user)
        self._run("initdb", "-D", str(self.data), "--encoding=UTF8", "--locale=C.UTF-8", "--auth=trust",
                  "--username=postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([str(self.bin / tool), *args], capture_output=True, text=True, timeout=120,
                                user=self.user, cwd=self.folder, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise AssertionError(f"{tool} failed ({result.returncode}): {result.stderr[-2000:]}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=50")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "server.log"), "-w",
                  "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"
