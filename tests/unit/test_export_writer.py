"""The export's atomic writer: a file appears complete or not at all (an error mid-way leaves no file under the
final name, keeps a previous complete one, and leaves no temporary behind); DL_info number formatting."""

from __future__ import annotations

import pytest

from app.export.deeplesion_csv import number, numbers
from app.export.geometry import diameters, polygon_area, quad, recist_box
from app.export.writer import atomic_binary, atomic_text


class Boom(Exception):
    pass


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "out" / "items.csv"
    with pytest.raises(Boom), atomic_text(path) as fh:
        fh.write("half a row,")
        raise Boom
    assert not path.exists() and list(path.parent.iterdir()) == []
    with atomic_text(path) as fh:
        fh.write("complete\n")
    with pytest.raises(Boom), atomic_binary(path) as fh:
        fh.write(b"partial")
        raise Boom
    assert path.read_text() == "complete\n" and [p.name for p in path.parent.iterdir()] == ["items.csv"]


def test_numbers_as_dl_info_writes_them():
    assert numbers([154.2734, 128.0, 0.8593750, 5.0, -0.0]) == "154.273, 128, 0.859375, 5, 0"
    assert number(33.84862) == "33.8486"
    g = {"long": [[180.5, 220.25], [220.5, 220.25]], "short": [[200.5, 212.25], [200.5, 228.25]]}
    assert recist_box(g) == [175.5, 207.25, 225.5, 233.25] and diameters(g) == (40.0, 16.0)
    assert quad(g) == [180.5, 220.25, 200.5, 212.25, 220.5, 220.25, 200.5, 228.25]
    assert polygon_area(quad(g)) == 40 * 16 / 2  # what the COCO writer computes inline from the diagonals


def test_formats_follow_the_kind():
    from app.datasets.registry import get_adapter
    from app.errors import InvalidInput
    from app.export.formats import writer_for

    assert callable(writer_for(get_adapter("bis5k"), "masks-png"))
    assert all(callable(writer_for(get_adapter("dicom"), fmt)) for fmt in ("dicom-seg", "dicom-sr"))
    for kind, fmt, words in [("deeplesion", "dicom-seg", "does not fit a deeplesion dataset"),
                             ("pcam", "nifti", "does not fit a pcam dataset"), ("verse", "tiff", "unknown format")]:
        with pytest.raises(InvalidInput, match=words):
            writer_for(get_adapter(kind), fmt)
