"""Split-file discovery and parsing (sparsam format), path normalisation, and the generator's paths
checked against every row of the real bone-marrow split file."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from PIL import Image

from app.datasets.base import Problem
from app.datasets.imagefolder.files import image_header, natural_key, read_rgb, walk_images
from app.datasets.imagefolder.splits import find_split_files, normalise_image_path, read_split_rows
from app.datasets.imagefolder.synth import BM_CLASS_SIZES, bm_relative_path, generate_imagefolder


def test_split_files_are_found_by_header_not_name(tmp_path):
    (tmp_path / "splits" / "bone_marrow").mkdir(parents=True)
    (tmp_path / "splits" / "bone_marrow" / "fold_a.csv").write_text(",image,label\n0,a/x.jpg,LYT\n")
    (tmp_path / "listing.csv").write_text("\ufeff,Image\n0,b.jpg\n")  # BOM and capitalised column
    (tmp_path / "metadata.csv").write_text("id,path\n1,c.jpg\n")
    (tmp_path / "deeper" / "x").mkdir(parents=True)
    (tmp_path / "deeper" / "x" / "ignored.csv").write_text(",image\n0,d.jpg\n")
    found, others = find_split_files(tmp_path)
    assert [(f.rel, f.split, f.image_col, f.label_col) for f in found] == [
        ("listing.csv", "listing", 1, None), ("splits/bone_marrow/fold_a.csv", "fold_a", 1, 2)]
    assert others == [("metadata.csv", ("id", "path"))]


def test_rows_keep_their_physical_line_numbers(tmp_path):
    text = (',image,label\n0,a.jpg,LYT\n\n1,"b\nc.jpg",EOS\n2,,NGS\n3,d.jpg,\n4,e.jpg\n'
            '5,/etc/passwd,LYT\n6,./f//g.jpg,BLA\n')
    (tmp_path / "test.csv").write_text(text)
    [split_file], _ = find_split_files(tmp_path)
    problems: list[Problem] = []
    rows = list(read_split_rows(tmp_path, split_file, problems))
    assert [(r.line, r.image, r.label) for r in rows] == [
        (2, "a.jpg", "LYT"), (4, "b\nc.jpg", "EOS"), (7, "d.jpg", None), (8, "e.jpg", None), (10, "f/g.jpg", "BLA")]
    assert [(p.row, p.field, p.message.split(";")[0]) for p in problems] == [
        (6, "image", "empty image path"), (7, "label", "empty label"), (8, "label", "empty label"),
        (9, "image", "path '/etc/passwd' is absolute or leaves the dataset folder")]


@pytest.mark.parametrize(("raw", "clean"), [
    ("a/b.jpg", "a/b.jpg"), (" a\\b.jpg ", "a/b.jpg"), ("./a/./b.jpg", "a/b.jpg"), ("/abs.jpg", None),
    ("C:\\x.jpg", None), ("a/../../b.jpg", None), ("..", None), ("", None)])
def test_normalise_image_path(raw, clean):
    assert normalise_image_path(raw) == clean


@pytest.mark.realdata
def test_generator_paths_match_every_real_bone_marrow_row(realdata):
    real = realdata("sparsam", "splits", "bone_marrow", "test.csv")
    with real.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["label"] for r in rows} == set(BM_CLASS_SIZES)
    for row in rows:
        prefix, rel = row["image"].split("/", 1)
        number = int(re.search(r"_(\d+)\.jpg$", rel).group(1))
        assert prefix == "BM_cytomorphology_data" and bm_relative_path(row["label"], number) == rel, row


def test_generated_split_files_are_in_the_pandas_format(tmp_path):
    out = generate_imagefolder(tmp_path, layout="csv", per_class=3, seed=0)
    labeled = (tmp_path / "splits" / "test.csv").read_text().splitlines()
    unlabeled = (tmp_path / "splits" / "unlabeled_train.csv").read_text().splitlines()
    assert labeled[0] == ",image,label" and unlabeled[0] == ",image"
    assert [line.split(",")[0] for line in labeled[1:]] == [str(i) for i in range(len(labeled) - 1)]
    pattern = re.compile(r"\d+,BM_cytomorphology_data/([A-Z]{3})/(\d{4,5}-\d{4,5}/)?\1_\d{5}\.jpg,\1")
    assert all(pattern.fullmatch(line) for line in labeled[1:])
    assert len(out.images) == 63 and all((tmp_path / s.rel).is_file() for s in out.images)


def test_cells_differ_by_class(tmp_path):
    """Lymphocytes have a small dark nucleus, eosinophils orange granules, blasts a large pale nucleus."""
    out = generate_imagefolder(tmp_path, layout="folders", per_class=4, seed=5, classes=["LYT", "EOS", "BLA"])
    stats: dict[str, list[tuple[float, float]]] = {}
    for s in out.images:
        rgb = np.asarray(Image.open(tmp_path / s.rel)).astype(int)
        nucleus = (rgb[..., 2] > rgb[..., 1] + 40) & (rgb.sum(axis=2) < 400)
        orange = (rgb[..., 0] > 200) & (rgb[..., 2] < 150)
        stats.setdefault(s.label, []).append((nucleus.mean(), orange.mean()))
    mean = {k: np.mean(v, axis=0) for k, v in stats.items()}
    assert mean["BLA"][0] > 1.8 * mean["LYT"][0]  # blasts: much larger nucleus
    assert mean["EOS"][1] > 0.15 and mean["LYT"][1] < 0.02  # eosinophils: orange cytoplasm and granules


def test_header_reads_and_decoding(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (30, 10), (10, 20, 30)).save(tmp_path / "r.jpg", exif=exif)
    header = image_header(tmp_path / "r.jpg")
    assert (header.width, header.height, header.format, header.orientation) == (10, 30, "JPEG", 8)
    assert read_rgb(tmp_path / "r.jpg").shape == (30, 10, 3)
    values = np.arange(0, 4096 * 16, 16, dtype=np.uint16).reshape(64, 64)  # 16-bit grey spreads to 0…255
    Image.fromarray(values).save(tmp_path / "deep.png")
    rgb = read_rgb(tmp_path / "deep.png")
    assert rgb.shape == (64, 64, 3) and rgb.min() == 0 and rgb.max() == 255
    assert [natural_key(n) for n in ("a2", "a10")] == sorted(natural_key(n) for n in ("a10", "a2"))
    (tmp_path / "sub" / ".hidden").mkdir(parents=True)
    for name in ("x10.jpg", "x2.png", "notes.txt", ".hidden/y.jpg"):
        (tmp_path / "sub" / name).write_bytes(b"")
    assert list(walk_images(tmp_path / "sub")) == ["x2.png", "x10.jpg"]
