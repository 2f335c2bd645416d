"""Benchmarks read through the same sign-in as users: an API token made with the real CLI
(`medview users add` + `medview users token`) against the bench's database, sent as `Authorization: Bearer`."""

from __future__ import annotations

import subprocess
from pathlib import Path

MEDVIEW = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "medview"


def bench_token(env: dict[str, str], name: str = "bench", role: str = "admin") -> str:
    """A fresh API token of user `name` (created on first use) in the database `env` names."""
    subprocess.run([str(MEDVIEW), "users", "add", name, "--role", role], env=env, input="bench-password-123\n",
                   text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # exists already: fine
    out = subprocess.run([str(MEDVIEW), "users", "token", name, "--name", "bench"], env=env, check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
