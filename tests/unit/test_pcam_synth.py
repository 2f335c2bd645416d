"""The PCam generator writes the published layout; the meta reader and gzip cache handle real-world variants."""

from __future__ import annotations

import csv
import gzip

import h5py
import numpy as np
import pytest

from app.datasets.pcam import files
from app.datasets.pcam.meta import read_meta
from app.datasets.pcam.synth import META_HEADER, demo_sample, file_name, generate_pcam, make_large_pcam


def test_generated_files_have_the_published_layout(tmp_path):
    g = generate_pcam(tmp_path, n_per_split=(20, 6, 4), seed=1, x_chunks=(1, 96, 96, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        file_name(s, r) for s in ("train", "valid", "test") for r in ("x", "y", "meta"))
    for split, n in (("train", 20), ("valid", 6), ("test", 4)):
        with h5py.File(tmp_path / file_name(split, "x"), "r") as f:
            assert (f["x"].shape, f["x"].dtype, f["x"].chunks) == ((n, 96, 96, 3), np.uint8, (1, 96, 96, 3))
        with h5py.File(tmp_path / file_name(split, "y"), "r") as f:
            assert (f["y"].shape, f["y"].dtype) == ((n, 1, 1, 1), np.uint8)
            assert np.array_equal(f["y"][()].reshape(-1), g.labels[split])
        with (tmp_path / file_name(split, "meta")).open(newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == META_HEADER and len(rows) == n + 1
        assert [r[4] for r in rows[1:]] == [str(bool(y)) for y in g.labels[split]]  # center_tumor_patch = y
        assert all(r[3] == "True" for r in rows[1:] if r[4] == "True")  # tumor in centre ⇒ tumor in patch
    assert set(np.concatenate(list(g.labels.values())).tolist()) == {0, 1}


def test_tumor_centres_are_darker_and_denser(tmp_path):
    g = generate_pcam(tmp_path, n_per_split=(60,), splits=("train",), seed=2)
    with h5py.File(tmp_path / file_name("train", "x"), "r") as f:
        x = f["x"][()]
    centre = x[:, 32:64, 32:64].astype(float).mean(axis=(1, 2, 3))
    tumor, normal = centre[g.labels["train"] == 1], centre[g.labels["train"] == 0]
    assert tumor.max() < normal.min()  # every tumor centre is darker than every normal one
    red, green = x[..., 0].mean(), x[..., 1].mean()
    assert red > green + 30  # pink/purple H&E, not grey


def test_demo_sample_is_small_and_quick(tmp_path):
    g = demo_sample(tmp_path)
    assert {s: len(v) for s, v in g.labels.items()} == {"train": 256, "valid": 64, "test": 64}
    assert len({r[5] for rows in g.meta.values() for r in rows}) >= 4


def test_large_sample_with_compressed_black_chunks(tmp_path):
    counts = make_large_pcam(tmp_path, n_train=5000, n_valid=300, n_test=200, filled=("valid",), pool=8)
    assert counts == {"train": 5000, "valid": 300, "test": 200}
    train_x = tmp_path / file_name("train", "x")
    assert train_x.stat().st_size < 2_000_000  # 5000 × 27 KB of black patches, compressed
    with h5py.File(train_x, "r") as f:
        assert f["x"].shape == (5000, 96, 96, 3) and not f["x"][4321].any()
        assert f["x"].id.get_num_chunks() == 5000  # every chunk written: no phantom patches for ingest to refuse
    with h5py.File(tmp_path / file_name("valid", "x"), "r") as fx, \
            h5py.File(tmp_path / file_name("valid", "y"), "r") as fy:
        y = fy["y"][()].reshape(-1)
        assert fx["x"][17].any() and 0.3 < y.mean() < 0.7
    with (tmp_path / file_name("test", "meta")).open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == META_HEADER and len(rows) == 201


def write_csv(path, header, rows):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_meta_without_index_column_follows_the_h5_order(tmp_path):
    path = tmp_path / "m.csv"
    write_csv(path, ["coord_y", "coord_x", "tumor_patch", "center_tumor_patch", "wsi"],
              [[5, 6, "False", "False", "a"], [7, 8.0, "1", "0", "b"]])
    meta, problems = read_meta(path, "m.csv", "train", 2)
    assert problems == []
    assert meta == [{"coord_y": 5, "coord_x": 6, "tumor_patch": False, "center_tumor_patch": False, "wsi": "a"},
                    {"coord_y": 7, "coord_x": 8, "tumor_patch": True, "center_tumor_patch": False, "wsi": "b"}]


def test_meta_index_column_places_rows_and_only_wsi_is_required(tmp_path):
    path = tmp_path / "m.csv"
    write_csv(path, ["", "wsi"], [[1, "b"], [0, "a"], [1, "c"]])
    meta, problems = read_meta(path, "m.csv", "valid", 3)
    assert meta == [{"wsi": "a"}, {"wsi": "b"}, None]
    [p] = problems
    assert (p.row, p.item, p.message) == (4, "valid/1", "row number 1 appears twice; this patch is indexed "
                                                        "without meta")


def test_meta_bad_flag_names_row_and_field(tmp_path):
    path = tmp_path / "m.csv"
    write_csv(path, ["", "coord_y", "coord_x", "tumor_patch", "center_tumor_patch", "wsi"],
              [[0, 1, 2, "True", "maybe", "s"]])
    meta, [p] = read_meta(path, "m.csv", "test", 1)
    assert meta == [None] and (p.row, p.field) == (2, "center_tumor_patch") and "'maybe'" in p.message


def test_gunzip_cache_reused_and_corrupt_gz_leaves_nothing(tmp_path):
    src = tmp_path / "a.h5"
    src.write_bytes(np.arange(3_000_000, dtype=np.uint32).tobytes())
    gz = tmp_path / "a.h5.gz"
    with gzip.open(gz, "wb", compresslevel=1) as fh:
        fh.write(src.read_bytes())
    seen = []
    out = files.gunzip_cached(gz, tmp_path / "cache", lambda p, d, t: seen.append((p, d, t)))
    assert out.read_bytes() == src.read_bytes() and out.parent.parent == tmp_path / "cache"
    assert seen[0] == ("decompressing a.h5.gz", 0, gz.stat().st_size) and seen[-1][1] == seen[-1][2]
    seen.clear()
    assert files.gunzip_cached(gz, tmp_path / "cache", lambda p, d, t: seen.append(p)) == out and seen == []
    bad = tmp_path / "b.h5.gz"
    bad.write_bytes(gz.read_bytes()[:-100])
    with pytest.raises(files.GzipCorrupt, match="truncated"):
        files.gunzip_cached(bad, tmp_path / "cache", lambda *a: None)
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()) == ["a.h5", "source.txt"]
    with gzip.open(gz, "wb", compresslevel=1) as fh:  # a new download of the same file
        fh.write(src.read_bytes()[:1000])
    fresh = files.gunzip_cached(gz, tmp_path / "cache", lambda *a: None)
    assert fresh != out and fresh.read_bytes() == src.read_bytes()[:1000]
    assert [p for p in (tmp_path / "cache").rglob("*.h5")] == [fresh]  # the stale copy is gone
