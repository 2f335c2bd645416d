"""DeepLesion helpers shared by the browser tests: which key slice to open, and its HU read independently."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.helpers.live import live_client


def pick_item(base: str, dataset_id: int) -> dict:
    """The key slice with the longest RECIST axis among those with a next slice and the abdomen DICOM window."""
    with live_client(base) as api:
        items = api.get(f"/api/datasets/{dataset_id}/items", params={"limit": 500}).json()["items"]
        details = [api.get(f"/api/items/{i['id']}").json() for i in items]
    usable = [d for d in details if d["window"] == [-175.0, 275.0] and d["slice"] + 1 in d["meta"]["slices"]]
    return max(usable, key=lambda d: max(a["meta"]["long_px"] for a in d["annotations"]))


def slice_hu(root: Path, key: str, number: int) -> np.ndarray:
    """HU of one slice PNG of the sample, read with OpenCV (uint16 − 32768)."""
    png = root / "Images_png" / key[:12] / f"{number:03d}.png"
    return cv2.imread(str(png), cv2.IMREAD_UNCHANGED).astype(np.float64) - 32768
