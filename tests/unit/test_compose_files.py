"""The docker-compose files as text (tests/deploy/test_compose.py builds and runs them): every MEDVIEW_* variable
they set is a real setting, the full stack wires app + worker to the same PostgreSQL and Redis, the worker runs
`medview worker` from the same image as the app, and the local override swaps only base images."""

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
    assert services["worker"]["command"] == ["medview", "worker", "--queues", "gpu,cpu"]  # named queues, GPU first
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
    assert worker["command"] == ["medview", "worker", "--queues", "gpu,cpu"]  # inference first, CPU jobs too
    assert "ARG ONNXRUNTIME=onnxruntime" in (ROOT / "Dockerfile").read_text()


def test_dockerfile_base_is_an_argument_and_the_local_override_uses_the_stand_ins():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile and "# syntax=" not in dockerfile
    assert dockerfile.count("FROM ${BASE_IMAGE}") == 2 and "\nUSER medview\n" in dockerfile
    assert "HEALTHCHECK" in dockerfile
    local = _load("docker-compose.local.yml")["services"]
    for name in ("app", "worker"):
        assert local[name]["build"]["args"]["BASE_IMAGE"] == "medview-local/python:3.11"
        assert local[name]["image"] == "medview-local/medview:latest"
    assert local["postgres"]["image"] == "medview-local/postgres:15"
    assert local["redis"]["image"] == "medview-local/redis:7"
    assert "/docker/host-ca/*.crt" in (ROOT / ".gitignore").read_text()  # the build host's CAs never committed


def test_app_and_workers_run_under_an_init_so_sigterm_is_never_dropped():
    assert _load("docker-compose.yml")["services"]["app"]["init"] is True
    assert _load("docker-compose.full.yml")["services"]["worker"]["init"] is True
