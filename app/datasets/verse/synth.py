"""Synthetic VerSe samples in the published layouts, with the quirks of the real files.

Each subject is a spine phantom (`phantom.py`) drawn in the canonical RAS+ frame, then stored the way
real VerSe files are: in another axis order (P-I-R, L-P-S, …) through nibabel's reorientation, with an
oblique affine and anisotropic voxels for some, masks as float64, extra name entities (`_dir-ax_`),
a CT stored as uint16 with an intercept, one mask on a different grid than its CT (to exercise the
report), and centroid files whose first element names their frame. Centroids are vertebral-body centres
of mass computed in the centroid frame itself, from the mask reoriented by nibabel (as VerSe made them),
so the adapter's coordinate mapping is checked against an independent computation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from app.datasets.verse.labels import SPINE_ORDER
from app.datasets.verse.phantom import spine_phantom

SPLIT_FOLDERS = ("01_training", "02_validation", "03_test")
SPLIT_NAMES = {"01_training": "train", "02_validation": "val", "03_test": "test"}


@dataclass(frozen=True)
class SubjectSpec:
    shape: tuple[int, int, int]  # canonical (R, A, S) voxels
    spacing: tuple[float, float, float]  # canonical mm
    storage: str  # axis codes of the stored array, e.g. "PIR"
    oblique_deg: float = 0.0
    ctd_direction: str | None = None  # None: the storage codes
    first: int = 12  # position in SPINE_ORDER of the most cranial vertebra
    entity: str = ""  # extra name entity, e.g. "dir-ax"
    uint16: bool = False  # stored as HU + 1024 in uint16 with scl_inter = -1024
    mask_mismatch: bool = False
    subreg: bool = False  # also write a seg-subreg mask (must not be taken for the vertebra mask)


SPECS = (
    SubjectSpec((128, 128, 120), (1.0, 1.0, 2.0), "PIR", oblique_deg=7.0, first=16, subreg=True),
    SubjectSpec((96, 96, 160), (1.25, 1.25, 1.5), "LPS", ctd_direction="PIR", first=9, entity="dir-ax",
                uint16=True),
    SubjectSpec((80, 80, 160), (1.5, 1.5, 1.5), "RAS", first=19, mask_mismatch=True),
    SubjectSpec((96, 96, 120), (1.3, 1.3, 2.0), "ASL", oblique_deg=-5.0, ctd_direction="LAS", first=3),
)


@dataclass
class SubjectTruth:
    key: str
    subject: str
    split: str | None
    ct: Path
    mask: Path
    ctd: Path
    labels: list[int]  # cranial first
    centroids: dict[int, list[float]]  # vertebral-body centres, canonical voxel [i, j, k]
    canonical_shape: tuple[int, int, int]
    canonical_spacing: tuple[float, float, float]
    axcodes: tuple[str, str, str]
    ctd_direction: tuple[str, str, str]
    mask_mismatch: bool = False


@dataclass
class VerseSample:
    root: Path
    layout: str
    subjects: list[SubjectTruth] = field(default_factory=list)

    def by_key(self, key: str) -> SubjectTruth:
        return next(s for s in self.subjects if s.key == key)


def _canonical_affine(spec: SubjectSpec) -> np.ndarray:
    t = math.radians(spec.oblique_deg)
    rot = np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spec.spacing)
    affine[:3, 3] = -affine[:3, :3] @ (np.array(spec.shape) / 2) + np.array([0.0, 0.0, 300.0])
    return affine


def _store(data: np.ndarray, canonical_affine: np.ndarray, codes: str) -> tuple[np.ndarray, np.ndarray]:
    """The canonical array re-ordered to the stored axis codes, and the stored file's affine."""
    transform = ornt_transform(axcodes2ornt(tuple("RAS")), axcodes2ornt(tuple(codes)))
    return apply_orientation(data, transform), canonical_affine @ inv_ornt_aff(transform, data.shape)


def _save(data: np.ndarray, affine: np.ndarray, path: Path, *, scl_inter: float | None = None) -> None:
    img = nib.Nifti1Image(np.ascontiguousarray(data) if data.dtype != np.float64 else data, affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    if scl_inter is not None:
        img.header.set_slope_inter(1.0, scl_inter)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _codes(text: str) -> tuple[str, str, str]:
    """Axis codes such as "PIR" as a 3-tuple."""
    if len(text) != 3:
        raise ValueError(f"expected three axis codes, got {text!r}")
    return text[0], text[1], text[2]


def _frame_centres(bodies: np.ndarray, affine: np.ndarray, direction: tuple[str, str, str]) -> dict[int, list]:
    """Centres of mass of each vertebral body in the centroid frame: the stored array reoriented by nibabel."""
    img = nib.Nifti1Image(bodies, affine)
    framed = np.asanyarray(img.as_reoriented(ornt_transform(io_orientation(affine), axcodes2ornt(direction)))
                           .dataobj)
    return {int(label): [round(float(v), 3) for v in np.argwhere(framed == label).mean(axis=0)]
            for label in np.unique(framed) if label}


def _subreg(mask: np.ndarray, bodies: np.ndarray) -> np.ndarray:
    """A sub-region mask in TPTBox's codes: 50 vertebral body, 41 the posterior elements."""
    out = np.zeros(mask.shape, np.uint8)
    out[mask > 0] = 41
    out[bodies > 0] = 50
    return out


def _names(layout: str, n: int, spec: SubjectSpec, split: str | None) -> tuple[str, str, Path, Path, Path, Path]:
    sub = f"sub-verse{4 + n:03d}"
    ent = f"_{spec.entity}" if spec.entity else ""
    if layout == "flat":
        if n % 4 == 1:  # the oldest flat naming: verse005.nii.gz, verse005_seg.nii.gz, verse005_ctd.json
            base = f"verse{4 + n:03d}"
            return base, base, Path(f"{base}.nii.gz"), Path(f"{base}_seg.nii.gz"), Path(f"{base}_ctd.json"), \
                Path(f"{base}_seg-subreg_msk.nii.gz")
        return sub, sub, Path(f"{sub}{ent}_ct.nii.gz"), Path(f"{sub}{ent}_seg-vert_msk.nii.gz"), \
            Path(f"{sub}{ent}_seg-subreg_ctd.json"), Path(f"{sub}{ent}_seg-subreg_msk.nii.gz")
    top = Path(split) if split else Path()
    raw, der = top / "rawdata" / sub, top / "derivatives" / sub
    return sub, sub, raw / f"{sub}{ent}_ct.nii.gz", der / f"{sub}{ent}_seg-vert_msk.nii.gz", \
        der / f"{sub}{ent}_seg-subreg_ctd.json", der / f"{sub}{ent}_seg-subreg_msk.nii.gz"


def generate_verse(root: Path, *, subjects: int = 3, layout: str = "bids", seed: int = 0,
                   splits: bool = False) -> VerseSample:
    """Write `subjects` cases under `root` ("bids": rawdata/ + derivatives/, in 01_training/02_validation/
    03_test folders when `splits`; "flat": VerSe'19 files side by side). Returns what was written."""
    if layout not in ("bids", "flat"):
        raise ValueError(f"layout must be 'bids' or 'flat', not {layout!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    sample = VerseSample(root, layout)
    for n in range(subjects):
        spec = SPECS[n % len(SPECS)]
        folder = SPLIT_FOLDERS[n % 3] if splits and layout == "bids" else None
        key, subject, ct_rel, mask_rel, ctd_rel, subreg_rel = _names(layout, n, spec, folder)
        first = min(spec.first + n // len(SPECS), len(SPINE_ORDER) - 1)
        phantom = spine_phantom(spec.shape, spec.spacing, first, rng)
        canonical = _canonical_affine(spec)
        ct, affine = _store(phantom.ct, canonical, spec.storage)
        if spec.uint16:
            _save((ct.astype(np.int32) + 1024).clip(0, 65535).astype(np.uint16), affine, root / ct_rel,
                  scl_inter=-1024.0)
        else:
            _save(ct, affine, root / ct_rel)
        mask, _ = _store(phantom.mask, canonical, spec.storage)
        bodies, _ = _store(phantom.bodies, canonical, spec.storage)
        if spec.mask_mismatch:  # a mask cropped by two slices: another grid than the CT's
            _save(mask[..., :-2].astype(np.float64), affine, root / mask_rel)
        else:
            _save(mask.astype(np.float64), affine, root / mask_rel)
        if spec.subreg:
            _save(_subreg(mask, bodies), affine, root / subreg_rel)
        direction = _codes(spec.ctd_direction or spec.storage)
        centres = _frame_centres(bodies, affine, direction)
        entries: list[dict] = [{"direction": list(direction)}]
        entries += [{"label": label, "X": c[0], "Y": c[1], "Z": c[2]} for label, c in sorted(centres.items())]
        (root / ctd_rel).write_text(json.dumps(entries, indent=1))
        truth_centres = {int(label): [float(v) for v in np.argwhere(phantom.bodies == label).mean(axis=0)]
                         for label in phantom.labels}
        sample.subjects.append(SubjectTruth(
            key, subject, SPLIT_NAMES.get(folder or ""), root / ct_rel, root / mask_rel, root / ctd_rel,
            phantom.labels, truth_centres, spec.shape, spec.spacing, _codes(spec.storage),
            direction, spec.mask_mismatch))
    return sample


def demo_sample(root: Path) -> VerseSample:
    """`medview demo`: four subjects in the VerSe'20 layout with training/validation/test folders."""
    return generate_verse(root, subjects=4, layout="bids", seed=20, splits=True)
