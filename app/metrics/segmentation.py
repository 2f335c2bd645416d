"""Segmentation metrics as in the polyp / salient-object toolkits (PraNet's MATLAB eval, PySODMetrics).

``pred`` is a probability map in [0, 1] (float) or a binary mask (bool); ``gt`` is a binary mask (bool or 0/1).
Same shape. Dice, IoU and MAE work in any dimension; wFm, S-measure and E-measure are 2-D measures.

Conventions (documented once, used everywhere):
- Dice / IoU binarise ``pred >= 0.5``; when both masks are empty the score is 1.0, when only one is empty 0.0.
- MAE is ``mean(|pred - gt|)`` on the un-thresholded map.
- Maps are used as given: no min-max rescaling of ``pred`` (the MATLAB toolkits rescale 0..255 images).
- Empty / full ground truth: S-measure and E-measure use their papers' own special cases (see below);
  wFm (undefined on an empty GT: recall has no denominator) follows the Dice convention: 1.0 when the
  binarised prediction is empty too, else 0.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

EPS = float(np.finfo(float).eps)  # MATLAB's eps, as in the reference implementations
THRESHOLD = 0.5
E_THRESHOLDS = np.arange(1, 256) / 255.0


def _prepare(pred: ArrayLike, gt: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred)
    g = np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"pred shape {p.shape} differs from gt shape {g.shape}")
    if g.dtype != bool:
        if not np.all((g == 0) | (g == 1)):
            raise ValueError("gt must be binary (bool or 0/1)")
        g = g.astype(bool)
    p = p.astype(float)
    if not np.all(np.isfinite(p)) or (p.size and (p.min() < 0.0 or p.max() > 1.0)):
        raise ValueError("pred must hold finite values in [0, 1]")
    return p, g


def _prepare_2d(pred: ArrayLike, gt: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, g = _prepare(pred, gt)
    if p.ndim != 2 or p.size == 0:
        raise ValueError(f"this measure needs a non-empty 2-D map, got shape {p.shape}")
    return p, g


def dice(pred: ArrayLike, gt: ArrayLike, threshold: float = THRESHOLD) -> float:
    """Dice = 2|P∩G| / (|P| + |G|) with P = pred >= threshold; 1.0 when both are empty."""
    p, g = _prepare(pred, gt)
    b = p >= threshold
    total = int(b.sum()) + int(g.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(b, g).sum()) / total


def iou(pred: ArrayLike, gt: ArrayLike, threshold: float = THRESHOLD) -> float:
    """IoU (Jaccard) = |P∩G| / |P∪G| with P = pred >= threshold; 1.0 when both are empty."""
    p, g = _prepare(pred, gt)
    b = p >= threshold
    union = int(np.logical_or(b, g).sum())
    return 1.0 if union == 0 else int(np.logical_and(b, g).sum()) / union


def mae(pred: ArrayLike, gt: ArrayLike) -> float:
    """Mean absolute error between the (un-thresholded) map and the mask."""
    p, g = _prepare(pred, gt)
    return float(np.mean(np.abs(p - g))) if p.size else 0.0


def _matlab_gaussian(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``."""
    r = (size - 1) / 2.0
    x, y = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1))
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < EPS * h.max()] = 0.0
    return h / h.sum()


def weighted_f_measure(pred: ArrayLike, gt: ArrayLike, beta2: float = 1.0) -> float:
    """Weighted F-measure (Margolin, Zelnik-Manor & Tal, CVPR 2014), a port of their ``WFb.m``.

    E = |pred - gt|. Pixel dependency: background errors take the error of their nearest GT pixel, the result
    is smoothed with a 7x7 Gaussian (sigma 5, zero padding); on GT pixels the error becomes min(E, smoothed).
    Pixel importance: background errors are weighted by B = 2 - exp(ln(0.5) / 5 * d), d = distance to the GT.
    R = 1 - mean(Ew on GT), P = TPw / (TPw + FPw), wFm = (1 + beta2) R P / (R + beta2 P).
    Empty GT: 1.0 if no pixel of pred is >= 0.5, else 0.0.
    """
    p, g = _prepare_2d(pred, gt)
    if not g.any():
        return 1.0 if not (p >= THRESHOLD).any() else 0.0
    err = np.abs(p - g)
    dist, (ii, jj) = ndimage.distance_transform_edt(~g, return_indices=True)
    err_t = err[ii, jj]  # equals err on GT pixels; the nearest GT pixel's error elsewhere
    err_a = ndimage.correlate(err_t, _matlab_gaussian(), mode="constant", cval=0.0)
    min_e = np.where(g & (err_a < err), err_a, err)
    importance = np.where(g, 1.0, 2.0 - np.exp(np.log(0.5) / 5.0 * dist))
    ew = min_e * importance
    tp_w = g.sum() - ew[g].sum()
    fp_w = ew[~g].sum()
    recall = 1.0 - ew[g].mean()
    precision = tp_w / (EPS + tp_w + fp_w)
    return float((1.0 + beta2) * recall * precision / (EPS + recall + beta2 * precision))


def _object_score(x: np.ndarray) -> float:
    """2 mean / (mean^2 + 1 + std) over the region's values (std with N-1, 0 for a single value)."""
    if x.size == 0:
        return 0.0
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return 2.0 * mean / (mean * mean + 1.0 + std + EPS)


def _ssim(p: np.ndarray, g: np.ndarray) -> float:
    """The S-measure's whole-block SSIM, with its special cases (constant blocks → 1.0 when alpha == beta == 0)."""
    n = p.size
    if n == 0:
        return 0.0
    gd = g.astype(float)
    x, y = p.mean(), gd.mean()
    sx2 = ((p - x) ** 2).sum() / (n - 1 + EPS)
    sy2 = ((gd - y) ** 2).sum() / (n - 1 + EPS)
    sxy = ((p - x) * (gd - y)).sum() / (n - 1 + EPS)
    alpha = 4.0 * x * y * sxy
    beta = (x * x + y * y) * (sx2 + sy2)
    if alpha != 0:
        return float(alpha / (beta + EPS))
    return 1.0 if beta == 0 else 0.0


def _matlab_round(v: float) -> int:
    return int(np.floor(v + 0.5))


def s_measure(pred: ArrayLike, gt: ArrayLike, alpha: float = 0.5) -> float:
    """Structure measure (Fan, Cheng, Liu, Li & Borji, ICCV 2017), a port of ``StructureMeasure.m``.

    S = alpha * S_object + (1 - alpha) * S_region, clipped at 0; alpha = 0.5.
    S_object = u * O(pred on GT) + (1 - u) * O(1 - pred on background), u = GT fraction,
    O = 2 mean / (mean^2 + 1 + std). S_region splits both maps at the GT centroid (1-based, rounded half up as
    MATLAB's ``round``) into four blocks and sums their SSIM weighted by block area.
    Empty GT: 1 - mean(pred); full GT: mean(pred).
    """
    p, g = _prepare_2d(pred, gt)
    u = float(g.mean())
    if u == 0.0:
        return float(1.0 - p.mean())
    if u == 1.0:
        return float(p.mean())
    s_object = u * _object_score(p[g]) + (1.0 - u) * _object_score(1.0 - p[~g])

    h, w = g.shape
    total = g.sum()
    cx = _matlab_round(float((g.sum(axis=0) * np.arange(1, w + 1)).sum() / total))
    cy = _matlab_round(float((g.sum(axis=1) * np.arange(1, h + 1)).sum() / total))
    area = float(h * w)
    w1 = cx * cy / area
    w2 = (w - cx) * cy / area
    w3 = cx * (h - cy) / area
    w4 = 1.0 - w1 - w2 - w3
    s_region = (
        w1 * _ssim(p[:cy, :cx], g[:cy, :cx])
        + w2 * _ssim(p[:cy, cx:], g[:cy, cx:])
        + w3 * _ssim(p[cy:, :cx], g[cy:, :cx])
        + w4 * _ssim(p[cy:, cx:], g[cy:, cx:])
    )
    return max(0.0, float(alpha * s_object + (1.0 - alpha) * s_region))


def e_measure(pred: ArrayLike, gt: ArrayLike) -> float:
    """Enhanced-alignment measure (Fan et al., IJCAI 2018), **mean** variant.

    For a binary map F: phi = 2 (G - mean G)(F - mean F) / ((G - mean G)^2 + (F - mean F)^2),
    E = mean((1 + phi)^2 / 4) over the image (divided by N, not the reference code's N - 1, so a perfect
    prediction scores exactly 1). Empty GT: E = 1 - mean F; full GT: E = mean F.
    The mean variant averages E over the 255 binarisations ``pred >= k/255``, k = 1..255 (threshold 0, which
    marks every pixel foreground, is left out; a binary pred therefore gives E of the mask itself). Chosen over
    the adaptive variant (threshold 2 * mean(pred)) because it does not hinge on one data-dependent cut, which
    degenerates for near-empty maps (an all-zero map becomes all foreground), and it is the "mean E" most
    polyp-segmentation papers tabulate.
    """
    p, g = _prepare_2d(pred, gt)
    n = float(p.size)
    fg = np.sort(p[g])
    bg = np.sort(p[~g])
    fg_on = fg.size - np.searchsorted(fg, E_THRESHOLDS, side="left")  # GT pixels with F = 1, per threshold
    bg_on = bg.size - np.searchsorted(bg, E_THRESHOLDS, side="left")
    n_gt = float(fg.size)
    if n_gt == 0:
        scores = 1.0 - bg_on / n
    elif n_gt == n:
        scores = fg_on / n
    else:
        mu_f = (fg_on + bg_on) / n
        mu_g = n_gt / n

        def enhanced(f: float, gval: float) -> np.ndarray:
            a, b = f - mu_f, gval - mu_g
            phi = 2.0 * a * b / (a * a + b * b + EPS)
            return (phi + 1.0) ** 2 / 4.0

        total = (
            fg_on * enhanced(1.0, 1.0)
            + (n_gt - fg_on) * enhanced(0.0, 1.0)
            + bg_on * enhanced(1.0, 0.0)
            + (bg.size - bg_on) * enhanced(0.0, 0.0)
        )
        scores = total / n
    return float(np.mean(scores))


def segmentation_metrics(pairs: Iterable[tuple[ArrayLike, ArrayLike]]) -> dict[str, Any]:
    """Per-image metrics averaged over images (the toolkits' convention): n, dice, iou, wfm, s_measure,
    e_measure, mae. wfm / s_measure / e_measure average over the 2-D pairs only (None when there are none);
    every metric is None when there are no pairs.
    """
    sums = {"dice": 0.0, "iou": 0.0, "mae": 0.0, "wfm": 0.0, "s_measure": 0.0, "e_measure": 0.0}
    n = n_2d = 0
    for pred, gt in pairs:
        n += 1
        sums["dice"] += dice(pred, gt)
        sums["iou"] += iou(pred, gt)
        sums["mae"] += mae(pred, gt)
        if np.ndim(gt) == 2:
            n_2d += 1
            sums["wfm"] += weighted_f_measure(pred, gt)
            sums["s_measure"] += s_measure(pred, gt)
            sums["e_measure"] += e_measure(pred, gt)
    out: dict[str, Any] = {"n": n}
    for key in ("dice", "iou", "wfm", "s_measure", "e_measure", "mae"):
        count = n_2d if key in ("wfm", "s_measure", "e_measure") else n
        out[key] = sums[key] / count if count else None
    return out
