"""VerSe plane renders through the in-process Renderer against the bare numpy slice + encode of the same array.

Volume: a spine phantom (`app.datasets.verse.phantom`, drawn at half resolution and doubled) of --shape canonical
voxels at --spacing mm, stored as real VerSe files are (P-I-R axis order, .nii.gz, int16 CT; the mask as uint8
here to keep the bench's memory down — real float64 masks only change the cold mask time).

Ours: `Renderer.render` (validation, cached volume lookup, plane extraction, square-pixel resampling, window,
JPEG q90), each request a slice never asked before, so no response or decoded-image cache can answer it.
Bare: in this process, `vol[...]` of the already-decompressed canonical array → np.clip + cv2.convertScaleAbs →
simplejpeg, at the voxel grid (no resampling); "bare+square" adds the same cv2.resize to square pixels, i.e. the
same output image as ours. "gt" renders each slice again with overlays=gt (the decoded image now cached: mask
plane, vertebra names, blend, JPEG). Prints medians, bare/ours ratios (target ≥ 0.6) and the cold first-slice times.

    python bench/verse.py [--shape 512 512 240] [--spacing 0.7 0.7 1.25] [--slices 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import simplejpeg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.datasets.base import ItemRef, View  # noqa: E402
from app.datasets.roots import DataRoots  # noqa: E402
from app.datasets.verse.adapter import VerseAdapter  # noqa: E402
from app.datasets.verse.phantom import spine_phantom  # noqa: E402
from app.datasets.verse.synth import _store  # noqa: E402
from app.datasets.volumes import VolumeCache  # noqa: E402
from app.imaging.volume import PLANE_AXIS, plane_pixel_mm  # noqa: E402
from app.pixels import AnnotationView, ItemTarget, PixelStore  # noqa: E402
from app.render.service import Renderer, RenderParams  # noqa: E402

WINDOW = (-450, 1050)
PLANES = ("axial", "coronal", "sagittal")


def write_sample(root: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> None:
    half = tuple(max(1, n // 2) for n in shape)
    phantom = spine_phantom(half, tuple(2 * s for s in spacing), 14, np.random.default_rng(0))
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -np.array(shape) * np.array(spacing) / 2
    for name, data, folder in (("sub-bench_ct", phantom.ct, "rawdata"), ("sub-bench_seg-vert_msk", phantom.mask,
                                                                          "derivatives")):
        full = data.repeat(2, 0).repeat(2, 1).repeat(2, 2)[: shape[0], : shape[1], : shape[2]]
        stored, stored_affine = _store(full, affine, "PIR")
        (root / folder / "sub-bench").mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(stored), stored_affine),
                 str(root / folder / "sub-bench" / f"{name}.nii.gz"))
    # centroids in the canonical frame itself (direction R-A-S): body centres of the half-resolution phantom, doubled
    entries: list[dict] = [{"direction": ["R", "A", "S"]}]
    for label in phantom.labels:
        i, j, k = np.argwhere(phantom.bodies == label).mean(axis=0) * 2 + 0.5
        entries.append({"label": label, "X": float(i), "Y": float(j), "Z": float(k)})
    (root / "derivatives/sub-bench/sub-bench_seg-subreg_ctd.json").write_text(json.dumps(entries))


def bare_plane(vol: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The plain numpy view of one display plane (orientation only)."""
    if plane == "axial":
        return vol[::-1, ::-1, index].T
    if plane == "coronal":
        return vol[::-1, index, ::-1].T
    return vol[index, ::-1, ::-1].T


def bare(vol: np.ndarray, spacing, plane: str, index: int, square: bool) -> bytes:
    view = np.ascontiguousarray(bare_plane(vol, plane, index))
    if square:
        row_mm, col_mm = plane_pixel_mm(spacing, plane)
        pixel = min(row_mm, col_mm)
        size = (round(view.shape[1] * col_mm / pixel), round(view.shape[0] * row_mm / pixel))
        if size != (view.shape[1], view.shape[0]):
            view = cv2.resize(view, size, interpolation=cv2.INTER_LINEAR)
    low, high = WINDOW
    alpha = 255.0 / (high - low)
    grey = cv2.convertScaleAbs(np.clip(view, low, high), alpha=alpha, beta=-low * alpha)
    return simplejpeg.encode_jpeg(grey[:, :, None], quality=90, colorspace="GRAY")


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 240])
    ap.add_argument("--spacing", type=float, nargs=3, default=[0.7, 0.7, 1.25])
    ap.add_argument("--slices", type=int, default=40, help="distinct slices timed per plane")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="verse-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        write_sample(root, tuple(args.shape), tuple(args.spacing))
        print(f"sample written in {time.perf_counter() - t:.1f} s: {'×'.join(map(str, args.shape))} voxels, "
              f"{'×'.join(map(str, args.spacing))} mm, P-I-R, "
              f"{(root / 'rawdata/sub-bench/sub-bench_ct.nii.gz').stat().st_size / 1e6:.1f} MB .nii.gz")
        adapter = VerseAdapter()
        t = time.perf_counter()
        [rec] = adapter.scan(root).items
        print(f"ingest scan (headers + centroid JSON): {1000 * (time.perf_counter() - t):.1f} ms")
        ctd = root / "derivatives/sub-bench/sub-bench_seg-subreg_ctd.json"
        ctd.rename(ctd.with_suffix(".off"))
        t = time.perf_counter()
        adapter.scan(root)
        print(f"ingest scan without a centroid file (the mask is decoded to list vertebrae): "
              f"{1000 * (time.perf_counter() - t):.0f} ms")
        ctd.with_suffix(".off").rename(ctd)
        ref = ItemRef(1, root, rec.location, None, rec.meta, rec.width, rec.height, rec.depth, tuple(rec.spacing))
        anns = tuple(AnnotationView(n, 1, a.kind, a.label, None, a.geometry, a.meta)
                     for n, a in enumerate(rec.annotations, 1))
        target = ItemTarget(ref, "verse", tuple(rec.window), 1, anns)
        roots = DataRoots([root])
        pixels = PixelStore(roots, 256 * 1024 * 1024, VolumeCache(1024))
        renderer = Renderer(pixels, 64 * 1024 * 1024)
        cold = timed(renderer.render, target, RenderParams("jpeg", plane="sagittal"))
        cold_mask = timed(renderer.render, target, RenderParams("jpeg", plane="sagittal", overlays="gt"))
        print(f"cold first slice (decompress CT + sagittal JPEG): {1000 * cold:.0f} ms; "
              f"first overlay (decompress mask + draw): {1000 * cold_mask:.0f} ms")
        vol = pixels.volume(target)  # the cached, decompressed CT
        # the same without the decoded-image cache (see the note printed below), sharing the volume cache
        uncached = Renderer(PixelStore(roots, 0, pixels.volumes), 0)
        print(f"\n{'plane':9} {'out px':>9} {'ours ms':>8} {'gt ms':>7} {'no-cache':>8} {'bare ms':>8} {'bare+sq':>8} "
              f"{'ratio':>6} {'ratio sq':>8}")
        for plane in PLANES:
            count = vol.data.shape[PLANE_AXIS[plane]]
            picks = np.linspace(1, count - 2, args.slices).round().astype(int)
            windows = [f"{-450 - n},1050" for n in range(len(picks))]  # never asked before: no response-cache hit
            # one loop per method over the same slices, so none finds the slice's voxels warm in the CPU caches
            ours = [timed(renderer.render, target, RenderParams("jpeg", window=w, plane=plane, slice=int(i)))
                    for i, w in zip(picks, windows, strict=True)]
            gt = [timed(renderer.render, target, RenderParams("jpeg", window=w, plane=plane, slice=int(i),
                                                              overlays="gt"))
                  for i, w in zip(picks, windows, strict=True)]
            nocache = [timed(uncached.render, target, RenderParams("jpeg", window=w, plane=plane, slice=int(i)))
                       for i, w in zip(picks, windows, strict=True)]
            plain = [timed(bare, vol.data, vol.spacing, plane, int(i), False) for i in picks]
            square = [timed(bare, vol.data, vol.spacing, plane, int(i), True) for i in picks]
            image = pixels.image(target, View(plane, int(picks[0])))
            o, g, u, b, s = (statistics.median(x) for x in (ours, gt, nocache, plain, square))
            print(f"{plane:9} {image.pixels.shape[1]:>4}×{image.pixels.shape[0]:<4} {1000 * o:8.2f} {1000 * g:7.2f} "
                  f"{1000 * u:8.2f} {1000 * b:8.2f} {1000 * s:8.2f} {b / o:6.2f} {s / o:8.2f}")
        print("\nratio = bare / ours; ratio sq = bare+square / ours (the same output image: API.md's square pixels).\n"
              "no-cache = ours with the Renderer's decoded-image cache off: keeping every new plane alive costs\n"
              "fresh memory (page faults) per request, more than re-cutting a plane from the cached volume.")


if __name__ == "__main__":
    main()
