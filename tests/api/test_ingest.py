"""Ingest of the generated DeepLesion sample: counts, idempotency, resume, zips, and every bad input."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from app.cli import main as cli_main
from app.datasets.base import IngestError
from app.datasets.deeplesion.table import COLUMNS
from app.datasets.ingest import ingest_path
from app.db.models import Annotation, Dataset, Item, ItemFacet
from app.errors import InvalidInput


@pytest.fixture
def tree(tmp_path, deeplesion_sample) -> Path:
    """A private, modifiable copy of the generated sample."""
    root = tmp_path / "DeepLesion"
    shutil.copytree(deeplesion_sample.root, root)
    return root


def read_rows(root: Path) -> list[dict[str, str]]:
    with (root / "DL_info.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_rows(root: Path, rows: list[dict[str, str]], columns=COLUMNS) -> None:
    with (root / "DL_info.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def slice_path(root: Path, file_name: str) -> Path:
    return root / "Images_png" / file_name[:12] / file_name[13:]


def counts(engine, dataset_id: int) -> tuple[int, int, int]:
    with engine.connect() as c:
        items = c.scalar(select(func.count()).select_from(Item).where(Item.dataset_id == dataset_id))
        anns = c.scalar(select(func.count()).select_from(Annotation).where(Annotation.dataset_id == dataset_id))
        facets = c.scalar(select(func.count()).select_from(ItemFacet).where(ItemFacet.dataset_id == dataset_id))
    return items, anns, facets


def test_sample_indexes_completely(engine, settings, ingested, deeplesion_sample, client):
    rows = deeplesion_sample.rows
    assert ingested.items == len({r["File_name"] for r in rows}) == len(deeplesion_sample.key_slices)
    assert ingested.annotations == len(rows) == deeplesion_sample.lesion_count
    assert ingested.problems == []
    ds = client.get(f"/api/datasets/{ingested.dataset_id}").json()
    assert ds["status"] == "ready"
    split_names = {"1": "train", "2": "val", "3": "test"}
    expected = {}
    for name in {r["File_name"] for r in rows}:
        split = split_names[next(r for r in rows if r["File_name"] == name)["Train_Val_Test"]]
        expected[split] = expected.get(split, 0) + 1
    assert ds["facets"]["split"] == expected
    # a key slice with two lesions is one item with two RECIST annotations
    shared = next(n for n in {r["File_name"] for r in rows} if sum(r["File_name"] == n for r in rows) > 1)
    page = client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"key": shared}).json()
    detail = client.get(f"/api/items/{page['items'][0]['id']}").json()
    assert len(detail["annotations"]) == 2
    row = next(r for r in rows if r["File_name"] == shared)
    spacing = float(row["Spacing_mm_px_"].split(",")[0])
    long_px = float(row["Lesion_diameters_Pixel_"].split(",")[0])
    first = next(a for a in detail["annotations"] if a["meta"]["csv_line"] == rows.index(row) + 2)
    assert first["meta"]["long_mm"] == pytest.approx(long_px * spacing, abs=0.01)
    coords = [float(v) for v in row["Measurement_coordinates"].split(",")]
    assert first["geometry"]["long"] == [coords[0:2], coords[2:4]]
    assert first["geometry"]["short"] == [coords[4:6], coords[6:8]]


def test_filters_and_keyset_pages(client, ingested, deeplesion_sample):
    ds = client.get(f"/api/datasets/{ingested.dataset_id}").json()
    for value, n in ds["facets"]["lesion_type"].items():
        page = client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"lesion_type": value}).json()
        assert page["total"] == n
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/datasets/{ingested.dataset_id}/items", params=params).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == ingested.items and seen == sorted(seen)


def test_reingest_is_idempotent(engine, settings, ingested, deeplesion_sample):
    before = counts(engine, ingested.dataset_id)
    again = ingest_path(engine, settings, deeplesion_sample.root, kind="deeplesion", name="sample")
    assert again.dataset_id == ingested.dataset_id
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, ingested.items)
    assert counts(engine, ingested.dataset_id) == before


def test_changed_and_removed_rows_update_in_place(engine, settings, tree):
    first = ingest_path(engine, settings, tree, kind="deeplesion")
    rows = read_rows(tree)
    changed_name = rows[0]["File_name"]
    rows[0] = {**rows[0], "Possibly_noisy": "1" if rows[0]["Possibly_noisy"] == "0" else "0"}
    removed_name = rows[-1]["File_name"]
    rows = [r for r in rows if r["File_name"] != removed_name]
    write_rows(tree, rows)
    with engine.connect() as c:
        old = c.execute(select(Item.id, Item.content_version).where(Item.key == changed_name)).one()
    second = ingest_path(engine, settings, tree, kind="deeplesion")
    assert (second.updated, second.removed) == (1, 1)
    with engine.connect() as c:
        new = c.execute(select(Item.id, Item.content_version).where(Item.key == changed_name)).one()
        gone = c.scalar(select(func.count()).select_from(Item).where(Item.key == removed_name))
    assert new.id == old.id and new.content_version == old.content_version + 1
    assert gone == 0
    assert second.items == first.items - 1


def test_interrupted_ingest_resumes(engine, make_settings, tree):
    settings = make_settings(ingest_batch=2)
    calls = {"n": 0}

    def crash_after_first_batch(phase, done, total):
        if phase == "writing items":
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest_path(engine, settings, tree, kind="deeplesion", progress=crash_after_first_batch)
    with engine.connect() as c:
        status = c.scalar(select(Dataset.status))
        partial = c.scalar(select(func.count()).select_from(Item))
    assert status == "indexing" and partial > 0  # as after a kill: never shown as ready
    report = ingest_path(engine, settings, tree, kind="deeplesion")
    assert report.unchanged == partial and report.added == report.items - partial
    with engine.connect() as c:
        assert c.scalar(select(Dataset.status)) == "ready"


def test_zipped_layout_reads_in_place(engine, settings, client, tree):
    from app.datasets.deeplesion.synth import pack_zips

    loose = ingest_path(engine, settings, tree, kind="deeplesion", name="loose")
    zipped_root = tree.parent / "zipped"
    shutil.copytree(tree, zipped_root)
    pack_zips(zipped_root)
    assert not (zipped_root / "Images_png").exists() or not any((zipped_root / "Images_png").iterdir())
    zipped = ingest_path(engine, settings, zipped_root, kind="deeplesion", name="zipped")
    assert (zipped.items, zipped.annotations, zipped.problems) == (loose.items, loose.annotations, [])
    key = read_rows(tree)[0]["File_name"]
    a = client.get(f"/api/datasets/{loose.dataset_id}/items", params={"key": key}).json()["items"][0]["id"]
    b = client.get(f"/api/datasets/{zipped.dataset_id}/items", params={"key": key}).json()["items"][0]["id"]
    ra = client.get(f"/api/items/{a}/render", params={"window": "-175,275"})
    rb = client.get(f"/api/items/{b}/render", params={"window": "-175,275"})
    assert ra.status_code == rb.status_code == 200 and ra.content == rb.content


# ---- bad input: each kind is reported with its file/row and reason; good rows are still indexed ----

def test_malformed_number_skips_only_that_row(engine, settings, tree):
    rows = read_rows(tree)
    names = [r["File_name"] for r in rows]
    solo = next(i for i, r in enumerate(rows) if names.count(r["File_name"]) == 1)
    rows[solo]["Lesion_diameters_Pixel_"] = "12.5, twelve"
    write_rows(tree, rows)
    report = ingest_path(engine, settings, tree, kind="deeplesion")
    assert report.items == len(set(names)) - 1
    [problem] = report.problems
    assert problem.row == solo + 2 and problem.field == "Lesion_diameters_Pixel_"
    assert "not a number" in problem.message and problem.item == rows[solo]["File_name"]


@pytest.mark.parametrize(("damage", "expected"), [
    ("missing", "not found"),
    ("eight_bit", "expected a 16-bit greyscale PNG, found 8-bit"),
    ("rgb", "found RGB colour type"),
    ("truncated", "truncated"),
    ("not_png", "not a PNG file"),
    ("empty", "empty or truncated"),
])
def test_bad_key_slice_file(engine, settings, tree, damage, expected):
    rows = read_rows(tree)
    name = rows[0]["File_name"]
    path = slice_path(tree, name)
    if damage == "missing":
        path.unlink()
    elif damage == "eight_bit":
        cv2.imwrite(str(path), np.zeros((512, 512), np.uint8))
    elif damage == "rgb":
        cv2.imwrite(str(path), np.zeros((512, 512, 3), np.uint8))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "not_png":
        path.write_text("<html>404 Not Found</html>" * 5)
    elif damage == "empty":
        path.write_bytes(b"")
    report = ingest_path(engine, settings, tree, kind="deeplesion")
    n_rows = sum(r["File_name"] == name for r in rows)
    assert report.items == len({r["File_name"] for r in rows}) - 1
    assert len(report.problems) == n_rows
    assert all(expected in p.message and p.item == name and p.row for p in report.problems)


def test_zip_that_is_not_a_zip(engine, settings, tree):
    from app.datasets.deeplesion.synth import pack_zips

    zips = pack_zips(tree)
    zips[0].write_bytes(b"this is not a zip archive" * 100)
    report = ingest_path(engine, settings, tree, kind="deeplesion")
    texts = [str(p) for p in report.problems]
    assert any(t.startswith(zips[0].name) and "not a readable zip" in t for t in texts)
    with zipfile.ZipFile(zips[1]) as zf:
        assert zf.namelist()
    assert 0 < report.items < len({r["File_name"] for r in read_rows(tree)})
    assert any("not found" in t for t in texts)


def test_missing_column_writes_nothing(engine, settings, tree):
    write_rows(tree, read_rows(tree), [c for c in COLUMNS if c != "Bounding_boxes"])
    with pytest.raises(IngestError, match="missing column.*Bounding_boxes"):
        ingest_path(engine, settings, tree, kind="deeplesion")
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(Dataset)) == 0


def test_fatal_problem_on_reingest_keeps_the_indexed_dataset(engine, settings, tree):
    first = ingest_path(engine, settings, tree, kind="deeplesion")
    write_rows(tree, read_rows(tree), [c for c in COLUMNS if c != "Slice_range"])
    with pytest.raises(IngestError):
        ingest_path(engine, settings, tree, kind="deeplesion")
    assert counts(engine, first.dataset_id)[0] == first.items
    with engine.connect() as c:
        assert c.scalar(select(Dataset.status)) == "ready"


def test_path_outside_data_roots_is_refused(engine, make_settings, tree):
    settings = make_settings(data_roots=str(tree.parent / "elsewhere"))
    with pytest.raises(InvalidInput, match="outside the data roots"):
        ingest_path(engine, settings, tree)


def test_cli_exit_codes_and_messages(monkeypatch, capsys, settings, tree, tmp_path):
    monkeypatch.setenv("MEDVIEW_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MEDVIEW_DATA_ROOTS", settings.data_roots)
    monkeypatch.setenv("MEDVIEW_DATA_DIR", str(settings.data_dir))
    assert cli_main(["ingest", str(tree), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "DeepLesion (deeplesion" in out and "problems" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["ingest", str(empty), "--quiet"]) == 2
    assert "not a dataset MedView recognises" in capsys.readouterr().err
    write_rows(tree, read_rows(tree), [c for c in COLUMNS if c != "DICOM_windows"])
    assert cli_main(["ingest", str(tree), "--kind", "deeplesion", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nothing indexed" in err and "DICOM_windows" in err


def test_patient_and_study_filters(client, ingested, deeplesion_sample):
    rows = deeplesion_sample.rows
    patient = rows[0]["File_name"][:6]
    expected = {r["File_name"] for r in rows if r["File_name"].startswith(patient)}
    url = f"/api/datasets/{ingested.dataset_id}/items"
    page = client.get(url, params={"patient": patient, "limit": 500}).json()
    assert {i["key"] for i in page["items"]} == expected
    study = rows[0]["File_name"][:9]
    page = client.get(url, params={"study": study, "limit": 500}).json()
    assert {i["key"] for i in page["items"]} == {n for n in expected if n.startswith(study)}


def test_patient_timeline_tracks_a_lesion_across_studies(client, ingested, deeplesion_sample):
    rows = deeplesion_sample.rows
    studies_of: dict[str, set[str]] = {}
    for r in rows:
        studies_of.setdefault(r["File_name"][:6], set()).add(r["File_name"][:9])
    patient = next(p for p, s in sorted(studies_of.items()) if len(s) >= 2)
    body = client.get(f"/api/datasets/{ingested.dataset_id}/patients/{patient}").json()
    assert [s["study"] for s in body["studies"]] == sorted(studies_of[patient])
    followed = [t for t in body["tracks"] if len(t["by_study"]) >= 2]
    assert followed, "the generated follow-up lesion is matched across studies"
    mm = {(r["File_name"][:9], round(float(r["Lesion_diameters_Pixel_"].split(",")[0])
                                     * float(r["Spacing_mm_px_"].split(",")[0]), 2)) for r in rows}
    for track in followed:
        previous = None
        for study, m in track["by_study"].items():
            assert (study, m["long_mm"]) in mm
            if previous is not None:
                assert m["change"] == pytest.approx(m["long_mm"] / previous - 1)
            previous = m["long_mm"]
