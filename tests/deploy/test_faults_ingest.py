"""`medview ingest` killed with SIGKILL mid-way, then run again: the database ends exactly as a clean ingest into
another database — the same items (no duplicate key), annotations and facet counts, the dataset `ready` with the
same counts. A real `medview ingest` process on a generated DeepLesion tree of ~1,200 key slices, written two items
per transaction so that the kill lands between commits; SQLite and PostgreSQL."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text

from app.config import Settings
from app.datasets.deeplesion.synth import generate_deeplesion
from app.db.models import Annotation, Dataset, Item
from app.main import create_app
from tests.conftest import fresh_database
from tests.deploy.processes import log_of, medview_env, run, start
from tests.helpers.auth import api_token
from tests.helpers.wait import wait_until

BATCH = "2"  # items per ingest transaction: hundreds of commits, so SIGKILL lands between two of them


@pytest.fixture(scope="module")
def lesions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DeepLesion, 300 patients, tiny 32×32 slices: a CSV of ~1,200 key slices that is quick to make."""
    root = tmp_path_factory.mktemp("faults-deeplesion") / "DeepLesion"
    return generate_deeplesion(root, patients=300, seed=11, neighbours=1, image_size=32).root


@pytest.fixture
def clean_url(request: pytest.FixtureRequest, database_url: str, tmp_path: Path, sqlite_template: Path
              ) -> Iterator[str]:
    """A second database of the same backend, for the clean ingest."""
    (tmp_path / "clean").mkdir()
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    yield from fresh_database(request, backend, tmp_path / "clean", sqlite_template)


def _progress(url: str) -> tuple[str | None, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            status = conn.scalar(select(Dataset.status))
            return status, conn.scalar(select(func.count()).select_from(Item)) or 0
    finally:
        engine.dispose()


def _state(url: str, data_dir: Path, roots: str) -> dict:
    """What a user sees (the dataset with its facet counts over the API) and what is stored (keys, annotations)."""
    settings = Settings(_env_file=None, database_url=url, data_dir=data_dir, data_roots=roots,
                        allowed_hosts="testserver")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            dupes = conn.execute(text("SELECT dataset_id, key FROM items GROUP BY dataset_id, key "
                                      "HAVING count(*) > 1")).all()
            keys = conn.scalars(select(Item.key).order_by(Item.key)).all()
            annotations = sorted(conn.execute(
                select(Item.key, Annotation.kind, Annotation.label, Annotation.source, Annotation.slice_index)
                .join(Item, Item.id == Annotation.item_id)).all())
    finally:
        engine.dispose()
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {api_token(settings)}"
        (summary,) = client.get("/api/datasets").json()
        detail = client.get(f"/api/datasets/{summary['id']}").json()
    return {"dupes": dupes, "keys": keys, "annotations": annotations, "status": summary["status"],
            "item_count": summary["item_count"], "annotation_count": summary["annotation_count"],
            "facets": detail["facets"]}


def test_ingest_killed_mid_way_then_rerun_equals_a_clean_ingest(database_url, clean_url, lesions, tmp_path):
    roots = str(lesions.parent)
    env = medview_env(MEDVIEW_DATABASE_URL=database_url, MEDVIEW_DATA_DIR=str(tmp_path / "data"),
                      MEDVIEW_DATA_ROOTS=roots, MEDVIEW_INGEST_BATCH=BATCH)
    ingest = ["ingest", str(lesions), "--kind", "deeplesion", "--name", "lesions", "--quiet"]

    clean = run(ingest, {**env, "MEDVIEW_DATABASE_URL": clean_url}, tmp_path)
    assert clean.returncode == 0, clean.stderr
    expected = _state(clean_url, tmp_path / "data", roots)
    total = expected["item_count"]
    assert total > 1000 and expected["annotation_count"] > 1000 and expected["status"] == "ready"

    proc = start(ingest, env, tmp_path)
    try:
        wait_until(lambda: proc.poll() is not None or _progress(database_url)[1] >= 20, 120,
                   "the ingest to commit its first batches")
        assert proc.poll() is None, f"ingest ended before it could be killed: {log_of(proc)[-1000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    status, written = _progress(database_url)
    assert proc.returncode == -signal.SIGKILL
    assert status == "indexing" and 0 < written < total, (status, written, total)  # killed mid-way

    again = run(ingest, env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{total} items" in again.stdout and "0 removed" in again.stdout, again.stdout
    got = _state(database_url, tmp_path / "data", roots)
    assert got["dupes"] == [] and got["status"] == "ready"
    assert got == expected
