"""Mask annotations end to end over HTTP: a BIS5k label PNG upload becomes a stored mask (the dataset's PNG
untouched) that `/mask` and the version's own mask route show; a VerSe plane upload replaces exactly that plane of
the stored 3-D volume in every orientation; bad uploads are 400 naming the field and leave no row and no file;
stale versions are 409; viewers cannot write."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.datasets.ingest import ingest_path
from app.datasets.verse.synth import generate_verse
from app.imaging.labels import decode_label_png, encode_label_png
from app.imaging.volume import PLANE_AXIS, display_plane
from tests.helpers.auth import api_token


def _as(settings, name: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, name, role)}"}


def b64png(array: np.ndarray, mode: str | None = None) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG") if mode else Image.fromarray(array).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def huge_png_header(width: int, height: int) -> str:
    """A PNG whose header declares width × height greyscale pixels (its data is a few bytes: never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


def stored_files(settings) -> set[str]:
    folder = settings.data_dir / "masks"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def mask_item(client, dataset_id: int) -> tuple[dict, dict]:
    for summary in client.get(f"/api/datasets/{dataset_id}/items", params={"limit": 50}).json()["items"]:
        item = client.get(f"/api/items/{summary['id']}").json()
        masks = [a for a in item["annotations"] if a["kind"] == "mask"]
        if masks:
            return item, masks[0]
    raise AssertionError("no item with a mask")


def test_bis5k_upload_renders_keeps_history_and_dataset_file(client, settings, bis_root, bis_dataset_id):
    item, ann = mask_item(client, bis_dataset_id)
    dataset_png = bis_root / ann["geometry"]["mask"]
    before_bytes = dataset_png.read_bytes()
    h, w = item["height"], item["width"]
    etag_before = client.get(f"/api/items/{item['id']}/render", params={"overlays": "gt"}).headers["etag"]
    painted = np.zeros((h, w), np.uint8)
    painted[10:40, 20:70] = 255  # a binary 0/255 PNG means label 1
    annotator = _as(settings, "ann", "annotator")
    r = client.put(f"/api/annotations/{ann['id']}", json={"version": 1, "geometry": {"png": b64png(painted)}},
                   headers=annotator)
    assert r.status_code == 200, r.text
    v2 = r.json()
    name = v2["geometry"]["stored"]
    assert v2["version"] == 2 and set(v2["geometry"]) == {"stored"} and name.endswith(".png")
    assert v2["meta"]["pixels"] == 30 * 50
    stored = settings.data_dir / "masks" / name
    assert stored.is_file() and hashlib.sha256(stored.read_bytes()).hexdigest() == name[:-4]
    assert dataset_png.read_bytes() == before_bytes  # the dataset's own file is never written
    shown = decode_label_png(client.get(f"/api/items/{item['id']}/mask").content)
    assert np.array_equal(shown, (painted > 0).astype(np.uint8))
    assert client.get(f"/api/items/{item['id']}/render", params={"overlays": "gt"}).headers["etag"] != etag_before
    history = client.get(f"/api/annotations/{ann['id']}/history").json()
    assert [v["version"] for v in history] == [1, 2] and history[0]["geometry"] == ann["geometry"]
    listed = client.get(f"/api/items/{item['id']}").json()["annotations"]
    assert [(a["id"], a["version"]) for a in listed if a["kind"] == "mask"] == [(v2["id"], 2)]
    # every version's own label image: the old one is the dataset's mask
    old = decode_label_png(client.get(f"/api/annotations/{ann['id']}/mask").content)
    assert old.shape == (h, w) and np.array_equal(old > 0, np.asarray(Image.open(dataset_png).convert("L")) > 0)
    new = decode_label_png(client.get(f"/api/annotations/{v2['id']}/mask").content)
    assert np.array_equal(new, shown)
    # stale: a second PUT against version 1 is 409 and writes no file
    files = stored_files(settings)
    other = painted.copy()
    other[50:60, 50:60] = 255
    stale = client.put(f"/api/annotations/{ann['id']}", json={"version": 1, "geometry": {"png": b64png(other)}},
                       headers=_as(settings, "bob", "annotator"))
    assert stale.status_code == 409 and stale.json()["changed_by"] == "ann"
    assert stored_files(settings) == files
    # viewers cannot write
    assert client.put(f"/api/annotations/{v2['id']}", json={"version": 2, "geometry": {"png": b64png(other)}},
                      headers=_as(settings, "vera", "viewer")).status_code == 403


def test_bis5k_bad_uploads_are_400_and_leave_nothing(client, settings, bis_dataset_id):
    item, ann = mask_item(client, bis_dataset_id)
    h, w = item["height"], item["width"]
    annotator = _as(settings, "ann", "annotator")
    url = f"/api/items/{item['id']}/annotations"
    good = np.zeros((h, w), np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(good).save(jpeg, format="JPEG")
    bad = [
        ({"png": "%%%not base64"}, "geometry.png"),
        ({"png": base64.b64encode(b"hello").decode()}, "geometry.png"),
        ({"png": base64.b64encode(jpeg.getvalue()).decode()}, "geometry.png"),
        ({"png": b64png(np.zeros((h, w + 1), np.uint8))}, "geometry.png"),
        ({"png": b64png(np.full((h, w), 2, np.uint8))}, "geometry.png"),
        ({"png": b64png(np.zeros((h, w, 3), np.uint8))}, "geometry.png"),
        ({"png": b64png(good), "plane": "axial", "slice": 0}, "geometry.plane"),
        ({"png": b64png(good), "colour": 1}, "geometry.colour"),
        ({"png": 5}, "geometry.png"),
        ({"mask": "../../etc/passwd"}, "geometry"),
        ({"stored": "../x.png"}, "geometry.stored"),
    ]
    bad.append(({"png": huge_png_header(30_000, 30_000)}, "too large"))  # the header alone is refused
    rows = len(client.get(f"/api/items/{item['id']}").json()["annotations"])
    for geometry, field in bad:
        r = client.post(url, json={"kind": "mask", "label": "1", "geometry": geometry}, headers=annotator)
        assert r.status_code == 400 and field in r.json()["detail"], (geometry.keys(), r.text)
        assert "Traceback" not in r.text
        r = client.put(f"/api/annotations/{ann['id']}", json={"version": 1, "geometry": geometry}, headers=annotator)
        assert r.status_code == 400 and field in r.json()["detail"], (geometry.keys(), r.text)
    assert len(client.get(f"/api/items/{item['id']}").json()["annotations"]) == rows
    assert stored_files(settings) == set()
    huge = _as(settings, "ann", "annotator")
    r = client.post(url, json={"kind": "mask", "label": "1", "geometry": {"png": b64png(good, "L")}}, headers=huge)
    assert r.status_code == 201 and r.json()["geometry"]["stored"].endswith(".png")


@pytest.fixture(scope="module")
def verse_small(tmp_path_factory):
    return generate_verse(tmp_path_factory.mktemp("verse-masks") / "verse", subjects=1, layout="flat", seed=3)


def test_verse_plane_upload_replaces_exactly_that_plane(engine, settings, client, verse_small):
    ds = ingest_path(engine, settings, verse_small.root, kind="verse", name="verse")
    item, ann = mask_item(client, ds.dataset_id)
    annotator = _as(settings, "ann", "annotator")
    from app.datasets.verse.nifti import load_labels

    original = load_labels(verse_small.root / ann["geometry"]["mask"])
    current, volume, version, ann_id = original.data, original, 1, ann["id"]
    rng = np.random.default_rng(1)
    for plane in ("axial", "coronal", "sagittal"):
        index = item["planes"][plane] // 2 if "planes" in item else current.shape[PLANE_AXIS[plane]] // 2
        shown = decode_label_png(client.get(f"/api/annotations/{ann_id}/mask",
                                            params={"plane": plane, "slice": index}).content)
        expect_shown, _ = display_plane(current, volume.spacing, plane, index, labels=True)
        assert np.array_equal(shown, expect_shown), plane
        # an edit made of whole voxels: a changed volume's display plane (labels 0–28)
        changed = current.copy()
        sl = [slice(None)] * 3
        sl[PLANE_AXIS[plane]] = index
        changed[tuple(sl)] = rng.integers(0, 29, changed[tuple(sl)].shape)
        upload, _ = display_plane(changed, volume.spacing, plane, index, labels=True)
        r = client.put(f"/api/annotations/{ann_id}", headers=annotator, json={
            "version": version, "geometry": {"png": b64png(upload.astype(np.uint8)), "plane": plane, "slice": index}})
        assert r.status_code == 200, r.text
        new = r.json()
        assert new["geometry"]["plane"] == plane and new["geometry"]["slice"] == index
        stored = np.load(settings.data_dir / "masks" / new["geometry"]["stored"])["labels"]
        assert np.array_equal(stored, changed), plane  # that plane replaced, every other voxel kept
        rendered = decode_label_png(client.get(f"/api/items/{item['id']}/mask",
                                               params={"plane": plane, "slice": index}).content)
        assert np.array_equal(rendered, upload)
        current, version, ann_id = changed, new["version"], new["id"]
    assert np.array_equal(load_labels(verse_small.root / ann["geometry"]["mask"]).data, original.data)
    # bad plane, slice, size, label values: 400 naming the field, no row, no new file
    files = stored_files(settings)
    ok = display_plane(current, volume.spacing, "axial", 0, labels=True)[0].astype(np.uint8)
    for geometry, field in [
        ({"png": b64png(ok)}, "geometry.plane"),
        ({"png": b64png(ok), "plane": "oblique", "slice": 0}, "geometry.plane"),
        ({"png": b64png(ok), "plane": "axial", "slice": 10_000}, "geometry.slice"),
        ({"png": b64png(ok), "plane": "axial", "slice": "0"}, "geometry.slice"),
        ({"png": b64png(ok[:, :-1]), "plane": "axial", "slice": 0}, "geometry.png"),
        ({"png": b64png(np.full_like(ok, 40)), "plane": "axial", "slice": 0}, "geometry.png"),
    ]:
        r = client.put(f"/api/annotations/{ann_id}", json={"version": version, "geometry": geometry},
                       headers=annotator)
        assert r.status_code == 400 and field in r.json()["detail"], (geometry.keys(), r.text)
    assert stored_files(settings) == files
    assert len(client.get(f"/api/annotations/{ann_id}/history").json()) == 4
    # a new mask annotation on the volume starts from an empty volume
    r = client.post(f"/api/items/{item['id']}/annotations", headers=annotator, json={
        "kind": "mask", "label": None, "geometry": {"png": b64png(ok), "plane": "axial", "slice": 0}})
    assert r.status_code == 201, r.text
    made = np.load(settings.data_dir / "masks" / r.json()["geometry"]["stored"])["labels"]
    assert np.count_nonzero(made[:, :, 1:]) == 0
    assert client.get(f"/api/annotations/{r.json()['id']}/mask", params={"plane": "axial", "slice": 0}).content == \
        encode_label_png(display_plane(made, volume.spacing, "axial", 0, labels=True)[0])


def test_brush_panel_only_for_annotators(client, settings, bis_dataset_id):
    item, ann = mask_item(client, bis_dataset_id)
    page = client.get(f"/items/{item['id']}", headers=_as(settings, "ann", "annotator")).text
    assert 'id="brush-config"' in page and f'"id": {ann["id"]}' in page and "Mask brush" in page
    assert 'id="brush-config"' not in client.get(f"/items/{item['id']}", headers=_as(settings, "vera", "viewer")).text


def test_two_readers_mask_readings_give_dice_in_the_queue_agreement(client, settings, bis_dataset_id):
    """Blinded double reading of masks: each reader's stroke is their own queue reading (derived from the dataset's
    mask); once both have read the item, GET /api/review/queues/{id} has their foreground Dice, equal to an
    independent numpy computation."""
    item, ann = mask_item(client, bis_dataset_id)
    h, w = item["height"], item["width"]
    admin = _as(settings, "lead", "admin")
    readers = {name: _as(settings, name, "reviewer") for name in ("rita", "rob")}
    queue = client.post("/api/review/queues", json={"name": "masks twice", "dataset_id": bis_dataset_id,
                                                     "readers_per_item": 2, "item_ids": [item["id"]]}, headers=admin)
    assert queue.status_code == 201, queue.text
    qid = queue.json()["id"]
    drawn = {"rita": np.zeros((h, w), np.uint8), "rob": np.zeros((h, w), np.uint8)}
    drawn["rita"][10:40, 10:50] = 1
    drawn["rob"][20:40, 10:60] = 1
    for name, headers in readers.items():
        body = {"kind": "mask", "label": "1", "geometry": {"png": b64png(drawn[name] * 255)}, "queue_id": qid,
                "meta": {"derived_from": ann["id"]}}
        r = client.post(f"/api/items/{item['id']}/annotations", json=body, headers=headers)
        assert r.status_code == 201, r.text
        assert r.json()["meta"]["queue_id"] == qid
        review = {"verdict": "corrected", "queue_id": qid}
        assert client.post(f"/api/items/{item['id']}/reviews", json=review, headers=headers).status_code == 201
    a, b = drawn["rita"] > 0, drawn["rob"] > 0
    expected = 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())
    agreement = client.get(f"/api/review/queues/{qid}", headers=admin).json()["agreement"]
    assert agreement["mask_dice"]["n"] == 1
    assert agreement["mask_dice"]["pairs"] == [{"item_id": item["id"], "dice": pytest.approx(expected)}]
    assert agreement["mask_dice"]["mean"] == pytest.approx(expected)
