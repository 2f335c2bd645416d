"""`medview export` into a folder: VerSe `nifti` (the mask on the CT's own grid and affine, centroids in the
frame of the item's own centroid file; `medview ingest` reads the folder back to the same subjects, masks and
centroids), DeepLesion lesion sub-volumes against an independent PNG decode (HU, the DL_save_nifti.py affine), the
real VerSe sample, and bad input (exit 2 naming the problem, nothing written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from pycocotools.coco import COCO
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.cli import main as cli_main
from app.datasets.ingest import ingest_path
from app.datasets.verse import labels as vl
from app.datasets.verse.synth import generate_verse
from app.db.models import Annotation, Item

REDIS_URL = os.environ.get("MEDVIEW_TEST_REDIS_URL", "")
EXPORT_REDIS_DB = "11"


@pytest.fixture
def cli_env(monkeypatch, settings):
    for name in ("database_url", "data_dir", "data_roots"):
        monkeypatch.setenv(f"MEDVIEW_{name.upper()}", str(getattr(settings, name)))


def _centroids(engine, dataset_id: int) -> dict[tuple[str, str], list[float]]:
    with Session(engine) as s:
        rows = s.execute(select(Item.key, Annotation.label, Annotation.geometry)
                         .join(Item, Item.id == Annotation.item_id)
                         .where(Annotation.dataset_id == dataset_id, Annotation.kind == "centroid",
                                Annotation.is_current()))
        return {(key, label): g["point"] for key, label, g in rows}


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_verse_nifti_round_trip(cli_env, capsys, engine, settings, tmp_path):
    sample = generate_verse(tmp_path / "verse", subjects=2, seed=5)  # PIR storage; LPS with a PIR centroid file
    ds = ingest_path(engine, settings, sample.root, kind="verse", name="verse").dataset_id
    out = tmp_path / "out"
    assert cli_main(["export", "--dataset", "verse", "--format", "nifti", "--quiet", str(out)]) == 0
    assert "2 items exported as nifti" in capsys.readouterr().out
    for subject in sample.subjects:
        ct_rel = subject.ct.relative_to(sample.root)
        assert (out / ct_rel).read_bytes() == subject.ct.read_bytes()
        base = subject.ct.name.removesuffix("_ct.nii.gz")
        folder = out / "derivatives" / ct_rel.parent.relative_to("rawdata")
        mask = nib.load(folder / f"{base}_seg-vert_msk.nii.gz")
        original, ct = nib.load(subject.mask), nib.load(subject.ct)
        assert np.array_equal(np.asarray(mask.dataobj), np.rint(np.asarray(original.dataobj)).astype(np.uint8))
        assert np.allclose(mask.affine, ct.affine) and mask.shape == ct.shape
        written = json.loads((folder / f"{base}_seg-subreg_ctd.json").read_text())
        source = json.loads(subject.ctd.read_text())
        assert written[0] == {"direction": source[0]["direction"]}  # the file's own axis convention
        by_label = {e["label"]: e for e in source[1:]}
        for e in written[1:]:
            assert all(abs(e[a] - by_label[e["label"]][a]) < 0.02 for a in "XYZ"), (e, by_label[e["label"]])
    # COCO: one image per axial slice with labels, in the viewer's orientation of that plane (canonical RAS+,
    # x from the patient's right to left and y from anterior to posterior: canonical[::-1, ::-1, k].T)
    assert cli_main(["export", "--dataset", "verse", "--format", "coco", "--quiet", str(tmp_path / "coco")]) == 0
    coco = COCO(str(tmp_path / "coco" / "annotations.json"))
    by_key = {s.key: s for s in sample.subjects}
    assert {img["file_name"].split("#")[0] for img in coco.dataset["images"]} == set(by_key)
    canonical = {k: np.rint(np.asarray(nib.as_closest_canonical(nib.load(s.mask)).dataobj)).astype(np.uint8)
                 for k, s in by_key.items()}
    slices = 0
    for image in coco.dataset["images"]:
        key, _, z = image["file_name"].partition("#axial=")
        truth = canonical[key][::-1, ::-1, int(z)].T
        for a in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
            category = coco.loadCats(a["category_id"])[0]
            label = int(category["label"])
            assert category["name"] == vl.name(label)  # the vertebra's name (C1…L6, T13), not its number
            assert np.array_equal(coco.annToMask(a).astype(bool), truth == label), (key, z, label)
        slices += 1
    assert slices == sum(int(np.count_nonzero(m.any(axis=(0, 1)))) for m in canonical.values())

    again = ingest_path(engine, settings, out, kind="verse", name="again")
    assert again.items == 2
    first, second = _centroids(engine, ds), _centroids(engine, again.dataset_id)
    assert first.keys() == second.keys()
    assert all(np.allclose(first[k], second[k], atol=0.02) for k in first)


def test_deeplesion_subvolumes_and_bad_input(cli_env, capsys, ingested, deeplesion_sample, tmp_path):
    out = tmp_path / "nifti"
    assert cli_main(["export", "--dataset", "sample", "--format", "nifti", "--split", "train", "--quiet",
                     str(out)]) == 0
    spacing = {r["File_name"][:12]: [float(v) for v in r["Spacing_mm_px_"].split(",")] for r in deeplesion_sample.rows}
    files = sorted(out.glob("*.nii.gz"))
    assert files
    for path in files:
        series, _, span = path.name.removesuffix(".nii.gz").rpartition("_")
        first, last = (int(v) for v in span.split("-"))
        slices = [cv2.imread(str(deeplesion_sample.root / "Images_png" / series / f"{n:03d}.png"), cv2.IMREAD_UNCHANGED)
                  for n in range(first, last + 1)]
        expected = np.stack([s.astype(np.int32) - 32768 for s in slices], axis=-1)
        img = nib.load(path)
        assert img.get_data_dtype() == np.int16 and np.array_equal(np.asarray(img.dataobj), expected)
        sx, sy, sz = spacing[series]  # the row's Spacing_mm_px_, placed as DL_save_nifti.py places it
        assert np.allclose(img.affine, [[0, -sy, 0, 0], [-sx, 0, 0, 0], [0, 0, -sz, 0], [0, 0, 0, 1]])
    listed = (out / "lesions.csv").read_text().splitlines()
    assert listed[0].startswith("file,series,key_slice") and len(listed) > 1

    capsys.readouterr()
    empty = tmp_path / "empty"
    for args, words in [(["--format", "tiff"], "unknown format"),
                        (["--format", "masks-png"], "does not fit"),
                        (["--format", "csv", "--split", "nowhere"], "no item"),
                        (["--format", "csv", "--organ", "liver"], "unknown filter")]:
        assert cli_main(["export", "--dataset", "sample", *args, "--quiet", str(empty)]) == 2
        assert words in capsys.readouterr().err
    assert not empty.exists()


@pytest.mark.realdata
def test_real_verse_mask_keeps_the_ct_grid(cli_env, engine, settings, realdata, tmp_path):
    root = realdata("verse")
    ingest_path(engine, settings, root, kind="verse", name="real-verse")
    out = tmp_path / "out"
    assert cli_main(["export", "--dataset", "real-verse", "--format", "nifti", "--quiet", str(out)]) == 0
    written = nib.load(out / "derivatives" / "sub-ct" / "sub-ct_label-22_seg-vert_msk.nii.gz")
    original = nib.load(root / "derivatives" / "sub-ct" / "sub-ct_seg-vert_label-22_msk.nii.gz")
    ct = nib.load(root / "rawdata" / "sub-ct" / "sub-ct_label-22_ct.nii.gz")
    assert np.array_equal(np.asarray(written.dataobj), np.asarray(original.dataobj).astype(np.uint8))
    assert np.allclose(written.affine, ct.affine) and nib.aff2axcodes(written.affine) == ("P", "I", "R")


def test_a_cancelled_or_stopped_export_leaves_no_file(engine, settings, ingested):
    from app.export import jobs as export_jobs
    from app.export.params import parse_export_params
    from app.inference.jobs import run_job
    from app.inference.registry import RuntimeCache

    export_jobs.register()
    params = parse_export_params({"dataset_id": ingested.dataset_id, "format": "coco"})
    for stop, status in ((dict(should_cancel=lambda: True), "cancelled"), (dict(should_stop=lambda: True), "running")):
        with Session(engine) as s:
            job_id = export_jobs.create_export_job(s, params).id
        assert run_job(engine, settings, RuntimeCache(), job_id, **stop) == status
        folder = export_jobs.job_folder(settings, job_id)
        assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file() and ".part" not in p.name]
    assert run_job(engine, settings, RuntimeCache(), job_id) == "done"  # the stopped one, run again
    assert [p.name for p in export_jobs.job_folder(settings, job_id).iterdir()] == ["annotations.json"]


@pytest.mark.skipif(not REDIS_URL, reason="MEDVIEW_TEST_REDIS_URL not set")
def test_export_runs_on_a_redis_worker(make_settings, settings, database_url, ingested, tmp_path):
    if not database_url.startswith("sqlite"):
        pytest.skip("the worker process shares this test's SQLite file")
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.helpers.api import wait_finished
    from tests.helpers.auth import signed_in

    url = str(make_url(REDIS_URL).set(database=EXPORT_REDIS_DB))  # its own Redis database: no other test's worker
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    env.update(MEDVIEW_QUEUE_URL=url, MEDVIEW_DATABASE_URL=database_url, MEDVIEW_DATA_DIR=str(settings.data_dir),
               MEDVIEW_DATA_ROOTS=settings.data_roots,
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))  # this checkout's app, not an installed one
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        queued = make_settings(queue_url=url)
        with signed_in(TestClient(create_app(queued)), queued) as client:
            r = client.post("/api/exports", json={"dataset_id": ingested.dataset_id, "format": "csv"})
            assert r.status_code == 202, r.text
            job = wait_finished(client, r.json()["id"])
            assert job["status"] == "done", (job, client.get(f"/api/jobs/{job['id']}").json()["error"])
            assert client.get(f"/api/exports/{job['id']}/download").text.startswith("item_id,key,")
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert f"job {job['id']}: done" in stderr


@pytest.mark.realdata
def test_real_deeplesion_subvolumes(cli_env, engine, settings, realdata, tmp_path):
    root = realdata("deeplesion")
    ingest_path(engine, settings, root, kind="deeplesion", name="real-dl")
    out = tmp_path / "out"
    assert cli_main(["export", "--dataset", "real-dl", "--format", "nifti", "--quiet", str(out)]) == 0
    files = sorted(out.glob("*.nii.gz"))
    # only key slices were published here; 003657_01_01's 049 and 050 are neighbours: one two-slice volume
    assert len(files) == 22 and (out / "003657_01_01_049-050.nii.gz").exists()
    for path in files:
        series, _, span = path.name.removesuffix(".nii.gz").rpartition("_")
        first, last = (int(v) for v in span.split("-"))
        volume = np.asarray(nib.load(path).dataobj)
        for z, n in enumerate(range(first, last + 1)):
            png = cv2.imread(str(root / "Images_png" / series / f"{n:03d}.png"), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(volume[..., z], png.astype(np.int32) - 32768)


@pytest.mark.realdata
def test_real_dicom_series_as_nifti_in_patient_space(cli_env, engine, settings, realdata, tmp_path):
    import pydicom

    root = realdata("dicom_ct", "totalsegmentator_example_ct_dicom")
    ingest_path(engine, settings, root, kind="dicom", name="ts")
    out = tmp_path / "out"
    assert cli_main(["export", "--dataset", "ts", "--format", "nifti", "--quiet", str(out)]) == 0
    (path,) = out.glob("*.nii.gz")
    img = nib.load(path)
    data, to_voxel = np.asarray(img.dataobj), np.linalg.inv(img.affine)
    assert data.shape == (512, 512, 20) and int(img.header["sform_code"]) == 1
    # independently of the app: each file's pixel (r, c) lies at IPP + c·Δc·row_dir + r·Δr·col_dir (LPS, mm)
    for f in sorted(root.iterdir()):
        ds = pydicom.dcmread(f)
        ipp = np.array(ds.ImagePositionPatient, float)
        iop = np.array(ds.ImageOrientationPatient, float)
        row_dir, col_dir = iop[:3], iop[3:]  # along a row (columns grow), along a column (rows grow)
        d_row, d_col = (float(v) for v in ds.PixelSpacing)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        for r, c in ((0, 0), (100, 400), (511, 37), (256, 256)):
            lps = ipp + c * d_col * row_dir + r * d_row * col_dir
            ijk = to_voxel @ np.array([-lps[0], -lps[1], lps[2], 1.0])
            assert np.allclose(ijk[:3], np.rint(ijk[:3]), atol=1e-3), (f.name, r, c, ijk)
            i, j, k = (int(v) for v in np.rint(ijk[:3]))
            assert data[i, j, k] == hu[r, c], (f.name, r, c)
