"""Embedding vectors go with their model or dataset (issue 15): deleting a model removes
`<data_dir>/embeddings/<model_id>/`, deleting a dataset (a discarded first ingest, the one path that deletes
a dataset) removes `embeddings/*/<dataset_id>/` with its lesion sub-store and ANN index files — after the
commit: a refused delete keeps them; other models' and datasets' vectors stay."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select, update

from app.db.models import Dataset, Job
from app.db.session import make_session_factory
from app.inference import vectors
from app.inference.jobs import create_predict_job
from app.ingest_jobs import _discard_new_dataset
from tests.helpers.api import wait_finished
from tests.helpers.pcam import register_embedder


def embedder(client, tmp_path, name: str) -> int:
    return register_embedder(client, tmp_path, name, dim=8)


def fake_store(settings, model_id: int, dataset_id: int) -> None:
    vectors.append(settings, model_id, dataset_id, [1, 2], np.eye(2, 4))
    vectors.append(settings, model_id, dataset_id, [7], np.ones((1, 4)), vectors.LESIONS)
    (vectors.store_dir(settings, model_id, dataset_id) / "index-2-abc.usearch").write_bytes(b"index")


def test_deleting_a_model_removes_its_vectors(client, app, settings, pcam_dataset_id, tmp_path):
    doomed, kept = embedder(client, tmp_path, "doomed"), embedder(client, tmp_path, "kept")
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": doomed, "dataset_id": pcam_dataset_id})
    assert wait_finished(client, r.json()["id"])["status"] == "done"
    fake_store(settings, doomed, 999)
    fake_store(settings, kept, pcam_dataset_id)
    assert vectors.load(settings, doomed, pcam_dataset_id) is not None  # cached in memory too
    root = vectors.embeddings_root(settings)
    # refused (a job of it is running): nothing removed
    with app.state.session_factory() as session:
        job = create_predict_job(session, doomed, pcam_dataset_id, {})
        session.execute(update(Job).where(Job.id == job.id).values(status="running"))
        session.commit()
    assert client.delete(f"/api/models/{doomed}").status_code == 409
    assert (root / str(doomed) / str(pcam_dataset_id)).is_dir()
    with app.state.session_factory() as session:
        session.execute(update(Job).where(Job.id == job.id).values(status="cancelled"))
        session.commit()
    r = client.delete(f"/api/models/{doomed}")
    assert r.status_code == 200, r.text
    assert not (root / str(doomed)).exists()
    assert vectors.load(settings, doomed, pcam_dataset_id) is None
    assert vectors.stored_ids(settings, kept, pcam_dataset_id) == {1, 2}
    assert vectors.stored_ids(settings, kept, pcam_dataset_id, vectors.LESIONS) == {7}


def test_deleting_a_dataset_removes_its_vectors(engine, settings, pcam_dataset_id):
    with make_session_factory(engine)() as session:
        root = session.scalar(select(Dataset.root).where(Dataset.id == pcam_dataset_id))
    other = pcam_dataset_id + 1
    for model_id in (3, 4):
        fake_store(settings, model_id, pcam_dataset_id)
        fake_store(settings, model_id, other)
    _discard_new_dataset(engine, settings, root, existed=pcam_dataset_id)  # a re-ingest's dataset: kept
    assert vectors.stored_ids(settings, 3, pcam_dataset_id) == {1, 2}
    _discard_new_dataset(engine, settings, root, existed=None)
    with make_session_factory(engine)() as session:
        assert session.get(Dataset, pcam_dataset_id) is None
    emb = vectors.embeddings_root(settings)
    assert sorted(p.relative_to(emb).as_posix() for p in emb.glob("*/*")) == [f"3/{other}", f"4/{other}"]
    assert vectors.stored_ids(settings, 4, other, vectors.LESIONS) == {7}
