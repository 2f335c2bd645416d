"""A synthetic spine CT with its vertebra label mask, drawn in the canonical RAS+ frame (mm geometry).

Trunk (fat, muscle, aorta, bowel gas) around a gently curved spine: vertebral bodies (cortex and
cancellous bone) separated by discs, each with its neural arch, spinous and transverse processes.
The mask labels every vertebra's bone (body + posterior elements) with its VerSe number; discs stay 0.
`bodies` labels the vertebral bodies alone: VerSe centroids are vertebral-body centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.datasets.verse.labels import SPINE_ORDER

PITCH_MM = 30.0  # one vertebra + one disc along the spine
BODY_HALF_HEIGHT_MM = 12.0


@dataclass
class SpinePhantom:
    ct: np.ndarray  # int16 HU, canonical (i → R, j → A, k → S)
    mask: np.ndarray  # uint8 vertebra labels
    bodies: np.ndarray  # uint8 vertebral-body labels
    labels: list[int]  # cranial first


def _ellipse(dx: np.ndarray, dy: np.ndarray, rx: float, ry: float) -> np.ndarray:
    return (dx / rx) ** 2 + (dy / ry) ** 2 <= 1.0


def spine_phantom(shape: tuple[int, int, int], spacing: tuple[float, float, float], first: int,
                  rng: np.random.Generator) -> SpinePhantom:
    """`first` is the position in SPINE_ORDER of the most cranial vertebra fully in the field of view."""
    ni, nj, nk = shape
    si, sj, sk = spacing
    x = ((np.arange(ni) - (ni - 1) / 2) * si)[:, None, None]  # mm from the centre, + = patient's right
    y = ((np.arange(nj) - (nj - 1) / 2) * sj)[None, :, None]  # + = anterior
    z = (np.arange(nk) * sk)[None, None, :]  # + = superior
    extent_x, extent_y = ni * si, nj * sj
    # the trunk is larger than the field of view (a spine-centred reconstruction): air only behind the back
    tx, ty, trunk_y = 0.95 * extent_x, 0.8 * extent_y, 0.4 * extent_y
    ct = np.full(shape, -1000.0, np.float32)
    ct[np.broadcast_to(_ellipse(x, y - trunk_y, tx, ty), shape)] = -100.0  # subcutaneous fat
    ct[np.broadcast_to(_ellipse(x, y - trunk_y, tx - 8, ty - 8), shape)] = 45.0  # muscle / organs
    phase = float(rng.uniform(0, 2 * math.pi))
    cx = 3.0 * np.sin(z / 110.0 + phase)  # mild scoliosis (mm)
    cy = 0.1 * extent_y + 6.0 * np.sin(z / 140.0 + phase)  # vertebral-body centre line, lordosis (mm)
    ct[np.broadcast_to(_ellipse(x - cx + 14, y - cy - 28, 9, 9), shape)] = 160.0  # aorta, on the patient's left
    for _ in range(6):  # bowel gas pockets, anterior
        gx = rng.uniform(-0.4 * extent_x, 0.4 * extent_x)
        gy, gz = rng.uniform(cy.min() + 45, 0.5 * extent_y), rng.uniform(0, nk * sk)
        r = float(rng.uniform(4, 9))
        ct[((x - gx) ** 2 + (y - gy) ** 2 + (z - gz) ** 2) <= r * r] = -900.0
    mask = np.zeros(shape, np.uint8)
    bodies = np.zeros(shape, np.uint8)
    length = nk * sk
    count = int((length - 10) // PITCH_MM)
    count = max(1, min(count, len(SPINE_ORDER) - first))
    z0 = (length - count * PITCH_MM) / 2 + PITCH_MM / 2  # centre of the lowest vertebral body
    labels = [SPINE_ORDER[first + n] for n in range(count)]  # cranial first
    dxb, dyb = x - cx, y - cy
    disc_region = _ellipse(dxb, dyb, 19.0, 14.0) & (z > z0 - PITCH_MM / 2) & (z < z0 + (count - 0.5) * PITCH_MM)
    ct[disc_region] = 90.0
    for n, label in enumerate(labels):
        zc = z0 + (count - 1 - n) * PITCH_MM
        slab = np.abs(z - zc)
        body = _ellipse(dxb, dyb, 20.0, 15.0) & (slab <= BODY_HALF_HEIGHT_MM)
        cancellous = _ellipse(dxb, dyb, 18.2, 13.2) & (slab <= BODY_HALF_HEIGHT_MM - 1.6)
        canal_y = dyb + 15.0 + 10.0
        arch = _ellipse(dxb, canal_y, 12.5, 11.0) & ~_ellipse(dxb, canal_y, 8.0, 7.0) & (slab <= 8.0) & (canal_y < 4)
        spinous = (np.abs(dxb) <= 4.5) & (canal_y <= -9.0) & (canal_y >= -26.0) & (slab <= 6.0)
        transverse = (np.abs(canal_y + 2.0) <= 3.5) & (np.abs(dxb) >= 10.0) & (np.abs(dxb) <= 31.0) & (slab <= 4.5)
        bone = body | arch | spinous | transverse
        ct[bone] = 650.0
        ct[cancellous] = 230.0
        ct[_ellipse(dxb, canal_y, 7.5, 6.5) & (slab <= 8.0)] = 15.0  # spinal canal (CSF)
        mask[bone] = label
        bodies[body] = label
    ct += rng.normal(0.0, 12.0, shape).astype(np.float32)
    return SpinePhantom(np.clip(np.rint(ct), -1024, 3071).astype(np.int16), mask, bodies, labels)
