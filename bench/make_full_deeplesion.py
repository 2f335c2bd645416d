"""Generate the full-size synthetic DeepLesion tree (32,735 lesion rows, ~928k hard-linked slices).

    python bench/make_full_deeplesion.py OUT_DIR [--source PNG] [--seed N] [--scale F]

Every slice is a hard link to a copy of one 16-bit PNG (by default the real DeepLesion key slice in
../shared/realdata, else a phantom slice), so the tree needs ~60 MB. Re-running with the same
arguments returns at once (OUT_DIR/.complete).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.datasets.deeplesion.synth import HU_OFFSET, ct_phantom_slice  # noqa: E402
from app.datasets.deeplesion.synth_full import generate_full_size_tree  # noqa: E402

REAL_SOURCE = REPO.parent / "shared" / "realdata" / "deeplesion" / "Images_png" / "002648_01_01" / "061.png"
PHANTOM_SOURCE = ".phantom_source.png"


def default_source(out_dir: Path) -> Path:
    """The real DeepLesion slice when present, else a phantom abdomen slice written into out_dir."""
    if REAL_SOURCE.is_file():
        return REAL_SOURCE
    path = Path(out_dir) / PHANTOM_SOURCE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        hu = ct_phantom_slice(280.0, rng=np.random.default_rng(0))
        if not cv2.imwrite(str(path), (hu.astype(np.int32) + HU_OFFSET).astype(np.uint16)):
            raise OSError(f"cannot write {path}")
    return path


def make_tree(out_dir: Path, source: Path | None = None, *, seed: int = 0, scale: float = 1.0) -> dict:
    return generate_full_size_tree(out_dir, source or default_source(out_dir), seed=seed, scale=scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--source", type=Path, help="16-bit PNG every slice links to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every count (e.g. 0.01)")
    args = parser.parse_args(argv)
    if args.source is not None and not args.source.is_file():
        parser.error(f"--source {args.source}: no such file")
    counts = make_tree(args.out_dir, args.source, seed=args.seed, scale=args.scale)
    state = "already complete, reused" if counts["reused"] else f"generated in {counts['seconds']:.1f} s"
    print(f"{counts['root']}: {state}")
    for name in ("rows", "key_slices", "patients", "studies", "series", "files", "link_sources"):
        print(f"  {name:<13} {counts[name]:>9,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
