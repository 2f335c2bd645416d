"""The Docker image and the full compose stack, built, started and used for real (marker `compose`).

Runs when a Docker engine answers or dockerd can be started here (tests/deploy/engine.py: our own dockerd on
its own data root, stopped afterwards, the host's network settings left as found); skipped with the reason
otherwise. On a machine without registry access the base images come from docker/local/build-images.sh (made
once per machine, reused when present) and the stack from docker-compose.local.yml.

The stack: app (uvicorn, 2 workers) + 2 `medview worker` + PostgreSQL + Redis, the app published on a loopback
port. The test creates an admin with `medview users add` (password on stdin), signs in over HTTP, ingests a
generated PCam sample mounted read-only at /data, registers a real ONNX classifier, runs a predict job through
the Redis queue on the workers to `done`, reads a prediction, and stops and removes the stack in under 15 s with
every container exiting cleanly (workers honour SIGTERM). Timings are printed.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.datasets.pcam.synth import generate_pcam
from tests.deploy.engine import TIMINGS, Engine, EngineUnavailable, compose_command, lock, run
from tests.helpers import pcam
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.compose

REPO = Path(__file__).resolve().parents[2]
PROJECT = "medviewtest"
FILES = ["docker-compose.yml", "docker-compose.full.yml", "docker-compose.local.yml"]
IMAGE = "medview-local/medview:latest"
BUILD_STAGE = "medview-local/medview:build-stage"
BASE_IMAGES = ["medview-local/debian:bookworm", "medview-local/python:3.11", "medview-local/postgres:15",
               "medview-local/redis:7"]


class Timer:
    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> Timer:
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.start
        TIMINGS[self.name] = round(self.seconds, 1)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    held: int | None = None
    try:
        held = lock()
        with Timer("engine start"):
            found = Engine.get()
    except EngineUnavailable as exc:
        if held is not None:
            os.close(held)
        pytest.skip(f"no Docker engine: {exc}")
    try:
        yield found
    finally:
        with Timer("engine stop"):
            restored = found.stop()
        os.close(held)
        assert not restored, f"dockerd changed the host's network settings (put back: {restored})"


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    """The base images (made once per machine) and the app image (the build cache makes a rebuild quick)."""
    missing = [name for name in BASE_IMAGES
               if run(["docker", "image", "inspect", name], env=engine.env, check=False).returncode]
    if missing:
        with Timer("base images"):
            run([str(REPO / "docker/local/build-images.sh")], env=engine.env, timeout=900)
    with Timer("app image build"):
        compose(engine, ["build"], timeout=900)
    if engine.started:  # our own engine: drop what earlier builds left (GBs after a few dependency changes),
        # keeping the build stage (its dependencies layer is the cache of the next build) by tagging it
        run([str(REPO / "docker/local/host-ca.sh"), "docker", "build", "-q", "--network", "host", "--target", "build",
             "--build-arg", "BASE_IMAGE=medview-local/python:3.11", "-t", BUILD_STAGE, str(REPO)],
            env={**engine.env, "DOCKER_BUILDKIT": "0"}, timeout=900)
        run(["docker", "container", "prune", "-f"], env=engine.env, timeout=120)
        run(["docker", "image", "prune", "-f"], env=engine.env, timeout=300)
    return IMAGE


def compose(engine: Engine, args: list[str], env: dict[str, str] | None = None, timeout: float = 300,
            input: str | None = None, check: bool = True):
    cmd = compose_command() + ["-p", PROJECT] + [a for f in FILES for a in ("-f", str(REPO / f))] + args
    if args and args[0] == "build":
        cmd = [str(REPO / "docker/local/host-ca.sh")] + cmd
    full_env = {**engine.env, "POSTGRES_PASSWORD": "unused", **(env or {})}
    return run(cmd, env=full_env, timeout=timeout, input=input, check=check)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def container_state(engine: Engine, container: str) -> dict:
    return json.loads(run(["docker", "inspect", "--format", "{{json .State}}", container], env=engine.env).stdout)


def test_plain_docker_run_is_healthy_and_not_root(engine: Engine, image: str):
    """`docker run IMAGE` alone: migrations into the default SQLite path, served, healthy, as uid 10001."""
    name = f"{PROJECT}-plain"
    run(["docker", "rm", "-f", name], env=engine.env, check=False)
    with Timer("plain run to healthy"):
        run(["docker", "run", "-d", "--name", name, "--network", "none", image], env=engine.env)
        try:
            wait_until(lambda: container_state(engine, name).get("Health", {}).get("Status") == "healthy"
                       or not container_state(engine, name)["Running"], 90, "the plain container to be healthy")
            state = container_state(engine, name)
            logs = run(["docker", "logs", name], env=engine.env, check=False)
            assert state["Running"] and state["Health"]["Status"] == "healthy", logs.stdout + logs.stderr
            uid = run(["docker", "exec", name, "id", "-u"], env=engine.env).stdout.strip()
            db = run(["docker", "exec", name, "ls", "/var/lib/medview"], env=engine.env).stdout.split()
        finally:
            run(["docker", "rm", "-f", name], env=engine.env, check=False)
    assert uid == "10001"
    assert "medview.db" in db


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated PCam sample readable by the image's non-root user (mounted read-only at /data)."""
    top = tmp_path_factory.mktemp("compose-datasets")
    generate_pcam(top / "pcam", n_per_split=(pcam.TRAIN, pcam.VALID, pcam.TEST), seed=2)
    for path in [top, *top.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
    return top


def test_full_stack_signs_in_ingests_predicts_and_stops_cleanly(engine: Engine, image: str, datasets: Path,
                                                                 tmp_path: Path):
    port = free_port()
    env = {"POSTGRES_PASSWORD": secrets.token_hex(16), "MEDVIEW_HOST_IP": "127.0.0.1", "MEDVIEW_PORT": str(port),
           "MEDVIEW_DATASETS": str(datasets)}
    base = f"http://127.0.0.1:{port}"
    compose(engine, ["down", "-v", "--remove-orphans"], env=env, check=False)  # leftovers of an interrupted run
    try:
        with Timer("up to healthy"):
            compose(engine, ["up", "-d", "--no-build", "--scale", "worker=2"], env=env, timeout=300)
            wait_until(lambda: _health(base), 120, "the app to answer /api/health")
        with Timer("sign in, ingest, predict"):
            password = secrets.token_urlsafe(12)
            compose(engine, ["exec", "-T", "app", "medview", "users", "add", "admin", "--role", "admin"], env=env,
                    input=password + "\n")
            compose(engine, ["exec", "-T", "app", "medview", "ingest", "/data/pcam", "--quiet"], env=env,
                    timeout=120)
            with httpx.Client(base_url=base, timeout=30) as client:
                r = client.post("/api/auth/login", json={"username": "admin", "password": password})
                assert r.status_code == 200, r.text
                client.headers["X-CSRF-Token"] = r.headers["X-CSRF-Token"]
                (dataset,) = client.get("/api/datasets").json()
                assert (dataset["name"], dataset["item_count"]) == ("pcam", pcam.TRAIN + pcam.VALID + pcam.TEST)
                onnx_file = pcam.classifier_onnx(tmp_path / "pcam_baseline.onnx")
                r = client.post("/api/models", files={
                    "file": (onnx_file.name, onnx_file.read_bytes(), "application/octet-stream"),
                    "card": ("card.yaml", pcam.card_yaml().encode(), "application/x-yaml")})
                assert r.status_code == 201, r.text
                model_id = r.json()["id"]
                r = client.post("/api/jobs", json={"kind": "predict", "model_id": model_id,
                                                   "dataset_id": dataset["id"]})
                assert r.status_code == 202, r.text
                job_id = r.json()["id"]
                job = wait_until(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"]
                                 not in ("queued", "running") and j, 120, f"job {job_id} to finish")
                assert (job["status"], job["done"], job["total"]) == ("done", dataset["item_count"],
                                                                       dataset["item_count"]), job
                first = client.get(f"/api/datasets/{dataset['id']}/items", params={"limit": 1}).json()["items"][0]
                item = client.get(f"/api/items/{first['id']}").json()
                (prediction,) = [p for p in item["predictions"] if p["model_id"] == model_id]
                assert prediction["task"] == "classify" and prediction["outputs"], prediction
        worker_logs = compose(engine, ["logs", "--no-color", "worker"], env=env).stdout
        assert f"job {job_id}: done" in worker_logs  # run by a queue worker, not the app
        containers = compose(engine, ["ps", "-q"], env=env).stdout.split()
        assert len(containers) == 5  # app, 2 workers, postgres, redis
        workers = compose(engine, ["ps", "-q", "worker"], env=env).stdout.split()
        with Timer("worker stop"):  # SIGTERM: idle workers leave at once, exit 0
            compose(engine, ["stop", "worker"], env=env, timeout=60)
        worker_stop_logs = compose(engine, ["logs", "--no-color", "--timestamps", "--tail", "15", "worker"],
                                   env=env).stdout  # shown if stopping took too long
        exits = {c[:12]: container_state(engine, c)["ExitCode"] for c in workers}
        # and workers still starting (prestart migrations, imports): stopped at once too (the init passes it on)
        compose(engine, ["up", "-d", "--no-build", "--no-deps", "--force-recreate", "--scale", "worker=2",
                         "worker"], env=env, timeout=120)
        with Timer("worker stop while starting"):
            compose(engine, ["stop", "worker"], env=env, timeout=60)
        with Timer("stop"):
            compose(engine, ["stop"], env=env, timeout=60)
        others = [c for c in containers if c not in workers]
        exits.update({c[:12]: container_state(engine, c)["ExitCode"] for c in others})
        assert set(exits.values()) == {0}, f"exit codes {exits}: a container did not stop cleanly on SIGTERM"
        with Timer("down"):
            compose(engine, ["down", "-v", "--remove-orphans"], env=env, timeout=120)
        assert TIMINGS["worker stop while starting"] < 5, TIMINGS
        # every container left on SIGTERM (the exit codes above: compose's SIGKILL after its 10 s grace would be
        # 137); `down` itself is the "under 15 s" (stop times are printed: on a loaded host they vary)
        assert TIMINGS["down"] < 15, (TIMINGS, worker_stop_logs)
    finally:
        compose(engine, ["down", "-v", "--remove-orphans"], env=env, timeout=120, check=False)


def _health(base: str) -> bool:
    try:
        return httpx.get(f"{base}/api/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_compose_files_resolve(engine: Engine):
    """The three files merge into one valid configuration (what `up` reads)."""
    out = compose(engine, ["config", "--services"], env={"POSTGRES_PASSWORD": "x"}).stdout.split()
    assert sorted(out) == ["app", "postgres", "redis", "worker"]

