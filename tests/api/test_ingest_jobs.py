"""Ingest as a job (issue 13): `POST /api/datasets` (admin) checks the folder, kind and name before any job row is
written, then the app's worker indexes it with its phase and progress in the job; the result equals a CLI ingest of
the same folder; a folder that cannot be indexed fails the job with the reason and writes nothing; cancelling stops
it without leaving half a dataset; a stopped worker's job resumes. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import ingest_jobs
from app.cli import main as cli_main
from app.datasets.deeplesion.table import COLUMNS
from app.datasets.imagefolder.synth import generate_imagefolder
from app.db.models import AuditEvent, Dataset, Item, Job
from app.db.session import make_session_factory
from app.errors import Conflict
from app.inference.jobs import cancel_job, run_job
from app.inference.registry import RuntimeCache
from tests.helpers.api import wait_finished
from tests.helpers.auth import api_token, signed_in

REDIS_URL = os.environ.get("MEDVIEW_TEST_REDIS_URL", "")


def _as(settings, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, f'user-{role}', role)}"}


def job_count(engine) -> int:
    with engine.connect() as c:
        return c.scalar(select(func.count()).select_from(Job)) or 0


def datasets(engine) -> list[tuple[int, str, str]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(select(Dataset.id, Dataset.name, Dataset.status).order_by(Dataset.id))]


def items_of(engine, dataset_id: int | None = None) -> int:
    stmt = select(func.count()).select_from(Item)
    if dataset_id is not None:
        stmt = stmt.where(Item.dataset_id == dataset_id)
    with engine.connect() as c:
        return c.scalar(stmt) or 0


@pytest.fixture
def folder(tmp_path, demo_samples) -> Path:
    """A private copy of the demo's image-folder sample (the folder the API ingests)."""
    target = tmp_path / "incoming" / "cells"
    shutil.copytree(demo_samples / "imagefolder", target)
    (target / ".complete").unlink(missing_ok=True)
    return target


@pytest.fixture
def cells(tmp_path) -> Path:
    """A small image folder in the plain class-folder layout (12 images), to which a test may add images."""
    return generate_imagefolder(tmp_path / "incoming" / "small", layout="folders", classes=["EOS", "LYT"],
                                per_class=6, seed=1, size=32).root


@pytest.fixture
def broken_deeplesion(tmp_path, deeplesion_sample) -> Path:
    """DeepLesion without its DICOM_windows column: nothing can be indexed (an IngestError at scan time)."""
    root = tmp_path / "broken" / "DeepLesion"
    shutil.copytree(deeplesion_sample.root, root)
    with (root / "DL_info.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with (root / "DL_info.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[c for c in COLUMNS if c != "DICOM_windows"], lineterminator="\n",
                           extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return root


def test_admin_ingests_a_folder_as_a_job_like_the_cli(client, engine, settings, folder, tmp_path, monkeypatch,
                                                     capsys):
    r = client.post("/api/datasets", json={"path": str(folder)})
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["kind"] == "ingest" and created["status"] == "queued"
    assert created["params"]["kind"] == "imagefolder"  # detected from the files, at POST time
    assert created["params"]["name"] == "cells" and created["params"]["path"] == str(folder.resolve())
    assert created["links"] == {"job": f"/api/jobs/{created['id']}", "cancel": f"/api/jobs/{created['id']}/cancel"}
    job = wait_finished(client, created["id"])
    assert job["status"] == "done", job
    result = job["params"]["result"]
    assert job["params"]["phase"] == "done" and job["done"] == job["total"] == result["items"] > 0
    dataset = client.get(f"/api/datasets/{result['dataset_id']}").json()
    assert dataset["status"] == "ready" and dataset["name"] == "cells" and dataset["kind"] == "imagefolder"
    assert dataset["item_count"] == result["items"] and dataset["annotation_count"] == result["annotations"]
    with Session(engine) as s:
        start = s.scalar(select(AuditEvent).where(AuditEvent.action == "job.start",
                                                  AuditEvent.target_id == str(created["id"])))
        assert start is not None and start.after["kind"] == "ingest" and start.after["path"] == str(folder.resolve())

    # the CLI on a copy of the same folder indexes the same items and annotations
    copy = tmp_path / "cli" / "cells"
    shutil.copytree(folder, copy)
    for name, value in (("MEDVIEW_DATABASE_URL", settings.database_url), ("MEDVIEW_DATA_ROOTS", settings.data_roots),
                        ("MEDVIEW_DATA_DIR", str(settings.data_dir))):
        monkeypatch.setenv(name, value)
    assert cli_main(["ingest", str(copy), "--name", "cells-cli", "--quiet"]) == 0
    capsys.readouterr()
    by_name = {d["name"]: d for d in client.get("/api/datasets").json()}
    assert by_name["cells-cli"]["item_count"] == dataset["item_count"]
    assert by_name["cells-cli"]["annotation_count"] == dataset["annotation_count"]

    # again, through the API: the same dataset, its name kept, nothing changed
    again = client.post("/api/datasets", json={"path": str(folder) + "/"})
    assert again.status_code == 202, again.text
    redone = wait_finished(client, again.json()["id"])
    assert redone["status"] == "done", redone
    assert redone["params"]["result"]["dataset_id"] == result["dataset_id"]
    assert redone["params"]["result"]["unchanged"] == result["items"] and redone["params"]["name"] == "cells"


def test_refusals_name_the_problem_and_write_no_job(client, engine, settings, cells, tmp_path):
    roots = ":".join(str(p) for p in settings.allowed_roots)
    outside = client.post("/api/datasets", json={"path": "/etc"})
    assert outside.status_code == 400
    assert "/etc" in outside.json()["detail"] and roots in outside.json()["detail"]
    assert client.post("/api/datasets", json={"path": "/no/such/folder"}).json()["detail"] == (
        outside.json()["detail"].replace("/etc", "/no/such/folder"))  # outside: whether it exists is not said
    link = tmp_path / "link-out"
    os.symlink("/usr/share", link)  # inside the roots by name, outside once resolved
    refused = client.post("/api/datasets", json={"path": str(link)})
    assert refused.status_code == 400 and "outside the data roots" in refused.json()["detail"]
    assert "/usr/share" not in refused.json()["detail"]  # where the link points is not told
    relative = client.post("/api/datasets", json={"path": "incoming/small"})
    assert relative.status_code == 400 and "not absolute" in relative.json()["detail"]
    missing = client.post("/api/datasets", json={"path": str(tmp_path / "nothing-here")})
    assert missing.status_code == 400 and "no such folder" in missing.json()["detail"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "not a folder" in client.post("/api/datasets", json={"path": str(a_file)}).json()["detail"]
    unknown = client.post("/api/datasets", json={"path": str(cells), "kind": "tiff-stack"})
    assert unknown.status_code == 400
    assert "tiff-stack" in unknown.json()["detail"] and "imagefolder" in unknown.json()["detail"]
    empty = tmp_path / "empty"
    empty.mkdir()
    unrecognised = client.post("/api/datasets", json={"path": str(empty)})
    assert unrecognised.status_code == 400 and "not a dataset MedView recognises" in unrecognised.json()["detail"]
    assert "pcam" in unrecognised.json()["detail"]
    nul = client.post("/api/datasets", json={"path": str(cells) + "\x00x"})
    assert nul.status_code == 400 and "NUL" in nul.json()["detail"]
    for body in ({}, {"path": ""}, {"path": str(cells), "root": "x"}, {"path": "/" + "a" * 5000},
                 {"path": str(cells), "name": "n" * 201}):
        r = client.post("/api/datasets", json=body)
        assert r.status_code == 422 and r.json()["detail"], (body, r.text)
    assert job_count(engine) == 0 and datasets(engine) == []


def test_name_and_kind_clashes_are_conflicts(client, engine, settings, cells, tmp_path):
    first = client.post("/api/datasets", json={"path": str(cells), "name": "cells"})
    assert wait_finished(client, first.json()["id"])["status"] == "done"
    other = tmp_path / "other" / "cells"
    shutil.copytree(cells, other)
    clash = client.post("/api/datasets", json={"path": str(other)})  # its default name is taken
    assert clash.status_code == 409 and "'cells'" in clash.json()["detail"]
    as_kind = client.post("/api/datasets", json={"path": str(cells), "kind": "bis5k"})
    assert as_kind.status_code == 409 and "imagefolder" in as_kind.json()["detail"]
    renamed = client.post("/api/datasets", json={"path": str(other), "name": "cells-2"})
    assert renamed.status_code == 202 and wait_finished(client, renamed.json()["id"])["status"] == "done"
    assert [n for _, n, _ in datasets(engine)] == ["cells", "cells-2"]


def test_only_admins_ingest(anon_client, settings, cells, engine):
    body = {"path": str(cells)}
    assert anon_client.post("/api/datasets", json=body).status_code == 401
    for role in ("viewer", "annotator", "reviewer"):
        r = anon_client.post("/api/datasets", json=body, headers=_as(settings, role))
        assert r.status_code == 403 and "admin" in r.json()["detail"], (role, r.text)
    assert job_count(engine) == 0


def test_a_folder_that_cannot_be_indexed_fails_the_job_and_writes_nothing(client, engine, settings,
                                                                          broken_deeplesion, tmp_path):
    r = client.post("/api/datasets", json={"path": str(broken_deeplesion), "kind": "deeplesion"})
    assert r.status_code == 202, r.text
    job = wait_finished(client, r.json()["id"])
    assert job["status"] == "failed" and "DICOM_windows" in job["error"], job
    assert job["params"]["phase"] == "failed" and job["params"]["problem_count"] == len(job["params"]["problems"])
    assert str(broken_deeplesion.parent.parent) not in str(job["params"]["problems"])  # relative to the root
    assert datasets(engine) == [] and items_of(engine) == 0
    # others than admins see the folder as datasets show theirs: relative to its data root
    viewer = _as(settings, "viewer")
    for seen in (client.get(f"/api/jobs/{job['id']}", headers=viewer).json(),
                 client.get("/api/jobs", headers=viewer).json()[0]):
        assert seen["params"]["path"] == f"{tmp_path.name}/broken/DeepLesion", seen
        assert str(tmp_path) not in str(seen), seen
    assert client.get(f"/api/jobs/{job['id']}").json()["params"]["path"] == str(broken_deeplesion.resolve())


def _queued(engine, settings, folder: Path) -> int:
    """An ingest job made through the service, not submitted to any worker (no app is running)."""
    with make_session_factory(engine)() as session:
        return ingest_jobs.create_ingest_job(session, settings, ingest_jobs.IngestParams(path=str(folder))).id


def test_an_active_ingest_of_the_folder_is_a_conflict_and_a_cancelled_queued_one_never_runs(engine, settings,
                                                                                           cells):
    ingest_jobs.register()
    job_id = _queued(engine, settings, cells)
    with pytest.raises(Conflict, match=f"already being ingested \\(job {job_id}\\)"):
        _queued(engine, settings, cells)
    with make_session_factory(engine)() as session:
        cancel_job(session, job_id)
    assert run_job(engine, settings, RuntimeCache(), job_id) == "cancelled"
    assert datasets(engine) == []
    assert run_job(engine, settings, RuntimeCache(), _queued(engine, settings, cells)) == "done"


def test_cancelling_a_first_ingest_mid_write_leaves_no_dataset(engine, make_settings, cells):
    settings = make_settings(ingest_batch=2)
    ingest_jobs.register()
    job_id = _queued(engine, settings, cells)
    # cancelled once the first batch is written: the next progress report stops the ingest
    status = run_job(engine, settings, RuntimeCache(), job_id, should_cancel=lambda: items_of(engine) > 0)
    assert status == "cancelled"
    with Session(engine) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == "cancelled" and job.params["phase"] == "cancelled"
    assert datasets(engine) == [] and items_of(engine) == 0


def test_cancelling_a_reingest_keeps_the_dataset_and_running_again_resumes(engine, make_settings, cells):
    settings = make_settings(ingest_batch=2)
    ingest_jobs.register()
    assert run_job(engine, settings, RuntimeCache(), _queued(engine, settings, cells)) == "done"
    [(dataset_id, _, _)] = datasets(engine)
    full = items_of(engine, dataset_id)
    for n, source in enumerate(sorted(cells.rglob("*.jpg"))[:6]):
        shutil.copy(source, source.with_name(f"copy{n}_{source.name}"))
    job_id = _queued(engine, settings, cells)
    written: list[int] = []

    def after_a_batch() -> bool:
        written.append(items_of(engine, dataset_id))
        return written[-1] > full

    assert run_job(engine, settings, RuntimeCache(), job_id, should_cancel=after_a_batch) == "cancelled"
    [(same_id, _, status)] = datasets(engine)
    assert same_id == dataset_id and status == "failed"  # as the driver leaves a stopped ingest: resumable
    assert full < items_of(engine, dataset_id) < full + 6
    assert run_job(engine, settings, RuntimeCache(), _queued(engine, settings, cells)) == "done"
    assert datasets(engine)[0][2] == "ready" and items_of(engine, dataset_id) == full + 6


def test_a_stopping_worker_leaves_the_job_running_and_the_next_run_finishes_it(engine, settings, cells):
    ingest_jobs.register()
    job_id = _queued(engine, settings, cells)
    assert run_job(engine, settings, RuntimeCache(), job_id, should_stop=lambda: True) == "running"
    assert run_job(engine, settings, RuntimeCache(), job_id) == "done"
    with Session(engine) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.params["result"]["items"] == items_of(engine) > 0


def test_progress_is_written_per_phase_and_throttled_not_per_item(engine, settings, cells):
    job_id = _queued(engine, settings, cells)
    now = [0.0]
    with Session(engine) as state:
        writer = ingest_jobs.ProgressWriter(state, job_id, {"path": str(cells)}, None, None, None,
                                            clock=lambda: now[0])
        for n in range(1, 1001):  # a thousand items within one instant: the phase's start and its end
            writer("reading image headers", n, 1000)
        assert writer.writes == 2
        for n in range(1, 11):  # a second phase, its reports 0.3 s apart: every other one
            now[0] += 0.3
            writer("writing items", n, 20)
        assert writer.writes == 2 + 5
        job = state.get(Job, job_id)
        assert job is not None and job.params["phase"] == "writing items" and (job.done, job.total) == (9, 20)
        with make_session_factory(engine)() as other:
            cancel_job(other, job_id)
        now[0] += 1
        with pytest.raises(ingest_jobs.Cancelled):  # the update matches no active job: cancelled meanwhile
            writer("writing items", 12, 20)


def test_the_datasets_page_offers_add_dataset_to_admins_only(client, anon_client, settings):
    page = client.get("/", headers={"accept": "text/html"}).text
    assert 'id="ingest-form"' in page and "js/ingest.js" in page and '<option value="" selected>auto-detect' in page
    assert all(f'<option value="{k}">' in page for k in ("deeplesion", "pcam", "imagefolder", "dicom"))
    assert '"datasets": "/api/datasets"' in page and "<script>" not in page  # data for the script, no inline code
    for role in ("viewer", "reviewer"):
        other = anon_client.get("/", headers={"accept": "text/html", **_as(settings, role)}).text
        assert "Datasets" in other and "ingest-form" not in other and "ingest.js" not in other


@pytest.mark.skipif(not REDIS_URL, reason="MEDVIEW_TEST_REDIS_URL not set")
def test_an_ingest_runs_on_a_redis_worker(make_settings, settings, database_url, cells, tmp_path):
    """`medview worker` (a process of this checkout) runs ingest jobs the app queued on Redis."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the worker process shares this test's SQLite file")
    from fastapi.testclient import TestClient

    from app.main import create_app

    url = REDIS_URL
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    env.update(MEDVIEW_QUEUE_URL=url, MEDVIEW_DATABASE_URL=database_url, MEDVIEW_DATA_DIR=str(settings.data_dir),
               MEDVIEW_DATA_ROOTS=settings.data_roots,
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))  # this checkout's app, not an installed one
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        queued = make_settings(queue_url=url)
        with signed_in(TestClient(create_app(queued)), queued) as client:
            r = client.post("/api/datasets", json={"path": str(cells)})
            assert r.status_code == 202, r.text
            job = wait_finished(client, r.json()["id"])
            assert job["status"] == "done", job
            assert client.get(f"/api/datasets/{job['params']['result']['dataset_id']}").json()["item_count"] == 12
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert f"job {job['id']}: done" in stderr
