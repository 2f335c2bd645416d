"""Real `medview` processes for the fault and backup tests: this checkout's code (PYTHONPATH), a clean
environment (no MEDVIEW_* of the caller's), a free port, and waiting on /api/health instead of sleeping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
LOGS: dict[int, Path] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def medview_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    env.update(PYTHONPATH=str(REPO), **values)
    return env


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """A long-running command in its own process group, its output in a file (`log_of`): a pipe nobody reads
    would block a server that logs much."""
    log = (cwd / f"medview-{args[0]}-{free_port()}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    log.close()
    LOGS[proc.pid] = Path(log.name)
    return proc


def log_of(proc: subprocess.Popen[str]) -> str:
    return LOGS[proc.pid].read_text(errors="replace")


def serve(env: dict[str, str], cwd: Path, workers: int = 1, timeout: float = 60) -> tuple[subprocess.Popen[str], str]:
    """`medview serve` on a free port, once /api/health answers 200: (process, base URL)."""
    port = free_port()
    proc = start(["serve", "--port", str(port), "--workers", str(workers)], env, cwd)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"medview serve exited {proc.returncode}: {log_of(proc)[-2000:]}")
        try:
            return httpx.get(f"{base}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout, "medview serve to answer /api/health")
    return proc, base


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM the process group (uvicorn's workers too), kill it when it lingers; its output."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
    return log_of(proc)
