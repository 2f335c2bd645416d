"""Corrupt files of several kinds (issue 13's findings): each is a problem naming the file and what is wrong, its
neighbours are indexed, the contact sheet still answers 200 with the good tiles, and a bad item's render is a 4xx
naming its file — never a 500 or a traceback."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image

from app.datasets.dicom.synth import generate_dicom
from app.datasets.imagefolder.synth import generate_imagefolder
from app.datasets.ingest import ingest_path
from app.render.sheet import CROSS, UNREADABLE


def _cut_jpeg(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def _nan_tiff(path: Path) -> Path:
    values = np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48)
    values[3, 4] = np.nan
    path.unlink()
    tif = path.with_suffix(".tif")
    Image.fromarray(values, mode="F").save(tif)
    return tif


@pytest.fixture
def folder(tmp_path) -> Path:
    return generate_imagefolder(tmp_path / "cells", layout="folders", per_class=2, seed=3).root


def _first_jpeg(root: Path) -> Path:
    return sorted(root.rglob("*.jpg"))[0]


def _problem_texts(report) -> list[str]:
    return [str(p) for p in report.problems]


def _sheet(client, dataset_id: int):
    r = client.get(f"/api/datasets/{dataset_id}/sheet", params={"limit": 64, "cols": 8})
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8", r.text[:300]
    return r


@pytest.mark.parametrize(("damage", "reason"), [
    (_cut_jpeg, "truncated JPEG: ends before its end-of-image marker"),
    (_nan_tiff, "float TIFF has NaN values (1 of 2304 pixels)"),
])
def test_bad_image_in_a_folder_is_named_and_skipped(engine, settings, client, folder, damage, reason):
    total = len(list(folder.rglob("*.jpg")))
    bad = damage(_first_jpeg(folder))
    report = ingest_path(engine, settings, folder, kind="imagefolder")
    rel = bad.relative_to(folder).as_posix()
    assert [t for t in _problem_texts(report) if rel in t and reason in t], _problem_texts(report)
    assert report.items == total - 1  # its neighbours are indexed
    assert _sheet(client, report.dataset_id).headers["x-unreadable-ids"] == ""


def test_image_corrupted_after_ingest_is_a_placeholder_tile_and_a_named_404(engine, settings, client, folder):
    report = ingest_path(engine, settings, folder, kind="imagefolder")
    bad = _cut_jpeg(_first_jpeg(folder))
    rel = bad.relative_to(folder).as_posix()
    items = client.get(f"/api/datasets/{report.dataset_id}/items", params={"limit": 64}).json()["items"]
    bad_id = next(i["id"] for i in items if i["key"] == rel)
    r = _sheet(client, report.dataset_id)
    ids = [int(i) for i in r.headers["x-item-ids"].split(",")]
    assert r.headers["x-unreadable-ids"] == str(bad_id)
    sheet = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_GRAYSCALE).astype(int)
    n = ids.index(bad_id)
    tile = sheet[(n // 8) * 96:(n // 8 + 1) * 96, (n % 8) * 96:(n % 8 + 1) * 96]
    assert abs(tile[10, 50] - UNREADABLE) < 12 and abs(tile[48, 48] - CROSS) < 20  # grey with a light ✕
    good = ids.index(next(i for i in ids if i != bad_id))
    other = sheet[(good // 8) * 96:(good // 8 + 1) * 96, (good % 8) * 96:(good % 8 + 1) * 96]
    assert other.std() > 5  # a real image, not a placeholder
    r = client.get(f"/api/items/{bad_id}/render", params={"format": "jpeg"})
    assert r.status_code == 404 and rel in r.json()["detail"] and "truncated" in r.json()["detail"]
    assert "Traceback" not in r.text


# ---- DICOM --------------------------------------------------------------------------------------------

def _ct_file(root: Path) -> Path:
    for path in sorted((root / "DICOM").glob("IM*")):
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if ds.get("Modality") == "CT" and int(ds.get("NumberOfFrames") or 1) == 1:
            return path
    raise AssertionError("the sample has a CT slice")


def _edit(change):
    def damage(path: Path) -> None:
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path, enforce_file_format=False)
    return damage


def _drop_pixels(ds) -> None:
    del ds.PixelData


def _bogus_syntax(ds) -> None:
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6"


def _huge(ds) -> None:
    ds.Rows = ds.Columns = 65535


@pytest.mark.parametrize(("damage", "reason"), [
    (_edit(_drop_pixels), "DICOM without pixel data"),
    (_edit(_bogus_syntax), "transfer syntax 1.2.3.4.5.6 cannot be decoded"),
    (_edit(_huge), "65535×65535 pixels exceeds MEDVIEW_MAX_IMAGE_PIXELS"),
])
def test_bad_dicom_file_is_named_and_its_series_indexed(engine, settings, client, tmp_path, damage, reason):
    root = generate_dicom(tmp_path / "dicom", seed=2).root
    clean = ingest_path(engine, settings, root, kind="dicom", name="clean").items
    damaged = tmp_path / "damaged"
    generate_dicom(damaged, seed=2)
    bad = _ct_file(damaged)
    damage(bad)
    report = ingest_path(engine, settings, damaged, kind="dicom", name="damaged")
    rel = bad.relative_to(damaged).as_posix()
    assert [t for t in _problem_texts(report) if rel in t and reason in t], _problem_texts(report)
    assert "non-image object" not in " ".join(t for t in _problem_texts(report) if rel in t)
    assert report.items == clean  # the series is still indexed from its other slices
    _sheet(client, report.dataset_id)
    for item in client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"]:
        r = client.get(f"/api/items/{item['id']}/render", params={"format": "jpeg"})
        assert r.status_code in (200, 404), r.text[:300]  # a file that cannot be shown: 404 naming it, no 500


# ---- PCam -------------------------------------------------------------------------------------------------

def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start:start + 64] = bytes(b ^ 0xFF for b in data[start:start + 64])
    path.write_bytes(bytes(data))


def test_pcam_labels_file_with_a_corrupt_structure_skips_only_its_split(engine, settings, client, tmp_path):
    """h5py raises RuntimeError (not OSError) for a damaged local heap: it was a traceback out of ingest."""
    from app.datasets.pcam import pixels
    from app.datasets.pcam.synth import file_name, generate_pcam

    pixels.close_all()
    root = generate_pcam(tmp_path / "pcam", n_per_split=(8, 4, 4), seed=0).root
    _flip_middle(root / file_name("valid", "y"))
    report = ingest_path(engine, settings, root, kind="pcam")
    texts = [t for t in _problem_texts(report) if file_name("valid", "y") in t]
    assert texts and "not a readable HDF5 file" in texts[0] and "the valid split is skipped" in texts[0], texts
    assert report.items == 8 + 4  # train and test
    _sheet(client, report.dataset_id)


def test_cli_names_the_corrupt_file_without_a_traceback(settings, tmp_path, monkeypatch, capsys):
    from app.cli import main
    from app.datasets.pcam import pixels
    from app.datasets.pcam.synth import file_name, generate_pcam

    pixels.close_all()
    root = generate_pcam(tmp_path / "pcam", n_per_split=(8, 4, 4), seed=0).root
    _flip_middle(root / file_name("valid", "y"))
    for name, value in (("DATABASE_URL", settings.database_url), ("DATA_DIR", str(settings.data_dir)),
                        ("DATA_ROOTS", str(tmp_path))):
        monkeypatch.setenv(f"MEDVIEW_{name}", value)
    assert main(["ingest", str(root), "--kind", "pcam", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert f"problem: {file_name('valid', 'y')}: not a readable HDF5 file" in err and "Traceback" not in out + err
    assert "12 items" in out
