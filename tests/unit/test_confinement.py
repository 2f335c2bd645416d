"""Confinement to MEDVIEW_DATA_ROOTS by the *resolved* path, for every dataset kind (security review, finding 1).

Each kind: a dataset is ingested from inside the roots; then one of its files is moved outside the roots and a
symbolic link to it left in its place. Rendering that item must be a 404 naming the file relative to the dataset
(never the server's absolute path), and ingesting again must report the file ("…: links outside the data roots;
not read") while its neighbours are still indexed. `DatasetFiles` (the one check) is tested on its own first.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from app.datasets.ingest import ingest_path
from app.db.models import Item

OUTSIDE = "links outside the data roots; not read"


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    path = tmp_path / "roots"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def settings(make_settings, roots: Path):
    return make_settings(data_roots=str(roots))


def move_out(path: Path, outside: Path) -> Path:
    """Move `path` (file or folder) outside the roots and leave a symlink to it in its place."""
    target = outside / f"{uuid.uuid4().hex[:8]}-{path.name}"
    shutil.move(str(path), str(target))
    path.symlink_to(target)
    return target


def items(engine, dataset_id: int) -> dict[str, tuple[int, str, dict]]:
    with engine.connect() as conn:
        return {key: (item_id, location, meta or {}) for key, item_id, location, meta in conn.execute(
            select(Item.key, Item.id, Item.location, Item.meta).where(Item.dataset_id == dataset_id))}


def assert_no_server_path(text: str, tmp_path: Path) -> None:
    assert str(tmp_path) not in text, text
    assert str(tmp_path.resolve()) not in text, text


def assert_render_refused(client, item_id: int, rel: str, tmp_path: Path, **params) -> None:
    r = client.get(f"/api/items/{item_id}/render", params={"format": "png", **params})
    assert r.status_code == 404, (r.status_code, r.text[:200])
    detail = r.json()["detail"]
    assert rel in detail and "outside the data roots" in detail, detail
    assert_no_server_path(detail, tmp_path)


def refused(texts: list[str], rel: str) -> bool:
    """Whether a problem names `rel` (as "rel: …" or "rel (item): …") as linking outside the roots."""
    return any((t.startswith(f"{rel}: ") or t.startswith(f"{rel} (")) and OUTSIDE in t for t in texts)


def problem_texts(report, tmp_path: Path) -> list[str]:
    texts = [str(p) for p in report.problems]
    for text in texts:
        assert_no_server_path(text, tmp_path)
    return texts


# -- the check itself ------------------------------------------------------------------------------------------

def test_dataset_files_resolves_links_and_dotdot(tmp_path, roots, outside):
    from app.datasets.base import OutsideRoots
    from app.datasets.roots import DataRoots, DatasetFiles

    ds = roots / "ds"
    (ds / "sub").mkdir(parents=True)
    (ds / "sub" / "in.png").write_bytes(b"x")
    (outside / "secret.png").write_bytes(b"s")
    (roots / "shared.png").write_bytes(b"y")
    (ds / "sub" / "out.png").symlink_to(outside / "secret.png")
    (ds / "linkdir").symlink_to(outside)
    (ds / "inroots.png").symlink_to(roots / "shared.png")  # outside the dataset, inside the roots: allowed
    files = DatasetFiles(ds, DataRoots([roots]))
    assert files.path("sub/in.png") == (ds / "sub" / "in.png").resolve()
    assert files.path("inroots.png") == (roots / "shared.png").resolve()
    for rel in ("sub/out.png", "linkdir/secret.png", "../../outside/secret.png", str(outside / "secret.png")):
        with pytest.raises(OutsideRoots) as caught:
            files.path(rel)
        assert OUTSIDE in str(caught.value)
        assert_no_server_path(str(caught.value), tmp_path)
    # no data roots given (tests, tools): confined to the dataset itself
    with pytest.raises(OutsideRoots):
        DatasetFiles.confined_to(ds).path("inroots.png")
    # the work folder (decompressed copies) is readable by its absolute path
    work = tmp_path / "data" / "work"
    work.mkdir(parents=True)
    (work / "copy.h5").write_bytes(b"h")
    assert DatasetFiles(ds, DataRoots([roots]), work=work).path(str(work / "copy.h5")) == (work / "copy.h5")


# -- per kind --------------------------------------------------------------------------------------------------

def test_imagefolder_file_and_class_folder_links(engine, settings, client, roots, outside, tmp_path):
    from app.datasets.imagefolder.synth import generate_imagefolder

    root = roots / "folder"
    generate_imagefolder(root, layout="folders", per_class=3, classes=["BLA", "EOS", "LYT"], size=32)
    report = ingest_path(engine, settings, root, kind="imagefolder")
    assert report.items == 9
    rows = items(engine, report.dataset_id)
    key = sorted(k for k in rows if k.startswith("BLA/"))[0]
    item_id, rel, _ = rows[key]
    move_out(root / rel, outside)
    assert_render_refused(client, item_id, rel, tmp_path)
    move_out(root / "LYT", outside)  # a whole class folder
    again = ingest_path(engine, settings, root, kind="imagefolder")
    texts = problem_texts(again, tmp_path)
    assert refused(texts, rel), texts
    assert refused(texts, "LYT/"), texts
    assert again.items == 5  # 9 − the linked file − LYT's three


def test_imagefolder_split_csv_link_is_not_read(engine, settings, roots, outside, tmp_path):
    from app.datasets.imagefolder.synth import generate_imagefolder

    root = roots / "csvs"
    sample = generate_imagefolder(root, layout="csv", per_class=2, classes=["BLA", "EOS"], size=32)
    first = ingest_path(engine, settings, root, kind="imagefolder")
    linked = sorted(sample.split_files.values())[0]
    move_out(root / linked, outside)
    again = ingest_path(engine, settings, root, kind="imagefolder")
    texts = problem_texts(again, tmp_path)
    assert refused(texts, linked), texts
    assert again.items < first.items


def test_deeplesion_slice_and_series_folder_links(engine, settings, client, roots, outside, tmp_path):
    from app.datasets.deeplesion.synth import generate_deeplesion

    root = roots / "DeepLesion"
    generate_deeplesion(root, patients=3, seed=5, neighbours=1, image_size=64)
    report = ingest_path(engine, settings, root, kind="deeplesion")
    rows = items(engine, report.dataset_id)
    keys = sorted(rows)
    item_id, rel, _ = rows[keys[0]]
    move_out(root / rel, outside)
    assert_render_refused(client, item_id, rel, tmp_path)
    series = rel.rsplit("/", 1)[0]
    other_series = next(loc.rsplit("/", 1)[0] for _, loc, _ in rows.values() if not loc.startswith(series))
    move_out(root / other_series, outside)
    again = ingest_path(engine, settings, root, kind="deeplesion")
    texts = problem_texts(again, tmp_path)
    assert any(f"{rel}: {OUTSIDE}" in t for t in texts), texts  # DL_info.csv line N (key): rel: …
    assert refused(texts, f"{other_series}/"), texts
    gone = {k for k, (_, loc, _) in rows.items() if loc == rel or loc.startswith(other_series + "/")}
    assert again.items == len(rows) - len(gone) > 0


def test_bis5k_image_and_mask_links(engine, settings, client, roots, outside, tmp_path):
    from app.datasets.bis5k.synth import generate_bis5k

    root = roots / "BIS5k"
    sample = generate_bis5k(root, n_train=4, n_test=2, seed=2)
    report = ingest_path(engine, settings, root, kind="bis5k")
    rows = items(engine, report.dataset_id)
    image, masked = sample.images[0], sample.images[1]
    move_out(root / image.image, outside)
    assert_render_refused(client, rows[image.image][0], image.image, tmp_path)
    move_out(root / masked.mask, outside)
    again = ingest_path(engine, settings, root, kind="bis5k")
    texts = problem_texts(again, tmp_path)
    assert refused(texts, image.image), texts
    assert refused(texts, masked.mask), texts
    after = items(engine, again.dataset_id)
    assert image.image not in after and len(after) == len(rows) - 1
    meta = after[masked.image][2]
    assert "mask_pixels" not in meta  # the mask outside the roots was not decoded to measure it


def test_verse_ct_and_mask_links(engine, settings, client, roots, outside, tmp_path):
    from app.datasets.verse.synth import generate_verse

    root = roots / "verse"
    generate_verse(root, subjects=2, seed=1)
    report = ingest_path(engine, settings, root, kind="verse")
    rows = items(engine, report.dataset_id)
    (ct_key, (item_id, ct_rel, _)), (mask_key, (_, _, mask_meta)) = sorted(rows.items())
    move_out(root / ct_rel, outside)
    assert_render_refused(client, item_id, ct_rel, tmp_path)
    mask_rel = mask_meta["mask"]
    move_out(root / mask_rel, outside)
    again = ingest_path(engine, settings, root, kind="verse")
    texts = problem_texts(again, tmp_path)
    assert refused(texts, ct_rel), texts
    assert refused(texts, mask_rel), texts
    after = items(engine, again.dataset_id)
    assert set(after) == {mask_key} and after[mask_key][2]["mask_shown"] is False


def test_dicom_file_link(engine, settings, client, roots, outside, tmp_path):
    from app.datasets.dicom.synth import generate_dicom

    root = roots / "dicom"
    sample = generate_dicom(root, seed=0)
    report = ingest_path(engine, settings, root, kind="dicom")
    rows = items(engine, report.dataset_id)
    series = max(sample.series.values(), key=len)
    linked = series[len(series) // 2]
    item_id = next(i for i, loc, meta in rows.values() if linked.rsplit("/", 1)[-1] in (meta.get("files") or []))
    move_out(root / linked, outside)
    assert_render_refused(client, item_id, linked, tmp_path)  # the middle slice is the linked file
    assert_render_refused(client, item_id, linked, tmp_path, plane="coronal")  # the whole volume
    again = ingest_path(engine, settings, root, kind="dicom")
    texts = problem_texts(again, tmp_path)
    assert refused(texts, linked), texts
    assert again.items == report.items


def test_pcam_x_file_link(engine, settings, client, roots, outside, tmp_path):
    from app.datasets.pcam.synth import file_name, generate_pcam

    root = roots / "pcam"
    generate_pcam(root, n_per_split=(6, 4, 4), seed=1, n_slides=2)
    report = ingest_path(engine, settings, root, kind="pcam")
    rows = items(engine, report.dataset_id)
    x = file_name("test", "x")
    move_out(root / x, outside)
    assert_render_refused(client, rows["test/0"][0], x, tmp_path)
    again = ingest_path(engine, settings, root, kind="pcam")
    texts = problem_texts(again, tmp_path)
    assert any(t.startswith(f"{x}: {OUTSIDE}; the test split is skipped") for t in texts), texts
    assert again.items == report.items - 4
