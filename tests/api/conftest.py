"""Samples and models several API test modules share (the plain helpers that go with them: tests/helpers/).

PCam with the centre-mean ONNX classifier (test_jobs, test_job_recovery, test_model_pages, test_models_predict);
BIS5k for the 2-D segmenters (test_predict_segment2d, test_predict_tiles2d). The generated trees are shared by
the session: tests must not modify them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path
from app.datasets.pcam import pixels
from app.datasets.pcam.synth import generate_pcam
from tests.helpers import bis5k, pcam
from tests.helpers.api import register, wait_finished


@pytest.fixture(scope="session")
def pcam_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    splits = (pcam.TRAIN, pcam.VALID, pcam.TEST)
    return generate_pcam(tmp_path_factory.mktemp("pcam-api") / "pcam", n_per_split=splits, seed=2).root


@pytest.fixture
def pcam_dataset_id(engine, settings, pcam_root) -> int:
    pixels.close_all()
    return ingest_path(engine, settings, pcam_root, kind="pcam", name="pcam").dataset_id


@pytest.fixture
def pcam_model_id(client, tmp_path) -> int:
    """The classifier registered as `pcam-baseline`."""
    r = register(client, pcam.classifier_onnx(tmp_path / "pcam_baseline.onnx"), pcam.card_yaml())
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def pcam_predicted(client, pcam_dataset_id, pcam_model_id) -> tuple[int, int]:
    """(dataset id, model id) once a predict job over the whole dataset is done."""
    job = client.post("/api/jobs", json={"kind": "predict", "model_id": pcam_model_id, "dataset_id": pcam_dataset_id})
    assert wait_finished(client, job.json()["id"])["status"] == "done"
    return pcam_dataset_id, pcam_model_id


@pytest.fixture(scope="session")
def bis_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BIS5k with one training mask deleted (bis5k.NO_MASK): that image is indexed without ground truth."""
    sample = generate_bis5k(tmp_path_factory.mktemp("bis-seg") / "bis5k", n_train=4, n_test=2, seed=4)
    (sample.root / bis5k.NO_MASK).unlink()
    return sample.root


@pytest.fixture
def bis_dataset_id(engine, settings, bis_root) -> int:
    return ingest_path(engine, settings, bis_root, kind="bis5k", name="bis").dataset_id
