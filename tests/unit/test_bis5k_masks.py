"""BIS5k mask reading (every tolerated encoding), header checks, area bands and the mask-area cache."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from app.datasets.bis5k.adapter import Bis5kAdapter, area_band
from app.datasets.bis5k.files import PngError, png_header, read_mask
from app.datasets.bis5k.synth import generate_bis5k


@pytest.fixture
def shape() -> np.ndarray:
    fg = np.zeros((40, 60), bool)
    fg[5:20, 10:30] = True
    fg[30:38, 50:58] = True
    return fg


def test_every_tolerated_encoding_reads_the_same_foreground(tmp_path, shape):
    u8 = shape.astype(np.uint8)
    writers = {
        "grey_255.png": lambda p: cv2.imwrite(str(p), u8 * 255),
        "grey_01.png": lambda p: cv2.imwrite(str(p), u8),
        "grey_16bit.png": lambda p: cv2.imwrite(str(p), u8.astype(np.uint16) * 1000),
        "rgb.png": lambda p: cv2.imwrite(str(p), np.dstack([u8 * 255] * 3)),
        "red_only.png": lambda p: cv2.imwrite(str(p), np.dstack([np.zeros_like(u8), np.zeros_like(u8), u8 * 200])),
        "rgba_opaque.png": lambda p: cv2.imwrite(str(p), np.dstack([u8 * 255] * 3 + [np.full_like(u8, 255)])),
        "grey_alpha.png": lambda p: Image.fromarray(np.dstack([u8 * 255, np.full_like(u8, 255)]), "LA").save(p),
        "bilevel.png": lambda p: Image.fromarray(shape).save(p),
    }
    for name, write in writers.items():
        write(tmp_path / name)
        assert np.array_equal(read_mask(tmp_path / name), shape), name
    pal = Image.fromarray(u8, "P")
    pal.putpalette([255, 255, 255, 0, 0, 0])  # background index 0 shown white, foreground black
    pal.save(tmp_path / "palette.png")
    assert np.array_equal(read_mask(tmp_path / "palette.png"), shape)


def test_refused_files_say_why(tmp_path, shape):
    Image.fromarray(shape.astype(np.uint8) * 255).save(tmp_path / "jpeg.png", format="JPEG")
    with pytest.raises(PngError, match=r"not a PNG file \(JPEG data\)"):
        read_mask(tmp_path / "jpeg.png")
    with pytest.raises(PngError, match=r"not a PNG file \(JPEG data\)"):
        png_header(tmp_path / "jpeg.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(PngError, match="not a readable image"):
        png_header(tmp_path / "empty.png")
    cv2.imwrite(str(tmp_path / "ok.png"), shape.astype(np.uint8) * 255)
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-20])
    with pytest.raises(PngError, match="truncated"):
        png_header(tmp_path / "cut.png")
    header = png_header(tmp_path / "ok.png")
    assert (header.width, header.height, header.mode) == (60, 40, "L")


@pytest.mark.parametrize(("pixels", "share", "band"), [
    (0, 0.0, "0"), (1, 0.00001, "0-10%"), (99, 0.0999, "0-10%"), (100, 0.10, "10-25%"), (250, 0.25, "25-50%"),
    (499, 0.499, "25-50%"), (500, 0.5, "50-100%"), (1000, 1.0, "50-100%")])
def test_area_bands(pixels, share, band):
    assert area_band(pixels, share) == band


def test_mask_areas_are_cached_in_the_work_dir_until_the_mask_changes(tmp_path):
    sample = generate_bis5k(tmp_path / "BIS5k", n_train=3, n_test=1, seed=2)
    work = tmp_path / "work"
    adapter = Bis5kAdapter()
    first = {i.key: i.meta["mask_pixels"] for i in adapter.scan(sample.root, work_dir=work).items}
    assert first == {s.image: s.foreground for s in sample.images}
    [cache_file] = work.glob("mask-areas-*.json")
    cached = json.loads(cache_file.read_text())
    assert {rel: entry[4] for rel, entry in cached.items()} == {s.mask: s.foreground for s in sample.images}
    target = sample.images[0]
    cached[target.mask][4] = 12345  # a remembered value is used as long as the file's stamp matches
    cache_file.write_text(json.dumps(cached))
    second = {i.key: i.meta["mask_pixels"] for i in adapter.scan(sample.root, work_dir=work).items}
    assert second[target.image] == 12345
    st = os.stat(sample.root / target.mask)
    os.utime(sample.root / target.mask, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third = {i.key: i.meta["mask_pixels"] for i in adapter.scan(sample.root, work_dir=work).items}
    assert third == first
    cache_file.write_text("{not json")  # a damaged cache is ignored, not fatal
    assert {i.key: i.meta["mask_pixels"] for i in adapter.scan(sample.root, work_dir=work).items} == first
