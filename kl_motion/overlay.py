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


def draw_overlay(frame: np.ndarray, mask: np.ndarray, color=(0, 0, 255), opacity: float = 0.45,
                 boxes: Iterable | None = None, box_color=(0, 255, 0), shadow_color=(255, 128, 0),
                 outlines: bool = False) -> np.ndarray:
    """A new BGR image: ``frame`` with foreground (255) tinted ``color`` and shadow (127)
    tinted ``shadow_color`` at ``opacity``; optional boxes (objects with x, y, w, h or tuples)."""
    out = to_bgr(frame).copy()
    a = float(np.clip(opacity, 0.0, 1.0))
    for value, col in ((255, color), (127, shadow_color)):
        sel = mask == value
        if a > 0 and sel.any():
            tint = np.empty_like(out)
            tint[:] = col
            blended = cv2.addWeighted(out, 1.0 - a, tint, a, 0.0)
            out[sel] = blended[sel]
    if outlines:
        contours, _ = cv2.findContours((mask == 255).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, color, 1)
    if boxes:
        for b in boxes:
            x, y, w, h = b.box if hasattr(b, "box") else b
            cv2.rectangle(out, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), box_color, 2)
    return out


def kl_heatmap(kl: np.ndarray, vmax: float = 30.0) -> np.ndarray:
    """KL map as a BGR colour image (TURBO colour map, 0..vmax)."""
    v = np.clip(kl * (255.0 / max(vmax, 1e-6)), 0, 255).astype(np.uint8)
    return cv2.applyColorMap(v, cv2.COLORMAP_TURBO)


def colour_scale(height: int, vmax: float, width: int = 40) -> np.ndarray:
    """A vertical colour bar for kl_heatmap, labelled 0 and vmax."""
    ramp = np.linspace(255, 0, height).astype(np.uint8)[:, None].repeat(width // 2, axis=1)
    bar = cv2.applyColorMap(ramp, cv2.COLORMAP_TURBO)
    out = np.zeros((height, width, 3), np.uint8)
    out[:, : width // 2] = bar
    cv2.putText(out, f"{vmax:g}", (0, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
    cv2.putText(out, "0", (width // 2 + 2, height - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
    return out
