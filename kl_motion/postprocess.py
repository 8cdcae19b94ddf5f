"""Mask cleanup, zones and blobs: from the kernel's raw labels to the mask users see.

Cleanup uses OpenCV's median, morphology and connected components (compiled,
vectorised image operations); the per-pixel model itself is in kernels.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

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
_FEW_REMOVED = 64      # clean(): up to this many components below min_area are cleared box by box


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
    n, labels, stats = _components(fg, 8)
    min_area = p.min_area * area_scale
    big = stats[1:, cv2.CC_STAT_AREA] >= min_area
    kept = np.flatnonzero(big) + 1
    blobs = [Blob(int(s[0]), int(s[1]), int(s[2]), int(s[3]), int(s[4])) for s in stats[kept].tolist()]
    removed = n - 1 - len(kept)
    if removed <= _FEW_REMOVED:
        # fg is 0/1 and labels > 0 exactly where fg is 1: 255 * fg, then the few small
        # components cleared inside their boxes (a full-frame lookup keep[labels] costs more)
        out = fg * np.uint8(255)
        if removed:
            for i in (np.flatnonzero(~big) + 1).tolist():
                x, y, w, h = (int(v) for v in stats[i, :4])
                sub = out[y:y + h, x:x + w]
                sub[labels[y:y + h, x:x + w] == i] = 0
    else:
        keep = np.zeros(n, np.uint8)
        keep[kept] = 255
        out = keep[labels]
    if p.fill_holes > 0 and blobs:
        _fill_holes(out, p.fill_holes * area_scale, blobs)
        if zone is not None:
            out[zone == 0] = 0
    if p.detect_shadows:
        shadow = (m == 127)
        if zone is not None:
            shadow &= zone.astype(bool)
        out[shadow & (out == 0)] = 127
    return out, blobs


def _components(img: np.ndarray, connectivity: int):
    """cv2.connectedComponentsWithStats with 16-bit labels (a third of the time of 32-bit ones
    on a mostly empty mask: the label image is written in full); OpenCV raises when the labels
    do not fit, and then the 32-bit version runs (same labels)."""
    try:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(img, connectivity=connectivity, ltype=cv2.CV_16U)
    except cv2.error:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(img, connectivity=connectivity, ltype=cv2.CV_32S)
    return n, labels, stats


def _fill_holes(fg: np.ndarray, max_area: float, blobs: list[Blob]) -> None:
    """Fill (in place, with 255) the holes of fg's blobs of at most max_area pixels.

    A hole is a 4-connected background region that does not touch the image border.
    Its outer boundary is 8-connected foreground, so it is one blob's, and the hole lies
    strictly inside that blob's box: each box is searched alone (a region that touches the
    box's edge is not a hole of this blob), which costs the boxes' area, not the frame's.
    ``blobs`` are all the blobs of fg (255)."""
    for b in blobs:
        if b.w < 3 or b.h < 3:
            continue
        sub = fg[b.y:b.y + b.h, b.x:b.x + b.w]
        bg = (sub != 255).astype(np.uint8)
        n, labels, stats = _components(bg, 4)
        if n <= 1:
            continue
        x, y, w, h, area = (stats[:, i] for i in range(5))
        inner = (x > 0) & (y > 0) & (x + w < b.w) & (y + h < b.h) & (area <= max_area)
        inner[0] = False
        if inner.any():
            sub[inner[labels]] = 255


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
