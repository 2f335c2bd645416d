"""Finding VerSe cases on disk: one CT per case, with its vertebra mask and centroid file.

Layouts accepted (the published ones, and tolerant of what real downloads contain):
- BIDS-like (VerSe'20, re-released VerSe'19): `rawdata/sub-X/[ses-Y/]sub-X[_ses-Y][_…]_ct.nii.gz` with
  `derivatives/sub-X/[ses-Y/]…_seg-vert_msk.nii.gz` and `…_seg-subreg_ctd.json` (or `…_seg-vert_ctd.json`);
  optionally under split folders (`01_training`, `dataset-verse20validation`, `03_test`, …).
- flat (VerSe'19 as first published): `sub-verse004_ct.nii.gz`, `sub-verse004_seg-vert_msk.nii.gz`,
  `sub-verse004_seg-subreg_ctd.json` side by side, or `verse004.nii.gz`, `verse004_seg.nii.gz`,
  `verse004_ctd.json`.
- derivatives only (masks and centroid files, no CT): each `…_seg-vert_msk.nii.gz` is a label-only case.
Names are parsed as BIDS entities (`key-value` parts, then a suffix), so extra entities such as
`_dir-ax_` or `_label-22_` are kept and matched. A `seg-subreg` mask (vertebra sub-regions, labels
41–50) is never taken for the vertebra mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from app.datasets.base import Problem

NIFTI_EXTENSIONS = (".nii.gz", ".nii")
SPLIT_WORDS = (("train", "train"), ("valid", "val"), ("val", "val"), ("test", "test"))
MASK_SUFFIXES = ("msk", "seg")
DETECT_MAX_DIRS = 3000
DERIVED_ENDINGS = ("_msk.nii.gz", "_msk.nii", "_seg.nii.gz", "_seg.nii", "_ctd.json")


@dataclass(frozen=True)
class Name:
    """A file name split BIDS-style: entities in order, the suffix, and free (non key-value) parts."""

    stem: str
    entities: tuple[tuple[str, str], ...]
    suffix: str
    free: tuple[str, ...]

    def get(self, key: str) -> str | None:
        return dict(self.entities).get(key)

    def without(self, *keys: str) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in self.entities if k not in keys)


def nifti_stem(name: str) -> str | None:
    for ext in NIFTI_EXTENSIONS:
        if name.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return None


def parse_name(stem: str) -> Name:
    parts = stem.split("_")
    suffix = parts[-1] if len(parts) > 1 and "-" not in parts[-1] else ""
    body = parts[:-1] if suffix else parts
    entities = tuple((key, value) for key, _, value in (p.partition("-") for p in body if "-" in p))
    free = tuple(p for p in body if "-" not in p)
    return Name(stem, entities, suffix, free)


@dataclass
class Case:
    ct: Path
    key: str
    subject: str
    session: str | None
    split: str | None
    mask: Path | None = None
    ctd: Path | None = None
    other_masks: list[Path] = field(default_factory=list)  # e.g. seg-subreg masks found but not used
    notes: list[str] = field(default_factory=list)
    label_only: bool = False  # a derivatives-only release: `ct` is the vertebra mask itself (no CT to show)


def _split_of(rel_dirs: tuple[str, ...]) -> str | None:
    for part in rel_dirs:
        low = part.lower()
        if low in ("rawdata", "derivatives") or low.startswith(("sub-", "ses-")):
            continue
        for word, split in SPLIT_WORDS:
            if word in low:
                return split
    return None


def _is_ct(name: Name, siblings: set[str]) -> bool:
    if name.suffix == "ct":
        return True
    # old flat VerSe'19: verse004.nii.gz next to verse004_seg.nii.gz / verse004_ctd.json
    if name.suffix or name.entities:
        return False
    return any(f"{name.stem}_{tail}" in siblings for tail in ("seg.nii.gz", "seg.nii", "ctd.json", "msk.nii.gz"))


def _walk(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield Path(dirpath), set(filenames)


def _counterpart(ct_dir: Path, root: Path) -> Path | None:
    """rawdata/sub-X/[ses-Y] → derivatives/sub-X/[ses-Y] (the last `rawdata` in the path)."""
    rel = ct_dir.relative_to(root).parts
    if "rawdata" not in rel:
        return None
    i = len(rel) - 1 - rel[::-1].index("rawdata")
    return root.joinpath(*rel[:i], "derivatives", *rel[i + 1:])


def _base(name: Name) -> str:
    return name.stem[: -len(name.suffix) - 1] if name.suffix == "ct" else name.stem


def _derivative_matches(ct: Name, cand: Name, wanted_suffixes: tuple[str, ...]) -> int:
    """How well a derivative file name belongs to this CT: 2 exact, 1 same subject/session, 0 no."""
    if cand.suffix not in wanted_suffixes:
        return 0
    if not ct.entities:  # non-BIDS: verse004 → verse004_seg / verse004_ctd / verse004_seg-vert_msk
        return 2 if cand.free == (_base(ct),) and cand.without("seg") == () else 0
    if cand.without("seg") == ct.entities and cand.free == ct.free:
        return 2
    same = all(cand.get(k) == ct.get(k) for k in ("sub", "ses"))
    return 1 if same else 0


def _pick(ct: Name, files: list[tuple[Path, Name]], suffixes: tuple[str, ...], seg_order: tuple[str | None, ...],
          single_ct: bool) -> tuple[Path | None, list[Path]]:
    """The best matching file (exact entity match first; a same-subject one only when the subject has a
    single CT) and the matching files of other `seg` kinds (reported, not used)."""
    best: tuple[int, int, Path] | None = None
    others = []
    for path, cand in files:
        score = _derivative_matches(ct, cand, suffixes)
        if score == 0 or (score == 1 and not single_ct):
            continue
        seg = cand.get("seg")
        if seg not in seg_order:
            others.append(path)
            continue
        rank = (score, -seg_order.index(seg))
        if best is None or rank > best[:2]:
            best = (*rank, path)
    return (best[2] if best else None), others


def find_cases(root: Path) -> tuple[list[Case], list[Problem]]:
    """Every CT under `root` with its mask and centroid file; problems for masks that have no CT."""
    listing = dict(_walk(root))
    cts: list[tuple[Path, Name]] = []
    for folder, names in listing.items():
        if "derivatives" in folder.relative_to(root).parts:
            continue
        for file_name in sorted(names):
            stem = nifti_stem(file_name)
            if stem is not None and _is_ct(parse_name(stem), names):
                cts.append((folder / file_name, parse_name(stem)))
    per_subject: dict[tuple[Path, str, str | None], int] = {}
    for path, name in cts:
        group = (path.parent, name.get("sub") or _base(name), name.get("ses"))
        per_subject[group] = per_subject.get(group, 0) + 1
    cases: list[Case] = []
    used: set[Path] = set()
    if not cts:
        return _label_only_cases(root, listing)
    for path, name in cts:
        folders = [path.parent]
        if (other := _counterpart(path.parent, root)) is not None and other in listing:
            folders.insert(0, other)
        nifti, jsons = [], []
        for folder in folders:
            for f in sorted(listing[folder]):
                if f.endswith(".json"):
                    jsons.append((folder / f, parse_name(f[:-5])))
                elif (stem := nifti_stem(f)) is not None and folder / f != path:
                    nifti.append((folder / f, parse_name(stem)))
        single = per_subject[(path.parent, name.get("sub") or _base(name), name.get("ses"))] == 1
        mask, other_masks = _pick(name, nifti, MASK_SUFFIXES, ("vert", None), single)
        ctd, _ = _pick(name, jsons, ("ctd",), ("vert", "subreg", None), single)
        subject = f"sub-{name.get('sub')}" if name.get("sub") else _base(name)
        session = name.get("ses")
        rel_dirs = path.parent.relative_to(root).parts
        cases.append(Case(path, subject + (f"_ses-{session}" if session else ""), subject, session,
                          _split_of(rel_dirs), mask, ctd, other_masks))
        used.update(p for p in (mask, ctd) if p is not None)
    _unique_keys(cases, root)
    return cases, _orphans(root, listing, used)


def _is_vertebra_mask(name: Name) -> bool:
    return name.suffix == "msk" and name.get("seg") == "vert"


def _label_only_cases(root: Path, listing: dict[Path, set[str]]) -> tuple[list[Case], list[Problem]]:
    """A release with derivatives but no CT (masks and centroids only): each vertebra mask is a case of its own,
    shown as labels, with the centroid file of the same subject (and session) beside it."""
    cases = []
    for folder, names in listing.items():
        jsons = [(folder / f, parse_name(f[:-5])) for f in sorted(names) if f.endswith(".json")]
        for file_name in sorted(names):
            stem = nifti_stem(file_name)
            if stem is None or not _is_vertebra_mask(name := parse_name(stem)):
                continue
            as_ct = Name(stem, name.without("seg"), "ct", name.free)
            ctd, _ = _pick(as_ct, jsons, ("ctd",), ("vert", "subreg", None), True)
            subject = f"sub-{name.get('sub')}" if name.get("sub") else stem
            session = name.get("ses")
            cases.append(Case(folder / file_name, subject + (f"_ses-{session}" if session else ""), subject, session,
                              _split_of(folder.relative_to(root).parts), folder / file_name, ctd, label_only=True))
    _unique_keys(cases, root)
    return cases, []


def _unique_keys(cases: list[Case], root: Path) -> None:
    """Keys are the subject (+ session); several CTs of one subject get their full base name instead,
    and a key still shared (e.g. the same subject in two split folders) the CT's relative path."""
    def shared() -> set[str]:
        counts: dict[str, int] = {}
        for case in cases:
            counts[case.key] = counts.get(case.key, 0) + 1
        return {key for key, n in counts.items() if n > 1}

    for case in [c for c in cases if c.key in shared()]:
        case.key = _base(parse_name(nifti_stem(case.ct.name) or case.ct.name))
    for case in [c for c in cases if c.key in shared()]:
        rel = case.ct.relative_to(root)
        case.key = str(rel.with_name(nifti_stem(rel.name) or rel.name).as_posix())


def _orphans(root: Path, listing: dict[Path, set[str]], used: set[Path]) -> list[Problem]:
    problems = []
    for folder, names in listing.items():
        for file_name in sorted(names):
            stem = nifti_stem(file_name)
            if stem is None:
                continue
            name = parse_name(stem)
            if name.suffix == "msk" and name.get("seg") == "vert" and folder / file_name not in used:
                problems.append(Problem(str((folder / file_name).relative_to(root)),
                                        "vertebra mask without a CT (no matching …_ct.nii.gz found); not indexed"))
    return problems


def looks_like_verse(root: Path) -> bool:
    """Cheap detection: a `*_ct.nii[.gz]` under rawdata/ with a derivatives/ beside it, a folder holding a CT
    together with a mask or centroid file (flat layout), or a VerSe vertebra mask (`…_seg-vert_msk.nii.gz`, also
    in a derivatives-only release). Looks at a bounded number of folders."""
    for n, (folder, names) in enumerate(_walk(root)):
        if n > DETECT_MAX_DIRS:
            return False
        if any(_is_vertebra_mask(parse_name(s)) for f in names if (s := nifti_stem(f)) is not None):
            return True  # VerSe's own mask naming (…_seg-vert_msk), with or without its CT
        cts = [s for f in names if (s := nifti_stem(f)) is not None and _is_ct(parse_name(s), names)]
        if not cts:
            continue
        derivatives = _counterpart(folder, root)
        if derivatives is not None and derivatives.is_dir():
            return True
        if any(f.endswith(DERIVED_ENDINGS) for f in names):
            return True
    return False
