"""Mask cleanup, zones and blobs: from the kernel's raw labels to the mask users see.

Cleanup uses OpenCV's median and morphology (compiled, vectorised image operations) and
blobs_nb's run-based connected components, small-component removal and hole filling (numba;
same results as cv2.connectedComponentsWithStats); the per-pixel model itself is in kernels.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import blobs_nb
from .errors import ParameterError
from .fsnames import imread, shown
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
_elements: dict[int, tuple] = {}    # _element's cache


def _ellipse(n: int) -> np.ndarray:
    k = _kernels.get(n)
    if k is None:
        k = _kernels[n] = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (n, n))
    return k


def clean(raw: np.ndarray, p: Params, zone: np.ndarray | None = None, area_scale: float = 1.0,
          feedback: np.ndarray | None = None) -> tuple[np.ndarray, list[Blob]]:
    """Median, closing, opening, zones and minimum area on a 0/127/255 label image.

    Returns the cleaned mask (0/127/255, uint8) and the foreground blobs left.
    ``area_scale`` converts ``min_area`` (full-size pixels) to this image's pixels.
    ``feedback`` (optional uint8 array of raw's shape) receives the same mask with
    ``feedback_min_area`` in place of ``min_area``: the objects the model's restless feedback
    protects, whatever the output's minimum area.
    """
    W = raw.shape[1]
    med: list = []
    bits = _foreground_bits(raw, p, med if p.detect_shadows and zone is None else None)
    sbits = None
    if bits is not None and med:
        # shadow = (median(raw) == 127) for a 0/127/255 image: median(raw != 0) and not median(raw == 255),
        # as bits (no full-frame median and comparisons)
        nz = blobs_nb.pack_nonzero(raw, bits.shape[1])
        if p.median_size > 1:
            nz = blobs_nb.median3(nz, W)
        sbits = nz & ~med[0]
    elif bits is None or p.detect_shadows:
        m = raw
        if p.median_size > 1:
            m = cv2.medianBlur(m, p.median_size | 1)
    if bits is not None and zone is None:
        # labelled from the bits; the output starts empty and gets the kept runs
        ry, rs, re, comp, stats = blobs_nb.label_bits(bits, W)
        fg = np.zeros(raw.shape, np.uint8)
    else:
        if bits is not None:
            fg = blobs_nb.unpack01(bits, W)
        else:
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
    fbig = None
    if feedback is not None:
        fbig = stats[:, cv2.CC_STAT_AREA] >= p.feedback_min_area * area_scale
        if np.array_equal(fbig, big):
            fbig = None                 # the same blobs: a copy of the output below
        else:
            feedback[:] = 0
            blobs_nb.paint_runs(feedback, ry, rs, re, comp, fbig)
    blobs_nb.paint_runs(fg, ry, rs, re, comp, big)
    out = fg
    shadow = sbits
    if p.detect_shadows and sbits is None:
        shadow = (m == 127)
        if zone is not None:
            shadow &= zone.astype(bool)
    _finish(out, kept, p, zone, area_scale, shadow)
    if feedback is not None:
        if fbig is None:
            feedback[:] = out
        else:
            _finish(feedback, stats[fbig], p, zone, area_scale, shadow)
    return out, blobs


def _finish(out: np.ndarray, kept: np.ndarray, p: Params, zone: np.ndarray | None, area_scale: float,
            shadow: np.ndarray | None) -> None:
    """clean()'s last steps on a painted mask, in place: holes of its blobs (``kept``: their
    stats rows) filled, then shadow pixels (127) where it is not foreground."""
    if p.fill_holes > 0 and len(kept):
        blobs_nb.fill_holes(out, kept, float(p.fill_holes * area_scale))
        if zone is not None:
            out[zone == 0] = 0
    if shadow is not None:
        if shadow.dtype == np.uint64:                  # bits (clean's fast path)
            blobs_nb.paint_bits_where_zero(out, shadow, np.uint8(127))
        else:
            out[shadow & (out == 0)] = 127


def _element(n: int):
    """The rows of _ellipse(n) as blobs_nb.morph takes them (spans, rows), or None when a row
    is not one span or the element is wider than the bit kernels shift."""
    e = _elements.get(n)
    if e is None:
        k = _ellipse(n)
        a = n // 2                  # OpenCV's default anchor: the centre
        spans: list[tuple[int, int]] = []
        rows = []
        for ky in range(k.shape[0]):
            xs = np.flatnonzero(k[ky])
            if len(xs) == 0:
                continue
            if xs[-1] - xs[0] + 1 != len(xs) or n > 63 or not xs[0] <= a <= xs[-1]:
                spans = []
                break
            s = (int(xs[0]) - a, int(xs[-1]) - a)
            if s not in spans:
                spans.append(s)
            rows.append((ky - a, spans.index(s)))
        e = (np.array(spans, np.int64).reshape(-1, 2), np.array(rows, np.int64).reshape(-1, 2)) if spans else ()
        _elements[n] = e
    return e or None


def _foreground_bits(raw: np.ndarray, p: Params, median: list | None = None) -> np.ndarray | None:
    """clean()'s foreground before zones: (median(raw) == 255), closed, opened, as bits
    (blobs_nb.pack255's layout), computed 64 pixels at a time; None when the bit kernels do
    not apply (median larger than 3, width not a multiple of 8, unusual input): then OpenCV
    does it.  ``median`` (a list) receives the bits of median(raw) == 255, before the closing."""
    H, W = raw.shape[:2]
    if (raw.ndim != 2 or raw.dtype != np.uint8 or not raw.flags.c_contiguous or W % 8 or H < 1
            or p.median_size > 3):
        return None
    ops = []
    for size, close in ((p.close_size, True), (p.open_size, False)):
        if size > 1:
            e = _element(size)
            if e is None:
                return None
            ops.append((e, close))
    B = blobs_nb.pack255(raw, (W + 63) // 64)
    if p.median_size > 1:
        B = blobs_nb.median3(B, W)
    if median is not None:
        median.append(B)
    for (spans, rows), close in ops:
        B = blobs_nb.morph(B, W, spans, rows, close)
        B = blobs_nb.morph(B, W, spans, rows, not close)
    return B


_DILATE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))   # restless feedback: 7 > 5, 11, 17 (docs/accuracy.md)


def feedback_cover(fbm: np.ndarray, out: np.ndarray) -> None:
    """The model's restless feedback: out nonzero where the 7x7 ellipse around a pixel holds a pixel of
    the cleaned mask fbm: on bits when the width allows (blobs_nb.cover7, 0/1; 2-3x faster than OpenCV at
    320x240), else cv2.dilate (the mask's values).  The kernel only asks whether it is 0."""
    if fbm.shape[1] % 8 == 0:
        blobs_nb.cover7(fbm, out)
    else:
        cv2.dilate(fbm, _DILATE, dst=out)


def zone_mask(p: Params, width: int, height: int) -> np.ndarray | None:
    """1 where motion counts, 0 where it is ignored; None when no zone is set."""
    if not p.ignore_zones and not p.include_zones and not p.zone_mask:
        return None
    z = np.ones((height, width), np.uint8)
    if p.zone_mask:
        img = imread(p.zone_mask, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ParameterError(f"zone_mask: cannot read image {shown(p.zone_mask)}")
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
