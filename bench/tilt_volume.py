"""Cost of straightening a gantry-tilted series (app.datasets.dicom.regrid), against what any series costs.

Ours: the first view of the real tilted Philips phantom (54 × 512×512, 18.5°): decode every file, straighten into
the 512×600×54 grid, reorient (`regrid.load_straight`). Bare: the same files decoded and stacked as an untilted
series is (`pixels.load_volume`: decode, stack, reorient): the work every series pays anyway. Also the straightening
step alone with scipy's general resampler (`ndimage.affine_transform`, linear, per slice) for comparison with our
four-slice bilinear shift. Prints seconds (median over runs) and ratios.

    python bench/tilt_volume.py [--runs 3] [--root ../shared/realdata/dicom_ct_tilt/philips_tilt_phantom]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from scipy import ndimage

    from app.datasets.dicom import pixels, regrid
    from app.datasets.dicom.adapter import DicomAdapter

    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--root", type=Path, default=here.parent / "shared/realdata/dicom_ct_tilt/philips_tilt_phantom")
    args = ap.parse_args()
    [item] = DicomAdapter().scan(args.root).items
    files = [f"{item.meta['folder']}/{n}" if item.meta["folder"] else n for n in item.meta["files"]]
    shape = (item.height, item.width)
    spec = item.meta["regrid"]
    grid = regrid.grid_of(spec, (item.width, item.height))
    affine = np.asarray(item.meta["affine"], float)
    stack = pixels.load_stack(args.root, files, None, shape)

    def scipy_straighten() -> None:
        for k in range(stack.shape[0]):
            ndimage.affine_transform(stack[k].astype(np.float32), np.ones(2),
                                     offset=(grid.low[1] - grid.offsets[k, 1], grid.low[0] - grid.offsets[k, 0]),
                                     output_shape=grid.shape[1::-1], order=1, mode="constant", cval=-1024.0)

    ours = timed(lambda: regrid.load_straight(args.root, files, None, shape, spec), args.runs)
    bare = timed(lambda: pixels.load_volume(args.root, files, None, shape, affine), args.runs)
    step = timed(lambda: regrid.straighten(stack, grid), args.runs)
    general = timed(scipy_straighten, args.runs)
    print(f"{item.meta['geometry']}; grid {grid.shape}")
    print(f"first view, straightened: {ours:.3f} s   as an untilted series: {bare:.3f} s   ratio {ours / bare:.2f}")
    print(f"straighten step: ours {step:.3f} s   scipy affine_transform {general:.3f} s   ratio {step / general:.2f}")


if __name__ == "__main__":
    main()
