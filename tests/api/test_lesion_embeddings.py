"""Per-lesion embeddings on the generated DeepLesion sample with a real ONNX embedder built here (3-slice CT
input, windowed per the card): the embed job stores one vector per RECIST lesion (its box with context) keyed by
annotation id beside the item vectors, a re-run skips what is stored and redoes items whose lesions lack one,
and the patient page and its JSON match lesions across studies by those vectors (and draw the size chart)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from sqlalchemy import select

from app.db.models import Annotation, Item
from app.db.session import make_session_factory
from app.inference import vectors
from app.inference.jobs import create_predict_job, run_job
from app.inference.registry import RuntimeCache
from tests.helpers.api import register, wait_finished
from tests.onnx_models import projection_embedder

SIZE, DIM = 64, 24


def card(name: str = "dl-embedder") -> str:
    return yaml.safe_dump({
        "name": name, "task": "embed", "description": "test: random projection of pooled CT crops",
        "input": {"layout": "NCHW", "size": [SIZE, SIZE], "channels": 3, "window": [-175, 275], "slices": 3},
        "output": {"kind": "embedding"}, "applies_to": ["deeplesion"]}, sort_keys=False)


@pytest.fixture
def dl_embedder(client, tmp_path) -> int:
    r = register(client, projection_embedder(tmp_path / "dl.onnx", (SIZE, SIZE), dim=DIM, pool=8), card())
    assert r.status_code == 201, r.text
    return r.json()["id"]


def lesions_by_item(engine, dataset_id: int) -> dict[int, list[int]]:
    with make_session_factory(engine)() as session:
        out: dict[int, list[int]] = {i: [] for i in session.scalars(select(Item.id).where(
            Item.dataset_id == dataset_id))}
        for ann_id, item_id in session.execute(select(Annotation.id, Annotation.item_id).join(Item).where(
                Item.dataset_id == dataset_id, Annotation.kind == "recist").order_by(Annotation.id)):
            out[item_id].append(ann_id)
    return out


def embed_all(client, model_id: int, dataset_id: int) -> None:
    r = client.post("/api/jobs", json={"kind": "predict", "model_id": model_id, "dataset_id": dataset_id})
    assert r.status_code == 202, r.text
    assert wait_finished(client, r.json()["id"])["status"] == "done"


def test_job_stores_one_vector_per_lesion(client, app, engine, settings, ingested, dl_embedder):
    ds = ingested.dataset_id
    expected = lesions_by_item(engine, ds)
    embed_all(client, dl_embedder, ds)
    items = vectors.load(settings, dl_embedder, ds)
    lesions = vectors.load(settings, dl_embedder, ds, vectors.LESIONS)
    assert items is not None and lesions is not None
    assert items.ids.tolist() == sorted(expected)  # the item vectors as before
    assert lesions.ids.tolist() == sorted(a for anns in expected.values() for a in anns)
    assert lesions.vectors.shape[1] == DIM and lesions.vectors.dtype == np.float16
    assert (vectors.store_dir(settings, dl_embedder, ds) / "lesions").is_dir()
    # an item with one lesion: its crop is that lesion's, so the vectors agree; with two, each lesion differs
    single = next(i for i, anns in expected.items() if len(anns) == 1)
    np.testing.assert_allclose(items.vectors[items.row_of(single)].astype(np.float32),
                               lesions.vectors[lesions.row_of(expected[single][0])].astype(np.float32), atol=2e-3)
    multi = [anns for anns in expected.values() if len(anns) > 1]
    if multi:
        a, b = (lesions.vectors[lesions.row_of(x)].astype(np.float32) for x in multi[0][:2])
        assert not np.allclose(a, b, atol=1e-2)
    # lookup reads just the ids asked for (what the patient page does), the latest write of each
    some = lesions.ids[:3].tolist()
    got = vectors.lookup(settings, dl_embedder, ds, [*some, 10**9], vectors.LESIONS)
    assert sorted(got) == some
    np.testing.assert_allclose(got[some[1]], lesions.vectors[1].astype(np.float32))

    # a re-run finds nothing to do; an item store without lesion vectors (an older job) is redone
    folder = vectors.store_dir(settings, dl_embedder, ds)
    chunks = sorted(folder.glob("chunk-*.npz"))
    with app.state.session_factory() as session:
        job_id = create_predict_job(session, dl_embedder, ds, {}).id
    assert run_job(engine, settings, RuntimeCache(), job_id) == "done"
    assert sorted(folder.glob("chunk-*.npz")) == chunks
    shutil.rmtree(folder / "lesions")
    with app.state.session_factory() as session:
        job_id = create_predict_job(session, dl_embedder, ds, {}).id
    seen: list[tuple[int, int]] = []
    assert run_job(engine, settings, RuntimeCache(), job_id, progress=lambda d, t: seen.append((d, t))) == "done"
    with_lesions = sum(1 for anns in expected.values() if anns)
    assert seen[0] == (len(expected) - with_lesions, len(expected))
    again = vectors.load(settings, dl_embedder, ds, vectors.LESIONS)
    assert again is not None and again.ids.tolist() == lesions.ids.tolist()


def test_patient_tracks_by_embedding(client, engine, settings, ingested, deeplesion_sample, dl_embedder):
    ds = ingested.dataset_id
    studies_of: dict[str, set[str]] = {}
    for r in deeplesion_sample.rows:
        studies_of.setdefault(r["File_name"][:6], set()).add(r["File_name"][:9])
    patient = next(p for p, s in sorted(studies_of.items()) if len(s) >= 2)
    before = client.get(f"/api/datasets/{ds}/patients/{patient}").json()
    assert before["tracks_model"] is None and {t["matched_by"] for t in before["tracks"]} == {"location"}
    page = client.get(f"/datasets/{ds}/patients/{patient}").text
    assert "is matched to an earlier one of the same type" in page and 'id="track-chart"' in page

    embed_all(client, dl_embedder, ds)
    body = client.get(f"/api/datasets/{ds}/patients/{patient}").json()
    assert body["tracks_model"] == {"id": dl_embedder, "name": "dl-embedder"}
    followed = [t for t in body["tracks"] if len(t["by_study"]) >= 2]
    assert followed and all(t["matched_by"] == "embedding" for t in followed)
    # the same lesion links as the heuristic found, now with the pair similarity
    assert sorted(map(sorted, (t["annotation_ids"] for t in followed))) == sorted(
        map(sorted, (t["annotation_ids"] for t in before["tracks"] if len(t["by_study"]) >= 2)))
    lesion_vectors = vectors.load(settings, dl_embedder, ds, vectors.LESIONS)
    assert lesion_vectors is not None
    for t in followed:
        first, second = t["annotation_ids"][:2]
        link = list(t["by_study"].values())[1]
        expected = float(lesion_vectors.vectors[lesion_vectors.row_of(first)].astype(np.float32)
                         @ lesion_vectors.vectors[lesion_vectors.row_of(second)].astype(np.float32))
        assert link["matched_by"] == "embedding" and link["similarity"] == pytest.approx(expected, abs=1e-3)
    page = client.get(f"/datasets/{ds}/patients/{patient}").text
    assert "by the embedding model <b>dl-embedder</b>" in page
    assert page.count('class="track-line"') == len(body["tracks"])
    assert 'data-matched-by="embedding"' in page and ("sim 0." in page or "sim 1.00" in page)
