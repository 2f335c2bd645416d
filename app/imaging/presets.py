"""Named CT windows (low, high in HU) that radiologists expect, and window-parameter parsing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# (centre, width) conventions from common PACS defaults, written as (low, high).
PRESETS: dict[str, tuple[float, float]] = {
    "soft_tissue": (-160.0, 240.0),  # W400 L40
    "mediastinum": (-125.0, 225.0),  # W350 L50
    "abdomen": (-175.0, 275.0),  # W450 L50, DeepLesion's most common DICOM window
    "liver": (-45.0, 105.0),  # W150 L30
    "lung": (-1350.0, 150.0),  # W1500 L-600
    "bone": (-450.0, 1050.0),  # W1500 L300
    "brain": (0.0, 80.0),  # W80 L40
}
# Names that mean "the item's own window" (DeepLesion: the row's DICOM_windows).
OWN_WINDOW_NAMES = ("default", "dicom", "own")


class WindowError(ValueError):
    """A window or preset the user asked for is not valid; the message says why."""


def parse_window(text: str) -> tuple[float, float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise WindowError(f"window must be 'LOW,HIGH' in HU, got {text!r}")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise WindowError(f"window must be two numbers 'LOW,HIGH', got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise WindowError(f"window bounds must be finite numbers, got {text!r}")
    if high <= low:
        raise WindowError(f"window HIGH must be greater than LOW, got {text!r}")
    return low, high


FALLBACK_PRESET = "soft_tissue"  # an item without a window of its own is shown with this one


@dataclass(frozen=True)
class WindowChoice:
    """The window an image is shown with (low, high in HU) and how it was chosen: the preset's name, "default"
    for the item's own window, None for an explicit `window=LOW,HIGH`."""

    window: tuple[float, float]
    preset: str | None


def choose_window(window: str | None, preset: str | None, own: Sequence[float] | None,
                  choices: Sequence[str] | None = None) -> WindowChoice:
    """The one precedence rule (the render endpoint and the item page both use it): an explicit `window`, else a
    named `preset`, else the item's own window, else the soft-tissue preset. `choices` are the names an unknown
    preset's message offers (default: every name this accepts). Raises WindowError saying what is wrong."""
    if window:
        return WindowChoice(parse_window(window), None)
    if preset and preset not in OWN_WINDOW_NAMES:
        if preset not in PRESETS:
            names = ", ".join(choices or [*PRESETS, *OWN_WINDOW_NAMES])
            raise WindowError(f"unknown preset {preset!r}; choose one of {names}")
        return WindowChoice(PRESETS[preset], preset)
    return WindowChoice(own_window(own), "default")


def own_window(own: Sequence[float] | None) -> tuple[float, float]:
    """The item's own window (DeepLesion: the row's DICOM_windows), or the fallback preset when it has none."""
    if own:
        return float(own[0]), float(own[1])
    return PRESETS[FALLBACK_PRESET]


def resolve_window(
    window: str | None, preset: str | None, own: tuple[float, float] | None
) -> tuple[float, float]:
    """The window to render with: explicit `window`, else a named `preset`, else the item's own."""
    return choose_window(window, preset, own).window


# The percentile auto-window: the range between these percentiles of an image's (or a whole volume's) values,
# for modalities whose values have no fixed scale (MR, PET, radiographs: no HU presets apply to them).
AUTO_PRESET = "auto"
AUTO_PERCENTILES = (0.5, 99.5)
AUTO_SAMPLES = 2_000_000  # values sampled (evenly strided) from larger arrays: the percentiles barely move


def percentile_window(values: np.ndarray, percentiles: tuple[float, float] = AUTO_PERCENTILES,
                      samples: int = AUTO_SAMPLES) -> tuple[float, float]:
    """(low, high) between two percentiles of `values` (in the values' own units), whole numbers, at least
    1 apart (a constant image gets value..value+1); ValueError for an empty or non-finite array."""
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0:
        raise ValueError("no values to take a window from")
    if flat.size > samples:
        flat = flat[:: -(-flat.size // samples)]
    flat = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if flat.size == 0:
        raise ValueError("no finite values to take a window from")
    low, high = np.percentile(flat, percentiles)
    low, high = math.floor(float(low)), math.ceil(float(high))
    return float(low), float(max(high, low + 1))
