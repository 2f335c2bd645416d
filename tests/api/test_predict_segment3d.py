"""3-D segmentation end to end on generated VerSe volumes with real ONNX models that threshold the windowed CT:
the sliding-window result equals the threshold computed here on the volume read with nibabel, the stored
.npz, the mask endpoint's planes (same size as /raw's), per-item vertebra metrics, the job path and the
evaluation; and the 2-D tasks refused on volumes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from sqlalchemy import select

from app.datasets.ingest import ingest_path
from app.datasets.verse.synth import generate_verse
from app.db.models import Annotation, Item, ItemMetric
from app.db.session import make_session_factory
from app.imaging.labels import decode_label_png
from app.imaging.volume import display_plane
from app.metrics.vertebrae import identification_rate, label_centroids, per_label_dice
from tests.helpers.api import register, wait_finished
from tests.onnx_models import constant_detector, threshold_segmenter, threshold_segmenter_3d

TILE = (24, 40, 40)
WINDOW = (-1000.0, 1000.0)
HU_CUT = 250.5  # bone above; never equal to an integer HU
THRESHOLD = (HU_CUT - WINDOW[0]) / (WINDOW[1] - WINDOW[0])


def card(name: str, kind: str = "mask_logits", task: str = "segment3d", **input_changes) -> str:
    spec = {"layout": "NCDHW", "size": list(TILE), "channels": 1, "window": list(WINDOW), "overlap": 0.5}
    spec.update(input_changes)
    return yaml.safe_dump({"name": name, "task": task, "input": spec, "output": {"kind": kind},
                           "applies_to": ["verse"]}, sort_keys=False)


@pytest.fixture(scope="module")
def verse(tmp_path_factory):
    return generate_verse(tmp_path_factory.mktemp("verse-seg") / "verse", subjects=2, layout="bids", seed=7)


@pytest.fixture
def dataset_id(engine, settings, verse) -> int:
    return ingest_path(engine, settings, verse.root, kind="verse", name="verse").dataset_id


def canonical(path: Path) -> np.ndarray:
    return np.rint(nib.as_closest_canonical(nib.load(str(path))).get_fdata()).astype(np.int32)


def items(engine, dataset_id: int) -> list[Item]:
    with make_session_factory(engine)() as session:
        rows = list(session.scalars(select(Item).where(Item.dataset_id == dataset_id).order_by(Item.id)))
        session.expunge_all()
    return rows


def centroids(engine, item_id: int) -> dict[int, list[float]]:
    with make_session_factory(engine)() as session:
        return {int(a.label): a.geometry["point"] for a in session.scalars(select(Annotation).where(
            Annotation.item_id == item_id, Annotation.kind == "centroid"))}


def test_sliding_window_equals_threshold_and_mask_planes(client, engine, settings, dataset_id, verse, tmp_path):
    r = register(client, threshold_segmenter_3d(tmp_path / "bone.onnx", TILE, THRESHOLD), card("bone"))
    assert r.status_code == 201, r.text
    model_id = r.json()["id"]
    item = items(engine, dataset_id)[0]
    subject = verse.subjects[0]
    body = client.post(f"/api/items/{item.id}/predict", json={"model_id": model_id})
    assert body.status_code == 200, body.text
    body = body.json()
    expected = (canonical(subject.ct) > HU_CUT).astype(np.uint8)
    assert body["outputs"] == {"mask": f"/api/items/{item.id}/predictions/{model_id}/mask", "labels": [1]}
    with np.load(Path(settings.data_dir) / "predictions" / str(model_id) / f"{item.id}.npz") as stored:
        assert np.array_equal(stored["labels"], expected)
        spacing = tuple(stored["spacing"])
    assert spacing == pytest.approx(subject.canonical_spacing)
    for plane, index in (("axial", 30), ("coronal", 64), ("sagittal", 70), ("axial", None)):
        params = {"plane": plane} | ({"slice": index} if index is not None else {})
        png = client.get(body["outputs"]["mask"], params=params)
        assert png.status_code == 200, png.text
        raw = client.get(f"/api/items/{item.id}/raw", params=params)
        shape = tuple(int(v) for v in raw.headers["x-shape"].split(","))
        got = decode_label_png(png.content)
        assert got.shape == shape[:2]  # the frame and size of /raw for the same view
        want, _ = display_plane(expected, spacing, plane, int(png.headers["x-slice"]), labels=True)
        assert np.array_equal(got, want)
    assert client.get(body["outputs"]["mask"], params={"plane": "axial", "slice": 999}).status_code == 400
    # label 1 is no vertebra: every GT vertebra scores Dice 0 and none is identified
    gt = canonical(subject.mask)
    labels = sorted(int(v) for v in np.unique(gt) if v > 0)
    assert body["metrics"]["dice_per_label"] == {str(v): 0.0 for v in labels}
    assert body["metrics"]["dice_mean"] == 0.0 and body["metrics"]["identification_rate"] == 0.0


def test_job_label_model_metrics_and_evaluation(client, engine, dataset_id, verse, tmp_path):
    every = items(engine, dataset_id)
    first_gt = canonical(verse.subjects[0].mask)
    label = int(min(v for v in np.unique(first_gt) if v > 0))
    r = register(client, threshold_segmenter_3d(tmp_path / "lab.onnx", TILE, THRESHOLD, label=label),
                 card("labeller", kind="mask", overlap=0.25))
    assert r.status_code == 201, r.text
    model_id = r.json()["id"]
    job = client.post("/api/jobs", json={"kind": "predict", "model_id": model_id, "dataset_id": dataset_id})
    assert job.status_code == 202, job.text
    assert wait_finished(client, job.json()["id"], timeout=120)["status"] == "done"
    dice_sums: dict[int, list[float]] = {}
    rates = []
    for item, subject in zip(every, verse.subjects, strict=True):
        pred = (canonical(subject.ct) > HU_CUT).astype(np.int64) * label
        gt = canonical(subject.mask)
        gt_labels = {int(v) for v in np.unique(gt) if v > 0}
        want = {k: v for k, v in per_label_dice(pred, gt).items() if k in gt_labels}
        rate = identification_rate(label_centroids(pred), centroids(engine, item.id), subject.canonical_spacing)
        got = client.get(f"/api/items/{item.id}").json()["predictions"][0]
        assert got["task"] == "segment3d"
        assert got["metrics"]["dice_per_label"] == pytest.approx({str(k): v for k, v in want.items()})
        assert got["metrics"]["dice_mean"] == pytest.approx(np.mean(list(want.values())))
        assert got["metrics"]["identification_rate"] == pytest.approx(rate["rate"])
        with make_session_factory(engine)() as session:
            rows = dict(session.execute(select(ItemMetric.name, ItemMetric.value).where(
                ItemMetric.item_id == item.id, ItemMetric.model_id == model_id)).all())
        assert rows == pytest.approx({"dice_mean": got["metrics"]["dice_mean"],
                                      "identification_rate": rate["rate"]})
        for k, v in want.items():
            dice_sums.setdefault(k, []).append(v)
        rates.append(rate["rate"])
    assert want  # the label model really overlaps the vertebra it names
    ev = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": dataset_id}).json()
    assert ev["task"] == "segment3d" and ev["n"] == len(every)
    assert ev["dice_per_label"] == pytest.approx({str(k): np.mean(v) for k, v in sorted(dice_sums.items())})
    assert ev["identification_rate"] == pytest.approx(np.mean(rates))
    page = client.get(f"/models/{model_id}/evaluation", params={"dataset_id": dataset_id})
    assert page.status_code == 200 and page.text.count('class="dice-bar"') == len(dice_sums)
    assert f"/datasets/{dataset_id}?sort=metric:{model_id}:dice_mean" in page.text


def test_2d_models_refused_on_volumes(client, engine, dataset_id, tmp_path):
    item = items(engine, dataset_id)[0]
    seg = yaml.safe_dump({"name": "flat", "task": "segment2d", "input": {"size": [64, 64], "channels": 3},
                          "output": {"kind": "mask_logits"}})
    det = yaml.safe_dump({"name": "det", "task": "detect2d", "input": {"size": [64, 64], "channels": 3},
                          "output": {"kind": "boxes"}})
    for path, text in ((threshold_segmenter(tmp_path / "flat.onnx", (64, 64), 0.5), seg),
                       (constant_detector(tmp_path / "det.onnx", np.zeros((1, 6)), (64, 64)), det)):
        r = register(client, path, text)
        assert r.status_code == 201, r.text
        bad = client.post(f"/api/items/{item.id}/predict", json={"model_id": r.json()["id"]})
        assert bad.status_code == 400 and "verse items are volumes" in bad.json()["detail"]


def test_a_one_channel_model_is_scored_on_foreground(client, engine, dataset_id, verse, tmp_path):
    """A model of one output channel (the demo's bone threshold) marks vertebrae without numbers: it is scored by
    the Dice of its foreground against every labelled voxel, not per vertebra (its label 1 is not vertebra 1)."""
    from app.demo_models import verse_bone_segmenter

    onnx_file = tmp_path / "bone1.onnx"
    onnx_file.write_bytes(verse_bone_segmenter(threshold_hu=HU_CUT))
    r = register(client, onnx_file, card("bone-1ch", window=[-1000.0, 1900.0], overlap=0.25))
    assert r.status_code == 201, r.text
    model_id = r.json()["id"]
    job = client.post("/api/jobs", json={"kind": "predict", "model_id": model_id, "dataset_id": dataset_id})
    assert job.status_code == 202, job.text
    assert wait_finished(client, job.json()["id"], timeout=120)["status"] == "done"
    dices = []
    for item, subject in zip(items(engine, dataset_id), verse.subjects, strict=True):
        pred, gt = canonical(subject.ct) > HU_CUT, canonical(subject.mask) > 0
        want = 2 * np.logical_and(pred, gt).sum() / (pred.sum() + gt.sum())
        got = client.get(f"/api/items/{item.id}").json()["predictions"][0]["metrics"]
        assert got == pytest.approx({"dice_foreground": want, "dice_mean": want})  # no per-label, no id. rate
        dices.append(want)
    assert 0.2 < np.mean(dices) < 1.0  # bone above the cut overlaps the labelled vertebrae, not exactly
    ev = client.get(f"/api/models/{model_id}/evaluation", params={"dataset_id": dataset_id}).json()
    assert ev["dice_foreground"] == pytest.approx(np.mean(dices)) and ev["dice_mean"] == pytest.approx(np.mean(dices))
    assert ev["dice_per_label"] == {} and ev["identification_rate"] is None
    page = client.get(f"/models/{model_id}/evaluation", params={"dataset_id": dataset_id})
    assert page.status_code == 200 and 'id="metric-dice-foreground"' in page.text and "metric-id-rate" not in page.text
