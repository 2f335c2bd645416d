"""Ingest benchmark (not a test): `medview ingest` on the full-size DeepLesion tree against the bare floor.

    python bench/ingest_deeplesion.py [--tree DIR] [--floor-only] [--repeat N] [--keep]

Whole process against whole process, in the same run, on a warm page cache:
- FLOOR: a fresh Python process that parses DL_info.csv with the csv module, lists the tree
  (os.scandir of Images_png and of every series folder), and inserts one row per lesion row with ONE
  SQLAlchemy Core `conn.execute(insert(table), rows)` into a fresh SQLite file;
- OURS: `medview ingest TREE --kind deeplesion --name bench` into a fresh SQLite database, then the same
  command again on the same database (re-ingest: unchanged items are skipped).
Prints the wall times and floor/ours (target ≥ 0.5, issue 13). The default tree,
/tmp/medview-bench/deeplesion-full, is generated first when missing (bench/make_full_deeplesion.py).
Both processes run this interpreter (the venv's), and `medview` runs as `python -m app.cli` with
PYTHONPATH set to this checkout, so a worktree measures its own code, not the editable install's.
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
DEFAULT_TREE = Path("/tmp/medview-bench/deeplesion-full")
TARGET = 0.5

FLOOR = r'''
import csv, os, sys
from pathlib import Path
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, insert

tree, db = Path(sys.argv[1]), sys.argv[2]
with open(tree / "DL_info.csv", newline="", encoding="utf-8") as fh:
    reader = csv.DictReader(fh)
    columns = list(reader.fieldnames)
    rows = list(reader)
listing = {}
with os.scandir(tree / "Images_png") as series_dirs:
    for entry in series_dirs:
        if entry.is_dir():
            with os.scandir(entry.path) as files:
                listing[entry.name] = {f.name for f in files}
ints = {"Patient_index", "Study_index", "Series_ID", "Key_slice_index", "Coarse_lesion_type",
        "Possibly_noisy", "Train_Val_Test"}
types = {c: Integer if c in ints else Float if c == "Patient_age" else String for c in columns}
meta = MetaData()
table = Table("lesion", meta, Column("id", Integer, primary_key=True),
              *(Column(c.lower(), types[c]) for c in columns), Column("present", Integer))
records = []
for r in rows:
    series, _, name = r["File_name"].rpartition("_")
    rec = {c.lower(): int(float(r[c])) if c in ints else float(r[c]) if c == "Patient_age" else r[c]
           for c in columns}
    rec["present"] = int(name in listing.get(series, ()))
    records.append(rec)
engine = create_engine(f"sqlite:///{db}")
meta.create_all(engine)
with engine.begin() as conn:
    conn.execute(insert(table), records)
engine.dispose()
print(len(records), sum(len(v) for v in listing.values()), sum(r["present"] for r in records))
'''


def _timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.perf_counter() - start, done


def _warm(tree: Path) -> int:
    """Read the table and list every folder once so both contenders see a warm page cache."""
    (tree / "DL_info.csv").read_bytes()
    files = 0
    with os.scandir(tree / "Images_png") as series_dirs:
        for entry in series_dirs:
            with os.scandir(entry.path) as names:
                files += sum(1 for _ in names)
    return files


def floor(tree: Path, work: Path, repeat: int = 1) -> float:
    """Best-of-`repeat` wall time of the bare-floor subprocess."""
    best = float("inf")
    for i in range(repeat):
        db = work / f"floor-{i}.db"
        seconds, done = _timed([sys.executable, "-c", FLOOR, str(tree), str(db)])
        if done.returncode != 0:
            raise SystemExit(f"floor process failed:\n{done.stderr}")
        rows, files, present = (int(v) for v in done.stdout.split())
        best = min(best, seconds)
        print(f"  floor run {i + 1}: {seconds:6.2f} s  ({rows:,} rows, {files:,} files listed, "
              f"{present:,} key slices present)")
    return best


def ingest(tree: Path, db: Path, data_dir: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "MEDVIEW_DATABASE_URL": f"sqlite:///{db}", "MEDVIEW_DATA_DIR": str(data_dir),
           "MEDVIEW_DATA_ROOTS": str(tree.parent), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "app.cli", "ingest", str(tree), "--kind", "deeplesion", "--name", "bench"]
    return _timed(cmd, env=env, cwd=data_dir)


def _report(label: str, seconds: float, done: subprocess.CompletedProcess) -> bool:
    if done.returncode != 0:
        print(f"{label}: FAILED (exit {done.returncode}) after {seconds:.2f} s")
        print("  " + "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-15:]))
        return False
    summary = done.stdout.strip().splitlines()
    print(f"  {label}: {seconds:6.2f} s  {summary[-1] if summary else ''}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=DEFAULT_TREE)
    parser.add_argument("--floor-only", action="store_true", help="measure only the bare floor")
    parser.add_argument("--repeat", type=int, default=1, help="floor runs (best is used)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary databases")
    args = parser.parse_args(argv)
    tree = args.tree.expanduser().resolve()
    if not (tree / "DL_info.csv").is_file() or not (tree / ".complete").is_file():
        if tree != DEFAULT_TREE.resolve() and (tree / "DL_info.csv").is_file():
            print(f"using {tree} as it is (no .complete marker)")
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from make_full_deeplesion import make_tree

            print(f"generating the full-size tree in {tree} …", flush=True)
            counts = make_tree(tree)
            print(f"  {counts['rows']:,} rows, {counts['files']:,} files in {counts['seconds']:.1f} s")
    files = _warm(tree)
    print(f"tree {tree}: {files:,} slice files")
    work = Path(tempfile.mkdtemp(prefix="medview-bench-"))
    try:
        print("FLOOR: csv + scandir + one executemany insert into SQLite (fresh process)")
        floor_s = floor(tree, work, max(1, args.repeat))
        if args.floor_only:
            print(f"floor: {floor_s:.2f} s")
            return 0
        data_dir = work / "data"
        data_dir.mkdir()
        db = work / "medview.db"
        print("OURS: medview ingest --kind deeplesion (fresh process, fresh database)")
        ours_s, first = ingest(tree, db, data_dir)
        if not _report("ingest   ", ours_s, first):
            return 2
        again_s, second = ingest(tree, db, data_dir)
        if not _report("re-ingest", again_s, second):
            return 2
        ratio = floor_s / ours_s
        verdict = "meets" if ratio >= TARGET else "BELOW"
        print()
        print(f"floor      {floor_s:7.2f} s")
        print(f"ingest     {ours_s:7.2f} s   floor/ours = {ratio:.2f}  ({verdict} the {TARGET} target)")
        print(f"re-ingest  {again_s:7.2f} s   floor/re-ingest = {floor_s / again_s:.2f}")
        return 0
    finally:
        if args.keep:
            print(f"(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
