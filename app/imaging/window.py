"""CT windowing: HU → 8-bit grey by API.md's contract, grey = clip((HU−LOW)/(HIGH−LOW), 0, 1)·255.

Implemented as clip-then-`cv2.convertScaleAbs`, the fastest correct method measured in
PERFORMANCE.md (clipping first matters: convertScaleAbs takes an absolute value).
"""

from __future__ import annotations

import numpy as np

DEEPLESION_HU_OFFSET = 32768


def deeplesion_raw_to_hu(raw: np.ndarray) -> np.ndarray:
    """DeepLesion stores HU + 32768 as uint16; return int16 HU (CT values fit comfortably)."""
    if raw.dtype != np.uint16:
        raise ValueError(f"expected a 16-bit slice, got {raw.dtype}")
    # value − 32768 in one pass: flipping the top bit of a uint16 and reading it as int16 is exactly that
    return (raw ^ np.uint16(0x8000)).view(np.int16)


def window_to_uint8(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map values in [low, high] linearly onto 0..255 (rounded), clipping outside."""
    import cv2  # here, not at module level: commands that never draw skip its ~0.1 s import
    if not high > low:
        raise ValueError(f"window high ({high}) must be greater than low ({low})")
    alpha = 255.0 / (high - low)
    if hu.dtype in (np.int16, np.uint8, np.uint16) and float(low).is_integer() and float(high).is_integer():
        clipped = np.clip(hu, int(low), int(high))
        return cv2.convertScaleAbs(clipped, alpha=alpha, beta=-low * alpha)
    clipped = np.clip(hu.astype(np.float32), low, high)
    return cv2.convertScaleAbs(clipped, alpha=alpha, beta=-low * alpha)


def center_width_to_range(center: float, width: float) -> tuple[float, float]:
    """DICOM-style window (centre, width) → (low, high)."""
    return center - width / 2.0, center + width / 2.0
