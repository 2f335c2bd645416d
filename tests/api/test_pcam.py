"""PCam ingest, rendering and every kind of bad input, checked against h5py/csv reads of the files themselves."""

from __future__ import annotations

import csv
import gzip
import shutil
from collections import Counter
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from sqlalchemy import func, select

from app.datasets.base import IngestError
from app.datasets.ingest import ingest_path
from app.datasets.pcam import pixels
from app.datasets.pcam.adapter import LABEL_COLOURS
from app.datasets.pcam.synth import file_name, generate_pcam
from app.datasets.registry import detect_kind
from app.db.models import Annotation, Dataset, Item, ItemFacet

SIZES = (40, 12, 12)
SEED = 5


@pytest.fixture(scope="session")
def pcam_sample(tmp_path_factory):
    """Uncompressed sample in the published layout (shared: tests must not modify it)."""
    return generate_pcam(tmp_path_factory.mktemp("pcam") / "pcam", n_per_split=SIZES, seed=SEED,
                         x_chunks=(1, 96, 96, 3))


@pytest.fixture
def tree(tmp_path, pcam_sample) -> Path:
    pixels.close_all()
    root = tmp_path / "pcam"
    shutil.copytree(pcam_sample.root, root)
    return root


@pytest.fixture
def ingested(engine, settings, pcam_sample):
    return ingest_path(engine, settings, pcam_sample.root, kind="pcam", name="pcam")


def h5_labels(root: Path, split: str) -> np.ndarray:
    with h5py.File(root / file_name(split, "y"), "r") as f:
        return f["y"][()].reshape(-1)


def h5_patch(root: Path, split: str, index: int) -> np.ndarray:
    with h5py.File(root / file_name(split, "x"), "r") as f:
        return f["x"][index]


def meta_rows(root: Path, split: str) -> list[dict[str, str]]:
    with (root / file_name(split, "meta")).open(newline="") as fh:
        return list(csv.DictReader(fh))


def item_id(client, dataset_id: int, key: str) -> int:
    return client.get(f"/api/datasets/{dataset_id}/items", params={"key": key}).json()["items"][0]["id"]


def decode(content: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR_RGB)


def db_counts(engine, dataset_id: int) -> tuple[int, int, int]:
    with engine.connect() as c:
        return tuple(c.scalar(select(func.count()).select_from(t).where(t.dataset_id == dataset_id))
                     for t in (Item, Annotation, ItemFacet))


# ---- the good sample ---------------------------------------------------------------------------------

def test_detected_and_counts_match_the_files(ingested, pcam_sample, client):
    root = pcam_sample.root
    assert detect_kind(root) == "pcam"
    # the label is the item's own ground truth: no annotation row per patch
    assert (ingested.items, ingested.annotations, ingested.problems) == (sum(SIZES), 0, [])
    ds = client.get(f"/api/datasets/{ingested.dataset_id}").json()
    assert ds["status"] == "ready" and ds["kind"] == "pcam"
    labels = {s: h5_labels(root, s) for s in ("train", "valid", "test")}
    assert ds["facets"]["split"] == {s: len(v) for s, v in labels.items()}
    all_labels = np.concatenate(list(labels.values()))
    assert ds["facets"]["label"] == {"0": int((all_labels == 0).sum()), "1": int((all_labels == 1).sum())}
    slides = Counter(r["wsi"] for s in labels for r in meta_rows(root, s))
    assert ds["facets"]["slide"] == dict(slides)
    assert ds["facet_labels"]["label"] == {"0": "normal", "1": "tumor"}
    for split in labels:
        page = client.get(f"/api/datasets/{ingested.dataset_id}/items",
                          params={"split": split, "label": "1", "limit": 500}).json()
        assert page["total"] == int(labels[split].sum())
        assert {int(i["key"].split("/")[1]) for i in page["items"]} == set(np.flatnonzero(labels[split]).tolist())


def test_item_detail_has_label_meta_and_slide_series(ingested, pcam_sample, client):
    row = meta_rows(pcam_sample.root, "valid")[7]
    label = str(h5_labels(pcam_sample.root, "valid")[7])
    detail = client.get(f"/api/items/{item_id(client, ingested.dataset_id, 'valid/7')}").json()
    assert (detail["key"], detail["kind"], detail["split"], detail["label"]) == ("valid/7", "patch", "valid", label)
    assert (detail["width"], detail["height"]) == (96, 96)
    assert detail["meta"] == {"wsi": row["wsi"], "coord_x": int(row["coord_x"]), "coord_y": int(row["coord_y"]),
                              "tumor_patch": row["tumor_patch"] == "True",
                              "center_tumor_patch": row["center_tumor_patch"] == "True"}
    assert detail["annotations"] == []
    # the slide is the item's series: filtering by slide returns exactly the patches of that slide
    slide_rows = [i for i, r in enumerate(meta_rows(pcam_sample.root, "valid")) if r["wsi"] == row["wsi"]]
    page = client.get(f"/api/datasets/{ingested.dataset_id}/items",
                      params={"slide": row["wsi"], "split": "valid", "limit": 500}).json()
    assert sorted(int(i["key"].split("/")[1]) for i in page["items"]) == slide_rows


def test_png_render_is_the_stored_patch(ingested, pcam_sample, client):
    for key in ("train/0", "train/39", "valid/5", "test/11"):
        split, index = key.split("/")
        r = client.get(f"/api/items/{item_id(client, ingested.dataset_id, key)}/render",
                       params={"format": "png", "overlays": "none"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert np.array_equal(decode(r.content), h5_patch(pcam_sample.root, split, int(index)))


def test_raw_is_the_stored_patch(ingested, pcam_sample, client):
    r = client.get(f"/api/items/{item_id(client, ingested.dataset_id, 'test/3')}/raw")
    assert r.headers["x-shape"] == "96,96,3" and r.headers["x-dtype"] == "uint8"
    got = np.frombuffer(r.content, np.uint8).reshape(96, 96, 3)
    assert np.array_equal(got, h5_patch(pcam_sample.root, "test", 3))


def test_gt_overlay_outlines_the_centre_in_the_label_colour(ingested, pcam_sample, client, tmp_path):
    labels = h5_labels(pcam_sample.root, "train")
    for index in (int(np.flatnonzero(labels == 1)[0]), int(np.flatnonzero(labels == 0)[0])):
        label = str(labels[index])
        ident = item_id(client, ingested.dataset_id, f"train/{index}")
        r = client.get(f"/api/items/{ident}/render", params={"format": "png", "overlays": "gt"})
        drawn, raw = decode(r.content), h5_patch(pcam_sample.root, "train", index)
        cv2.imwrite(str(tmp_path / f"overlay_{label}.png"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        colour = np.array(LABEL_COLOURS[label], float)
        other = np.array(LABEL_COLOURS["0" if label == "1" else "1"], float)
        # the outline runs just outside the 32×32 region [32, 64): rows/columns 31 and 64
        edge = np.concatenate([drawn[31, 36:60], drawn[64, 36:60], drawn[36:60, 31], drawn[36:60, 64]]).astype(float)
        assert np.abs(edge - colour).max() < 40
        assert np.linalg.norm(edge - colour, axis=1).mean() < np.linalg.norm(edge - other, axis=1).mean() / 3
        assert np.array_equal(drawn[36:60, 36:60], raw[36:60, 36:60])  # the region itself is not covered
        assert not np.array_equal(drawn[2:14, 2:40], raw[2:14, 2:40])  # the label's name, top left
        assert np.array_equal(drawn[80:, 70:], raw[80:, 70:])


def test_thumbnail_size_64(ingested, pcam_sample, client):
    ident = item_id(client, ingested.dataset_id, "train/2")
    r = client.get(f"/api/items/{ident}/render", params={"format": "jpeg", "size": 64})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    thumb = decode(r.content)
    expected = cv2.resize(h5_patch(pcam_sample.root, "train", 2), (64, 64), interpolation=cv2.INTER_AREA)
    assert thumb.shape == (64, 64, 3)
    assert np.abs(thumb.astype(int) - expected).mean() < 6
    listed = client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]
    assert client.get(listed["thumbnail_url"]).status_code == 200


def test_slices_and_planes_are_refused_for_a_patch(ingested, client):
    ident = item_id(client, ingested.dataset_id, "train/0")
    assert client.get(f"/api/items/{ident}/render", params={"slice": 1}).status_code == 400
    r = client.get(f"/api/items/{ident}/render", params={"plane": "sagittal"})
    assert r.status_code == 400 and "2-D" in r.json()["detail"]


def test_item_page_side_panel(ingested, pcam_sample, client):
    labels = h5_labels(pcam_sample.root, "test")
    index = int(np.flatnonzero(labels == 1)[0])
    row = meta_rows(pcam_sample.root, "test")[index]
    html = client.get(f"/items/{item_id(client, ingested.dataset_id, f'test/{index}')}").text
    assert "tumor" in html and row["wsi"] in html
    assert f"{int(row['coord_x']):,}" in html and f"{int(row['coord_y']):,}" in html
    assert "centre 32×32" in html


def test_reingest_is_idempotent(engine, settings, ingested, pcam_sample):
    before = db_counts(engine, ingested.dataset_id)
    again = ingest_path(engine, settings, pcam_sample.root, kind="pcam", name="pcam")
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, sum(SIZES))
    # no annotation or facet rows: split/label are item columns, the slide is the item's series
    assert db_counts(engine, ingested.dataset_id) == before == (sum(SIZES), 0, 0)


def test_changed_label_updates_in_place(engine, settings, tree):
    ingest_path(engine, settings, tree, kind="pcam")
    with h5py.File(tree / file_name("test", "y"), "r+") as f:
        f["y"][4, 0, 0, 0] = 1 - f["y"][4, 0, 0, 0]
    again = ingest_path(engine, settings, tree, kind="pcam")
    assert (again.added, again.updated, again.removed) == (0, 1, 0)


def test_gz_sample_renders_identically(engine, settings, client, tmp_path, pcam_sample):
    gz_root = tmp_path / "pcam-gz"
    generate_pcam(gz_root, n_per_split=SIZES, seed=SEED, x_chunks=(1, 96, 96, 3), gz=True)
    assert not list(gz_root.glob("*.h5")) and len(list(gz_root.glob("*.h5.gz"))) == 6
    plain = ingest_path(engine, settings, pcam_sample.root, kind="pcam", name="plain")
    phases = []
    packed = ingest_path(engine, settings, gz_root, name="packed", progress=lambda p, d, t: phases.append(p))
    assert (packed.kind, packed.items, packed.annotations, packed.problems) == ("pcam", plain.items,
                                                                                plain.annotations, [])
    assert "decompressing camelyonpatch_level_2_split_train_x.h5.gz" in phases
    cached = sorted(p.name for p in (settings.data_dir / "work" / "pcam").glob("*/*.h5"))
    assert len(cached) == 6 and "camelyonpatch_level_2_split_train_x.h5" in cached
    for key in ("train/3", "valid/8"):
        a = client.get(f"/api/items/{item_id(client, plain.dataset_id, key)}/render", params={"format": "png"})
        b = client.get(f"/api/items/{item_id(client, packed.dataset_id, key)}/render", params={"format": "png"})
        assert a.status_code == b.status_code == 200 and a.content == b.content
    mtimes = {p: p.stat().st_mtime_ns for p in (settings.data_dir / "work" / "pcam").glob("*/*.h5")}
    phases.clear()
    again = ingest_path(engine, settings, gz_root, name="packed", progress=lambda p, d, t: phases.append(p))
    assert again.unchanged == plain.items and not any(p.startswith("decompressing") for p in phases)
    assert mtimes == {p: p.stat().st_mtime_ns for p in mtimes}


def test_large_compressed_chunks_are_flagged_and_read_exactly(engine, settings, client, tmp_path):
    root = tmp_path / "chunked"
    generate_pcam(root, n_per_split=(70,), splits=("train",), seed=2, x_chunks=(64, 96, 96, 3), x_compression="gzip")
    report = ingest_path(engine, settings, root, kind="pcam")
    with engine.connect() as c:
        options = c.scalar(select(Dataset.options).where(Dataset.id == report.dataset_id))
    assert options["splits"]["train"] == {"x": file_name("train", "x"), "patches": 70, "chunks": [64, 96, 96, 3],
                                          "compression": "gzip", "slow_random_access": True}
    for index in (0, 63, 64, 69):
        r = client.get(f"/api/items/{item_id(client, report.dataset_id, f'train/{index}')}/render")
        assert np.array_equal(decode(r.content), h5_patch(root, "train", index))


def test_uncompressed_copy_next_to_gz_is_used(engine, settings, tree):
    for split in ("train", "valid", "test"):
        for role in ("x", "y"):
            path = tree / file_name(split, role)
            with open(path, "rb") as src, gzip.open(path.with_name(path.name + ".gz"), "wb") as dst:
                shutil.copyfileobj(src, dst)
    report = ingest_path(engine, settings, tree, kind="pcam")
    assert report.items == sum(SIZES) and report.problems == []
    assert not (settings.data_dir / "work" / "pcam").exists()


# ---- bad input: reported with the file and reason; the other splits are still indexed --------------

def rewrite_h5(path: Path, name: str, data: np.ndarray) -> None:
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=data)


def only_problem(report, file: str):
    matching = [p for p in report.problems if p.file == file]
    assert len(matching) == 1, report.problems
    return matching[0]


def split_counts(client, dataset_id: int) -> dict[str, int]:
    return client.get(f"/api/datasets/{dataset_id}").json()["facets"]["split"]


@pytest.mark.parametrize(("damage", "role", "expected"), [
    ("x_named_images", "x", "no dataset 'x' (datasets in the file: images)"),
    ("y_named_labels", "y", "no dataset 'y' (datasets in the file: labels)"),
    ("x_wrong_shape", "x", "shape (12, 64, 64, 3); PCam patches are N×96×96×3"),
    ("x_grey", "x", "shape (12, 96, 96); PCam patches are N×96×96×3"),
    ("x_float", "x", "dtype float32; PCam patches are uint8 RGB"),
    ("y_float", "y", "dtype float32; PCam labels are integers 0/1"),
    ("x_not_hdf5", "x", "not a readable HDF5 file"),
])
def test_bad_h5_skips_only_that_split(engine, settings, client, tree, damage, role, expected):
    x, y = tree / file_name("valid", "x"), tree / file_name("valid", "y")
    patches = h5_patch(tree, "valid", slice(None))
    labels = h5_labels(tree, "valid")
    if damage == "x_named_images":
        rewrite_h5(x, "images", patches)
    elif damage == "y_named_labels":
        rewrite_h5(y, "labels", labels)
    elif damage == "x_wrong_shape":
        rewrite_h5(x, "x", patches[:, :64, :64])
    elif damage == "x_grey":
        rewrite_h5(x, "x", patches[..., 0])
    elif damage == "x_float":
        rewrite_h5(x, "x", patches.astype(np.float32))
    elif damage == "y_float":
        rewrite_h5(y, "y", labels.astype(np.float32))
    elif damage == "x_not_hdf5":
        x.write_text("<html>404 Not Found</html>")
    report = ingest_path(engine, settings, tree, kind="pcam")
    problem = only_problem(report, file_name("valid", role))
    assert expected in problem.message and "the valid split is skipped" in problem.message
    assert len(report.problems) == 1
    assert split_counts(client, report.dataset_id) == {"train": SIZES[0], "test": SIZES[2]}


def test_label_count_not_matching_image_count(engine, settings, client, tree):
    """x and y disagree on the patch count: neither is believed (security review: counts are refused, not
    trimmed), the split is skipped with the reason."""
    rewrite_h5(tree / file_name("test", "y"), "y", h5_labels(tree, "test")[:9].reshape(-1, 1, 1, 1))
    report = ingest_path(engine, settings, tree, kind="pcam")
    problem = only_problem(report, file_name("test", "y"))
    assert "9 labels but camelyonpatch_level_2_split_test_x.h5 has 12 patches; the test split is skipped" \
        in problem.message
    assert split_counts(client, report.dataset_id) == {"train": SIZES[0], "valid": SIZES[1]}


def test_label_that_is_not_0_or_1_skips_that_patch(engine, settings, tree):
    with h5py.File(tree / file_name("train", "y"), "r+") as f:
        f["y"][17, 0, 0, 0] = 7
    report = ingest_path(engine, settings, tree, kind="pcam")
    problem = only_problem(report, file_name("train", "y"))
    assert problem.item == "train/17" and "label 7 is not 0 or 1" in problem.message
    assert report.items == sum(SIZES) - 1


@pytest.mark.parametrize(("damage", "expected"), [
    ("short", "11 rows but the valid split has 12 patches; meta not used"),
    ("no_wsi", "missing column wsi"),
])
def test_unusable_meta_is_reported_and_patches_indexed_without_it(engine, settings, client, tree, damage, expected):
    path = tree / file_name("valid", "meta")
    lines = path.read_text().splitlines()
    lines = lines[:-1] if damage == "short" else [",".join(line.split(",")[:-1]) for line in lines]  # drop wsi
    path.write_text("\n".join(lines) + "\n")
    report = ingest_path(engine, settings, tree, kind="pcam")
    problem = only_problem(report, file_name("valid", "meta"))
    assert expected in problem.message
    assert split_counts(client, report.dataset_id) == dict(zip(("train", "valid", "test"), SIZES, strict=True))
    detail = client.get(f"/api/items/{item_id(client, report.dataset_id, 'valid/0')}").json()
    assert detail["meta"] == {}
    assert client.get(f"/api/items/{item_id(client, report.dataset_id, 'train/0')}").json()["meta"]["wsi"]
    slides = client.get(f"/api/datasets/{report.dataset_id}").json()["facets"]["slide"]
    assert sum(slides.values()) == SIZES[0] + SIZES[2]


def test_bad_meta_row_is_reported_with_its_line(engine, settings, client, tree):
    path = tree / file_name("test", "meta")
    lines = path.read_text().splitlines()
    cells = lines[6].split(",")  # line 7 of the file = row 5
    cells[2] = "left"
    lines[6] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    report = ingest_path(engine, settings, tree, kind="pcam")
    problem = only_problem(report, file_name("test", "meta"))
    assert (problem.row, problem.field, problem.item) == (7, "coord_x", "test/5")
    assert "'left' is not a whole number" in problem.message
    assert client.get(f"/api/items/{item_id(client, report.dataset_id, 'test/5')}").json()["meta"] == {}
    assert client.get(f"/api/items/{item_id(client, report.dataset_id, 'test/6')}").json()["meta"]["wsi"]


@pytest.mark.parametrize(("damage", "expected"), [
    ("truncated", "truncated gzip file"),
    ("not_gzip", "not a gzip file"),
    ("bad_crc", "corrupt gzip file"),
])
def test_corrupt_gz_is_reported(engine, settings, client, tree, damage, expected):
    target = tree / file_name("test", "x")
    with open(target, "rb") as src, gzip.open(target.with_name(target.name + ".gz"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    target.unlink()
    gz = target.with_name(target.name + ".gz")
    data = bytearray(gz.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "not_gzip":
        data = bytearray(b"<html>403 Forbidden</html>" * 10)
    else:
        data[-8] ^= 0xFF  # the stored CRC32
    gz.write_bytes(bytes(data))
    report = ingest_path(engine, settings, tree, kind="pcam")
    problem = only_problem(report, gz.name)
    assert expected in problem.message and "the test split is skipped" in problem.message
    assert split_counts(client, report.dataset_id) == {"train": SIZES[0], "valid": SIZES[1]}
    work = settings.data_dir / "work" / "pcam"
    assert not list(work.glob("*/*partial*")) and all(any(d.iterdir()) for d in work.iterdir())


def test_split_with_only_an_x_file(engine, settings, client, tree):
    (tree / file_name("valid", "y")).unlink()
    report = ingest_path(engine, settings, tree, kind="pcam")
    problem = only_problem(report, file_name("valid", "x"))
    assert "no valid y file" in problem.message and "the valid split is skipped" in problem.message
    assert split_counts(client, report.dataset_id) == {"train": SIZES[0], "test": SIZES[2]}


def test_nothing_usable_writes_nothing(engine, settings, tree):
    for split in ("train", "valid", "test"):
        (tree / file_name(split, "y")).unlink()
    with pytest.raises(IngestError, match="no PCam split could be indexed"):
        ingest_path(engine, settings, tree, kind="pcam")
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(Dataset)) == 0


def test_missing_pixel_file_is_a_404_naming_it(engine, settings, client, tree):
    report = ingest_path(engine, settings, tree, kind="pcam")
    ident = item_id(client, report.dataset_id, "test/0")
    (tree / file_name("test", "x")).unlink()
    pixels.close_all()
    r = client.get(f"/api/items/{ident}/render")
    assert r.status_code == 404 and "camelyonpatch_level_2_split_test_x.h5" in r.json()["detail"]
