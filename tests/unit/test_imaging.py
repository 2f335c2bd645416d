"""Windowing, presets, overlays and encoding against independent computations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.imaging.encode import encode_image, fit_size
from app.imaging.overlay import LONG_AXIS, SHORT_AXIS, draw_shapes, gray_to_rgb, recist_shapes
from app.imaging.presets import PRESETS, WindowError, parse_window, resolve_window
from app.imaging.window import deeplesion_raw_to_hu, window_to_uint8


def reference_window(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    """API.md's formula, in float64: grey = clip((HU−LOW)/(HIGH−LOW), 0, 1)·255."""
    return np.rint(np.clip((hu.astype(np.float64) - low) / (high - low), 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("window", [(-175, 275), (-1350, 150), (-182.5, 322.5), (0, 80), (-1024, 3071)])
def test_window_matches_contract_formula(window):
    hu = np.random.default_rng(0).integers(-2000, 3000, size=(64, 64)).astype(np.int16)
    ours = window_to_uint8(hu, *window)
    ref = reference_window(hu, *window)
    assert ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
    # values below the window are black, never mirrored (the convertScaleAbs pitfall)
    assert ours[hu < window[0]].max(initial=0) == 0
    assert ours[hu > window[1]].min(initial=255) == 255


def test_deeplesion_offset():
    raw = np.array([[0, 32768, 32768 + 1000, 32768 - 1024]], dtype=np.uint16)
    assert deeplesion_raw_to_hu(raw).tolist() == [[-32768, 0, 1000, -1024]]
    with pytest.raises(ValueError):
        deeplesion_raw_to_hu(raw.astype(np.uint8))


def test_window_parsing_and_presets():
    assert parse_window("-175, 275") == (-175.0, 275.0)
    assert resolve_window(None, "lung", (-175, 275)) == PRESETS["lung"]
    assert resolve_window(None, "default", (-160, 240)) == (-160.0, 240.0)
    assert resolve_window("-1,1", "lung", None) == (-1.0, 1.0)
    for bad in ("275,-175", "a,b", "1", "1,2,3", "nan,3"):
        with pytest.raises(WindowError):
            parse_window(bad)
    with pytest.raises(WindowError, match="unknown preset"):
        resolve_window(None, "kidney-ish", None)


def test_recist_overlay_draws_axes_in_their_colours():
    grey = np.full((200, 200), 100, np.uint8)
    geometry = {"long": [[40, 100], [160, 100]], "short": [[100, 70], [100, 130]], "bbox": [35, 65, 165, 135]}
    rgb = draw_shapes(gray_to_rgb(grey), recist_shapes(geometry, 1))
    def closest(pixel) -> tuple[int, int, int]:
        colours = [LONG_AXIS, SHORT_AXIS, (100, 100, 100)]
        return min(colours, key=lambda c: sum((int(a) - b) ** 2 for a, b in zip(pixel, c, strict=True)))

    assert closest(rgb[100, 60]) == LONG_AXIS  # on the long axis, away from the crossing
    assert closest(rgb[80, 100]) == SHORT_AXIS
    assert tuple(rgb[20, 20]) == (100, 100, 100)  # untouched background


def test_encoders_round_trip():
    img = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64)
    png = encode_image(img, "png")
    assert np.array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), img)
    jpeg = encode_image(gray_to_rgb(img), "jpeg")
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert encode_image(img, "webp")[8:12] == b"WEBP"
    assert fit_size(512, 256, 128) == (128, 64, 0.25)
    assert fit_size(100, 50, 512) == (100, 50, 1.0)
