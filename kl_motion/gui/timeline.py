"""The motion timeline under the seek bar (QPainter).

Per frame of the clip (or the newest frames of a live source): the foreground fraction as a filled
area (scale on the left, the ``motion_area`` threshold as a dashed line) and the peak KL as a line
(its own scale, the ``kl_threshold`` as a dotted line), the motion events as shaded spans with a
band along the top, and the playback position.  A click seeks there (``seekRequested(frame0)``,
0-based like the seek bar).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from .qtcompat import emit

FG_COLOUR = QColor(230, 90, 60)         # foreground fraction (area)
KL_COLOUR = QColor(60, 140, 240)        # peak KL (line)
SPAN_COLOUR = QColor(255, 200, 0)       # event spans: the band along the top (tests count its runs)
SPAN_FILL = QColor(255, 200, 0, 55)
BAND = 4                                # height of the span band, px


def _col_max(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The maximum of ``v`` between consecutive ``edges`` (NaN where a stretch has no value)."""
    filled = np.where(np.isfinite(v), v, -np.inf)
    m = np.maximum.reduceat(filled, edges)
    return np.where(np.isfinite(m), m, np.nan).astype(np.float32)


class MotionTimeline(QWidget):
    seekRequested = Signal(int)         # 0-based frame position

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(56)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setToolTip("Motion timeline: foreground fraction (red area; dashed: motion_area), peak KL (blue line; "
                        "dotted: kl_threshold), events (yellow). Click to seek.")
        self.data = None                # worker.TimelineData
        self.spans: list[tuple[int, int]] = []     # (start_frame, end_frame), 1-based, inclusive
        self.position = -1              # 0-based, -1 unknown
        self.motion_area = 0.002
        self.kl_threshold = 28.0
        self.spans_drawn = 0            # spans painted by the last paintEvent

    # ------------------------------------------------------------------ content
    def set_data(self, data) -> None:
        self.data = data
        self.spans = []
        self.update()

    def set_spans(self, spans) -> None:
        self.spans = sorted((int(a), int(b)) for a, b in spans)
        self.update()

    def set_thresholds(self, motion_area: float, kl_threshold: float) -> None:
        self.motion_area, self.kl_threshold = float(motion_area), float(kl_threshold)
        self.update()

    def set_position(self, pos: int) -> None:
        if pos != self.position:
            self.position = pos
            self.update()

    # ------------------------------------------------------------------ geometry
    def _range(self) -> tuple[int, int]:
        """(first frame number shown, frames across the width)."""
        d = self.data
        if d is None:
            return 1, 1
        return d.first, max(1, d.size)

    def x_of(self, frame: float) -> float:
        first, n = self._range()
        return (frame - first) / n * self.width()

    def frame_at(self, x: float) -> int:
        first, n = self._range()
        return int(first + x / max(1, self.width()) * n)

    # ------------------------------------------------------------------ painting
    def paintEvent(self, ev):
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), QColor(28, 28, 30))
        d = self.data
        drawn = 0
        top, bottom = BAND + 2, h - 2
        span_h = bottom - top
        if d is not None:
            fg, kl = d.series()
            n = len(fg)
            first, total = self._range()
            # scales: the foreground up to 4x motion_area or its maximum; KL up to 2x the threshold or its maximum
            fg_top = max(4 * self.motion_area, float(np.nanmax(fg)) if np.isfinite(fg).any() else 0.0, 1e-6)
            kl_top = max(2 * self.kl_threshold, float(np.nanmax(kl)) if np.isfinite(kl).any() else 0.0, 1e-6)
            # event spans
            for a, b in self.spans:
                if b < first or a > first + total - 1:
                    continue
                x0, x1 = self.x_of(a - 0.5), self.x_of(b + 0.5)
                x1 = max(x1, x0 + 2)
                p.fillRect(QRectF(x0, top, x1 - x0, span_h), SPAN_FILL)
                p.fillRect(QRectF(x0, 0, x1 - x0, BAND), SPAN_COLOUR)
                drawn += 1
            xs = (np.arange(n) + 0.5) / total * w
            if n > 2 * max(w, 1):                 # long clips: the maximum per pixel column (numpy, not a Python loop)
                cols = max(1, int(w))
                edges = np.unique(np.linspace(0, n, cols + 1).astype(np.int64)[:-1])
                fg, kl = _col_max(fg, edges), _col_max(kl, edges)
                xs = (edges + 0.5) / total * w
            # foreground fraction: filled area
            ok = np.isfinite(fg)
            if ok.any():
                path = QPainterPath()
                started, last_x = False, 0.0
                for x, v, good in zip(xs, fg, ok):
                    if not good:
                        if started:
                            path.lineTo(QPointF(last_x, bottom))
                            started = False
                        continue
                    y = bottom - min(float(v) / fg_top, 1.0) * span_h
                    if not started:
                        path.moveTo(QPointF(x, bottom))
                        started = True
                    path.lineTo(QPointF(x, y))
                    last_x = x
                if started:
                    path.lineTo(QPointF(last_x, bottom))
                p.fillPath(path, QColor(FG_COLOUR.red(), FG_COLOUR.green(), FG_COLOUR.blue(), 150))
            # peak KL: a line
            ok = np.isfinite(kl)
            if ok.any():
                p.setPen(QPen(KL_COLOUR, 1.2))
                prev = None
                for x, v, good in zip(xs, kl, ok):
                    if not good:
                        prev = None
                        continue
                    pt = QPointF(x, bottom - min(float(v) / kl_top, 1.0) * span_h)
                    if prev is not None:
                        p.drawLine(prev, pt)
                    prev = pt
            # thresholds
            y_fg = bottom - min(self.motion_area / fg_top, 1.0) * span_h
            p.setPen(QPen(FG_COLOUR, 1, Qt.DashLine))
            p.drawLine(QPointF(0, y_fg), QPointF(w, y_fg))
            y_kl = bottom - min(self.kl_threshold / kl_top, 1.0) * span_h
            p.setPen(QPen(KL_COLOUR, 1, Qt.DotLine))
            p.drawLine(QPointF(0, y_kl), QPointF(w, y_kl))
            # playback position
            if self.position >= 0:
                x = self.x_of(self.position + 1)
                p.setPen(QPen(QColor(240, 240, 240), 1))
                p.drawLine(QPointF(x, 0), QPointF(x, h))
            p.setPen(QColor(200, 200, 200))
            f = p.font()
            f.setPointSizeF(7.0)
            p.setFont(f)
            p.drawText(QRectF(4, top, w - 8, 12), Qt.AlignLeft | Qt.AlignTop,
                       f"fg (max {100 * fg_top:.2g}%)")
            p.setPen(KL_COLOUR.lighter(130))
            p.drawText(QRectF(4, top, w - 8, 12), Qt.AlignRight | Qt.AlignTop, f"peak KL (max {kl_top:.3g})")
        p.end()
        self.spans_drawn = drawn

    def mousePressEvent(self, ev):
        if ev.button() == Qt.LeftButton and self.data is not None and self.data.total:
            emit(self.seekRequested, max(0, min(self.frame_at(ev.position().x()) - 1, self.data.total - 1)))
