"""BIS5k ingest and rendering on the generated sample: counts and facets against an independent reading of
the files (Pillow), pixels against OpenCV, the mask overlay against the alpha-blend formula, every bad input."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from app.datasets.base import IngestError
from app.datasets.bis5k.adapter import Bis5kAdapter
from app.datasets.bis5k.synth import generate_bis5k
from app.datasets.ingest import ingest_path
from app.datasets.registry import detect_kind

AMBER = np.array((255, 200, 0), np.float64)  # the documented mask colour


@pytest.fixture(scope="session")
def bis5k_sample(tmp_path_factory: pytest.TempPathFactory):
    return generate_bis5k(tmp_path_factory.mktemp("bis5k") / "BIS5k", n_train=8, n_test=4, seed=3)


@pytest.fixture
def tree(tmp_path, bis5k_sample) -> Path:
    root = tmp_path / "BIS5k"
    shutil.copytree(bis5k_sample.root, root)
    return root


def foreground(path: Path) -> np.ndarray:
    """Independent reading of a mask: Pillow, any non-zero value."""
    with Image.open(path) as im:
        arr = np.asarray(im)
    return (arr.max(axis=2) if arr.ndim == 3 else arr) > 0


def expected_band(fg: np.ndarray) -> str:
    share = fg.mean()
    if not fg.any():
        return "0"
    return "0-10%" if share < 0.1 else "10-25%" if share < 0.25 else "25-50%" if share < 0.5 else "50-100%"


def item_by_key(client, dataset_id: int, key: str) -> dict:
    page = client.get(f"/api/datasets/{dataset_id}/items", params={"key": key}).json()
    assert page["total"] == 1, key
    return client.get(f"/api/items/{page['items'][0]['id']}").json()


def decode_png(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def problem_texts(report) -> list[str]:
    return [str(p) for p in report.problems]


def test_counts_and_facets_match_the_files(engine, settings, client, bis5k_sample):
    root = bis5k_sample.root
    assert detect_kind(root) == "bis5k"
    report = ingest_path(engine, settings, root, name="bis")
    assert report.kind == "bis5k" and report.problems == []
    images = sorted(root.glob("formal_*/images/*.png"))
    assert report.items == len(images) == 12 and report.annotations == 12
    splits: dict[str, int] = {}
    bands: dict[str, int] = {}
    for path in images:
        split = path.parts[-3].removeprefix("formal_")
        splits[split] = splits.get(split, 0) + 1
        fg = foreground(root / path.parts[-3] / "masks" / path.name)
        bands[expected_band(fg)] = bands.get(expected_band(fg), 0) + 1
    ds = client.get(f"/api/datasets/{report.dataset_id}").json()
    assert ds["facets"]["split"] == splits == {"train": 8, "test": 4}
    assert ds["facets"]["mask_area"] == {b: bands[b] for b in ("0", "0-10%", "10-25%", "25-50%", "50-100%")
                                         if b in bands}
    assert len(bands) >= 4  # the sample covers empty to large masks
    assert ds["facets"]["has_mask"] == {"yes": 12}
    for band, n in bands.items():
        assert client.get(f"/api/datasets/{report.dataset_id}/items", params={"mask_area": band}).json()["total"] == n
    for path in images:
        key = path.relative_to(root).as_posix()
        item = item_by_key(client, report.dataset_id, key)
        mask_rel = f"{path.parts[-3]}/masks/{path.name}"
        fg = foreground(root / mask_rel)
        with Image.open(path) as im:
            assert (item["width"], item["height"]) == im.size
        assert item["kind"] == "image" and item["split"] == path.parts[-3].removeprefix("formal_")
        assert item["meta"]["mask"] == mask_rel and item["meta"]["mask_pixels"] == int(fg.sum())
        assert item["meta"]["mask_area"] == pytest.approx(fg.mean(), abs=1e-6)
        [ann] = item["annotations"]
        assert (ann["kind"], ann["label"], ann["geometry"]) == ("mask", "1", {"mask": mask_rel})


@pytest.fixture
def ingested(engine, settings, bis5k_sample):
    return ingest_path(engine, settings, bis5k_sample.root, kind="bis5k", name="bis")


def busiest_item(client, ingested, bis5k_sample) -> tuple[dict, np.ndarray, np.ndarray]:
    """The test item with a mask of 10–50% area, its RGB pixels (OpenCV) and mask (Pillow)."""
    for s in bis5k_sample.images:
        share = s.foreground / (s.width * s.height)
        if 0.1 < share < 0.5:
            item = item_by_key(client, ingested.dataset_id, s.image)
            rgb = cv2.cvtColor(cv2.imread(str(bis5k_sample.root / s.image)), cv2.COLOR_BGR2RGB)
            return item, rgb, foreground(bis5k_sample.root / s.mask)
    raise AssertionError("sample has no mid-sized mask")


def test_render_without_overlay_is_the_png(client, ingested, bis5k_sample):
    item, rgb, _ = busiest_item(client, ingested, bis5k_sample)
    r = client.get(f"/api/items/{item['id']}/render", params={"format": "png", "overlays": "none"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert np.array_equal(decode_png(r.content), rgb)
    raw = client.get(f"/api/items/{item['id']}/raw")
    assert raw.headers["x-shape"] == f"{item['height']},{item['width']},3" and raw.headers["x-dtype"] == "uint8"
    assert np.array_equal(np.frombuffer(raw.content, np.uint8).reshape(rgb.shape), rgb)


@pytest.mark.parametrize("opacity", [0.5, 0.25])
def test_fill_overlay_blends_the_mask_colour(client, ingested, bis5k_sample, opacity):
    item, rgb, fg = busiest_item(client, ingested, bis5k_sample)
    r = client.get(f"/api/items/{item['id']}/render",
                   params={"format": "png", "overlays": "gt", "opacity": opacity, "mask_mode": "fill"})
    out = decode_png(r.content)
    expected = np.floor(rgb.astype(np.float64) * (1 - opacity) + AMBER * opacity + 0.5).astype(np.uint8)
    assert np.array_equal(out[fg], expected[fg])
    assert np.array_equal(out[~fg], rgb[~fg])
    y, x = np.argwhere(fg)[len(np.argwhere(fg)) // 2]  # one pixel inside, spelled out
    assert tuple(out[y, x]) == tuple(int(v + 0.5) for v in rgb[y, x] * (1 - opacity) + AMBER * opacity)


def test_contour_overlay_colours_the_edge_only(client, ingested, bis5k_sample):
    item, rgb, fg = busiest_item(client, ingested, bis5k_sample)
    r = client.get(f"/api/items/{item['id']}/render",
                   params={"format": "png", "overlays": "gt", "mask_mode": "contour", "opacity": 0.5})
    out = decode_png(r.content)
    padded = np.pad(fg, 1, constant_values=True)  # 3×3 erosion; outside the image counts as inside
    eroded = np.ones_like(fg)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            eroded &= padded[dy:dy + fg.shape[0], dx:dx + fg.shape[1]]
    edge = fg & ~eroded
    assert edge.sum() > 100 and edge.sum() < fg.sum() / 2
    assert (out[edge] == AMBER.astype(np.uint8)).all()
    assert np.array_equal(out[~edge], rgb[~edge])


def test_thumbnail_item_page_and_dataset_page(client, ingested, bis5k_sample):
    item, _, _ = busiest_item(client, ingested, bis5k_sample)
    thumb = client.get(f"/api/items/{item['id']}/render", params={"format": "jpeg", "size": 256, "overlays": "gt"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 256
    page = client.get(f"/items/{item['id']}")
    assert page.status_code == 200
    assert item["meta"]["mask"] in page.text and "mask_mode" in page.text
    assert f"{100 * item['meta']['mask_area']:.1f} %" in page.text
    listing = client.get(f"/datasets/{ingested.dataset_id}")
    assert listing.status_code == 200 and "mask area" in listing.text


def test_reingest_is_idempotent_and_a_changed_mask_updates(engine, settings, tree):
    first = ingest_path(engine, settings, tree, kind="bis5k")
    again = ingest_path(engine, settings, tree, kind="bis5k")
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, first.items)
    mask = next(tree.glob("formal_train/masks/*.png"))
    arr = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    arr[: arr.shape[0] // 2] = 255
    cv2.imwrite(str(mask), arr)
    third = ingest_path(engine, settings, tree, kind="bis5k")
    assert (third.updated, third.unchanged) == (1, first.items - 1)


# -- tolerated mask encodings ------------------------------------------------------------------

def test_rgb_palette_and_zero_one_masks_are_accepted(engine, settings, client, tree):
    masks = sorted(tree.glob("formal_train/masks/*.png"), key=lambda p: -foreground(p).sum())[:5]
    expected = {m.relative_to(tree).as_posix(): foreground(m) for m in masks}
    fg = [foreground(m) for m in masks]
    cv2.imwrite(str(masks[0]), np.repeat((fg[0] * 255).astype(np.uint8)[..., None], 3, axis=2))  # RGB 0/255
    cv2.imwrite(str(masks[1]), fg[1].astype(np.uint8))  # grey 0/1
    pal = Image.fromarray(fg[2].astype(np.uint8), "P")
    pal.putpalette([255, 255, 255, 0, 0, 0])  # index 0 drawn white: the index, not the colour, counts
    pal.save(masks[2])
    Image.fromarray(fg[3]).save(masks[3])  # 1-bit
    cv2.imwrite(str(masks[4]), fg[4].astype(np.uint16) * 65535)  # 16-bit
    report = ingest_path(engine, settings, tree, kind="bis5k")
    assert report.problems == []
    for rel, want in expected.items():
        item = item_by_key(client, report.dataset_id, rel.replace("/masks/", "/images/"))
        assert item["meta"]["mask_pixels"] == int(want.sum()), rel
        r = client.get(f"/api/items/{item['id']}/render", params={"overlays": "gt", "opacity": 1.0})
        out = decode_png(r.content)
        assert (out[want] == AMBER.astype(np.uint8)).all(), rel


# -- bad input ---------------------------------------------------------------------------------

def test_image_without_mask_is_indexed_and_reported(engine, settings, client, tree):
    mask = tree / "formal_test/masks/bis_val_id2.png"
    mask.unlink()
    report = ingest_path(engine, settings, tree, kind="bis5k")
    [problem] = report.problems
    assert problem.file == "formal_test/images/bis_val_id2.png" and "no mask" in problem.message
    assert "formal_test/masks/bis_val_id2.png" in problem.message
    item = item_by_key(client, report.dataset_id, "formal_test/images/bis_val_id2.png")
    assert item["annotations"] == [] and item["meta"]["mask"] is None
    facets = client.get(f"/api/datasets/{report.dataset_id}").json()["facets"]
    assert facets["has_mask"] == {"no": 1, "yes": 11}
    r = client.get(f"/api/items/{item['id']}/render", params={"overlays": "gt"})
    plain = client.get(f"/api/items/{item['id']}/render", params={"overlays": "none"})
    assert r.status_code == 200 and np.array_equal(decode_png(r.content), decode_png(plain.content))


def test_mask_without_image_is_reported(engine, settings, tree):
    (tree / "formal_train/images/bis_he_id3.png").unlink()
    report = ingest_path(engine, settings, tree, kind="bis5k")
    [problem] = report.problems
    assert problem.file == "formal_train/masks/bis_he_id3.png" and "mask without an image" in problem.message
    assert report.items == 11


def test_mask_of_another_size_is_reported_and_skipped(engine, settings, client, tree):
    mask = tree / "formal_train/masks/bis_he_id2.png"
    arr = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(mask), cv2.resize(arr, (arr.shape[1] // 2, arr.shape[0] // 2), interpolation=cv2.INTER_NEAREST))
    report = ingest_path(engine, settings, tree, kind="bis5k")
    [problem] = report.problems
    assert problem.file == "formal_train/masks/bis_he_id2.png" and problem.item == "formal_train/images/bis_he_id2.png"
    assert f"mask is {arr.shape[1] // 2}×{arr.shape[0] // 2} but the image is {arr.shape[1]}×{arr.shape[0]}" in \
        problem.message
    item = item_by_key(client, report.dataset_id, "formal_train/images/bis_he_id2.png")
    assert item["annotations"] == [] and "mask is" in item["meta"]["mask_problem"]
    assert report.items == 12 and report.annotations == 11


def test_non_png_truncated_and_undecodable_files_are_reported(engine, settings, client, tree):
    (tree / "formal_train/images/notes.txt").write_text("not an image")
    Image.new("RGB", (32, 32), (200, 100, 150)).save(tree / "formal_train/images/bis_he_id90.jpg")
    Image.new("RGB", (32, 32), (200, 100, 150)).save(tree / "formal_train/images/bis_he_id91.png", format="JPEG")
    shutil.copy(tree / "formal_train/masks/bis_he_id1.png", tree / "formal_train/masks/bis_he_id91.png")
    truncated = tree / "formal_train/images/bis_he_id4.png"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    corrupt = tree / "formal_test/masks/bis_val_id3.png"
    data = bytearray(corrupt.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # inside the IDAT: header and IEND intact, CRC and inflate fail
    corrupt.write_bytes(bytes(data))
    report = ingest_path(engine, settings, tree, kind="bis5k")
    by_file = {p.file: p.message for p in report.problems}
    assert "not a PNG file" in by_file["formal_train/images/notes.txt"]
    assert "not a PNG file" in by_file["formal_train/images/bis_he_id90.jpg"]
    assert by_file["formal_train/images/bis_he_id91.png"].startswith("not a PNG file (JPEG data)")
    assert "truncated" in by_file["formal_train/images/bis_he_id4.png"]
    assert "could not be decoded" in by_file["formal_test/masks/bis_val_id3.png"]
    assert len(report.problems) == 5, problem_texts(report)
    assert report.items == 11 and report.annotations == 10  # id4 and id91 skipped; val_id3 kept without mask
    keys = {i["key"] for i in client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"]}
    assert "formal_train/images/bis_he_id4.png" not in keys and "formal_test/images/bis_val_id3.png" in keys


def test_nothing_usable_is_an_ingest_error(engine, settings, tmp_path, tree):
    empty = tmp_path / "empty"
    (empty / "formal_train" / "images").mkdir(parents=True)
    (empty / "formal_train" / "masks").mkdir()
    assert Bis5kAdapter().detect(empty)
    with pytest.raises(IngestError, match="no PNG images"):
        ingest_path(engine, settings, empty, kind="bis5k")
    with pytest.raises(IngestError, match="no formal_train/ or formal_test/"):
        ingest_path(engine, settings, tmp_path / "BIS5k" / "formal_train", kind="bis5k")
    assert not Bis5kAdapter().detect(tree / "formal_train")
    for path in tree.glob("formal_*/images/*.png"):
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    with pytest.raises(IngestError, match="none of the 12 images is a readable PNG") as err:
        ingest_path(engine, settings, tree, kind="bis5k")
    assert len(err.value.problems) == 12


def test_files_gone_after_ingest_give_404_or_a_flagged_overlay(engine, settings, client, tree):
    report = ingest_path(engine, settings, tree, kind="bis5k")
    gone = item_by_key(client, report.dataset_id, "formal_train/images/bis_he_id1.png")
    (tree / "formal_train/images/bis_he_id1.png").unlink()
    r = client.get(f"/api/items/{gone['id']}/render")
    assert r.status_code == 404 and "formal_train/images/bis_he_id1.png" in r.json()["detail"]
    no_mask = item_by_key(client, report.dataset_id, "formal_train/images/bis_he_id2.png")
    os.remove(tree / "formal_train/masks/bis_he_id2.png")
    plain = decode_png(client.get(f"/api/items/{no_mask['id']}/render", params={"overlays": "none"}).content)
    flagged = client.get(f"/api/items/{no_mask['id']}/render", params={"overlays": "gt"})
    assert flagged.status_code == 200
    changed = (decode_png(flagged.content) != plain).any(axis=2)
    assert changed.any() and not changed[plain.shape[0] // 2:].any()  # only the note in the top corner
    assert client.get(f"/api/items/{no_mask['id']}/render", params={"plane": "sagittal"}).status_code == 400
