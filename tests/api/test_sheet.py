"""Contact sheets: one JPEG per page of items, tiles in the order of X-Item-Ids, same filters as /items."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pytest

from app.datasets.ingest import ingest_path
from app.datasets.pcam.synth import file_name, generate_pcam


@pytest.fixture
def pcam(engine, settings, tmp_path):
    root = tmp_path / "pcam"
    generate_pcam(root, n_per_split=(20, 6, 6), seed=4)
    return root, ingest_path(engine, settings, root, kind="pcam", name="pcam")


def test_sheet_tiles_are_the_patches_in_page_order(client, pcam):
    root, report = pcam
    r = client.get(f"/api/datasets/{report.dataset_id}/sheet", params={"split": "train", "limit": 12, "cols": 4})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    ids = [int(i) for i in r.headers["x-item-ids"].split(",")]
    page = client.get(f"/api/datasets/{report.dataset_id}/items", params={"split": "train", "limit": 12}).json()
    assert ids == [i["id"] for i in page["items"]]
    assert r.headers["x-next-cursor"] == page["next_cursor"]
    sheet = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR_RGB)
    assert sheet.shape == (3 * 96, 4 * 96, 3)
    with h5py.File(root / file_name("train", "x")) as f:
        for n, item in enumerate(page["items"]):
            patch = f["x"][int(item["key"].split("/")[1])]
            tile = sheet[(n // 4) * 96:(n // 4 + 1) * 96, (n % 4) * 96:(n % 4 + 1) * 96]
            assert np.abs(tile.astype(int) - patch).mean() < 6  # JPEG of the same patch, in this tile


def test_sheet_pages_follow_the_cursor(client, pcam):
    _, report = pcam
    url = f"/api/datasets/{report.dataset_id}/sheet"
    first = client.get(url, params={"limit": 16})
    second = client.get(url, params={"limit": 16, "cursor": first.headers["x-next-cursor"]})
    a, b = first.headers["x-item-ids"].split(","), second.headers["x-item-ids"].split(",")
    assert len(a) == len(b) == 16 and not set(a) & set(b) and int(b[0]) > int(a[-1])


@pytest.mark.parametrize(("params", "fragment"), [
    ({"cols": "0"}, "cols must be between"), ({"tile": "4"}, "tile must be between"),
    ({"limit": "300"}, "at most 256"), ({"overlays": "all"}, "overlays must be one of"),
    ({"colour": "red"}, "unknown filter"),
])
def test_bad_sheet_parameters(client, pcam, params, fragment):
    r = client.get(f"/api/datasets/{pcam[1].dataset_id}/sheet", params=params)
    assert r.status_code == 400 and fragment in r.json()["detail"]
