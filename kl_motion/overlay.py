"""Drawing: the mask tinted over the frame, boxes, a KL heat map. No Qt here."""
from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np


def to_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 1:
        return cv2.cvtColor(frame[:, :, 0], cv2.COLOR_GRAY2BGR)
    return frame


class Overlay:
    """Draws masks over frames with whole-image OpenCV calls, tinting only inside the bounding
    rectangle of the tinted pixels.  The tint is a per-channel lookup table made with
    ``cv2.addWeighted`` itself (so the pixels are those of addWeighted(frame, 1 - a, colour, a)),
    kept between frames: a table lookup instead of float blending of a colour plane."""

    def __init__(self):
        self._luts: dict[tuple, np.ndarray] = {}

    def _lut(self, color, a: float) -> np.ndarray:
        key = (tuple(int(c) for c in color), a)
        lut = self._luts.get(key)
        if lut is None:
            if len(self._luts) > 8:
                self._luts.clear()
            ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
            plane = np.empty_like(ramp)
            plane[:] = key[0]
            lut = self._luts[key] = cv2.addWeighted(ramp, 1.0 - a, plane, a, 0.0)
        return lut

    def draw(self, frame: np.ndarray, mask: np.ndarray, color=(0, 0, 255), opacity: float = 0.45,
             boxes: Iterable | None = None, box_color=(0, 255, 0), shadow_color=(255, 128, 0),
             outlines: bool = False, thickness: int = 2, outline_thickness: int = 1) -> np.ndarray:
        """A new BGR image: ``frame`` with foreground (255) tinted ``color`` and shadow (127)
        tinted ``shadow_color`` at ``opacity``; optional outlines of the foreground and boxes
        (objects with x, y, w, h attributes, or (x, y, w, h) tuples).  A mask of another size is resized (nearest)."""
        out = to_bgr(frame).copy()
        if mask.shape != out.shape[:2]:
            mask = cv2.resize(mask, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
        a = float(np.clip(opacity, 0.0, 1.0))
        if a > 0:
            for value, col in ((255, color), (127, shadow_color)):
                sel = cv2.compare(mask, value, cv2.CMP_EQ)
                x, y, w, h = cv2.boundingRect(sel)
                if w == 0 or h == 0:
                    continue
                roi = out[y:y + h, x:x + w]
                blended = cv2.LUT(roi, self._lut(col, a))    # == cv2.addWeighted(roi, 1 - a, col, a, 0)
                cv2.copyTo(blended, sel[y:y + h, x:x + w], roi)
        if outlines:
            fg = cv2.compare(mask, 255, cv2.CMP_EQ)
            contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, color, outline_thickness, cv2.LINE_8)
        for b in boxes or ():
            x, y, w, h = (b.x, b.y, b.w, b.h) if hasattr(b, "x") else b
            cv2.rectangle(out, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), box_color, thickness)
        return out


_overlay = Overlay()


def draw_overlay(frame: np.ndarray, mask: np.ndarray, color=(0, 0, 255), opacity: float = 0.45,
                 boxes: Iterable | None = None, box_color=(0, 255, 0), shadow_color=(255, 128, 0),
                 outlines: bool = False) -> np.ndarray:
    """Overlay.draw with a shared cache of tint tables (see Overlay)."""
    return _overlay.draw(frame, mask, color, opacity, boxes, box_color, shadow_color, outlines)


def kl_heatmap(kl: np.ndarray, vmax: float = 30.0) -> np.ndarray:
    """KL map as a BGR colour image (TURBO colour map, 0..vmax)."""
    return cv2.applyColorMap(cv2.convertScaleAbs(kl, alpha=255.0 / max(vmax, 1e-6)), cv2.COLORMAP_TURBO)


def threshold_row(height: int, vmax: float, threshold: float) -> int:
    """The row of a colour_scale bar of ``height`` where ``threshold`` lies (row 0 = vmax; a threshold
    above vmax is drawn at the top)."""
    t = min(max(float(threshold) / max(vmax, 1e-6), 0.0), 1.0)
    return int(round((1.0 - t) * (height - 1)))


def colour_scale(height: int, vmax: float, width: int = 40, threshold: float | None = None) -> np.ndarray:
    """A vertical colour bar for kl_heatmap, labelled 0 and vmax; with ``threshold``, a white line
    across the bar at the threshold's level and its value beside it (a caret when it is above vmax)."""
    ramp = np.linspace(255, 0, height).astype(np.uint8)[:, None].repeat(width // 2, axis=1)
    bar = cv2.applyColorMap(ramp, cv2.COLORMAP_TURBO)
    out = np.zeros((height, width, 3), np.uint8)
    out[:, : width // 2] = bar
    cv2.putText(out, f"{vmax:g}", (0, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
    cv2.putText(out, "0", (width // 2 + 2, height - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
    if threshold is not None:
        y = threshold_row(height, vmax, threshold)
        out[max(0, y - 1):y + 1, : width // 2 + 3] = 255           # a 2-pixel line over the bar
        label = f"{threshold:g}" + ("^" if threshold > vmax else "")
        ty = min(max(y + 4, 22), height - 14)                       # clear of the 0 and vmax labels
        cv2.putText(out, label, (width // 2 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
    return out
