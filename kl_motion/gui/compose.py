"""Building the displayed image from a frame and a FrameResult (numpy/OpenCV only, no Qt).

This runs in the worker thread, so the UI thread only has to paint a ready image.
The drawing is done with whole-image OpenCV calls (no boolean fancy indexing), which
keeps a 1280x720 overlay at a few milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..overlay import Overlay, colour_scale, kl_heatmap, to_bgr as as_bgr

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


class Composer:
    """Draws the shown image; keeps the overlay's tint tables between frames."""

    def __init__(self):
        self._overlay = Overlay()

    # ------------------------------------------------------------------ pieces
    def overlay(self, frame: np.ndarray, mask: np.ndarray, s: ViewSettings, blobs=()) -> np.ndarray:
        t = 2 if frame.shape[1] > 640 else 1
        return self._overlay.draw(frame, mask, s.color, s.opacity, blobs if s.boxes else (), (0, 255, 0),
                                  s.shadow_color, s.outlines, thickness=t, outline_thickness=t)

    @staticmethod
    def mask_image(mask: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR)

    @staticmethod
    def heatmap(kl: np.ndarray, vmax: float, scale_bar: bool = True, threshold: float | None = None) -> np.ndarray:
        """The KL map in colour, with a colour bar (0..vmax) marking ``threshold``."""
        out = kl_heatmap(kl, vmax)
        h, w = out.shape[:2]
        if scale_bar and h >= 60 and w >= 80:
            k = 2 if h >= 480 else 1                      # draw the labels larger on big frames
            bh = max(40, min(h - 8, h // 2)) // k
            bw = 40 if w >= 200 else 24
            bar = colour_scale(bh, vmax, width=bw, threshold=threshold)
            if k > 1:
                bar = cv2.resize(bar, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST)
                bh = bar.shape[0]
            if bar.shape[1] < w - 4:
                y0, x0 = 4, w - bar.shape[1] - 4
                out[y0:y0 + bh, x0:x0 + bar.shape[1]] = bar
        return out

    # ------------------------------------------------------------------ whole image
    def compose(self, frame: np.ndarray, result, s: ViewSettings, background: np.ndarray | None = None,
                threshold: float | None = None, other=None, other_name: str = "", name: str = "") -> np.ndarray:
        """The BGR uint8 image to show for this frame (same size as the frame).  ``threshold`` is
        marked on the heat map's colour bar; ``other`` (another detector's result on the same frame,
        named ``other_name``) takes the grid's fourth tile; ``name`` labels the main detector's tile.  A detector without a KL map (OpenCV's)
        shows its background in the heat map's place."""
        mode = s.mode
        kl = getattr(result, "kl", None)
        if mode == "overlay":
            return self.overlay(frame, result.mask, s, result.blobs)
        if mode == "mask":
            return self.mask_image(result.mask)
        if mode == "heatmap" and kl is not None:
            return self.heatmap(kl, s.heat_vmax, threshold=threshold)
        if mode in ("background", "heatmap"):
            return as_bgr(background).copy() if background is not None else np.zeros_like(as_bgr(frame))
        if mode == "grid":
            return self.grid(frame, result, s, background, threshold, other, other_name, name)
        raise ValueError(f"unknown view mode {mode!r}")

    def grid(self, frame, result, s: ViewSettings, background, threshold: float | None = None, other=None,
             other_name: str = "", name: str = "") -> np.ndarray:
        """2x2: overlay, mask, KL heat map (or the background without one), and either another
        detector's overlay on the same frame (``other``, labelled ``other_name``) or the background."""
        f = as_bgr(frame)
        H, W = f.shape[:2]
        h2, w2 = H // 2, W // 2
        small_frame = cv2.resize(f, (w2, h2), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(result.mask, (w2, h2), interpolation=cv2.INTER_NEAREST)
        sx, sy = w2 / W, h2 / H
        blobs = [_Scaled(b, sx, sy) for b in result.blobs]
        small_bg = (cv2.resize(as_bgr(background), (w2, h2), interpolation=cv2.INTER_AREA)
                    if background is not None else np.zeros_like(small_frame))
        kl = getattr(result, "kl", None)
        if kl is not None:
            third = self.heatmap(cv2.resize(kl, (w2, h2), interpolation=cv2.INTER_AREA), s.heat_vmax,
                                 threshold=threshold)
        else:
            third = small_bg
        if other is not None:
            om = cv2.resize(other.mask, (w2, h2), interpolation=cv2.INTER_NEAREST)
            fourth = self.overlay(small_frame, om, s, [_Scaled(b, sx, sy) for b in other.blobs])
        else:
            fourth = small_bg
        tiles = [self.overlay(small_frame, small_mask, s, blobs), self.mask_image(small_mask), third, fourth]
        labels = (name or "overlay", "mask", "KL" if kl is not None else "background",
                  other_name or "other" if other is not None else "background")
        out = np.zeros((H, W, 3), np.uint8)
        for i, (tile, label) in enumerate(zip(tiles, labels)):
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
