"""The video display: paints the newest image, shows zones, reads the mouse.

* Paints a BGR numpy image (no copy: a QImage over the array's memory) letterboxed
  into the widget.
* Hover: emits ``hovered(fx, fy)`` with the frame position under the mouse in
  fractions of width/height (the 2x2 grid is mapped back to the frame), or
  ``hovered(-1, -1)`` when the mouse leaves the picture.
* Zones: draws ignore zones (red) and include-only zones (green) translucently.
  In drawing mode a left click adds a vertex; a double click, a right click or
  Enter closes the polygon (3+ points) and emits ``zoneFinished(kind, points)``;
  Esc or Backspace cancels / removes the last point.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from .compose import grid_to_frame
from .qtcompat import emit

ZONE_STYLE = {"ignore": (QColor(255, 60, 60), "ignore"), "include": (QColor(60, 220, 90), "include only")}


class VideoView(QWidget):
    hovered = Signal(float, float)
    zoneFinished = Signal(str, list)
    drawingChanged = Signal(str)     # "" when not drawing

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAutoFillBackground(False)
        self.setAttribute(Qt.WA_OpaquePaintEvent)
        self._array: np.ndarray | None = None
        self._qimage: QImage | None = None
        self.grid = False
        self.message = ""
        self.smooth = True
        self.zones: dict[str, list] = {"ignore": [], "include": []}
        self.drawing: str = ""
        self.points: list[tuple[float, float]] = []
        self._cursor: tuple[float, float] | None = None
        self.paints = 0
        self.paint_ms_total = 0.0   # time spent in paintEvent (for the benchmark)

    # ------------------------------------------------------------------ content
    def set_image(self, bgr: np.ndarray | None, grid: bool = False) -> None:
        if bgr is None:
            self._array = self._qimage = None
        else:
            a = bgr if bgr.flags.c_contiguous else np.ascontiguousarray(bgr)
            h, w = a.shape[:2]
            self._array = a   # keep the memory alive while the QImage uses it
            self._qimage = QImage(a.data, w, h, a.strides[0], QImage.Format_BGR888)
        self.grid = grid
        self.update()

    def image_size(self) -> tuple[int, int] | None:
        return None if self._array is None else (self._array.shape[1], self._array.shape[0])

    def set_message(self, text: str) -> None:
        if text != self.message:
            self.message = text
            self.update()

    def set_zones(self, ignore: list, include: list) -> None:
        self.zones = {"ignore": [list(map(tuple, p)) for p in ignore],
                      "include": [list(map(tuple, p)) for p in include]}
        self.update()

    # ------------------------------------------------------------------ geometry
    def image_rect(self) -> QRectF:
        """Where the image is painted (letterboxed, aspect kept)."""
        size = self.image_size() or (self.width(), self.height())
        W, H = size
        vw, vh = self.width(), self.height()
        s = min(vw / W, vh / H) if W and H else 1.0
        w, h = W * s, H * s
        return QRectF((vw - w) / 2, (vh - h) / 2, w, h)

    def widget_to_image(self, pos: QPointF) -> tuple[float, float] | None:
        """Fractions (0..1) of the shown image under a widget position, None outside."""
        r = self.image_rect()
        if r.width() <= 0 or r.height() <= 0:
            return None
        fx = (pos.x() - r.x()) / r.width()
        fy = (pos.y() - r.y()) / r.height()
        if not (0 <= fx <= 1 and 0 <= fy <= 1):
            return None
        return fx, fy

    def widget_to_frame(self, pos: QPointF) -> tuple[float, float] | None:
        """Fractions (0..1) of the *frame* under a widget position (grid tiles mapped back)."""
        f = self.widget_to_image(pos)
        if f is None or not self.grid:
            return f
        size = self.image_size()
        if size is None:
            return f
        W, H = size
        x, y = grid_to_frame(f[0] * W, f[1] * H, W, H)
        return min(x / W, 1.0), min(y / H, 1.0)

    def frame_to_widget(self, fx: float, fy: float) -> QPointF:
        """Widget position of a frame point (fractions); in grid mode, inside the top-left tile."""
        r = self.image_rect()
        if self.grid:
            fx, fy = fx / 2, fy / 2
        return QPointF(r.x() + fx * r.width(), r.y() + fy * r.height())

    def _tiles(self) -> list[QRectF]:
        r = self.image_rect()
        if not self.grid:
            return [r]
        w2, h2 = r.width() / 2, r.height() / 2
        return [QRectF(r.x() + i * w2, r.y() + j * h2, w2, h2) for j in (0, 1) for i in (0, 1)]

    # ------------------------------------------------------------------ painting
    def paintEvent(self, ev):
        t0 = time.perf_counter()
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(24, 24, 24))
        r = self.image_rect()
        if self._qimage is not None:
            same = abs(r.width() - self._qimage.width()) < 0.5 and abs(r.height() - self._qimage.height()) < 0.5
            if same:
                p.drawImage(r.topLeft(), self._qimage)
            else:
                p.setRenderHint(QPainter.SmoothPixmapTransform, self.smooth)
                p.drawImage(r, self._qimage)
        self._paint_zones(p)
        if self.message:
            self._paint_message(p, self.message)
        elif self._qimage is None:
            self._paint_message(p, "No video")
        p.end()
        self.paints += 1
        self.paint_ms_total += (time.perf_counter() - t0) * 1e3

    def _paint_zones(self, p: QPainter):
        p.setRenderHint(QPainter.Antialiasing, True)
        for tile in self._tiles():
            def pt(xy, t=tile):
                return QPointF(t.x() + xy[0] * t.width(), t.y() + xy[1] * t.height())
            for kind in ("include", "ignore"):
                col, _ = ZONE_STYLE[kind]
                fill = QColor(col)
                fill.setAlpha(70)
                p.setPen(QPen(col, 1.5))
                p.setBrush(QBrush(fill))
                for poly in self.zones[kind]:
                    p.drawPolygon(QPolygonF([pt(xy) for xy in poly]))
            if self.drawing and self.points:
                col, _ = ZONE_STYLE[self.drawing]
                p.setPen(QPen(col, 2, Qt.DashLine))
                p.setBrush(Qt.NoBrush)
                pts = [pt(xy) for xy in self.points]
                if self._cursor is not None:
                    pts.append(pt(self._cursor))
                p.drawPolyline(QPolygonF(pts))
                p.setBrush(QBrush(col))
                for q in pts[: len(self.points)]:
                    p.drawEllipse(q, 3, 3)
        if self.drawing:
            col, label = ZONE_STYLE[self.drawing]
            text = (f"Drawing {label} zone: click to add points, double-click / right-click / Enter to close, "
                    "Esc to cancel")
            p.setPen(Qt.NoPen)
            p.setBrush(QColor(0, 0, 0, 160))
            f = QFont(self.font())
            p.setFont(f)
            br = p.fontMetrics().boundingRect(text)
            p.drawRect(QRectF(4, 4, min(br.width() + 12, self.width() - 8), br.height() + 8))
            p.setPen(col)
            p.drawText(QRectF(10, 4, self.width() - 16, br.height() + 8), Qt.AlignVCenter | Qt.AlignLeft, text)

    def _paint_message(self, p: QPainter, text: str):
        f = QFont(self.font())
        f.setPointSizeF(f.pointSizeF() * 1.3)
        p.setFont(f)
        fm = p.fontMetrics()
        br = fm.boundingRect(0, 0, int(self.width() * 0.8), 400, Qt.TextWordWrap | Qt.AlignCenter, text)
        box = QRectF((self.width() - br.width()) / 2 - 12, (self.height() - br.height()) / 2 - 8,
                     br.width() + 24, br.height() + 16)
        p.setPen(Qt.NoPen)
        p.setBrush(QColor(0, 0, 0, 190))
        p.drawRoundedRect(box, 6, 6)
        p.setPen(QColor(255, 220, 120))
        p.drawText(box, Qt.TextWordWrap | Qt.AlignCenter, text)

    # ------------------------------------------------------------------ zone drawing
    def start_drawing(self, kind: str) -> None:
        assert kind in ZONE_STYLE
        self.drawing = kind
        self.points = []
        self.setCursor(Qt.CrossCursor)
        self.setFocus()
        emit(self.drawingChanged, kind)
        self.update()

    def cancel_drawing(self) -> None:
        was = self.drawing
        self.drawing = ""
        self.points = []
        self.unsetCursor()
        if was:
            emit(self.drawingChanged, "")
        self.update()

    def finish_polygon(self) -> bool:
        if not self.drawing or len(self.points) < 3:
            return False
        kind, pts = self.drawing, [[round(x, 5), round(y, 5)] for x, y in self.points]
        self.cancel_drawing()
        emit(self.zoneFinished, kind, pts)
        return True

    def _frame_point(self, pos, margin: float = 12.0) -> tuple[float, float] | None:
        """Frame fractions for a zone vertex; clicks just outside the picture snap to its edge."""
        r = self.image_rect()
        if not r.adjusted(-margin, -margin, margin, margin).contains(pos):
            return None
        x = min(max(pos.x(), r.left()), r.right())
        y = min(max(pos.y(), r.top()), r.bottom())
        f = self.widget_to_frame(QPointF(x, y))
        if f is None:
            return None
        return min(max(f[0], 0.0), 1.0), min(max(f[1], 0.0), 1.0)

    # ------------------------------------------------------------------ events
    def mousePressEvent(self, ev):
        if self.drawing:
            if ev.button() == Qt.LeftButton:
                f = self._frame_point(ev.position())
                if f is not None:
                    self.points.append(f)
                    self.update()
            elif ev.button() == Qt.RightButton:
                if not self.finish_polygon():
                    self.cancel_drawing()
            ev.accept()
            return
        super().mousePressEvent(ev)

    def mouseDoubleClickEvent(self, ev):
        if self.drawing and ev.button() == Qt.LeftButton:
            # the press of the double click already added this point
            self.finish_polygon()
            ev.accept()
            return
        super().mouseDoubleClickEvent(ev)

    def mouseMoveEvent(self, ev):
        f = self.widget_to_frame(ev.position())
        emit(self.hovered, *(f if f is not None else (-1.0, -1.0)))
        if self.drawing:
            self._cursor = self._frame_point(ev.position())
            self.update()
        super().mouseMoveEvent(ev)

    def leaveEvent(self, ev):
        emit(self.hovered, -1.0, -1.0)
        self._cursor = None
        super().leaveEvent(ev)

    def keyPressEvent(self, ev):
        if self.drawing:
            k = ev.key()
            if k in (Qt.Key_Return, Qt.Key_Enter):
                self.finish_polygon()
                return
            if k == Qt.Key_Escape:
                self.cancel_drawing()
                return
            if k == Qt.Key_Backspace and self.points:
                self.points.pop()
                self.update()
                return
        super().keyPressEvent(ev)
