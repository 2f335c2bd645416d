"""The synthetic DeepLesion generator writes the real on-disk format, lesions drawn where the CSV says."""

from __future__ import annotations

import csv
import math
import os
import re
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.datasets.deeplesion.synth import ct_phantom_slice, generate_deeplesion, pack_zips
from app.datasets.deeplesion.synth_full import generate_full_size_tree

COLUMNS = [  # the official DL_info.csv header (test_columns_are_the_official_header checks it on the real file)
    "File_name", "Patient_index", "Study_index", "Series_ID", "Key_slice_index", "Measurement_coordinates",
    "Bounding_boxes", "Lesion_diameters_Pixel_", "Normalized_lesion_location", "Coarse_lesion_type",
    "Possibly_noisy", "Slice_range", "Spacing_mm_px_", "Image_size", "DICOM_windows", "Patient_gender",
    "Patient_age", "Train_Val_Test",
]
LIST_FIELDS = {"Measurement_coordinates": 8, "Bounding_boxes": 4, "Lesion_diameters_Pixel_": 2,
               "Normalized_lesion_location": 3, "Slice_range": 2, "Spacing_mm_px_": 3, "Image_size": 2,
               "DICOM_windows": 2}
# lytic bone, liver and kidney lesions are drawn darker than their host organ; the other types brighter
DARKER = {1, 4, 6}


def nums(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def slice_path(root: Path, file_name: str, number: int | None = None) -> Path:
    series, key = file_name[:-4].rsplit("_", 1)
    return root / "Images_png" / series / f"{int(key) if number is None else number:03d}.png"


def read_hu(path: Path) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw is not None, path
    return raw.astype(np.int32) - 32768


def centre_and_ring(hu: np.ndarray, coords: list[float], ring: float = 1.25) -> tuple[float, float]:
    """Median HU around the lesion centre, and on an ellipse `ring` times the lesion's axes."""
    (x1, y1, x2, y2, sx1, sy1, sx2, sy2) = coords
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a = np.array([x1 - cx, y1 - cy])
    b = np.array([sx1 - cx, sy1 - cy])
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    pts = np.array([cx, cy])[:, None] + ring * (np.outer(a, np.cos(t)) + np.outer(b, np.sin(t)))
    xs, ys = np.clip(np.rint(pts).astype(int), 0, np.array(hu.shape)[::-1, None] - 1)
    centre = float(np.median(hu[round(cy) - 1:round(cy) + 2, round(cx) - 1:round(cx) + 2]))
    return centre, float(np.median(hu[ys, xs]))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory):
    return generate_deeplesion(tmp_path_factory.mktemp("dl") / "DeepLesion")


@pytest.mark.realdata
def test_columns_are_the_official_header(realdata):
    with realdata("deeplesion", "DL_info.csv").open(newline="") as fh:
        assert next(csv.reader(fh)) == COLUMNS


def test_csv_header_and_format_match_the_official_file(sample):
    data = sample.csv_path.read_bytes()
    assert data.split(b"\n", 1)[0].decode().split(",") == COLUMNS
    assert b"\r" not in data
    with sample.csv_path.open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert written == sample.rows and len(written) == sample.lesion_count >= 10
    assert '"' in data.decode() and ', ' in written[0]["Measurement_coordinates"]
    for row in written:
        assert re.fullmatch(r"\d{6}_\d{2}_\d{2}_\d{3}\.png", row["File_name"])
        ids = (int(row[c]) for c in COLUMNS[1:5])
        assert row["File_name"] == "{:06d}_{:02d}_{:02d}_{:03d}.png".format(*ids)
        for field, count in LIST_FIELDS.items():
            values = row[field].split(", ")
            assert len(values) == count
            assert all(len(v.replace("-", "").replace(".", "").lstrip("0")) <= 6 for v in values), values
        assert all(0 <= v <= 1 for v in nums(row["Normalized_lesion_location"]))


def test_rows_parse_with_the_table_reader(sample):
    from app.datasets.deeplesion.table import read_dl_info

    rows, problems = read_dl_info(sample.csv_path)
    assert problems == [] and len(rows) == sample.lesion_count


def test_key_slices_and_slice_ranges_are_16_bit_pngs(sample):
    assert sample.key_slices == {r["File_name"] for r in sample.rows}
    for row in sample.rows:
        first, last = (int(v) for v in nums(row["Slice_range"]))
        assert first <= int(row["Key_slice_index"]) <= last and last - first >= 6
        for n in range(first, last + 1):
            assert slice_path(sample.root, row["File_name"], n).is_file()
        assert not slice_path(sample.root, row["File_name"], last + 1).exists()
    for name in sample.key_slices:
        raw = cv2.imread(str(slice_path(sample.root, name)), cv2.IMREAD_UNCHANGED)
        assert raw.dtype == np.uint16 and raw.shape == (512, 512)
        assert raw.min() >= 32768 - 1024 and raw.max() > 32768 + 500  # air and bone, HU + 32768


def test_lesions_are_drawn_at_their_recist_centre(sample):
    for row in sample.rows:
        hu = read_hu(slice_path(sample.root, row["File_name"]))
        centre, ring = centre_and_ring(hu, nums(row["Measurement_coordinates"]))
        assert abs(centre - ring) > 30, row["File_name"]
        kind = int(row["Coarse_lesion_type"])
        if kind != -1:
            assert (centre < ring) == (kind in DARKER), (row["File_name"], kind, centre, ring)


def test_lesions_shrink_on_neighbouring_slices(sample):
    row = next(r for r in sample.rows if r["Coarse_lesion_type"] == "4")
    key = int(row["Key_slice_index"])
    coords = nums(row["Measurement_coordinates"])
    cx, cy = round((coords[0] + coords[2]) / 2), round((coords[1] + coords[3]) / 2)
    widths = []
    for n in (key, key + 1, key + 3):
        line = read_hu(slice_path(sample.root, row["File_name"], n))[cy - 1:cy + 2].mean(axis=0)
        lesion = np.abs(line - 10) < 25  # the drawn lesion HU (liver is ~60)
        left = right = cx
        while lesion[left - 1]:
            left -= 1
        while lesion[right + 1]:
            right += 1
        widths.append(right - left + 1 if lesion[cx] else 0)
    assert widths[0] > widths[1] > widths[2] > 0


def test_recist_axes_are_perpendicular_and_match_diameters_and_bbox(sample):
    for row in sample.rows:
        x1, y1, x2, y2, sx1, sy1, sx2, sy2 = nums(row["Measurement_coordinates"])
        long_v, short_v = np.array([x2 - x1, y2 - y1]), np.array([sx2 - sx1, sy2 - sy1])
        long_len, short_len = np.linalg.norm(long_v), np.linalg.norm(short_v)
        assert abs(long_v @ short_v) / (long_len * short_len) < 0.005
        assert math.dist(((x1 + x2) / 2, (y1 + y2) / 2), ((sx1 + sx2) / 2, (sy1 + sy2) / 2)) < 0.01
        d_long, d_short = nums(row["Lesion_diameters_Pixel_"])
        assert d_long == pytest.approx(long_len, abs=0.01) and d_short == pytest.approx(short_len, abs=0.01)
        assert d_long >= d_short > 2
        xs, ys = [x1, x2, sx1, sx2], [y1, y2, sy1, sy2]
        bbox = [min(xs) - 5, min(ys) - 5, max(xs) + 5, max(ys) + 5]
        assert nums(row["Bounding_boxes"]) == pytest.approx(bbox, abs=1e-3)


def test_sample_covers_the_real_variety(sample):
    rows = sample.rows
    by_file = defaultdict(list)
    for r in rows:
        by_file[r["File_name"]].append(r)
    shared = [rs for rs in by_file.values() if len(rs) > 1]
    assert shared and shared[0][0]["Measurement_coordinates"] != shared[0][1]["Measurement_coordinates"]
    assert {r["Train_Val_Test"] for r in rows} == {"1", "2", "3"}
    # as in the official file, only val/test lesions carry a coarse type; train rows are -1
    assert {r["Coarse_lesion_type"] for r in rows if r["Train_Val_Test"] == "1"} == {"-1"}
    assert {"1", "4", "5", "6", "7"} <= {r["Coarse_lesion_type"] for r in rows}
    assert {r["Possibly_noisy"] for r in rows} == {"0", "1"}
    assert any("." in r["DICOM_windows"] for r in rows)
    assert all(r["DICOM_windows"] == "-1500, 500" for r in rows if r["Coarse_lesion_type"] == "5")
    ages = {r["Patient_age"] for r in rows}
    assert any(a.endswith(".0") for a in ages) and any(a.isdigit() for a in ages)
    assert {r["Patient_gender"] for r in rows} == {"M", "F"}
    assert {nums(r["Spacing_mm_px_"])[2] for r in rows} >= {5.0, 1.0}
    assert sample.patient_count == 6 == len({r["Patient_index"] for r in rows})
    assert sample.study_count == len({(r["Patient_index"], r["Study_index"]) for r in rows})


def test_follow_up_lesion_grows_across_studies(sample):
    studies = defaultdict(set)
    for r in sample.rows:
        studies[r["Patient_index"]].add(int(r["Study_index"]))
    patient = max(studies, key=lambda p: len(studies[p]))
    assert len(studies[patient]) >= 2
    longest_mm = {}
    for r in sample.rows:
        if r["Patient_index"] == patient and r["Coarse_lesion_type"] == "4":
            mm = nums(r["Lesion_diameters_Pixel_"])[0] * nums(r["Spacing_mm_px_"])[0]
            longest_mm[int(r["Study_index"])] = max(mm, longest_mm.get(int(r["Study_index"]), 0))
    sizes = [longest_mm[s] for s in sorted(longest_mm)]
    assert len(sizes) >= 2 and sizes[-1] > 1.3 * sizes[0]


def test_pack_zips_gives_the_published_layout(tmp_path):
    sample = generate_deeplesion(tmp_path, patients=3, seed=1, neighbours=1, image_size=256)
    loose = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "Images_png").rglob("*.png"))
    zips = pack_zips(tmp_path, per_zip=2)
    assert [z.name for z in zips] == [f"Images_png_{i:02d}.zip" for i in range(1, len(zips) + 1)]
    assert len(zips) >= 2 and not (tmp_path / "Images_png").exists()
    members = []
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            assert zf.testzip() is None
            names = [n for n in zf.namelist() if not n.endswith("/")]
            assert all(re.fullmatch(r"Images_png/\d{6}_\d{2}_\d{2}/\d{3}\.png", n) for n in names)
            raw = cv2.imdecode(np.frombuffer(zf.read(names[0]), np.uint8), cv2.IMREAD_UNCHANGED)
            assert raw.dtype == np.uint16 and raw.shape == (256, 256)
            members += names
    assert sorted(members) == loose
    assert {f"Images_png/{n[:-4].rsplit('_', 1)[0]}/{n[-7:]}" for n in sample.key_slices} <= set(members)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DL_info.csv", *(z.name for z in zips)]


def test_ct_phantom_slice_looks_like_ct():
    abdomen, chest = ct_phantom_slice(280.0), ct_phantom_slice(450.0)
    assert abdomen.dtype == np.int16 and abdomen.shape == (512, 512)
    assert abs(float(np.median(abdomen[:20, :20])) + 1000) < 30  # air
    assert (chest < -700)[150:350, 80:430].mean() > 0.25 > (abdomen < -700)[150:350, 80:430].mean()
    liver = abdomen[225:260, 160:200]  # image left = the patient's right
    assert 45 < liver.mean() < 80 and 5 < liver.std() < 20
    assert (abdomen > 600).sum() > 200 and (chest > 600).sum() > 200  # vertebra and ribs
    assert abs(ct_phantom_slice(100.0, size=256, spacing_mm=1.6).astype(int)
               - ct_phantom_slice(105.0, size=256, spacing_mm=1.6)).mean() > 5  # anatomy changes with z
    best = min(_timed(ct_phantom_slice, 300.0 + i) for i in range(5))
    assert best < 0.03


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def test_full_size_tree_scaled_down(tmp_path):
    source = tmp_path / "source.png"
    hu = ct_phantom_slice(250.0, size=64, spacing_mm=6.4).astype(np.int32)
    cv2.imwrite(str(source), (hu + 32768).astype(np.uint16))
    root = tmp_path / "full"
    counts = generate_full_size_tree(root, source, seed=2, scale=0.01)
    # 1% of the official 32,735 rows / 32,120 key slices / 4,427 patients / 10,594 studies / ~928k files
    assert [counts[k] for k in ("rows", "key_slices", "patients", "studies")] == [327, 321, 44, 106]
    assert abs(counts["files"] - 9280) <= 1
    with (root / "DL_info.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == COLUMNS and len(rows) == 327 and len({r["File_name"] for r in rows}) == 321
    assert len({r["Patient_index"] for r in rows}) == 44
    assert len({(r["Patient_index"], r["Study_index"]) for r in rows}) == 106
    files = {p for p in (root / "Images_png").rglob("*.png")}
    assert len(files) == counts["files"]
    wanted = {slice_path(root, r["File_name"], n) for r in rows
              for n in range(int(nums(r["Slice_range"])[0]), int(nums(r["Slice_range"])[1]) + 1)}
    assert wanted == files
    lengths = [nums(r["Slice_range"])[1] - nums(r["Slice_range"])[0] + 1 for r in rows]
    assert 22 < sum(lengths) / len(lengths) < 40
    first, last = (os.stat(p) for p in (min(files), max(files)))
    assert first.st_ino == last.st_ino and first.st_nlink == counts["files"] + 1  # links + the tree's copy
    assert min(files).read_bytes() == source.read_bytes()
    again = generate_full_size_tree(root, source, seed=2, scale=0.01)
    assert again["reused"] and again["rows"] == 327
