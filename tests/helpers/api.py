"""Calls to the HTTP API that many tests make: register a model, wait for a job to finish."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.wait import wait_until


def register(client, path: Path, card_text: str, card_name: str = "card.yaml"):
    """POST /api/models with the model file and its card (a TestClient or an httpx.Client)."""
    return client.post("/api/models", files={"file": (path.name, path.read_bytes(), "application/octet-stream"),
                                             "card": (card_name, card_text.encode(), "application/x-yaml")})


def wait_finished(client, job_id: int, timeout: float = 60.0) -> dict:
    """The job's JSON once it is no longer queued or running."""
    last: dict = {}

    def finished() -> dict | None:
        last.update(client.get(f"/api/jobs/{job_id}").json())
        return dict(last) if last["status"] not in ("queued", "running") else None

    try:
        return wait_until(finished, timeout, f"job {job_id} to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still {last.get('status')}") from None
