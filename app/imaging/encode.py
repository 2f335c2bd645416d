"""Encoding and resizing. JPEG q90 through libjpeg-turbo (simplejpeg), PNG at level 1, WebP via OpenCV
(PERFORMANCE.md: PNG level 6 and WebP q90 cost 3–40× a JPEG for little gain on the fly)."""

from __future__ import annotations

import cv2
import numpy as np
import simplejpeg

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
FORMAT_ALIASES = {"jpg": "jpeg"}


def normalise_format(fmt: str) -> str:
    fmt = FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"format must be one of png, jpeg, webp, not {fmt!r}")
    return fmt


def encode_image(img: np.ndarray, fmt: str, quality: int = 90, chroma: str = "444") -> bytes:
    """Encode an HxW grey or HxWx3 RGB uint8 image. `chroma="420"` subsamples colour for JPEG (thumbnails,
    contact sheets: ~40% faster and smaller); full-resolution colour is the default for diagnostic views."""
    fmt = normalise_format(fmt)
    img = np.ascontiguousarray(img)
    if fmt == "jpeg":
        if img.ndim == 2:
            return simplejpeg.encode_jpeg(img[:, :, None], quality=quality, colorspace="GRAY")
        return simplejpeg.encode_jpeg(img, quality=quality, colorspace="RGB", colorsubsampling=chroma)
    bgr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        ok, buf = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise ValueError(f"could not encode image as {fmt}")
    return buf.tobytes()


def fit_size(width: int, height: int, size: int | None) -> tuple[int, int, float]:
    """Output (w, h, scale) so the longer side is at most `size` (never upscaled)."""
    if not size or max(width, height) <= size:
        return width, height, 1.0
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale)), scale


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    if img.shape[1] == width and img.shape[0] == height:
        return img
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
