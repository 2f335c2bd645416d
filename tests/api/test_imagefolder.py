"""Image-folder ingest: both layouts against an independent reading of the files, the REAL sparsam split
files with generated images at their paths, pixels against Pillow, and every bad input."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from app.datasets.base import IngestError
from app.datasets.imagefolder.synth import generate_imagefolder
from app.datasets.ingest import ingest_path
from app.datasets.registry import detect_kind


@pytest.fixture(scope="session")
def csv_sample(tmp_path_factory: pytest.TempPathFactory):
    return generate_imagefolder(tmp_path_factory.mktemp("imagefolder") / "bone_marrow", layout="csv", per_class=3,
                                seed=1)


@pytest.fixture
def tree(tmp_path, csv_sample) -> Path:
    root = tmp_path / "bone_marrow"
    shutil.copytree(csv_sample.root, root)
    return root


def read_split(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def all_items(client, dataset_id: int) -> dict[str, dict]:
    page = client.get(f"/api/datasets/{dataset_id}/items", params={"limit": 500}).json()
    assert page["next_cursor"] is None
    return {i["key"]: i for i in page["items"]}


def decode(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def pillow_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def test_csv_layout_labels_and_splits_match_the_files(engine, settings, client, csv_sample):
    root = csv_sample.root
    assert detect_kind(root) == "imagefolder"
    report = ingest_path(engine, settings, root, name="bm")
    assert report.kind == "imagefolder" and report.problems == []
    expected: dict[str, tuple[str, str | None]] = {}
    for path in sorted((root / "splits").glob("*.csv")):
        for row in read_split(path):
            expected[row["image"]] = (path.stem, row.get("label"))
    assert report.items == len(expected) == 63
    assert report.annotations == sum(1 for _, label in expected.values() if label)
    ds = client.get(f"/api/datasets/{report.dataset_id}").json()
    assert ds["facets"]["split"] == dict(Counter(split for split, _ in expected.values()))
    assert ds["facets"]["label"] == dict(sorted(Counter(lb for _, lb in expected.values() if lb).items()))
    items = all_items(client, report.dataset_id)
    assert {k: (i["split"], i["label"]) for k, i in items.items()} == expected
    key = next(k for k, (_, label) in expected.items() if label)
    detail = client.get(f"/api/items/{items[key]['id']}").json()
    with Image.open(root / key) as im:
        assert (detail["width"], detail["height"]) == im.size
    [ann] = detail["annotations"]
    assert (ann["kind"], ann["label"]) == ("label", expected[key][1])
    assert detail["meta"]["csv"] == f"splits/{expected[key][0]}.csv"
    lines = (root / detail["meta"]["csv"]).read_text().splitlines()
    assert lines[detail["meta"]["csv_line"] - 1].split(",")[1] == key
    unlabeled = next(k for k, (_, label) in expected.items() if label is None)
    assert client.get(f"/api/items/{items[unlabeled]['id']}").json()["annotations"] == []
    for label, n in ds["facets"]["label"].items():
        assert client.get(f"/api/datasets/{report.dataset_id}/items", params={"label": label}).json()["total"] == n


@pytest.mark.parametrize("split_folders", [False, True])
def test_class_folder_layouts(engine, settings, client, tmp_path, split_folders):
    sample = generate_imagefolder(tmp_path / "cells", layout="folders", per_class=3, seed=2,
                                  split_folders=split_folders, classes=["LYT", "NGS", "EOS", "BLA"])
    (tmp_path / "cells" / "README.txt").write_text("not an image")
    assert detect_kind(sample.root) == "imagefolder"
    report = ingest_path(engine, settings, sample.root)
    assert report.problems == []
    walked = {}
    for current, _, files in os.walk(sample.root):
        for name in files:
            if name.endswith(".jpg"):
                rel = Path(current, name).relative_to(sample.root)
                parts = rel.parts
                walked[rel.as_posix()] = (parts[0], parts[1]) if split_folders else (None, parts[0])
    items = all_items(client, report.dataset_id)
    assert {k: (i["split"], i["label"]) for k, i in items.items()} == walked
    ds = client.get(f"/api/datasets/{report.dataset_id}").json()
    assert ds["facets"]["label"] == dict(sorted(Counter(label for _, label in walked.values()).items()))
    assert ds["facets"]["split"] == (dict(sorted(Counter(s for s, _ in walked.values()).items()))
                                     if split_folders else {})


@pytest.mark.realdata
@pytest.mark.parametrize("dataset", ["bone_marrow", "endo", "isic"])
def test_real_sparsam_split_files(engine, settings, client, tmp_path, dataset, realdata):
    """The first 300 rows of the real file, verbatim; images generated at their paths except every 7th."""
    real = realdata("sparsam", "splits", dataset, "test.csv")
    root = tmp_path / dataset
    lines = real.read_text().splitlines(keepends=True)[:301]
    (root / "splits").mkdir(parents=True)
    (root / "splits" / "test.csv").write_text("".join(lines))
    rows = list(csv.reader(lines))
    assert rows[0] == ["", "image", "label"]
    present: dict[str, str] = {}
    absent: dict[int, str] = {}
    for line, (_, image, label) in enumerate(rows[1:], start=2):
        if line % 7 == 0:
            absent[line] = image
            continue
        shade = hashlib.md5(image.encode()).digest()[:3]
        (root / image).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12, 10), tuple(shade)).save(root / image, quality=90)
        present[image] = label
    report = ingest_path(engine, settings, root, kind="imagefolder", name=dataset)
    assert report.items == len(present) and report.annotations == len(present)
    items = all_items(client, report.dataset_id)
    assert {k: i["label"] for k, i in items.items()} == present
    assert {i["split"] for i in items.values()} == {"test"}
    assert {(i["width"], i["height"]) for i in items.values()} == {(12, 10)}
    assert {p.row: p.item for p in report.problems} == absent
    for p in report.problems:
        assert (p.file, p.field) == ("splits/test.csv", "image")
        assert p.message == f"image file {p.item} not found; row skipped"
    ds = client.get(f"/api/datasets/{report.dataset_id}").json()
    assert ds["facets"]["label"] == dict(sorted(Counter(present.values()).items()))
    assert ds["problem_count"] == len(absent)


def test_render_equals_pillow_decode_with_exif_orientation(engine, settings, client, tmp_path):
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    (root / "rotated").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90° clockwise
    Image.fromarray(rng.integers(0, 255, (20, 40, 3), dtype=np.uint8)).save(root / "rotated/a.jpg", exif=exif)
    (root / "grey").mkdir()
    Image.fromarray(rng.integers(0, 255, (16, 24), dtype=np.uint8), "L").save(root / "grey/b.png")
    (root / "palette").mkdir()
    Image.fromarray(rng.integers(0, 4, (16, 24), dtype=np.uint8), "P").save(root / "palette/c.png")
    report = ingest_path(engine, settings, root, kind="imagefolder")
    items = all_items(client, report.dataset_id)
    assert (items["rotated/a.jpg"]["width"], items["rotated/a.jpg"]["height"]) == (20, 40)
    for key, item in items.items():
        r = client.get(f"/api/items/{item['id']}/render", params={"format": "png", "overlays": "none"})
        assert r.status_code == 200
        assert np.array_equal(decode(r.content), pillow_rgb(root / key)), key
    detail = client.get(f"/api/items/{items['rotated/a.jpg']['id']}").json()
    assert detail["meta"]["exif_orientation"] == 6
    assert "EXIF orientation 6" in client.get(f"/items/{detail['id']}").text


def test_overlay_writes_the_class_in_the_corner(engine, settings, client, csv_sample):
    report = ingest_path(engine, settings, csv_sample.root, name="bm")
    labelled = next(s for s in csv_sample.images if s.split != "unlabeled_train")
    item = all_items(client, report.dataset_id)[labelled.rel]
    plain = decode(client.get(f"/api/items/{item['id']}/render", params={"overlays": "none"}).content)
    gt = decode(client.get(f"/api/items/{item['id']}/render", params={"overlays": "gt"}).content)
    assert np.array_equal(plain, pillow_rgb(csv_sample.root / labelled.rel))
    changed = (gt != plain).any(axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 30 and ys.max() < 0.25 * plain.shape[0] and xs.max() < 0.5 * plain.shape[1]
    yellow = gt[changed]
    assert ((yellow[:, 0] > 200) & (yellow[:, 1] > 200) & (yellow[:, 2] < 120)).any()  # the label's colour
    unlabeled = next(s for s in csv_sample.images if s.split == "unlabeled_train")
    uid = all_items(client, report.dataset_id)[unlabeled.rel]["id"]
    assert client.get(f"/api/items/{uid}/render", params={"overlays": "gt"}).content == \
        client.get(f"/api/items/{uid}/render", params={"overlays": "none"}).content


# -- bad input ---------------------------------------------------------------------------------

def append_rows(path: Path, rows: list[list[str]]) -> list[int]:
    """Append rows; returns their line numbers (header = line 1)."""
    start = len(path.read_text().splitlines()) + 1
    with path.open("a", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return list(range(start, start + len(rows)))


def test_bad_rows_are_reported_with_file_and_line(engine, settings, client, tree):
    test_csv, train_csv = tree / "splits/test.csv", tree / "splits/labeled_train.csv"
    train_rows, test_rows = read_split(train_csv), read_split(test_csv)
    missing = test_rows[1]["image"]
    (tree / missing).unlink()
    garbage = test_rows[2]["image"]
    (tree / garbage).write_bytes(b"this is not a jpeg")
    dup = train_rows[0]["image"]
    lines = append_rows(test_csv, [["90", "", "LYT"], ["91", dup, "XYZ"], ["92", "../outside.jpg", "LYT"],
                                   ["93", train_rows[1]["image"].replace("/", "\\"), ""]])
    (tree / "splits" / "notes.csv").write_text("id,path,label\n1,a.jpg,LYT\n")
    report = ingest_path(engine, settings, tree, kind="imagefolder")
    got = {(p.file, p.row, p.field): p for p in report.problems}
    assert "not found" in got[("splits/test.csv", 3, "image")].message and got[("splits/test.csv", 3, "image")].item \
        == missing
    assert "not a readable image" in got[("splits/test.csv", 4, "image")].message
    assert got[("splits/test.csv", lines[0], "image")].message == "empty image path; row skipped"
    dup_problem = got[("splits/test.csv", lines[1], "image")]
    assert "already listed in splits/labeled_train.csv line 2 (split labeled_train)" in dup_problem.message
    assert "labels differ" in dup_problem.message and dup_problem.item == dup
    assert "leaves the dataset folder" in got[("splits/test.csv", lines[2], "image")].message
    assert "already listed" in got[("splits/test.csv", lines[3], "image")].message  # a\b is the same file as a/b
    assert got[("splits/test.csv", lines[3], "label")].message == "empty label; indexed as unlabeled"
    assert "no 'image' column (header: id,path,label)" in got[("splits/notes.csv", None, None)].message
    assert len(report.problems) == 8, [str(p) for p in report.problems]
    items = all_items(client, report.dataset_id)
    assert report.items == 63 - 2 and missing not in items and garbage not in items
    assert (items[dup]["split"], items[dup]["label"]) == ("labeled_train", train_rows[0]["label"])


def test_folder_layout_bad_files(engine, settings, tmp_path):
    sample = generate_imagefolder(tmp_path / "cells", layout="folders", per_class=2, seed=3, classes=["LYT", "EOS"])
    Image.new("RGB", (8, 8)).save(sample.root / "loose.png")
    (sample.root / "LYT" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    report = ingest_path(engine, settings, sample.root, kind="imagefolder")
    by_file = {p.file: p.message for p in report.problems}
    assert by_file == {"loose.png": "image is not inside a class folder; indexed without a label",
                       "LYT/broken.jpg": by_file["LYT/broken.jpg"]}
    assert "not a readable image" in by_file["LYT/broken.jpg"] or "unreadable" in by_file["LYT/broken.jpg"]
    assert report.items == 5 and report.annotations == 4


def test_nothing_usable_is_an_ingest_error(engine, settings, tmp_path, tree):
    for s in (tree / "BM_cytomorphology_data").rglob("*.jpg"):
        s.unlink()
    with pytest.raises(IngestError, match="none of the 63 listed images could be read") as err:
        ingest_path(engine, settings, tree, kind="imagefolder")
    assert len(err.value.problems) == 63
    empty = tmp_path / "empty"
    (empty / "docs").mkdir(parents=True)
    (empty / "docs" / "readme.txt").write_text("x")
    with pytest.raises(IngestError, match="no images listed in any sub-folder"):
        ingest_path(engine, settings, empty, kind="imagefolder")
    from app.datasets.imagefolder.adapter import ImageFolderAdapter

    assert not ImageFolderAdapter().detect(empty)


def test_image_gone_after_ingest_is_a_404(engine, settings, client, tree):
    report = ingest_path(engine, settings, tree, kind="imagefolder")
    key, item = next(iter(all_items(client, report.dataset_id).items()))
    (tree / key).unlink()
    r = client.get(f"/api/items/{item['id']}/render")
    assert r.status_code == 404 and key in r.json()["detail"]
    again = ingest_path(engine, settings, tree, kind="imagefolder")
    assert (again.removed, again.unchanged) == (1, report.items - 1)


def test_long_facets_show_fifteen_values_and_the_selected_rest_behind_more(client, engine, settings, tree):
    """21 classes: the sidebar lists 15 label values, the other 6 sit in a "6 more" disclosure — except a
    selected one, which stays in view; every value keeps its live count and toggle link."""
    import re

    from app.web.pages import FACET_SHOWN

    dataset_id = ingest_path(engine, settings, tree, kind="imagefolder", name="bm").dataset_id
    html = client.get(f"/datasets/{dataset_id}").text
    label = html[html.index('<section class="facet" data-field="label">'):]
    label = label[:label.index("</section>")]
    visible, _, hidden = label.partition('<details class="facet-more">')
    values = re.findall(r'data-value="([^"]+)"', visible)
    more = re.findall(r'data-value="([^"]+)"', hidden)
    assert len(values) == FACET_SHOWN == 15 and len(more) == 21 - FACET_SHOWN
    assert f"{21 - FACET_SHOWN} more label values" in hidden
    selected = more[-1]
    html = client.get(f"/datasets/{dataset_id}", params={"label": selected}).text
    label = html[html.index('<section class="facet" data-field="label">'):]
    visible = label[:label.index("</section>")].partition('<details class="facet-more">')[0]
    assert 'class="facet-value active" href' in visible and f'data-value="{selected}"' in visible
