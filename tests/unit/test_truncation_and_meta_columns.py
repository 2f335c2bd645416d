"""The cheap end-of-file checks of ingest (`images.truncation`, `images.nonfinite`) and PCam's whole-file meta
parse, which must give exactly what the row-by-row reader gives."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.datasets.images import nonfinite, truncation
from app.datasets.pcam.meta import MetaColumns, read_meta, read_meta_columns
from app.datasets.pcam.synth import file_name, generate_pcam


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "pil"), [("JPEG", "JPEG"), ("PNG", "PNG")])
def test_whole_and_padded_files_pass_cut_ones_are_named(tmp_path, fmt, pil):
    data = _encoded(pil)
    path = tmp_path / "img"
    for body, expected in ((data, None), (data + b"\x00" * 100, None), (data[:-40], f"truncated {fmt}"),
                           (data[:len(data) // 2], f"truncated {fmt}")):
        path.write_bytes(body)
        reason = truncation(path, fmt)
        assert (reason is None) if expected is None else (reason is not None and reason.startswith(expected))


def test_nonfinite_names_nan_and_infinite_counts():
    values = np.zeros((4, 4), np.float32)
    assert nonfinite(values) is None and nonfinite(values.astype(np.uint16)) is None
    values[0, 0], values[1, 1], values[2, 2] = np.nan, np.inf, -np.inf
    assert nonfinite(values) == "float image has NaN values (1 of 16 pixels) and infinite values (2 of 16 pixels)"


def test_meta_columns_equal_the_row_reader(tmp_path):
    root = generate_pcam(tmp_path / "pcam", n_per_split=(30, 8, 8), seed=1).root
    path = root / file_name("train", "meta")
    fast, problems = read_meta_columns(path, path.name, "train", 30)
    rows, _ = read_meta(path, path.name, "train", 30)
    assert fast is not None and rows is not None and not problems
    slow = MetaColumns.of_dicts(rows)
    assert (fast.json, list(fast.wsi), list(fast.fingerprint)) == (slow.json, list(slow.wsi), list(slow.fingerprint))
    assert fast.centre.tolist() == slow.centre.tolist()
    # one bad row: the whole-file parse steps aside and the row reader names it
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace("True", "maybe").replace("False", "maybe")
    path.write_text("\n".join(lines) + "\n")
    meta, problems = read_meta_columns(path, path.name, "train", 30)
    assert meta is not None and meta.json[4] == "{}" and meta.wsi[4] is None
    assert [p.row for p in problems] == [6] and "not True/False" in problems[0].message
