"""The class-folder walk: class = first folder level, split folders only when every top folder is one."""

from __future__ import annotations

from pathlib import Path

from app.datasets.base import Problem
from app.datasets.imagefolder.folders import scan_class_folders


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def test_nested_class_folders(tmp_path):
    touch(tmp_path, "LYT/0001-1000/LYT_2.jpg", "LYT/0001-1000/LYT_10.jpg", "EOS/EOS_1.PNG", "EOS/notes.txt",
          ".cache/x.jpg", "docs/readme.md")
    problems: list[Problem] = []
    images, split_layout = scan_class_folders(tmp_path, problems)
    assert not split_layout and problems == []
    assert [(i.rel, i.split, i.label, i.folder) for i in images] == [
        ("EOS/EOS_1.PNG", None, "EOS", "EOS"),
        ("LYT/0001-1000/LYT_2.jpg", None, "LYT", "LYT"), ("LYT/0001-1000/LYT_10.jpg", None, "LYT", "LYT")]


def test_split_folders_and_stray_images(tmp_path):
    touch(tmp_path, "train/LYT/a.jpg", "train/EOS/b.jpg", "Test/LYT/c.jpg", "train/d.jpg", "e.jpg")
    problems: list[Problem] = []
    images, split_layout = scan_class_folders(tmp_path, problems)
    assert split_layout
    assert {i.rel: (i.split, i.label) for i in images} == {
        "e.jpg": (None, None), "Test/LYT/c.jpg": ("Test", "LYT"), "train/d.jpg": ("train", None),
        "train/EOS/b.jpg": ("train", "EOS"), "train/LYT/a.jpg": ("train", "LYT")}
    assert [(p.file, p.message) for p in problems] == [
        ("e.jpg", "image is not inside a class folder; indexed without a label"),
        ("train/d.jpg", "image is in the split folder train/ but not inside a class folder; indexed without a label")]


def test_a_class_named_like_a_split_does_not_make_split_folders(tmp_path):
    touch(tmp_path, "test/a.jpg", "LYT/b.jpg")
    images, split_layout = scan_class_folders(tmp_path, [])
    assert not split_layout and {i.rel: i.label for i in images} == {"test/a.jpg": "test", "LYT/b.jpg": "LYT"}
