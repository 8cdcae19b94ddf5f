"""Mask cleanup, zones and blobs: from the kernel's raw labels to the mask users see.

Cleanup uses OpenCV's median and morphology (compiled, vectorised image operations) and
blobs_nb's run-based connected components, small-component removal and hole filling (numba;
same results as cv2.connectedComponentsWithStats); the per-pixel model itself is in kernels.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import blobs_nb
from .errors import ParameterError
from .params import Params


@dataclass
class Blob:
    x: int
    y: int
    w: int
    h: int
    area: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


_kernels: dict[int, np.ndarray] = {}


def _ellipse(n: int) -> np.ndarray:
    k = _kernels.get(n)
    if k is None:
        k = _kernels[n] = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (n, n))
    return k


def clean(raw: np.ndarray, p: Params, zone: np.ndarray | None = None, area_scale: float = 1.0
          ) -> tuple[np.ndarray, list[Blob]]:
    """Median, closing, opening, zones and minimum area on a 0/127/255 label image.

    Returns the cleaned mask (0/127/255, uint8) and the foreground blobs left.
    ``area_scale`` converts ``min_area`` (full-size pixels) to this image's pixels.
    """
    m = raw
    if p.median_size > 1:
        n = p.median_size | 1
        m = cv2.medianBlur(m, n)
    fg = (m == 255).astype(np.uint8)
    if p.close_size > 1:
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, _ellipse(p.close_size))
    if p.open_size > 1:
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, _ellipse(p.open_size))
    if zone is not None:
        fg &= zone
    # fg is a 0/1 image of our own: it becomes the output (kept runs 255, the others 0)
    ry, rs, re, comp, stats = blobs_nb.label_runs(fg)
    min_area = p.min_area * area_scale
    big = stats[:, cv2.CC_STAT_AREA] >= min_area
    kept = stats[big]
    blobs = [Blob(*s) for s in kept.tolist()]
    blobs_nb.paint_runs(fg, ry, rs, re, comp, big)
    out = fg
    if p.fill_holes > 0 and blobs:
        blobs_nb.fill_holes(out, kept, float(p.fill_holes * area_scale))
        if zone is not None:
            out[zone == 0] = 0
    if p.detect_shadows:
        shadow = (m == 127)
        if zone is not None:
            shadow &= zone.astype(bool)
        out[shadow & (out == 0)] = 127
    return out, blobs


def zone_mask(p: Params, width: int, height: int) -> np.ndarray | None:
    """1 where motion counts, 0 where it is ignored; None when no zone is set."""
    if not p.ignore_zones and not p.include_zones and not p.zone_mask:
        return None
    z = np.ones((height, width), np.uint8)
    if p.zone_mask:
        img = cv2.imread(str(Path(p.zone_mask)), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ParameterError(f"zone_mask: cannot read image {p.zone_mask}")
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)
        z &= (img > 0).astype(np.uint8)
    if p.include_zones:
        inc = np.zeros_like(z)
        cv2.fillPoly(inc, [_poly(poly, width, height) for poly in p.include_zones], 1)
        z &= inc
    if p.ignore_zones:
        cv2.fillPoly(z, [_poly(poly, width, height) for poly in p.ignore_zones], 0)
    return z


def _poly(poly, width: int, height: int) -> np.ndarray:
    pts = np.array([[x * (width - 1), y * (height - 1)] for x, y in poly], np.float64)
    return np.round(pts).astype(np.int32)
