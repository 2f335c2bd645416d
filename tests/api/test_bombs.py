"""Decompression bombs (security review, finding 2): sizes are checked from headers before anything is decoded.

- a 30000×30000 PNG (a valid file of ~0.9 MB, built here without allocating 900 MB) is a Problem at ingest, with
  its size and the setting, for the image kinds (Pillow's DecompressionBombError used to stop the ingest);
- at render, an image / volume over the limits is a 404 naming the file (a second app on the same database with
  a smaller MEDVIEW_MAX_* stands for a file that grew after ingest);
- NIfTI header shapes, DICOM Rows×Columns(×frames), and HDF5 shapes that the file cannot hold are refused;
- a .h5.gz over MEDVIEW_MAX_DECOMPRESSED_MB leaves nothing in the data dir, nor does a split rejected after
  its decompression.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from sqlalchemy import select

from app.datasets.ingest import ingest_path
from app.db.models import Item

SIDE = 30000
LIMIT_TEXT = f"{SIDE}×{SIDE} pixels exceeds MEDVIEW_MAX_IMAGE_PIXELS (100000000)"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_bomb(path: Path, width: int = SIDE, height: int = SIDE) -> Path:
    """A complete, valid 8-bit grey PNG of width × height zero pixels, made from one compressed block repeated
    (after a full flush the compressor's output for the same input is the same bytes): ~1 MB for 30000²."""
    rows_per_block = 100
    assert height % rows_per_block == 0
    block = bytes((width + 1) * rows_per_block)  # filter byte 0 + zero samples per row
    c = zlib.compressobj(9)
    first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    repeat = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.flush()[:-4]
    n = (width + 1) * height
    adler = ((n % 65521) << 16) | 1  # adler32 of n zero bytes: a stays 1, b grows by 1 per byte
    stream = first + repeat * (height // rows_per_block - 1) + tail + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b""))
    return path


def test_png_bomb_is_valid_and_small(tmp_path):
    path = write_png_bomb(tmp_path / "small.png", 300, 200)
    from PIL import Image

    with Image.open(path) as im:
        assert im.size == (300, 200) and not np.asarray(im).any()
    assert write_png_bomb(tmp_path / "big.png").stat().st_size < 2_000_000


def item_ids(engine, dataset_id: int) -> dict[str, tuple[int, str]]:
    with engine.connect() as conn:
        return {k: (i, loc) for k, i, loc in conn.execute(
            select(Item.key, Item.id, Item.location).where(Item.dataset_id == dataset_id))}


def texts(report) -> list[str]:
    return [str(p) for p in report.problems]


@pytest.fixture
def small_client(make_settings):
    """A second app on the same database whose limits are tiny: every file of the samples is 'too large'."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.helpers.auth import signed_in

    small = make_settings(max_image_pixels=1000, max_volume_voxels=1000)
    with signed_in(TestClient(create_app(small)), small) as c:
        yield c


def assert_too_large(client, item_id: int, rel: str, setting: str, **params) -> None:
    r = client.get(f"/api/items/{item_id}/render", params={"format": "png", **params})
    assert r.status_code == 404, (r.status_code, r.text[:200])
    detail = r.json()["detail"]
    assert rel in detail and setting in detail, detail


# -- 2-D images ------------------------------------------------------------------------------------------------

def test_imagefolder_png_bomb_is_a_problem_not_a_crash(engine, settings, tmp_path, small_client):
    from app.datasets.imagefolder.synth import generate_imagefolder

    root = tmp_path / "folder"
    generate_imagefolder(root, layout="folders", per_class=2, classes=["BLA", "EOS"], size=32)
    write_png_bomb(root / "BLA" / "bomb.png")
    report = ingest_path(engine, settings, root, kind="imagefolder")
    assert any(t.startswith("BLA/bomb.png") and LIMIT_TEXT in t for t in texts(report)), texts(report)
    assert report.items == 4
    item_id, rel = next(iter(item_ids(engine, report.dataset_id).values()))
    assert_too_large(small_client, item_id, rel, "MEDVIEW_MAX_IMAGE_PIXELS (1000)")


def test_bis5k_png_bomb_image_and_mask(engine, settings, tmp_path, small_client):
    from app.datasets.bis5k.synth import generate_bis5k

    root = tmp_path / "BIS5k"
    sample = generate_bis5k(root, n_train=3, n_test=1, seed=4)
    bomb_image, bomb_mask = sample.images[0], sample.images[1]
    write_png_bomb(root / bomb_image.image)
    write_png_bomb(root / bomb_mask.mask)
    report = ingest_path(engine, settings, root, kind="bis5k")
    problems = texts(report)
    assert any(t.startswith(bomb_image.image) and LIMIT_TEXT in t for t in problems), problems
    assert any(t.startswith(bomb_mask.mask) and LIMIT_TEXT in t and "mask not used" in t for t in problems), problems
    ids = item_ids(engine, report.dataset_id)
    assert set(ids) == {i.image for i in sample.images[1:]}
    item_id, rel = ids[sample.images[2].image]
    assert_too_large(small_client, item_id, rel, "MEDVIEW_MAX_IMAGE_PIXELS (1000)")


def test_deeplesion_slices_over_the_limit(engine, make_settings, settings, tmp_path, small_client):
    from app.datasets.deeplesion.synth import generate_deeplesion

    root = tmp_path / "DeepLesion"
    generate_deeplesion(root, patients=2, seed=2, neighbours=1, image_size=64)
    report = ingest_path(engine, settings, root, kind="deeplesion")
    item_id, rel = next(iter(item_ids(engine, report.dataset_id).values()))
    assert_too_large(small_client, item_id, rel, "MEDVIEW_MAX_IMAGE_PIXELS (1000)")
    small = make_settings(max_image_pixels=1000)
    with pytest.raises(Exception, match="none of the") as caught:
        ingest_path(engine, small, root, kind="deeplesion", name="small")
    problems = [str(p) for p in caught.value.problems]  # type: ignore[attr-defined]
    assert any("64×64 pixels exceeds MEDVIEW_MAX_IMAGE_PIXELS (1000)" in t for t in problems), problems[:3]


# -- volumes ---------------------------------------------------------------------------------------------------

def test_verse_nifti_header_over_the_voxel_limit(engine, make_settings, settings, tmp_path, small_client):
    from app.datasets.verse.synth import generate_verse

    root = tmp_path / "verse"
    generate_verse(root, subjects=2, seed=1)
    report = ingest_path(engine, settings, root, kind="verse")
    item_id, rel = next(iter(item_ids(engine, report.dataset_id).values()))
    assert_too_large(small_client, item_id, rel, "MEDVIEW_MAX_VOLUME_VOXELS (1000)")
    with pytest.raises(Exception, match="none of the") as caught:
        ingest_path(engine, make_settings(max_volume_voxels=1000), root, kind="verse", name="small")
    problems = [str(p) for p in caught.value.problems]  # type: ignore[attr-defined]
    assert any(t.startswith(rel) and "voxels exceeds MEDVIEW_MAX_VOLUME_VOXELS (1000)" in t for t in problems)


def test_dicom_rows_columns_over_the_limits(engine, make_settings, settings, tmp_path, small_client):
    from app.datasets.dicom.synth import generate_dicom

    root = tmp_path / "dicom"
    generate_dicom(root, seed=0)
    report = ingest_path(engine, settings, root, kind="dicom")
    with engine.connect() as conn:
        item_id, meta = conn.execute(select(Item.id, Item.meta).where(Item.dataset_id == report.dataset_id,
                                                                      Item.depth > 1)).first()
    first = (f"{meta['folder']}/" if meta.get("folder") else "") + meta["files"][0]
    assert_too_large(small_client, item_id, "", "MEDVIEW_MAX_", plane="coronal")
    with pytest.raises(Exception, match="no DICOM image files|no usable series") as caught:
        ingest_path(engine, make_settings(max_image_pixels=1000), root, kind="dicom", name="small")
    problems = [str(p) for p in caught.value.problems]  # type: ignore[attr-defined]
    assert any(t.startswith(first) and "pixels exceeds MEDVIEW_MAX_IMAGE_PIXELS (1000)" in t for t in problems)


# -- HDF5 and .h5.gz -------------------------------------------------------------------------------------------

def _sparse_split(root: Path, split: str, count: int, chunked: bool) -> None:
    """x and y declaring `count` patches, none written: a few KB on disk."""
    from app.datasets.pcam.synth import file_name

    with h5py.File(root / file_name(split, "x"), "w") as f:
        f.create_dataset("x", shape=(count, 96, 96, 3), dtype=np.uint8,
                         chunks=(1, 96, 96, 3) if chunked else None, compression="gzip" if chunked else None)
    with h5py.File(root / file_name(split, "y"), "w") as f:
        f.create_dataset("y", shape=(count, 1, 1, 1), dtype=np.uint8)


@pytest.mark.parametrize("chunked", [False, True])
def test_hdf5_declaring_a_million_phantom_patches(engine, settings, tmp_path, chunked):
    from app.datasets.pcam.synth import file_name, generate_pcam

    root = tmp_path / "pcam"
    generate_pcam(root, n_per_split=(6, 4), seed=1, splits=("train", "valid"))
    _sparse_split(root, "test", 1_000_000, chunked)
    assert (root / file_name("test", "x")).stat().st_size < 100_000
    report = ingest_path(engine, settings, root, kind="pcam")
    assert report.items == 10
    problems = texts(report)
    assert any(t.startswith(file_name("test", "y")) and "declares shape (1000000, 1, 1, 1)" in t
               and "the test split is skipped" in t for t in problems), problems


def test_h5_gz_over_the_budget_leaves_nothing(engine, make_settings, tmp_path):
    from app.datasets.pcam.synth import file_name, generate_pcam

    root = tmp_path / "pcam"
    generate_pcam(root, n_per_split=(6, 4), seed=1, splits=("train", "valid"))
    with gzip.open(root / (file_name("test", "x") + ".gz"), "wb") as fh:
        for _ in range(3):
            fh.write(bytes(1 << 20))  # 3 MB of zeros: a few KB compressed
    with gzip.open(root / (file_name("test", "y") + ".gz"), "wb") as fh:
        fh.write(b"not hdf5 at all")  # decompresses fine, then is rejected: its copy must go too
    settings = make_settings(max_decompressed_mb=1)
    report = ingest_path(engine, settings, root, kind="pcam")
    assert report.items == 10
    problems = texts(report)
    assert any("MEDVIEW_MAX_DECOMPRESSED_MB (1 MB)" in t for t in problems), problems
    work = settings.data_dir / "work" / "pcam"
    left = [p for p in work.rglob("*") if p.is_file()] if work.exists() else []
    assert left == [], left
    # with room enough, the x copy is made, the y copy is not HDF5: the split is rejected and both copies go
    report = ingest_path(engine, make_settings(), root, kind="pcam")
    assert any("not a readable HDF5 file" in t for t in texts(report)), texts(report)
    left = [p for p in work.rglob("*") if p.is_file()] if work.exists() else []
    assert left == [], left


def test_gunzip_deletes_its_partial_output_on_any_failure(tmp_path):
    from app.datasets.pcam import files

    gz = tmp_path / "camelyonpatch_level_2_split_test_x.h5.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(bytes(80 << 20))  # 20 chunks of 4 MiB: progress is reported after the 16th

    def interrupted(phase: str, done: int, total: int) -> None:
        if done:
            raise KeyboardInterrupt

    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        files.gunzip_cached(gz, cache, interrupted)
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    with pytest.raises(files.GzipTooLarge):
        files.gunzip_cached(gz, cache, lambda *a: None, max_bytes=10 << 20)
    assert [p for p in cache.rglob("*") if p.is_file()] == []
