"""`medview backup` of a live SQLite server while a client keeps writing (comments, verdicts, mask edits), then
`medview restore` into a new place and a fresh server on it: it starts, the schema is at the newest revision, every
write acknowledged before the backup began is there, the writes it holds are exactly a prefix of the writer's
(commit order: no torn state), each with its audit event, and every stored mask it names is restored and served.
Plus the bad inputs: an existing OUT, an existing database, a tar that is not a backup, a member outside the
backed-up places, a PostgreSQL URL. And the PostgreSQL recipe of docs/deployment.md run as written (pg_dump,
`--files-only`, pg_restore, `medview restore`). Real processes, real files, real databases."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path
from app.db.migrate import is_current
from app.db.session import make_engine
from app.main import create_app
from tests.conftest import PG_URL, fresh_database
from tests.deploy.processes import log_of, medview_env, run, serve, start, stop
from tests.helpers.auth import api_token
from tests.helpers.wait import wait_until


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    yield from fresh_database(request, "sqlite", tmp_path, sqlite_template)


def b64png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


class Writer(threading.Thread):
    """Writes through the API in a loop, in order — a comment, a verdict, a mask edit — and records each
    acknowledged write as (table, id) in `done`, in commit order (one connection, one write at a time)."""

    def __init__(self, base: str, token: str, items: list[int], mask: dict):
        super().__init__(name="backup-writer", daemon=True)
        self.api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.items, self.mask = items, mask
        self.done: list[tuple[str, int]] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.api:
            self.write()

    def write(self) -> None:
        n = 0
        while not self.stop.is_set():
            item = self.items[n % len(self.items)]
            if n % 3 == 0:
                r = self.api.post(f"/api/items/{item}/comments", json={"text": f"note {n}"})
                key = ("comments", r.json()["id"] if r.status_code == 201 else -1)
            elif n % 3 == 1:
                r = self.api.post(f"/api/items/{item}/reviews", json={"verdict": ["accept", "reject"][n % 2]})
                key = ("reviews", r.json()["review"]["id"] if r.status_code == 201 else -1)
            else:
                painted = np.zeros((self.mask["height"], self.mask["width"]), np.uint8)
                painted[n % 50:n % 50 + 20, 10:40] = 255  # a new mask each time: a new stored file
                r = self.api.put(f"/api/annotations/{self.mask['id']}",
                                 json={"version": self.mask["version"], "geometry": {"png": b64png(painted)}})
                if r.status_code == 200:
                    self.mask.update(id=r.json()["id"], version=r.json()["version"])
                key = ("annotations", r.json()["id"] if r.status_code == 200 else -1)
            if key[1] < 0:
                self.failures.append(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}")
                return
            self.done.append(key)
            n += 1


def _rows(db: Path) -> dict[str, set[int]]:
    conn = sqlite3.connect(db)
    try:
        return {t: {r[0] for r in conn.execute(f"SELECT id FROM {t}")} for t in ("comments", "reviews", "annotations")}
    finally:
        conn.close()


def test_backup_of_a_live_server_with_writes_restores_into_a_fresh_server(settings, engine, tmp_path):
    bis = generate_bis5k(tmp_path / "bis5k", n_train=4, n_test=2, seed=4).root
    dataset_id = ingest_path(engine, settings, bis, kind="bis5k", name="bis").dataset_id
    token = api_token(settings)
    db = Path(settings.database_url.removeprefix("sqlite:///"))
    roots = f"{tmp_path}"
    env = medview_env(MEDVIEW_DATABASE_URL=settings.database_url, MEDVIEW_DATA_DIR=str(settings.data_dir),
                      MEDVIEW_DATA_ROOTS=roots)
    server, base = serve(env, tmp_path)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            listing = api.get(f"/api/datasets/{dataset_id}/items", params={"limit": 50}).json()
            items = [i["id"] for i in listing["items"]]
            detail = next(d for d in (api.get(f"/api/items/{i}").json() for i in items)
                          if any(a["kind"] == "mask" for a in d["annotations"]))
        ann = next(a for a in detail["annotations"] if a["kind"] == "mask")
        writer = Writer(base, token, items, {"id": ann["id"], "version": ann["version"],
                                             "width": detail["width"], "height": detail["height"]})
        writer.start()
        wait_until(lambda: len(writer.done) >= 12 or writer.failures, 60, "a dozen writes before the backup")
        acknowledged = list(writer.done)  # every write here committed before the backup started
        backup = run(["backup", str(tmp_path / "medview.tar")], env, tmp_path)
        during = len(writer.done) - len(acknowledged)
        wait_until(lambda: len(writer.done) >= len(acknowledged) + during + 6 or writer.failures, 60,
                   "writes after the backup")
        writer.stop.set()
        writer.join(timeout=30)
    finally:
        log = stop(server)
    assert not writer.failures, writer.failures
    assert backup.returncode == 0, backup.stderr
    assert "integrity ok" in backup.stdout and "Traceback" not in log, (backup.stdout, log[-2000:])
    assert during > 0, "no write ran while the backup did: the test did not test a live backup"

    restored_db = tmp_path / "restored" / "medview.db"
    restored_data = tmp_path / "restored" / "data"
    env2 = medview_env(MEDVIEW_DATABASE_URL=f"sqlite:///{restored_db}", MEDVIEW_DATA_DIR=str(restored_data),
                       MEDVIEW_DATA_ROOTS=roots)
    result = run(["restore", str(tmp_path / "medview.tar")], env2, tmp_path)
    assert result.returncode == 0, result.stderr
    again = run(["restore", str(tmp_path / "medview.tar")], env2, tmp_path)
    assert again.returncode == 2 and "a database exists" in again.stderr and "--force" in again.stderr

    # the writes it holds: every one acknowledged before the backup, and exactly a prefix of the writer's order
    rows = _rows(restored_db)
    held = [w for w in writer.done if w[1] in rows[w[0]]]
    assert set(acknowledged) <= set(held)
    assert held == writer.done[:len(held)], "the backup holds a write without one committed before it"
    live = _rows(db)
    assert {t: ids - live[t] for t, ids in rows.items()} == {"comments": set(), "reviews": set(), "annotations": set()}
    conn = sqlite3.connect(restored_db)
    try:
        audit = dict(conn.execute("SELECT action, count(*) FROM audit_events GROUP BY action").fetchall())
        stored = [(i, json.loads(g)["stored"]) for i, g in
                  conn.execute("SELECT id, geometry FROM annotations WHERE geometry LIKE '%stored%'")]
    finally:
        conn.close()
    assert audit.get("comment.add") == len(rows["comments"]) and audit.get("review.add") == len(rows["reviews"])
    assert audit.get("annotation.edit") == len(stored) and len(stored) >= 4
    assert all((restored_data / "masks" / name).is_file() for _, name in stored)
    restored_engine = create_engine(f"sqlite:///{restored_db}")
    assert is_current(restored_engine)
    restored_engine.dispose()

    fresh, base2 = serve(env2, tmp_path)
    try:
        with httpx.Client(base_url=base2, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api2:
            assert api2.get("/api/health").json()["status"] == "ok"
            listed = api2.get(f"/api/datasets/{dataset_id}").json()
            assert listed["item_count"] == len(items)
            for annotation_id, _ in stored:  # every stored mask version reads back from the restored data dir
                r = api2.get(f"/api/annotations/{annotation_id}/mask")
                assert r.status_code == 200 and r.headers["content-type"] == "image/png", (annotation_id, r.text[:200])
            comments = sum(len(api2.get(f"/api/items/{i}/comments").json()) for i in items)
            assert comments == len(rows["comments"])
    finally:
        stop(fresh)


def test_backup_and_restore_refuse_bad_input(settings, engine, tmp_path):
    env = medview_env(MEDVIEW_DATABASE_URL=settings.database_url, MEDVIEW_DATA_DIR=str(settings.data_dir))
    out = tmp_path / "b.tar"
    out.write_bytes(b"precious")
    r = run(["backup", str(out)], env, tmp_path)
    assert r.returncode == 2 and f"{out} exists" in r.stderr and out.read_bytes() == b"precious"
    r = run(["backup", "--force", str(out)], env, tmp_path)
    assert r.returncode == 0, r.stderr
    with tarfile.open(out) as tar:
        assert {"medview.db", "manifest.json"} <= set(tar.getnames())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]  # no temporary left behind
    r = run(["backup", str(tmp_path)], env, tmp_path)
    assert r.returncode == 2 and "is a folder" in r.stderr

    target = medview_env(MEDVIEW_DATABASE_URL=f"sqlite:///{tmp_path / 'new' / 'm.db'}",
                         MEDVIEW_DATA_DIR=str(tmp_path / "new" / "data"))
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello")
    r = run(["restore", str(not_tar)], target, tmp_path)
    assert r.returncode == 2 and "is not a MedView backup" in r.stderr and "Traceback" not in r.stderr
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for name, body in (("manifest.json", b'{"format": 1}'), ("data/../../escaped.txt", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    r = run(["restore", str(evil)], target, tmp_path)
    assert r.returncode == 2 and "'data/../../escaped.txt' is not a file a MedView backup holds" in r.stderr
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "new" / "m.db").exists()
    r = run(["restore", str(tmp_path / "missing.tar")], target, tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr

    pg = medview_env(MEDVIEW_DATABASE_URL="postgresql+psycopg://medview:pw@127.0.0.1:1/medview",
                     MEDVIEW_DATA_DIR=str(settings.data_dir))
    r = run(["backup", str(tmp_path / "pg.tar")], pg, tmp_path)
    assert r.returncode == 2 and "pg_dump" in r.stderr
    r = run(["backup", "--files-only", str(tmp_path / "pg.tar")], pg, tmp_path)
    assert r.returncode == 0, r.stderr
    with tarfile.open(tmp_path / "pg.tar") as tar:
        assert "medview.db" not in tar.getnames()


@pytest.fixture
def pg_urls(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[str, str]]:
    """(a migrated PostgreSQL database, an empty one to restore into); both dropped afterwards."""
    if not PG_URL:
        pytest.skip("MEDVIEW_TEST_POSTGRES_URL not set")
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump / pg_restore not on PATH (postgresql-client)")
    name = f"medview_restored_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        for source in fresh_database(request, "postgresql", tmp_path, sqlite_template):
            yield source, make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The documented recipe's connection: a libpq URL without the password, which goes in PGPASSWORD."""
    parsed = make_url(url)
    env = {**os.environ, **({"PGPASSWORD": parsed.password} if parsed.password else {})}
    return parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def test_postgresql_recipe_pg_dump_and_files_only_backup_restore_into_a_fresh_server(pg_urls, tmp_path):
    """docs/deployment.md's PostgreSQL recipe as written: pg_dump, `medview backup --files-only`, pg_restore into
    an empty database, `medview restore`; then a server on the restored database shows the same data."""
    source, target = pg_urls
    data = tmp_path / "data"
    settings = Settings(_env_file=None, database_url=source, data_dir=data, data_roots=str(tmp_path),
                        allowed_hosts="testserver")
    engine = make_engine(source)
    bis = generate_bis5k(tmp_path / "bis5k", n_train=3, n_test=1, seed=5).root
    dataset_id = ingest_path(engine, settings, bis, kind="bis5k", name="bis").dataset_id
    engine.dispose()
    token = api_token(settings)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        item = next(d for d in (client.get(f"/api/items/{i['id']}").json() for i in
                                client.get(f"/api/datasets/{dataset_id}/items").json()["items"])
                    if any(a["kind"] == "mask" for a in d["annotations"]))
        ann = next(a for a in item["annotations"] if a["kind"] == "mask")
        painted = np.zeros((item["height"], item["width"]), np.uint8)
        painted[5:25, 5:45] = 255
        edited = client.put(f"/api/annotations/{ann['id']}", json={"version": 1, "geometry": {"png": b64png(painted)}})
        assert edited.status_code == 200, edited.text
        assert client.post(f"/api/items/{item['id']}/comments", json={"text": "kept"}).status_code == 201
    stored = edited.json()["geometry"]["stored"]

    dump_url, dump_env = _libpq(source)
    dumped = subprocess.run(["pg_dump", "--format=custom", "--file", str(tmp_path / "medview.pgdump"), dump_url],
                            env=dump_env, capture_output=True, text=True, timeout=120)
    assert dumped.returncode == 0, dumped.stderr
    env = medview_env(MEDVIEW_DATABASE_URL=source, MEDVIEW_DATA_DIR=str(data), MEDVIEW_DATA_ROOTS=str(tmp_path))
    files = run(["backup", "--files-only", str(tmp_path / "files.tar")], env, tmp_path)
    assert files.returncode == 0, files.stderr

    restore_url, restore_env = _libpq(target)
    restored = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction", "--dbname",
                               restore_url, str(tmp_path / "medview.pgdump")],
                              env=restore_env, capture_output=True, text=True, timeout=120)
    assert restored.returncode == 0, restored.stderr
    env2 = medview_env(MEDVIEW_DATABASE_URL=target, MEDVIEW_DATA_DIR=str(tmp_path / "restored"),
                       MEDVIEW_DATA_ROOTS=str(tmp_path))
    put_back = run(["restore", str(tmp_path / "files.tar")], env2, tmp_path)
    assert put_back.returncode == 0 and "no database in this backup" in put_back.stdout, put_back.stderr
    assert (tmp_path / "restored" / "masks" / stored).read_bytes() == (data / "masks" / stored).read_bytes()

    server, base = serve(env2, tmp_path)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            assert api.get(f"/api/datasets/{dataset_id}").json()["item_count"] == 4
            mask = api.get(f"/api/annotations/{edited.json()['id']}/mask")
            assert mask.status_code == 200 and mask.headers["content-type"] == "image/png"
            assert [c["text"] for c in api.get(f"/api/items/{item['id']}/comments").json()] == ["kept"]
    finally:
        stop(server)


def test_backup_killed_mid_way_leaves_no_file_at_out(settings, tmp_path):
    """SIGKILL while the tar is being written (a 2 GB sparse model file makes that take a while): nothing at OUT,
    only the `.partial` folder the docs mention; the next backup to the same OUT succeeds."""
    big = settings.data_dir / "models" / "1" / "big.onnx"
    big.parent.mkdir(parents=True)
    with big.open("wb") as fh:
        fh.truncate(2 << 30)  # sparse: no disk used until the tar copies it
    env = medview_env(MEDVIEW_DATABASE_URL=settings.database_url, MEDVIEW_DATA_DIR=str(settings.data_dir))
    out = tmp_path / "killed.tar"
    proc = start(["backup", str(out)], env, tmp_path)

    def copying_the_model() -> bool:
        assert proc.poll() is None, f"the backup ended before it could be killed: {log_of(proc)[-1000:]}"
        return any(p.stat().st_size > 64 << 20 for p in tmp_path.glob(".killed.tar.*.partial/backup.tar"))

    try:
        wait_until(copying_the_model, 120, "the backup to be copying the model file")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        big.unlink()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    partial = list(tmp_path.glob(".killed.tar.*.partial"))
    assert len(partial) == 1
    shutil.rmtree(partial[0])
    again = run(["backup", str(out)], env, tmp_path)
    assert again.returncode == 0, again.stderr
    with tarfile.open(out) as tar:
        assert "data/models/1/big.onnx" not in tar.getnames() and "medview.db" in tar.getnames()
