"""Issue 13's DL_info.csv findings, through a whole ingest: a repeated lesion is indexed once and reported with
both lines (and the conflicting field); a byte that is not UTF-8 costs only its row, named by line and column."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.datasets.ingest import ingest_path
from app.db.models import Annotation, Dataset


@pytest.fixture
def tree(tmp_path, deeplesion_sample) -> Path:
    root = tmp_path / "DeepLesion"
    shutil.copytree(deeplesion_sample.root, root)
    return root


def table_lines(root: Path) -> list[bytes]:
    return (root / "DL_info.csv").read_bytes().splitlines(keepends=True)


def annotation_count(engine, dataset_id: int) -> int:
    with engine.connect() as c:
        return c.scalar(select(func.count()).select_from(Annotation).where(Annotation.dataset_id == dataset_id))


def test_repeated_rows_are_reported_and_indexed_once(engine, settings, tree, deeplesion_sample):
    lines = table_lines(tree)
    row = next(csv.DictReader([lines[0].decode(), lines[1].decode()]))
    other_sex = "M" if row["Patient_gender"] == "F" else "F"
    conflicting = lines[1].decode().replace(f",{row['Patient_gender']},", f",{other_sex},", 1).encode()
    (tree / "DL_info.csv").write_bytes(b"".join([*lines, lines[1], conflicting]))
    first_repeat, second_repeat = len(lines) + 1, len(lines) + 2  # their line numbers (header is line 1)
    report = ingest_path(engine, settings, tree, kind="deeplesion")
    assert report.annotations == annotation_count(engine, report.dataset_id) == deeplesion_sample.lesion_count
    repeats = {p.row: p for p in report.problems}
    assert set(repeats) == {first_repeat, second_repeat}
    assert repeats[first_repeat].field is None and "repeats line 2 exactly" in repeats[first_repeat].message
    conflict = repeats[second_repeat]
    assert conflict.field == "Patient_gender" and conflict.item == row["File_name"]
    assert f"{row['Patient_gender']!r} on line 2, {other_sex!r} here" in conflict.message
    with engine.connect() as c:
        stored = c.scalar(select(Dataset.problems).where(Dataset.id == report.dataset_id))
    assert {p["row"] for p in stored} == {first_repeat, second_repeat}
    again = ingest_path(engine, settings, tree, kind="deeplesion")  # a re-ingest agrees: nothing changes
    assert (again.unchanged, again.added, again.updated) == (report.items, 0, 0)
    assert annotation_count(engine, report.dataset_id) == deeplesion_sample.lesion_count


def test_byte_that_is_not_utf8_costs_only_its_row(engine, settings, tree, deeplesion_sample):
    lines = table_lines(tree)
    names = [next(csv.reader([ln.decode()]))[0] for ln in lines[1:]]
    solo = next(i for i, n in enumerate(names) if names.count(n) == 1)  # a key slice with one lesion
    broken = lines[solo + 1].replace(b"_", b"\xe9_", 1)  # inside File_name
    (tree / "DL_info.csv").write_bytes(b"".join([*lines[:solo + 1], broken, *lines[solo + 2:]]))
    report = ingest_path(engine, settings, tree, kind="deeplesion")
    [problem] = report.problems
    assert (problem.row, problem.field) == (solo + 2, "File_name")
    assert "byte 0xe9 is not UTF-8 text" in problem.message
    assert str(problem).startswith(f"DL_info.csv line {solo + 2}: File_name: ")
    assert report.items == len(set(names)) - 1
    assert report.annotations == deeplesion_sample.lesion_count - 1


def test_key_slice_linked_inside_the_dataset_is_still_read(engine, settings, tree):
    first = next(csv.reader([table_lines(tree)[1].decode()]))[0]
    slice_path = tree / "Images_png" / first[:12] / first[13:]
    moved = tree / "elsewhere.png"
    slice_path.rename(moved)
    slice_path.symlink_to(moved)  # a link (not opened by the O_NOFOLLOW fast path) that stays inside the roots
    report = ingest_path(engine, settings, tree, kind="deeplesion")
    assert report.problems == []
