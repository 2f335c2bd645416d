"""A PCam tree with a 1,048,576-patch train split, indexed into its own SQLite file (for the grid benches).

    python bench/make_pcam_1m.py [--root /tmp/medview-bench/pcam-1m] [--force]

The train `x` is created with h5py without writing its chunks (every patch reads as zeros, the file stays
tiny); y and the meta CSV are written in full, so labels and slides (270 per split) are realistic for counts.
valid/test are 32,768 real-looking patches each. The tree and `medview.db` are cached under --root and reused
while `.complete` exists. Indexing runs the normal `medview ingest` in a subprocess.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_ROOT = Path("/tmp/medview-bench/pcam-1m")
N_TRAIN = 1_048_576


def paths(root: Path) -> tuple[Path, Path]:
    """(tree, database file) under root."""
    return root / "tree", root / "medview.db"


def env_for(root: Path) -> dict[str, str]:
    tree, db = paths(root)
    return {**os.environ, "MEDVIEW_DATABASE_URL": f"sqlite:///{db}", "MEDVIEW_DATA_DIR": str(root / "data"),
            "MEDVIEW_DATA_ROOTS": str(root)}


def ensure(root: Path = DEFAULT_ROOT, force: bool = False) -> tuple[Path, dict[str, str]]:
    """The indexed database (generating and ingesting when missing) and the environment to serve it."""
    tree, db = paths(root)
    done = root / ".complete"
    if done.is_file() and db.is_file() and not force:
        return db, env_for(root)
    shutil.rmtree(root, ignore_errors=True)
    tree.mkdir(parents=True)
    from app.datasets.pcam.synth import make_large_pcam

    start = time.perf_counter()
    counts = make_large_pcam(tree, n_train=N_TRAIN)
    print(f"generated {sum(counts.values()):,} patches in {time.perf_counter() - start:.1f} s", flush=True)
    medview = REPO / ".venv" / "bin" / "medview"
    start = time.perf_counter()
    subprocess.run([str(medview), "ingest", str(tree), "--kind", "pcam", "--name", "pcam-1m", "--quiet"],
                   env=env_for(root), cwd=root, check=True)
    print(f"ingested in {time.perf_counter() - start:.1f} s ({db.stat().st_size / 1e6:.0f} MB)", flush=True)
    done.write_text("ok\n")
    return db, env_for(root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--force", action="store_true", help="regenerate and re-index")
    args = ap.parse_args(argv)
    db, _ = ensure(args.root.expanduser().resolve(), args.force)
    print(db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
