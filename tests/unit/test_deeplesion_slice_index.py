"""The slice index's shortcuts (issue 13) give what the plain ways give: slice-number text, numbers present in a
range, and key-slice checks opened in the listed folder (a link is still resolved and checked)."""

from __future__ import annotations

import random

import cv2
import numpy as np

from app.datasets.deeplesion.pixels import SeriesFiles, check_slice_file, list_slices, numbers_text
from app.datasets.roots import OUTSIDE, DataRoots, DatasetFiles


def test_numbers_text_equals_join():
    rnd = random.Random(0)
    cases = [list(range(lo, hi + 1)) for lo in range(0, 1000, 7) for hi in (lo, lo + 3, lo + 40, 998, 999, 1005)
             if hi >= lo]
    cases += [sorted(rnd.sample(range(-5, 1300), rnd.randint(0, 9))) for _ in range(500)] + [[]]
    for numbers in cases:
        assert numbers_text(numbers) == ",".join(map(str, numbers))


def test_numbers_between_with_and_without_gaps():
    full = SeriesFiles("Images_png/x", {f"{n:03d}.png" for n in range(10, 30)})
    assert full.numbers_between(12, 20) == list(range(12, 21))
    assert full.numbers_between(5, 12) == [10, 11, 12]
    gappy = SeriesFiles("Images_png/x", {"010.png", "012.png", "1000.png", "999.png"})
    assert gappy.numbers_between(9, 13) == [10, 12]
    assert gappy.numbers_between(998, 1001) == [999, 1000]
    assert gappy.numbers_between(-3, 9) == []


def test_key_slice_checked_in_its_listed_folder_and_links_still_checked(tmp_path):
    roots = tmp_path / "roots"
    series = roots / "DL" / "Images_png" / "000001_01_01"
    series.mkdir(parents=True)
    cv2.imwrite(str(series / "010.png"), np.zeros((8, 8), np.uint16))
    outside = tmp_path / "outside.png"
    cv2.imwrite(str(outside), np.zeros((8, 8), np.uint16))
    (series / "011.png").symlink_to(outside)
    (roots / "DL" / "inside.png").write_bytes((series / "010.png").read_bytes())
    (series / "012.png").symlink_to(roots / "DL" / "inside.png")
    files = DatasetFiles(roots / "DL", DataRoots([roots]))
    listed = list_slices(roots / "DL", files).series["000001_01_01"]
    assert listed.real == str(series.resolve())
    assert check_slice_file(files, "Images_png/000001_01_01/010.png", listed.real) == (8, 8, None)
    assert check_slice_file(files, "Images_png/000001_01_01/012.png", listed.real) == (8, 8, None)
    assert check_slice_file(files, "Images_png/000001_01_01/011.png", listed.real)[2] == OUTSIDE
    width, height, problem = check_slice_file(files, "Images_png/000001_01_01/013.png", listed.real)
    assert problem is not None and problem.startswith("cannot read")  # the ingest driver cuts the path back
