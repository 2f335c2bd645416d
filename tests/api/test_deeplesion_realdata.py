"""The real DeepLesion samples (../shared/realdata/deeplesion): counts and pixels checked independently."""

from __future__ import annotations

import csv
import gzip
from collections import Counter

import cv2
import numpy as np
import pytest

from app.datasets.ingest import ingest_path

pytestmark = pytest.mark.realdata


@pytest.fixture
def real(engine, settings, realdata):
    root = realdata("deeplesion")
    report = ingest_path(engine, settings, root, kind="deeplesion", name="real")
    with (root / "DL_info.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    present = [r for r in rows if (root / "Images_png" / f"{r['File_name'][:12]}" / r["File_name"][13:]).exists()]
    return report, root, rows, present


def reference_grey(path, low, high):
    hu = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float64) - 32768
    return np.rint(np.clip((hu - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def test_counts_and_problems_match_the_files(client, real):
    report, root, rows, present = real
    assert report.items == len({r["File_name"] for r in present}) == 23
    assert report.annotations == len(present)
    missing = len(rows) - len(present)
    assert len(report.problems) == missing == 158
    assert all("not found" in p.message and p.row is not None for p in report.problems)

    ds = client.get(f"/api/datasets/{report.dataset_id}").json()
    assert ds["status"] == "ready" and ds["item_count"] == 23
    split_names = {"1": "train", "2": "val", "3": "test"}
    expected_splits = Counter(split_names[r["Train_Val_Test"]] for r in present)
    assert ds["facets"]["split"] == dict(expected_splits)
    assert ds["facets"]["lesion_type"] == {"4": 23}
    assert ds["problem_count"] == 158


def test_render_equals_independent_window(client, real):
    report, root, _rows, present = real
    row = present[0]
    item = client.get(f"/api/datasets/{report.dataset_id}/items", params={"key": row["File_name"]}).json()
    item_id = item["items"][0]["id"]
    png = root / "Images_png" / row["File_name"][:12] / row["File_name"][13:]

    r = client.get(f"/api/items/{item_id}/render", params={"format": "png", "window": "-175,275"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    ours = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)
    ref = reference_grey(png, -175, 275)
    assert ours.shape == ref.shape == (512, 512)
    assert np.abs(ours.astype(int) - ref).max() <= 1

    # without a window the row's own DICOM_windows is used
    low, high = (float(v) for v in row["DICOM_windows"].split(","))
    r = client.get(f"/api/items/{item_id}/render")
    assert r.headers["x-window"] == f"{low:g},{high:g}"
    own = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.abs(own.astype(int) - reference_grey(png, low, high)).max() <= 1

    raw = client.get(f"/api/items/{item_id}/raw")
    assert raw.headers["x-shape"] == "512,512" and raw.headers["x-dtype"] == "int16"
    body = raw.content if raw.content[:2] != b"\x1f\x8b" else gzip.decompress(raw.content)
    hu = np.frombuffer(body, "<i2").reshape(512, 512)
    assert np.array_equal(hu, cv2.imread(str(png), cv2.IMREAD_UNCHANGED).astype(np.int32) - 32768)


def test_overlay_draws_the_recist_long_axis(client, real):
    report, _root, _rows, present = real
    row = present[0]
    item_id = client.get(f"/api/datasets/{report.dataset_id}/items",
                         params={"key": row["File_name"]}).json()["items"][0]["id"]
    x1, y1, x2, y2 = (float(v) for v in row["Measurement_coordinates"].split(",")[:4])
    plain = client.get(f"/api/items/{item_id}/render", params={"format": "png", "overlays": "none"})
    drawn = client.get(f"/api/items/{item_id}/render", params={"format": "png", "overlays": "gt"})
    a = cv2.imdecode(np.frombuffer(plain.content, np.uint8), cv2.IMREAD_COLOR_RGB)
    b = cv2.imdecode(np.frombuffer(drawn.content, np.uint8), cv2.IMREAD_COLOR_RGB)
    reds = 0
    for t in np.linspace(0.2, 0.8, 7):
        x, y = round(x1 + t * (x2 - x1)), round(y1 + t * (y2 - y1))
        near = b[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(int)
        reds += any(r > 150 and r - g > 80 and r - bl > 80 for r, g, bl in near)
    assert reds >= 5  # the long axis is drawn in red along its measured coordinates
    far = (slice(0, 40), slice(0, 40))
    assert np.array_equal(a[far], b[far])  # and nothing is drawn away from the lesion
