"""Export benchmark (not a test): `medview export` against a bare floor, whole process against whole process.

    python bench/export.py [--dl-tree DIR] [--pcam-root DIR] [--skip-pcam] [--skip-dl] [--skip-subvolumes]

- COCO and CSV of the full-size DeepLesion tree (32,735 lesions, generated like bench/make_full_deeplesion.py)
  and of PCam's 262,144-patch train split (generated like bench/make_pcam_1m.py, with 262,144 train patches):
  OURS = `medview export --dataset D --format coco|csv [--split train] OUT` in a fresh process; FLOOR = a fresh
  Python process that reads the same rows with ONE SQL query and writes them with `json.dump` (COCO-shaped dicts)
  or `csv.writer`. Target floor/ours ≥ 0.5.
- DeepLesion lesion sub-volumes (`--format nifti`) on a smaller generated tree: FLOOR = a fresh process that,
  for each sub-volume our export wrote, decodes the same PNGs with OpenCV, subtracts 32768 and saves the stack
  with `nibabel.save` (same affine). Target ≥ 0.7.
Each measurement is the best of `--repeat` runs on a warm page cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BENCH = Path("/tmp/medview-bench")
PYTHON = sys.executable

FLOOR_DL = r'''
import csv, json, sys
from sqlalchemy import create_engine, text
db, fmt, out = sys.argv[1:4]
engine = create_engine(f"sqlite:///{db}")
with engine.connect() as conn:
    rows = conn.execute(text(
        "SELECT i.id, i.key, i.width, i.height, i.split, i.label, i.review_status, a.id, a.label, a.geometry "
        "FROM items i JOIN annotations a ON a.item_id = i.id JOIN datasets d ON d.id = i.dataset_id "
        "WHERE d.name = 'dl' AND a.superseded_by IS NULL AND a.retired_at IS NULL ORDER BY i.id, a.id")).all()
if fmt == "csv":
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "key", "split", "label", "review_status"])
        last = None
        for r in rows:
            if r[0] != last:
                w.writerow(r[:2] + r[4:7])
                last = r[0]
else:
    images, anns, seen = [], [], set()
    for r in rows:
        if r[0] not in seen:
            seen.add(r[0])
            images.append({"id": r[0], "file_name": r[1], "width": r[2], "height": r[3]})
        g = json.loads(r[9])
        x1, y1, x2, y2 = g["bbox"]
        anns.append({"id": r[7], "image_id": r[0], "category_id": int(r[8]), "bbox": [x1, y1, x2 - x1, y2 - y1],
                     "keypoints": [v for p in g["long"] + g["short"] for v in (*p, 2)]})
    with open(out, "w") as fh:
        json.dump({"images": images, "annotations": anns, "categories": []}, fh)
print(len(rows))
'''

FLOOR_PCAM = r'''
import csv, json, sys
from sqlalchemy import create_engine, text
db, fmt, out = sys.argv[1:4]
engine = create_engine(f"sqlite:///{db}")
with engine.connect() as conn:
    rows = conn.execute(text(
        "SELECT i.id, i.key, i.width, i.height, i.split, i.label, i.review_status FROM items i "
        "JOIN datasets d ON d.id = i.dataset_id WHERE d.name = 'pcam' AND i.split = 'train' ORDER BY i.id")).all()
if fmt == "csv":
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "key", "split", "label", "review_status"])
        w.writerows((r[0], r[1], r[4], r[5], r[6]) for r in rows)
else:
    images = [{"id": r[0], "file_name": r[1], "width": r[2], "height": r[3], "category_id": int(r[5]) + 1}
              for r in rows]
    with open(out, "w") as fh:
        json.dump({"images": images, "annotations": [], "categories": []}, fh)
print(len(rows))
'''

FLOOR_SUBVOLUMES = r'''
import sys
from pathlib import Path
import cv2, nibabel as nib, numpy as np
tree, ours, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
spacing = {}
import csv
for r in csv.DictReader(open(tree / "DL_info.csv", newline="")):
    spacing[r["File_name"][:12]] = [float(v) for v in r["Spacing_mm_px_"].split(",")]
n = 0
for f in sorted(ours.glob("*.nii.gz")):
    series, _, span = f.name[:-7].rpartition("_")
    first, last = (int(v) for v in span.split("-"))
    ims = [(cv2.imread(str(tree / "Images_png" / series / f"{k:03d}.png"), -1).astype(np.int32) - 32768
            ).astype(np.int16) for k in range(first, last + 1)]
    sx, sy, sz = spacing[series]
    T = np.array([[0, -sy, 0, 0], [-sx, 0, 0, 0], [0, 0, -sz, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.stack(ims, axis=-1), T), str(out / f.name))
    n += 1
print(n)
'''


def env_for(root: Path) -> dict[str, str]:
    return {**os.environ, "MEDVIEW_DATABASE_URL": f"sqlite:///{root / 'medview.db'}",
            "MEDVIEW_DATA_DIR": str(root / "data"), "MEDVIEW_DATA_ROOTS": str(root)}


def medview(root: Path, *args: str) -> None:
    subprocess.run([PYTHON, "-m", "app.cli", *args], env=env_for(root), cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)


def best(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def ensure_dl(root: Path, scale: float) -> Path:
    """The generated tree under root/tree, ingested as `dl` into root/medview.db (both cached)."""
    from bench.make_full_deeplesion import make_tree

    tree = root / "tree"
    make_tree(tree, scale=scale)
    if not (root / ".ingested").is_file():
        (root / "medview.db").unlink(missing_ok=True)
        medview(root, "ingest", str(tree), "--kind", "deeplesion", "--name", "dl", "--quiet")
        (root / ".ingested").write_text("ok\n")
    return tree


def ensure_pcam(root: Path) -> None:
    if (root / ".ingested").is_file():
        return
    from app.datasets.pcam.synth import make_large_pcam

    shutil.rmtree(root, ignore_errors=True)
    tree = root / "tree"
    make_large_pcam(tree, n_train=262_144)
    medview(root, "ingest", str(tree), "--kind", "pcam", "--name", "pcam", "--quiet")
    (root / ".ingested").write_text("ok\n")


def compare(label: str, root: Path, floor_script: str, dataset: str, fmt: str, filters: list[str],
            repeat: int, target: float) -> float:
    with tempfile.TemporaryDirectory(dir=root) as work:
        out = Path(work)
        suffix = "json" if fmt == "coco" else "csv"
        floor = best(repeat, lambda: subprocess.run(
            [PYTHON, "-c", floor_script, str(root / "medview.db"), fmt, str(out / f"floor.{suffix}")],
            check=True, stdout=subprocess.DEVNULL))
        ours = best(repeat, lambda: medview(root, "export", "--dataset", dataset, "--format", fmt, *filters,
                                            "--quiet", str(out / "ours")))
    ratio = floor / ours
    print(f"{label:<34} floor {floor:7.2f} s   ours {ours:7.2f} s   floor/ours {ratio:5.2f} "
          f"(target ≥ {target}) {'ok' if ratio >= target else 'BELOW'}", flush=True)
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dl-root", type=Path, default=BENCH / "export-dl")
    parser.add_argument("--pcam-root", type=Path, default=BENCH / "export-pcam")
    parser.add_argument("--subvolume-root", type=Path, default=BENCH / "export-dl-small")
    parser.add_argument("--subvolume-scale", type=float, default=0.002)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-dl", action="store_true")
    parser.add_argument("--skip-pcam", action="store_true")
    parser.add_argument("--skip-subvolumes", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_dl:
        ensure_dl(args.dl_root, 1.0)
        for fmt in ("coco", "csv"):
            compare(f"DeepLesion 32,735 lesions {fmt}", args.dl_root, FLOOR_DL, "dl", fmt, [], args.repeat, 0.5)
    if not args.skip_pcam:
        ensure_pcam(args.pcam_root)
        for fmt in ("coco", "csv"):
            compare(f"PCam 262,144 patches {fmt}", args.pcam_root, FLOOR_PCAM, "pcam", fmt, ["--split", "train"],
                    args.repeat, 0.5)
    if not args.skip_subvolumes:
        root = args.subvolume_root
        tree = ensure_dl(root, args.subvolume_scale)
        with tempfile.TemporaryDirectory(dir=root) as work:
            ours_dir, floor_dir = Path(work) / "ours", Path(work) / "floor"
            floor_dir.mkdir()
            ours = best(args.repeat, lambda: medview(root, "export", "--dataset", "dl", "--format", "nifti",
                                                     "--quiet", str(ours_dir)))
            count = len(list(ours_dir.glob("*.nii.gz")))
            floor = best(args.repeat, lambda: subprocess.run(
                [PYTHON, "-c", FLOOR_SUBVOLUMES, str(tree), str(ours_dir), str(floor_dir)], check=True,
                stdout=subprocess.DEVNULL))
        ratio = floor / ours
        print(f"{f'DeepLesion {count:,} sub-volumes nifti':<34} floor {floor:7.2f} s   ours {ours:7.2f} s   "
              f"floor/ours {ratio:5.2f} (target ≥ 0.7) {'ok' if ratio >= 0.7 else 'BELOW'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
