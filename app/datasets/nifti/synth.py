"""Synthetic plain-NIfTI samples in the three pairing layouts (nnU-Net, images/ + labels/, `_seg` beside), small.

Each case is an abdomen-like phantom drawn in the canonical RAS+ frame — a body of soft tissue (40 HU) in air, an
"organ" (label 1, 60 HU) and a "lesion" inside it (label 2, 120 HU) — then stored in another axis order (LPS, as
DICOM-converted files are) for some cases, so the viewer's reorientation is exercised. The nnU-Net layout adds a
second channel (`_0001`, a float image in 0–1 as a normalised MR) and a `dataset.json` naming the labels; its
test cases (`imagesTs`) have no labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

LAYOUTS = ("nnunet", "folders", "suffix")
LABEL_NAMES = {0: "background", 1: "organ", 2: "lesion"}
SHAPES = ((40, 36, 24), (32, 40, 20), (36, 32, 28))
SPACINGS = ((2.0, 2.0, 3.0), (1.5, 1.5, 4.0), (0.8, 0.8, 2.5))
STORAGE = ("RAS", "LPS", "RAS")


@dataclass
class CaseTruth:
    key: str
    image: Path
    label: Path | None
    labels: list[int]  # label values present
    canonical_shape: tuple[int, int, int]
    split: str | None
    ct: np.ndarray = field(repr=False)  # canonical int16
    mask: np.ndarray = field(repr=False)  # canonical uint8


@dataclass
class NiftiSample:
    root: Path
    layout: str
    cases: list[CaseTruth] = field(default_factory=list)

    def by_key(self, key: str) -> CaseTruth:
        return next(c for c in self.cases if c.key == key)


def phantom(shape: tuple[int, int, int], spacing: tuple[float, float, float], rng: np.random.Generator,
            lesion: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(int16 HU, uint8 labels), canonical RAS+."""
    ni, nj, nk = shape
    x = ((np.arange(ni) - (ni - 1) / 2) * spacing[0])[:, None, None]
    y = ((np.arange(nj) - (nj - 1) / 2) * spacing[1])[None, :, None]
    z = ((np.arange(nk) - (nk - 1) / 2) * spacing[2])[None, None, :]
    half = np.array(shape) * np.array(spacing) / 2
    body = (x / (half[0] * 0.9)) ** 2 + (y / (half[1] * 0.8)) ** 2 <= 1.0
    body = np.broadcast_to(body, shape)
    organ = ((x + half[0] * 0.3) / (half[0] * 0.35)) ** 2 + ((y - half[1] * 0.1) / (half[1] * 0.4)) ** 2 \
        + (z / (half[2] * 0.7)) ** 2 <= 1.0
    ct = np.full(shape, -1000, np.int16)
    ct[body] = 40
    ct[organ] = 60
    mask = np.zeros(shape, np.uint8)
    mask[organ] = 1
    if lesion:
        r = min(half[:2]) * 0.12
        spot = ((x + half[0] * 0.3) ** 2 + (y - half[1] * 0.1) ** 2 + (z * 0.8) ** 2) <= r * r
        ct[spot] = 120
        mask[spot] = 2
    ct = (ct + rng.normal(0, 8, shape)).round().astype(np.int16)
    return ct, mask


def _save(canonical: np.ndarray, spacing: tuple[float, float, float], codes: str, path: Path) -> None:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -np.array(canonical.shape) * np.array(spacing) / 2
    transform = ornt_transform(axcodes2ornt(tuple("RAS")), axcodes2ornt(tuple(codes)))
    data = np.ascontiguousarray(apply_orientation(canonical, transform))
    stored = affine @ inv_ornt_aff(transform, canonical.shape)
    img = nib.Nifti1Image(data, stored)
    img.header.set_qform(stored, code=1)
    img.header.set_sform(stored, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _paths(layout: str, key: str, split: str) -> tuple[Path, Path, Path | None]:
    """(image, label map, second channel) relative to the root."""
    if layout == "nnunet":
        tail = "Tr" if split == "train" else "Ts"
        return (Path(f"imagesTr/{key}_0000.nii.gz") if tail == "Tr" else Path(f"imagesTs/{key}_0000.nii.gz"),
                Path(f"labels{tail}/{key}.nii.gz"), Path(f"images{tail}/{key}_0001.nii.gz"))
    if layout == "folders":
        return Path(f"{split}/images/{key}.nii.gz"), Path(f"{split}/labels/{key}.nii.gz"), None
    return Path(f"{key}.nii.gz"), Path(f"{key}_seg.nii.gz"), None


def generate_nifti(root: Path, *, layout: str = "nnunet", cases: int = 3, test_cases: int = 1,
                   seed: int = 0) -> NiftiSample:
    """Write `cases` labelled cases (+ `test_cases` without labels in the nnU-Net and folder layouts)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    sample = NiftiSample(root, layout)
    total = cases + (test_cases if layout != "suffix" else 0)
    for n in range(total):
        split = "train" if n < cases else "test"
        key = f"case_{n:03d}"
        shape, spacing, codes = SHAPES[n % 3], SPACINGS[n % 3], STORAGE[n % 3]
        ct, mask = phantom(shape, spacing, rng, lesion=n % 2 == 0)
        image_rel, label_rel, channel_rel = _paths(layout, key, split)
        _save(ct, spacing, codes, root / image_rel)
        labelled = split == "train"
        if labelled:
            _save(mask, spacing, codes, root / label_rel)
        if channel_rel is not None:
            _save((np.clip(ct.astype(np.float32), -200, 300) + 200) / 500, spacing, codes, root / channel_rel)
        present = sorted(int(v) for v in np.unique(mask) if v) if labelled else []
        sample.cases.append(CaseTruth(key, root / image_rel, root / label_rel if labelled else None, present,
                                      shape, split if layout != "suffix" else None, ct, mask))
    if layout == "nnunet":
        (root / "dataset.json").write_text(json.dumps({
            "channel_names": {"0": "CT", "1": "MR"}, "labels": {v: k for k, v in LABEL_NAMES.items()},
            "numTraining": cases, "file_ending": ".nii.gz"}, indent=1))
    return sample


def demo_sample(root: Path) -> NiftiSample:
    """`medview demo`: four labelled cases and one test case in nnU-Net's layout."""
    return generate_nifti(root, layout="nnunet", cases=4, test_cases=1, seed=14)
