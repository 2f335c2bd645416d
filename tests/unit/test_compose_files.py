"""The docker-compose files (no Docker engine on this machine kind to run them): every MEDVIEW_* variable they
set is a real setting, the full stack wires app + worker to the same PostgreSQL and Redis, and the worker
runs `medview worker` from the same image as the app."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def _env_names(compose: dict) -> set[str]:
    return {k for svc in compose["services"].values() for k in (svc.get("environment") or {})}


def test_every_medview_variable_is_a_setting():
    fields = {f"MEDVIEW_{name.upper()}" for name in Settings.model_fields}
    for name in ("docker-compose.yml", "docker-compose.full.yml", "docker-compose.gpu.yml"):
        used = {k for k in _env_names(_load(name)) if k.startswith("MEDVIEW_")}
        assert used <= fields, f"{name}: {used - fields} are not settings"


def test_full_stack_shares_database_and_queue_between_app_and_worker():
    full = _load("docker-compose.full.yml")
    services = full["services"]
    assert {"app", "worker", "postgres", "redis"} <= set(services)
    app_env, worker_env = services["app"]["environment"], services["worker"]["environment"]
    assert app_env == worker_env
    assert app_env["MEDVIEW_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in \
        app_env["MEDVIEW_DATABASE_URL"]
    assert app_env["MEDVIEW_QUEUE_URL"].startswith("redis://redis:6379/")
    assert services["worker"]["command"] == ["medview", "worker"]
    assert services["worker"]["depends_on"]["app"]["condition"] == "service_healthy"  # migrated first
    for dep in ("postgres", "redis"):
        assert "healthcheck" in services[dep]
    base = _load("docker-compose.yml")["services"]["app"]
    assert services["worker"]["volumes"] == base["volumes"]  # same data and datasets as the app


def test_gpu_override_reserves_nvidia_devices_for_workers():
    worker = _load("docker-compose.gpu.yml")["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert worker["build"]["args"]["ONNXRUNTIME"] == "onnxruntime-gpu"
    assert "ARG ONNXRUNTIME=onnxruntime" in (ROOT / "Dockerfile").read_text()
