"""Agreement between two readers: Cohen's kappa on categorical verdicts, computed with numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> dict[str, Any]:
    """{"kappa", "n", "observed", "expected", "categories"} over paired verdicts. kappa = (po − pe) / (1 − pe), with
    po the share of agreeing pairs and pe the agreement expected from each reader's own verdict frequencies;
    None when there is no pair or pe = 1 (both readers always gave the same one verdict: undefined)."""
    if len(first) != len(second):
        raise ValueError("paired verdicts: both sequences must have the same length")
    categories = sorted(set(first) | set(second))
    n = len(first)
    if n == 0:
        return {"kappa": None, "n": 0, "observed": None, "expected": None, "categories": categories}
    index = {c: i for i, c in enumerate(categories)}
    confusion = np.zeros((len(categories), len(categories)), np.float64)
    np.add.at(confusion, ([index[a] for a in first], [index[b] for b in second]), 1.0)
    observed = float(np.trace(confusion) / n)
    expected = float(confusion.sum(axis=1) @ confusion.sum(axis=0) / (n * n))
    kappa = None if np.isclose(expected, 1.0) else (observed - expected) / (1.0 - expected)
    return {"kappa": kappa, "n": n, "observed": observed, "expected": expected, "categories": categories}
