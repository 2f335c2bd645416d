"""`medview backup` of a live SQLite server while a client keeps writing (comments, verdicts, mask edits), then
`medview restore` into a new place and a fresh server on it: it starts, the schema is at the newest revision, every
write acknowledged before the backup began is there, the writes it holds are exactly a prefix of the writer's
(commit order: no torn state), each with its audit event, and every stored mask it names is restored and served.
Plus the bad inputs: an existing OUT, an existing database, a tar that is not a backup, a member outside the
backed-up places, a PostgreSQL URL; a backup killed mid-way. And the PostgreSQL recipe of docs/deployment.md run
as written (pg_dump, `--files-only`, pg_restore, `medview restore`) under the same writes and checks. Real
processes, real files, real databases."""

from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path
from app.db.migrate import is_current
from app.db.models import Annotation
from app.db.session import make_engine
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


def _snapshot(url: str) -> tuple[dict[str, set[int]], dict[str, int], list[tuple[int, str]]]:
    """(ids of the written tables, audit events per action, (annotation id, stored mask file) pairs) of a database."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = {t: set(conn.scalars(text(f"SELECT id FROM {t}"))) for t in ("comments", "reviews", "annotations")}
            audit = {a: n for a, n in conn.execute(text("SELECT action, count(*) FROM audit_events GROUP BY action"))}
            stored = [(i, g["stored"]) for i, g in conn.execute(select(Annotation.id, Annotation.geometry))
                      if "stored" in g]
    finally:
        engine.dispose()
    return rows, audit, stored


def _writer(base: str, token: str, dataset_id: int) -> Writer:
    """A Writer over the dataset's items, editing the first item that has a mask annotation."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        listing = api.get(f"/api/datasets/{dataset_id}/items", params={"limit": 50}).json()
        items = [i["id"] for i in listing["items"]]
        detail = next(d for d in (api.get(f"/api/items/{i}").json() for i in items)
                      if any(a["kind"] == "mask" for a in d["annotations"]))
    ann = next(a for a in detail["annotations"] if a["kind"] == "mask")
    return Writer(base, token, items, {"id": ann["id"], "version": ann["version"], "width": detail["width"],
                                       "height": detail["height"]})


def _back_up_while_writing(writer: Writer, back_up: Callable[[], None]) -> list[tuple[str, int]]:
    """Start the writer, run `back_up` once a dozen writes are in, keep writing a little after; the writes
    acknowledged before the backup started."""
    writer.start()
    try:
        wait_until(lambda: len(writer.done) >= 12 or writer.failures, 60, "a dozen writes before the backup")
        acknowledged = list(writer.done)  # every write here committed before the backup started
        back_up()
        during = len(writer.done) - len(acknowledged)
        wait_until(lambda: len(writer.done) >= len(acknowledged) + during + 6 or writer.failures, 60,
                   "writes after the backup")
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert not writer.failures, writer.failures
    assert during > 0, "no write ran while the backup did: the test did not test a live backup"
    return acknowledged


def _check_restored(live_url: str, restored_url: str, restored_data: Path, writer: Writer,
                    acknowledged: list[tuple[str, int]]) -> tuple[dict[str, set[int]], list[tuple[int, str]]]:
    """Every acknowledged write there, the writes held exactly a prefix of the writer's (no torn state), each
    with its audit event, every stored mask named present, the schema at the newest revision."""
    rows, audit, stored = _snapshot(restored_url)
    held = [w for w in writer.done if w[1] in rows[w[0]]]
    assert set(acknowledged) <= set(held)
    assert held == writer.done[:len(held)], "the backup holds a write without one committed before it"
    live = _snapshot(live_url)[0]
    assert all(ids <= live[t] for t, ids in rows.items())
    assert audit.get("comment.add") == len(rows["comments"]) and audit.get("review.add") == len(rows["reviews"])
    assert audit.get("annotation.edit") == len(stored) and len(stored) >= 4
    assert all((restored_data / "masks" / name).is_file() for _, name in stored)
    restored_engine = create_engine(restored_url)
    assert is_current(restored_engine)
    restored_engine.dispose()
    return rows, stored


def _check_served(env: dict[str, str], cwd: Path, token: str, dataset_id: int, items: list[int],
                  rows: dict[str, set[int]], stored: list[tuple[int, str]]) -> None:
    """A fresh server on the restored state: the dataset, every stored mask version, every comment."""
    server, base = serve(env, cwd)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            assert api.get("/api/health").json()["status"] == "ok"
            assert api.get(f"/api/datasets/{dataset_id}").json()["item_count"] == len(items)
            for annotation_id, _ in stored:  # every stored mask version reads back from the restored data dir
                r = api.get(f"/api/annotations/{annotation_id}/mask")
                assert r.status_code == 200 and r.headers["content-type"] == "image/png", (annotation_id, r.text[:200])
            assert sum(len(api.get(f"/api/items/{i}/comments").json()) for i in items) == len(rows["comments"])
    finally:
        stop(server)


def test_backup_of_a_live_server_with_writes_restores_into_a_fresh_server(settings, engine, tmp_path):
    bis = generate_bis5k(tmp_path / "bis5k", n_train=4, n_test=2, seed=4).root
    dataset_id = ingest_path(engine, settings, bis, kind="bis5k", name="bis").dataset_id
    token = api_token(settings)
    env = medview_env(MEDVIEW_DATABASE_URL=settings.database_url, MEDVIEW_DATA_DIR=str(settings.data_dir),
                      MEDVIEW_DATA_ROOTS=str(tmp_path))
    backups: list[subprocess.CompletedProcess[str]] = []
    server, base = serve(env, tmp_path)
    try:
        writer = _writer(base, token, dataset_id)
        acknowledged = _back_up_while_writing(
            writer, lambda: backups.append(run(["backup", str(tmp_path / "medview.tar")], env, tmp_path)))
    finally:
        log = stop(server)
    assert backups[0].returncode == 0, backups[0].stderr
    assert "integrity ok" in backups[0].stdout and "Traceback" not in log, (backups[0].stdout, log[-2000:])

    restored_url = f"sqlite:///{tmp_path / 'restored' / 'medview.db'}"
    restored_data = tmp_path / "restored" / "data"
    env2 = medview_env(MEDVIEW_DATABASE_URL=restored_url, MEDVIEW_DATA_DIR=str(restored_data),
                       MEDVIEW_DATA_ROOTS=str(tmp_path))
    result = run(["restore", str(tmp_path / "medview.tar")], env2, tmp_path)
    assert result.returncode == 0, result.stderr
    again = run(["restore", str(tmp_path / "medview.tar")], env2, tmp_path)
    assert again.returncode == 2 and "a database exists" in again.stderr and "--force" in again.stderr

    rows, stored = _check_restored(settings.database_url, restored_url, restored_data, writer, acknowledged)
    _check_served(env2, tmp_path, token, dataset_id, writer.items, rows, stored)


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
    cut = tmp_path / "cut.tar"
    cut.write_bytes(out.read_bytes()[:40_000])  # a copy cut short inside the database
    r = run(["restore", str(cut)], target, tmp_path)
    assert r.returncode == 2 and "cut.tar is damaged" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "new" / "m.db").exists()
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


def test_postgresql_recipe_while_writing_restores_into_a_fresh_server(pg_urls, tmp_path):
    """docs/deployment.md's PostgreSQL recipe as written, on a live server while a client writes: pg_dump, then
    `medview backup --files-only`; pg_restore into an empty database and `medview restore`; the same checks
    as for SQLite, and a fresh server on the restored database."""
    source, target = pg_urls
    data = tmp_path / "data"
    settings = Settings(_env_file=None, database_url=source, data_dir=data, data_roots=str(tmp_path))
    engine = make_engine(source)
    bis = generate_bis5k(tmp_path / "bis5k", n_train=4, n_test=2, seed=5).root
    dataset_id = ingest_path(engine, settings, bis, kind="bis5k", name="bis").dataset_id
    engine.dispose()
    token = api_token(settings)
    env = medview_env(MEDVIEW_DATABASE_URL=source, MEDVIEW_DATA_DIR=str(data), MEDVIEW_DATA_ROOTS=str(tmp_path))
    dump_url, dump_env = _libpq(source)
    steps: list[subprocess.CompletedProcess[str]] = []

    def back_up() -> None:  # the database first, then the files (docs/deployment.md)
        steps.append(subprocess.run(["pg_dump", "--format=custom", "--file", str(tmp_path / "medview.pgdump"),
                                     dump_url], env=dump_env, capture_output=True, text=True, timeout=120))
        steps.append(run(["backup", "--files-only", str(tmp_path / "files.tar")], env, tmp_path))

    server, base = serve(env, tmp_path)
    try:
        writer = _writer(base, token, dataset_id)
        acknowledged = _back_up_while_writing(writer, back_up)
    finally:
        stop(server)
    assert [step.returncode for step in steps] == [0, 0], [step.stderr for step in steps]

    restore_url, restore_env = _libpq(target)
    restored = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction", "--dbname",
                               restore_url, str(tmp_path / "medview.pgdump")],
                              env=restore_env, capture_output=True, text=True, timeout=120)
    assert restored.returncode == 0, restored.stderr
    restored_data = tmp_path / "restored"
    env2 = medview_env(MEDVIEW_DATABASE_URL=target, MEDVIEW_DATA_DIR=str(restored_data),
                       MEDVIEW_DATA_ROOTS=str(tmp_path))
    put_back = run(["restore", str(tmp_path / "files.tar")], env2, tmp_path)
    assert put_back.returncode == 0 and "no database in this backup" in put_back.stdout, put_back.stderr

    rows, stored = _check_restored(source, target, restored_data, writer, acknowledged)
    _check_served(env2, tmp_path, token, dataset_id, writer.items, rows, stored)


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
