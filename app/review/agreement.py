"""Agreement between the two readers of a 2-reader queue: Cohen's kappa on their verdicts (scikit-learn), the
difference of their RECIST long axes in mm with Bland–Altman statistics, and Dice between their masks (the mask
loader is passed in: this module never reads files; Dice itself is app.review.masks.dice)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

from app.review.masks import dice

LIMIT_Z = 1.96  # Bland–Altman limits of agreement: bias ± 1.96 SD of the differences


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> dict[str, Any]:
    """{"kappa", "n", "observed", "expected", "categories"} over paired verdicts. kappa is scikit-learn's
    `cohen_kappa_score`: (po − pe) / (1 − pe), po the share of agreeing pairs, pe the agreement expected from each
    reader's own verdict frequencies; None when there is no pair or pe = 1 (both readers always gave the same one
    verdict: undefined). observed and expected are po and pe."""
    if len(first) != len(second):
        raise ValueError("paired verdicts: both sequences must have the same length")
    categories = sorted(set(first) | set(second))
    n = len(first)
    if n == 0:
        return {"kappa": None, "n": 0, "observed": None, "expected": None, "categories": categories}
    a, b = np.asarray(first, dtype=object), np.asarray(second, dtype=object)
    observed = float(np.mean(a == b))
    expected = float(sum(np.mean(a == c) * np.mean(b == c) for c in categories))
    kappa: float | None = None
    if not math.isclose(expected, 1.0):
        kappa = float(cohen_kappa_score(list(first), list(second), labels=categories))
    return {"kappa": kappa, "n": n, "observed": observed, "expected": expected, "categories": categories}


def bland_altman(pairs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Bland–Altman statistics of paired measurements (first reader, second reader): per pair the mean and the
    difference (first − second); `bias_mm` the mean difference, `sd_mm` its sample SD (ddof 1; None below two
    pairs) and `limits_mm` bias ± 1.96 SD."""
    if not pairs:
        return {"n": 0, "bias_mm": None, "sd_mm": None, "limits_mm": None}
    values = np.asarray(pairs, dtype=np.float64)
    diff = values[:, 0] - values[:, 1]
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if len(diff) > 1 else None
    limits = [bias - LIMIT_Z * sd, bias + LIMIT_Z * sd] if sd is not None else None
    return {"n": len(diff), "bias_mm": bias, "sd_mm": sd, "limits_mm": limits}


def long_axis_agreement(readings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Long-axis agreement from paired RECIST readings: each `{"item_id", "first", "second"}` with the two
    readers' long axes in mm. Adds `pairs` ({"item_id", "first_mm", "second_mm", "mean_mm", "diff_mm"}) to the
    Bland–Altman numbers."""
    pairs = []
    for r in readings:
        a, b = float(r["first"]), float(r["second"])
        pairs.append({"item_id": r["item_id"], "first_mm": a, "second_mm": b, "mean_mm": (a + b) / 2, "diff_mm": a - b})
    return {**bland_altman([(p["first_mm"], p["second_mm"]) for p in pairs]), "pairs": pairs}


def mask_dice(pairs: Sequence[tuple[int, Any, Any]], load: Callable[[Any], np.ndarray]) -> dict[str, Any]:
    """Dice between two readers' mask annotations, per item: `pairs` holds (item id, first reader's mask
    annotation, second reader's) and `load(annotation)` gives a mask's label array (the masks helper's loader,
    wired in by the caller). {"n", "mean", "pairs": [{"item_id", "dice"}]}."""
    out = [{"item_id": item_id, "dice": dice(load(first), load(second))["overall"]}
           for item_id, first, second in pairs]
    return {"n": len(out), "mean": float(np.mean([p["dice"] for p in out])) if out else None, "pairs": out}
