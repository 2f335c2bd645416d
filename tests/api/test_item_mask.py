"""GET /api/items/{id}/mask: the ground-truth label PNG of one view, checked against the files themselves (BIS5k mask
PNG; VerSe mask NIfTI made canonical with nibabel, cut and oriented as API.md says), the same size as /raw of that
view, and a 404 that says why when there is no mask."""

from __future__ import annotations

import gzip
import shutil

import cv2
import nibabel as nib
import numpy as np
import pytest

from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path
from app.datasets.verse.labels import PALETTE
from app.datasets.verse.synth import generate_verse
from app.imaging.labels import decode_label_png


@pytest.fixture(scope="module")
def bis5k_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_bis5k(tmp_path_factory.mktemp("bis5k-mask") / "BIS5k", n_train=2, n_test=1, seed=1)


@pytest.fixture(scope="module")
def verse_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_verse(tmp_path_factory.mktemp("verse-mask") / "verse", subjects=3, layout="bids", seed=5)


def item_ids(client, dataset_id: int) -> dict[str, int]:
    items = client.get(f"/api/datasets/{dataset_id}/items", params={"limit": 500}).json()["items"]
    return {i["key"]: i["id"] for i in items}


def raw_shape(client, item_id: int, **params) -> tuple[int, ...]:
    r = client.get(f"/api/items/{item_id}/raw", params=params)
    assert r.status_code == 200, r.text
    return tuple(int(v) for v in r.headers["x-shape"].split(","))


def test_bis5k_mask_is_the_mask_file(client, engine, settings, bis5k_tree):
    report = ingest_path(engine, settings, bis5k_tree.root, kind="bis5k", name="bis5k")
    ids = item_ids(client, report.dataset_id)
    tile = max(bis5k_tree.images, key=lambda t: t.foreground)
    r = client.get(f"/api/items/{ids[tile.image]}/mask")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    labels = decode_label_png(r.content)
    truth = cv2.imread(str(bis5k_tree.root / tile.mask), cv2.IMREAD_GRAYSCALE) > 0
    assert labels.shape == truth.shape == raw_shape(client, ids[tile.image])[:2]
    assert set(np.unique(labels)) <= {0, 1}
    assert np.array_equal(labels == 1, truth) and truth.sum() == tile.foreground
    assert r.headers["x-palette"] == "1:255,200,0"  # the amber the server-rendered overlay blends
    # cached with an ETag like the other image endpoints
    again = client.get(f"/api/items/{ids[tile.image]}/mask", headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304


def canonical_labels(path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.as_closest_canonical(nib.load(str(path)))
    return np.rint(np.asanyarray(img.dataobj)).astype(np.int32), np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))


def expected_view(vol: np.ndarray, spacing, plane: str, index: int) -> np.ndarray:
    """Radiological display of one canonical plane, made square in mm with nearest-neighbour (labels)."""
    cut, (row_mm, col_mm) = {"axial": (vol[:, :, index], (spacing[1], spacing[0])),
                             "coronal": (vol[:, index, :], (spacing[2], spacing[0])),
                             "sagittal": (vol[index, :, :], (spacing[2], spacing[1]))}[plane]
    view = np.ascontiguousarray(cut.T[::-1, ::-1]).astype(np.uint16)
    pixel = min(row_mm, col_mm)
    size = (round(view.shape[1] * col_mm / pixel), round(view.shape[0] * row_mm / pixel))
    if size != (view.shape[1], view.shape[0]):
        view = cv2.resize(view, size, interpolation=cv2.INTER_NEAREST)
    return view


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_verse_mask_matches_the_nifti_in_every_plane(client, engine, settings, verse_tree, plane):
    report = ingest_path(engine, settings, verse_tree.root, kind="verse", name="verse")
    ids = item_ids(client, report.dataset_id)
    subject = next(s for s in verse_tree.subjects if not s.mask_mismatch)
    vol, spacing = canonical_labels(subject.mask)
    axis = {"sagittal": 0, "coronal": 1, "axial": 2}[plane]
    # the slice through the first vertebra's centroid, so the view holds labels
    index = round(subject.centroids[subject.labels[0]][axis])
    r = client.get(f"/api/items/{ids[subject.key]}/mask", params={"plane": plane, "slice": index})
    assert r.status_code == 200, r.text
    labels = decode_label_png(r.content)
    assert labels.shape == raw_shape(client, ids[subject.key], plane=plane, slice=index)[:2]
    want = expected_view(vol, spacing, plane, index)
    assert np.array_equal(labels, want)
    assert subject.labels[0] in np.unique(labels)
    assert r.headers["x-plane"] == plane and r.headers["x-slice"] == str(index)
    palette = dict(entry.split(":") for entry in r.headers["x-palette"].split(";"))
    assert palette[str(subject.labels[0])] == ",".join(map(str, PALETTE[subject.labels[0]]))


def test_items_without_a_mask_are_a_404_that_says_why(client, ingested):
    item_id = client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"][0]["id"]
    r = client.get(f"/api/items/{item_id}/mask")
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert "no ground-truth mask" in detail and "deeplesion" in detail and "recist" in detail


def test_bad_mask_requests(client, engine, settings, verse_tree, bis5k_tree, tmp_path):
    report = ingest_path(engine, settings, verse_tree.root, kind="verse", name="verse")
    ids = item_ids(client, report.dataset_id)
    subject = next(s for s in verse_tree.subjects if not s.mask_mismatch)
    n_k = subject.canonical_shape[2]
    r = client.get(f"/api/items/{ids[subject.key]}/mask", params={"plane": "axial", "slice": n_k + 5})
    assert r.status_code == 400 and f"slice {n_k + 5}" in r.json()["detail"]
    assert client.get(f"/api/items/{ids[subject.key]}/mask", params={"plane": "oblique"}).status_code == 422
    assert client.get("/api/items/999999/mask").status_code == 404
    # a mask on another grid than its CT (the sample's cropped mask) is refused at ingest: a 404 naming what is left
    bad = next(s for s in verse_tree.subjects if s.mask_mismatch)
    r = client.get(f"/api/items/{ids[bad.key]}/mask")
    assert r.status_code == 404 and r.json()["detail"].endswith("no ground-truth mask (verse item with only "
                                                                "centroid annotations)")
    # a BIS5k mask file broken after ingest: 404 naming the file and the problem (in a copy: the sample is shared)
    root = tmp_path / "BIS5k"
    shutil.copytree(bis5k_tree.root, root)
    rep = ingest_path(engine, settings, root, kind="bis5k", name="bis5k")
    tile = bis5k_tree.images[0]
    (root / tile.mask).write_bytes(gzip.compress(b"not a png"))
    r = client.get(f"/api/items/{item_ids(client, rep.dataset_id)[tile.image]}/mask")
    assert r.status_code == 404, r.text
    assert tile.mask in r.json()["detail"]
