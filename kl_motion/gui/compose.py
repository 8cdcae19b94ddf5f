"""Building the displayed image from a frame and a FrameResult (numpy/OpenCV only, no Qt).

This runs in the worker thread, so the UI thread only has to paint a ready image.
The drawing is done with whole-image OpenCV calls (no boolean fancy indexing), which
keeps a 1280x720 overlay at a few milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..overlay import colour_scale

MODES = ("overlay", "mask", "heatmap", "background", "grid")
MODE_LABELS = {"overlay": "Overlay", "mask": "Mask", "heatmap": "KL heat map", "background": "Background",
               "grid": "Grid (2x2)"}


@dataclass(frozen=True)
class ViewSettings:
    """How results are drawn. Immutable: the UI swaps in a new one, the worker reads it per frame."""
    mode: str = "overlay"
    color: tuple[int, int, int] = (0, 0, 255)      # BGR tint of foreground
    shadow_color: tuple[int, int, int] = (255, 128, 0)
    opacity: float = 0.45
    outlines: bool = False
    boxes: bool = False
    heat_vmax: float = 30.0

    @property
    def needs_background(self) -> bool:
        return self.mode in ("background", "grid")


def as_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[0], frame.shape[1]), cv2.COLOR_GRAY2BGR)
    return frame


class Composer:
    """Draws overlays fast; caches the constant colour planes between frames."""

    def __init__(self):
        self._planes: dict[tuple, np.ndarray] = {}

    def _plane(self, shape, color) -> np.ndarray:
        key = (shape, tuple(color))
        p = self._planes.get(key)
        if p is None:
            if len(self._planes) > 8:
                self._planes.clear()
            p = self._planes[key] = np.empty(shape, np.uint8)
            p[:] = color
        return p

    # ------------------------------------------------------------------ pieces
    def overlay(self, frame: np.ndarray, mask: np.ndarray, s: ViewSettings, blobs=()) -> np.ndarray:
        out = as_bgr(frame).copy()
        a = float(np.clip(s.opacity, 0.0, 1.0))
        if a > 0:
            for value, col in ((255, s.color), (127, s.shadow_color)):
                sel = cv2.compare(mask, value, cv2.CMP_EQ)
                # work only inside the bounding rectangle of the selected pixels
                x, y, w, h = cv2.boundingRect(sel)
                if w == 0 or h == 0:
                    continue
                roi = out[y:y + h, x:x + w]
                blended = cv2.addWeighted(roi, 1.0 - a, self._plane(roi.shape, col), a, 0.0)
                cv2.copyTo(blended, sel[y:y + h, x:x + w], roi)
        if s.outlines:
            fg = cv2.compare(mask, 255, cv2.CMP_EQ)
            contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, s.color, 2 if out.shape[1] > 640 else 1, cv2.LINE_8)
        if s.boxes:
            t = 2 if out.shape[1] > 640 else 1
            for b in blobs:
                cv2.rectangle(out, (b.x, b.y), (b.x + b.w - 1, b.y + b.h - 1), (0, 255, 0), t)
        return out

    @staticmethod
    def mask_image(mask: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR)

    @staticmethod
    def heatmap(kl: np.ndarray, vmax: float, scale_bar: bool = True) -> np.ndarray:
        v = cv2.convertScaleAbs(kl, alpha=255.0 / max(vmax, 1e-6))
        out = cv2.applyColorMap(v, cv2.COLORMAP_TURBO)
        h, w = out.shape[:2]
        if scale_bar and h >= 60 and w >= 80:
            k = 2 if h >= 480 else 1                      # draw the labels larger on big frames
            bh = max(40, min(h - 8, h // 2)) // k
            bw = 40 if w >= 200 else 24
            bar = colour_scale(bh, vmax, width=bw)
            if k > 1:
                bar = cv2.resize(bar, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST)
                bh = bar.shape[0]
            if bar.shape[1] < w - 4:
                y0, x0 = 4, w - bar.shape[1] - 4
                out[y0:y0 + bh, x0:x0 + bar.shape[1]] = bar
        return out

    # ------------------------------------------------------------------ whole image
    def compose(self, frame: np.ndarray, result, s: ViewSettings, background: np.ndarray | None = None
                ) -> np.ndarray:
        """The BGR uint8 image to show for this frame (same size as the frame)."""
        mode = s.mode
        if mode == "overlay":
            return self.overlay(frame, result.mask, s, result.blobs)
        if mode == "mask":
            return self.mask_image(result.mask)
        if mode == "heatmap":
            return self.heatmap(result.kl, s.heat_vmax)
        if mode == "background":
            return as_bgr(background).copy() if background is not None else np.zeros_like(as_bgr(frame))
        if mode == "grid":
            return self.grid(frame, result, s, background)
        raise ValueError(f"unknown view mode {mode!r}")

    def grid(self, frame, result, s: ViewSettings, background) -> np.ndarray:
        f = as_bgr(frame)
        H, W = f.shape[:2]
        h2, w2 = H // 2, W // 2
        small_frame = cv2.resize(f, (w2, h2), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(result.mask, (w2, h2), interpolation=cv2.INTER_NEAREST)
        small_kl = cv2.resize(result.kl, (w2, h2), interpolation=cv2.INTER_AREA)
        sx, sy = w2 / W, h2 / H
        blobs = [_Scaled(b, sx, sy) for b in result.blobs]
        tiles = [self.overlay(small_frame, small_mask, s, blobs), self.mask_image(small_mask),
                 self.heatmap(small_kl, s.heat_vmax),
                 cv2.resize(as_bgr(background), (w2, h2), interpolation=cv2.INTER_AREA)
                 if background is not None else np.zeros_like(small_frame)]
        out = np.zeros((H, W, 3), np.uint8)
        for i, (tile, label) in enumerate(zip(tiles, ("overlay", "mask", "KL", "background"))):
            y0, x0 = (i // 2) * h2, (i % 2) * w2
            out[y0:y0 + h2, x0:x0 + w2] = tile
            fs = 0.4 if W < 800 else 0.7
            cv2.putText(out, label, (x0 + 5, y0 + int(22 * fs / 0.4 * 0.7) + 4), cv2.FONT_HERSHEY_SIMPLEX, fs,
                        (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, label, (x0 + 5, y0 + int(22 * fs / 0.4 * 0.7) + 4), cv2.FONT_HERSHEY_SIMPLEX, fs,
                        (255, 255, 255), 1, cv2.LINE_AA)
        return out


class _Scaled:
    __slots__ = ("x", "y", "w", "h")

    def __init__(self, b, sx, sy):
        self.x, self.y = int(b.x * sx), int(b.y * sy)
        self.w, self.h = max(1, int(round(b.w * sx))), max(1, int(round(b.h * sy)))


def grid_to_frame(x: float, y: float, W: int, H: int) -> tuple[float, float]:
    """Map a point of the 2x2 grid image (pixels) to the frame pixel it shows."""
    w2, h2 = W // 2, H // 2
    qx = x - w2 if x >= w2 else x
    qy = y - h2 if y >= h2 else y
    return qx * W / max(w2, 1), qy * H / max(h2, 1)
