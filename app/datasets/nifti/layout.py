"""Finding plain NIfTI volumes on disk and pairing each with its label map (no voxel decoded here).

Pairing rules, tried per folder (docs/datasets.md, "nifti"):
- nnU-Net / Medical Segmentation Decathlon: `imagesTr/X_0000.nii.gz` (channel 0; `_0001`, … are further channels
  of the same case) with `labelsTr/X.nii.gz`; `imagesTs`/`labelsTs` likewise (test cases usually have no labels).
  An image without a channel number (`imagesTr/X.nii.gz`, as the Decathlon ships) pairs with `labelsTr/X.nii.gz`.
  `dataset.json` beside `imagesTr` names the labels and channels.
- `images/` + `labels/` (or `masks/`, `segmentations/`) side by side: the same file name in both.
- one folder: `X.nii.gz` with `X_seg.nii.gz`, `X_label*.nii.gz`, `X_mask.nii.gz`, `X_msk.nii.gz`, `X_gt.nii.gz`
  (a word after an underscore; the longest image name that prefixes the label file's wins).
A label map without its image is a problem naming the file; an image without a label map is indexed without one
(in `imagesTr`, where every case should have one, that is a problem too).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.datasets.base import Problem
from app.datasets.verse.layout import nifti_stem

LABEL_WORDS = ("seg", "segmentation", "label", "labels", "mask", "msk", "gt")
LABEL_NAME = re.compile(r"_(?:" + "|".join(LABEL_WORDS) + r")(?:$|[-_.0-9])", re.IGNORECASE)
IMAGE_DIRS = ("images", "image", "imgs")
LABEL_DIRS = ("labels", "label", "masks", "segmentations")
NNUNET_DIR = re.compile(r"^(images|labels)(Tr|Ts|Va)$")
NNUNET_SPLITS = {"Tr": "train", "Ts": "test", "Va": "val"}
CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
SPLIT_WORDS = (("train", "train"), ("valid", "val"), ("val", "val"), ("test", "test"))
DETECT_MAX_DIRS = 3000


@dataclass
class Pair:
    """One item: its image (channel 0), its label map if any, and what else belongs to it."""

    image: Path
    key: str
    split: str | None
    layout: str  # nnunet | folders | suffix | single
    label: Path | None = None
    channels: list[Path] = field(default_factory=list)  # nnU-Net channels _0001, … (channel 0 is `image`)
    other_labels: list[Path] = field(default_factory=list)  # further label maps named for the same image
    label_expected: bool = False  # imagesTr: a case without its label map is reported


@dataclass
class DatasetJson:
    """What `dataset.json` (nnU-Net v1/v2, the Decathlon) says: label value → name, channel → modality."""

    path: Path | None = None
    labels: dict[int, str] = field(default_factory=dict)
    channels: dict[int, str] = field(default_factory=dict)


@dataclass
class Layout:
    pairs: list[Pair]
    problems: list[Problem]
    described: DatasetJson


def _walk(root: Path) -> dict[Path, set[str]]:
    listing: dict[Path, set[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        listing[Path(dirpath)] = {f for f in filenames if not f.startswith(".")}
    return listing


def _niftis(names: set[str]) -> dict[str, str]:
    """stem → file name of the NIfTI files among `names` (a `.nii.gz` wins over a `.nii` of the same stem)."""
    out: dict[str, str] = {}
    for name in sorted(names, reverse=True):  # "x.nii.gz" sorts after "x.nii": seen first here
        stem = nifti_stem(name)
        if stem is not None:
            out.setdefault(stem, name)
    return out


def _split_of(parts: tuple[str, ...]) -> str | None:
    for part in parts:
        low = part.lower()
        for word, split in SPLIT_WORDS:
            if word in low:
                return split
    return None


def _sibling(folder: Path, names: tuple[str, ...], listing: dict[Path, set[str]]) -> Path | None:
    for name in names:
        for candidate in (folder.parent / name, folder.parent / name.capitalize()):
            if candidate in listing:
                return candidate
    return None


def _label_rank(stem: str) -> tuple[int, str]:
    """Label maps of one image in preference order: `_seg` first, then the order of LABEL_WORDS, then by name."""
    match = LABEL_NAME.search(stem)
    word = match.group(0).strip("_-.0123456789").lower() if match else ""
    return (LABEL_WORDS.index(word) if word in LABEL_WORDS else len(LABEL_WORDS), stem)


def is_label_name(stem: str) -> bool:
    return LABEL_NAME.search(stem) is not None


def read_dataset_json(path: Path, root: Path, problems: list[Problem]) -> DatasetJson:
    """Label and channel names from nnU-Net's dataset.json: v2 `{"labels": {"liver": 1}, "channel_names":
    {"0": "CT"}}` or v1 / Decathlon `{"labels": {"1": "liver"}, "modality": {"0": "CT"}}`. A file that cannot
    be used is a problem; the volumes are indexed with numbered labels."""
    rel = path.relative_to(root).as_posix()
    out = DatasetJson(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(Problem(rel, f"not valid JSON ({exc}); labels are shown by number"))
        return out
    if not isinstance(data, dict):
        problems.append(Problem(rel, "expected a JSON object with \"labels\"; labels are shown by number"))
        return out
    labels = data.get("labels", {})
    if not isinstance(labels, dict):
        problems.append(Problem(rel, "expected an object of label names and values", field="labels"))
        labels = {}
    for key, value in labels.items():
        number, name = (key, value) if str(key).strip().isdigit() else (value, key)
        if isinstance(number, list):  # nnU-Net v2 regions: {"whole tumour": [1, 2, 3]} name the union
            continue
        if isinstance(number, int | str) and not isinstance(number, bool) and str(number).strip().isdigit():
            out.labels[int(str(number).strip())] = str(name)
        else:
            problems.append(Problem(rel, f"{key!r}: {value!r} is not a label value and its name", field="labels"))
    channels = data.get("channel_names", data.get("modality", {}))
    if isinstance(channels, dict):
        out.channels = {int(k): str(v) for k, v in channels.items() if str(k).isdigit()}
    return out


def _nnunet(folder: Path, names: set[str], listing: dict[Path, set[str]], used: set[Path]) -> list[Pair]:
    role, tail = NNUNET_DIR.match(folder.name).groups()  # type: ignore[union-attr]
    label_dir = folder.parent / f"labels{tail}"
    labels = _niftis(listing.get(label_dir, set()))
    cases: dict[str, dict[int, Path]] = {}
    for stem, name in _niftis(names).items():
        match = CHANNEL.match(stem)
        case, channel = (match["case"], int(match["channel"])) if match else (stem, 0)
        cases.setdefault(case, {})[channel] = folder / name
    pairs = []
    for case in sorted(cases):
        channels = cases[case]
        first = min(channels)
        label = label_dir / labels[case] if case in labels else None
        if label is not None:
            used.add(label)
        pairs.append(Pair(channels[first], case, NNUNET_SPLITS[tail], "nnunet", label,
                          [channels[c] for c in sorted(channels) if c != first], label_expected=tail == "Tr"))
    return pairs


def _folders(folder: Path, names: set[str], label_dir: Path | None, listing: dict[Path, set[str]],
             used: set[Path], root: Path) -> list[Pair]:
    labels = _niftis(listing.get(label_dir, set())) if label_dir else {}
    split = _split_of(folder.parent.relative_to(root).parts)
    pairs = []
    for stem, name in sorted(_niftis(names).items()):
        label = None
        if label_dir is not None:
            match = CHANNEL.match(stem)
            found = labels.get(stem) or (labels.get(match["case"]) if match else None)
            label = label_dir / found if found else None
        if label is not None:
            used.add(label)
        pairs.append(Pair(folder / name, stem, split, "folders", label))
    return pairs


def _suffixed(folder: Path, names: set[str], used: set[Path], root: Path) -> list[Pair]:
    files = _niftis(names)
    images = {stem: name for stem, name in files.items() if not is_label_name(stem)}
    pairs = {stem: Pair(folder / name, stem, _split_of(folder.relative_to(root).parts), "suffix")
             for stem, name in sorted(images.items())}
    for stem, name in sorted(files.items(), key=lambda kv: _label_rank(kv[0])):
        if stem in images:
            continue
        owners = [s for s in images if stem.startswith(f"{s}_") and is_label_name(stem[len(s):])]
        if not owners:
            continue  # an orphan: reported with the others
        pair = pairs[max(owners, key=len)]
        if pair.label is None:
            pair.label = folder / name
        else:
            pair.other_labels.append(folder / name)
        used.add(folder / name)
    return list(pairs.values())


def find_pairs(root: Path) -> Layout:
    """Every image under `root` with its label map; problems for label maps that belong to no image."""
    listing = _walk(root)
    problems: list[Problem] = []
    pairs: list[Pair] = []
    used: set[Path] = set()
    label_folders: set[Path] = set()
    described = DatasetJson()
    for folder in listing:
        match = NNUNET_DIR.match(folder.name)
        nnunet_labels = match is not None and match[1] == "labels"
        if nnunet_labels or (folder.name.lower() in LABEL_DIRS and _sibling(folder, IMAGE_DIRS, listing) is not None):
            label_folders.add(folder)
    for folder, names in listing.items():
        if folder in label_folders:
            continue
        if NNUNET_DIR.match(folder.name):
            pairs += _nnunet(folder, names, listing, used)
            if described.path is None and (folder.parent / "dataset.json").is_file():
                described = read_dataset_json(folder.parent / "dataset.json", root, problems)
        elif folder.name.lower() in IMAGE_DIRS:
            pairs += _folders(folder, names, _sibling(folder, LABEL_DIRS, listing), listing, used, root)
        else:
            pairs += _suffixed(folder, names, used, root)
    if described.path is None and (root / "dataset.json").is_file():
        described = read_dataset_json(root / "dataset.json", root, problems)
    problems += _orphans(root, listing, label_folders, used)
    _unique_keys(pairs, root)
    return Layout(pairs, problems, described)


def _orphans(root: Path, listing: dict[Path, set[str]], label_folders: set[Path], used: set[Path]) -> list[Problem]:
    problems = []
    for folder, names in listing.items():
        for stem, name in sorted(_niftis(names).items()):
            path = folder / name
            if path in used or not (folder in label_folders or is_label_name(stem)):
                continue
            if folder in label_folders:
                nnunet = NNUNET_DIR.match(folder.name)
                expected = (f"images{nnunet[2]}/{stem}_0000.nii.gz" if nnunet
                            else f"the same name in {folder.parent.name}/images/")
                why = f"label map without an image (expected {expected}); not indexed"
            else:
                why = "label map without an image (no volume whose name it extends); not indexed"
            problems.append(Problem(path.relative_to(root).as_posix(), why, field="label"))
    return problems


def _unique_keys(pairs: list[Pair], root: Path) -> None:
    """Keys are the case name; names found twice (a case in two folders) become the image's relative path."""
    counts: dict[str, int] = {}
    for pair in pairs:
        counts[pair.key] = counts.get(pair.key, 0) + 1
    for pair in pairs:
        if counts[pair.key] > 1:
            rel = pair.image.relative_to(root)
            pair.key = rel.with_name(nifti_stem(rel.name) or rel.name).as_posix()


def looks_like_nifti(root: Path) -> bool:
    """Cheap detection: any `.nii`/`.nii.gz` file within a bounded number of folders (VerSe is tried first)."""
    for n, (_dirpath, dirnames, filenames) in enumerate(os.walk(root)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if n > DETECT_MAX_DIRS:
            return False
        if any(nifti_stem(f) is not None for f in filenames):
            return True
    return False


def describe(pair: Pair, root: Path) -> dict[str, Any]:
    """The pairing as item meta (paths relative to the root)."""
    def rel(p: Path) -> str:
        return p.relative_to(root).as_posix()

    return {"image": rel(pair.image), "label_map": rel(pair.label) if pair.label else None,
            "layout": pair.layout, "channels": [rel(p) for p in pair.channels],
            "other_label_maps": [rel(p) for p in pair.other_labels]}
