"""Ingest benchmark (not a test): `medview ingest` on the full-size DeepLesion tree against the bare floor.

    python bench/ingest_deeplesion.py [--tree DIR] [--floor-only] [--repeat N] [--keep]

Whole process against whole process, in the same run, on a warm page cache:
- FLOOR: a fresh Python process that parses DL_info.csv with the csv module, lists the tree
  (os.scandir of Images_png and of every series folder), and inserts one row per lesion row with ONE
  SQLAlchemy Core `conn.execute(insert(table), rows)` into a fresh SQLite file;
- OURS: `medview ingest TREE --kind deeplesion --name bench` into a fresh SQLite database, then the same
  command again on the same database (re-ingest: unchanged items are skipped).
Prints wall and CPU (user + system) times, best of --repeat interleaved runs, and floor/ours (target ≥ 0.5
on wall time, issue 13; the CPU ratio is steadier when other work shares the host). The default tree,
/tmp/medview-bench/deeplesion-full, is generated first when missing (bench/make_full_deeplesion.py).
Both processes run this interpreter (the venv's), and `medview` runs as `python -m app.cli` with
PYTHONPATH set to this checkout, so a worktree measures its own code, not the editable install's.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child process: steadier than wall on a shared, busy host
    done: subprocess.CompletedProcess


def _timed(cmd: list[str], **kw) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, done)


def _warm(tree: Path) -> int:
    """Read the table and list every folder once so both contenders see a warm page cache."""
    (tree / "DL_info.csv").read_bytes()
    files = 0
    with os.scandir(tree / "Images_png") as series_dirs:
        for entry in series_dirs:
            with os.scandir(entry.path) as names:
                files += sum(1 for _ in names)
    return files


def floor(tree: Path, work: Path, i: int) -> Run:
    """One run of the bare-floor subprocess."""
    run = _timed([sys.executable, "-c", FLOOR, str(tree), str(work / f"floor-{i}.db")])
    if run.done.returncode != 0:
        raise SystemExit(f"floor process failed:\n{run.done.stderr}")
    rows, files, present = (int(v) for v in run.done.stdout.split())
    print(f"  floor     run {i + 1}: {run.wall:6.2f} s wall, {run.cpu:6.2f} s cpu  ({rows:,} rows, "
          f"{files:,} files listed, {present:,} key slices present)")
    return run


def ingest(tree: Path, db: Path, data_dir: Path) -> Run:
    env = {**os.environ, "MEDVIEW_DATABASE_URL": f"sqlite:///{db}", "MEDVIEW_DATA_DIR": str(data_dir),
           "MEDVIEW_DATA_ROOTS": str(tree.parent), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "app.cli", "ingest", str(tree), "--kind", "deeplesion", "--name", "bench"]
    return _timed(cmd, env=env, cwd=data_dir)


def _report(label: str, run: Run) -> bool:
    if run.done.returncode != 0:
        print(f"  {label}: FAILED (exit {run.done.returncode}) after {run.wall:.2f} s")
        print("  " + "\n  ".join((run.done.stderr or run.done.stdout).strip().splitlines()[-15:]))
        return False
    summary = run.done.stdout.strip().splitlines()
    print(f"  {label}: {run.wall:6.2f} s wall, {run.cpu:6.2f} s cpu  {summary[-1] if summary else ''}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=DEFAULT_TREE)
    parser.add_argument("--floor-only", action="store_true", help="measure only the bare floor")
    parser.add_argument("--repeat", type=int, default=1,
                        help="floor and first-ingest runs, interleaved (the best of each is used)")
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
        print("OURS: medview ingest --kind deeplesion (fresh process, fresh database), runs interleaved")
        floors: list[Run] = []
        firsts: list[Run] = []
        for i in range(max(1, args.repeat)):
            floors.append(floor(tree, work, i))
            if args.floor_only:
                continue
            data_dir = work / f"data-{i}"
            data_dir.mkdir()
            firsts.append(ingest(tree, work / f"medview-{i}.db", data_dir))
            if not _report(f"ingest    run {i + 1}", firsts[-1]):
                return 2
        floor_wall, floor_cpu = min(r.wall for r in floors), min(r.cpu for r in floors)
        if args.floor_only:
            print(f"floor: {floor_wall:.2f} s wall, {floor_cpu:.2f} s cpu")
            return 0
        again = ingest(tree, work / "medview-0.db", work / "data-0")
        if not _report("re-ingest      ", again):
            return 2
        ours_wall, ours_cpu = min(r.wall for r in firsts), min(r.cpu for r in firsts)
        ratio = floor_wall / ours_wall
        verdict = "meets" if ratio >= TARGET else "BELOW"
        print()
        print(f"floor      {floor_wall:7.2f} s wall  {floor_cpu:7.2f} s cpu")
        print(f"ingest     {ours_wall:7.2f} s wall  {ours_cpu:7.2f} s cpu   floor/ours = {ratio:.2f} wall "
              f"({verdict} the {TARGET} target), {floor_cpu / ours_cpu:.2f} cpu")
        print(f"re-ingest  {again.wall:7.2f} s wall  {again.cpu:7.2f} s cpu   floor/re-ingest = "
              f"{floor_wall / again.wall:.2f} wall, {floor_cpu / again.cpu:.2f} cpu")
        return 0
    finally:
        if args.keep:
            print(f"(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
