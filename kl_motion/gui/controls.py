"""The parameter panel, generated from the parameter table (``kl_motion.params.spec()``).

Every entry with ``gui=True`` becomes a row: ints get a slider and a spin box,
floats a slider mapped over lo..hi (logarithmic for wide ranges) and a double
spin box, bools a check box.  The panel binds both ways: a user edit emits
``paramChanged(name, value)``; ``set_params(p)`` moves the widgets to ``p`` with
their signals blocked, so a programmatic update never echoes back as an edit.
"""
from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal, QSignalBlocker
from PySide6.QtWidgets import (QCheckBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QSlider, QSpinBox, QToolButton, QVBoxLayout, QWidget, QSizePolicy)

from ..params import Params, spec
from .qtcompat import emit

SLIDER_STEPS = 1000
GROUP_ORDER = ("detection", "cleanup", "model", "events")
GROUP_TITLES = {"detection": "Detection", "cleanup": "Cleanup", "model": "Background model", "events": "Events"}
# shown first and expanded; the rest start collapsed
OPEN_GROUPS = ("detection", "cleanup")
# nicer labels for the most used parameters (the rest are derived from the name)
LABELS = {"kl_threshold": "KL threshold", "history": "History (1/learning rate)", "min_area": "Minimum area",
          "close_size": "Close (fill) size", "open_size": "Open (speck) size", "median_size": "Median size",
          "detect_shadows": "Detect shadows", "fg_learn_factor": "Foreground learning", "scale": "Detect scale"}


class Mapping:
    """Slider position (0..SLIDER_STEPS) <-> value over lo..hi, linear or logarithmic."""

    def __init__(self, lo: float, hi: float, log: bool):
        self.lo, self.hi, self.log = float(lo), float(hi), log

    def to_pos(self, v: float) -> int:
        v = min(max(float(v), self.lo), self.hi)
        if self.log:
            t = math.log1p(v - self.lo) / math.log1p(self.hi - self.lo)
        else:
            t = (v - self.lo) / (self.hi - self.lo) if self.hi > self.lo else 0.0
        return int(round(t * SLIDER_STEPS))

    def to_value(self, pos: int) -> float:
        t = pos / SLIDER_STEPS
        if self.log:
            return self.lo + math.expm1(t * math.log1p(self.hi - self.lo))
        return self.lo + t * (self.hi - self.lo)


def wants_log(lo: float, hi: float) -> bool:
    """Wide ranges (kl_threshold 0..500, history 1..100000, min_area) get a log slider."""
    return hi - lo >= 100 and (lo <= 0 or hi / lo >= 100)


def label_for(name: str) -> str:
    return LABELS.get(name) or name.replace("_", " ").capitalize()


class ParamRow(QWidget):
    """One parameter: slider + spin box (numbers) or a check box (bool)."""

    edited = Signal(str, object)

    def __init__(self, rec: dict, parent=None):
        super().__init__(parent)
        self.name = rec["name"]
        self.type = rec["type"]
        self.setToolTip(rec["help"] + ("" if rec["lo"] is None else f"\nRange {rec['lo']} .. {rec['hi']}"))
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.slider = self.spin = self.check = None
        if self.type is bool:
            self.check = QCheckBox(self)
            self.check.toggled.connect(lambda v: emit(self.edited, self.name, bool(v)))
            lay.addWidget(self.check)
            lay.addStretch(1)
            return
        lo, hi = rec["lo"], rec["hi"]
        self.mapping = Mapping(lo, hi, wants_log(lo, hi))
        self.slider = QSlider(Qt.Horizontal, self)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setObjectName(f"slider_{self.name}")
        self.slider.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        if self.type is int:
            self.spin = QSpinBox(self)
            self.spin.setRange(int(lo), int(hi))
        else:
            self.spin = QDoubleSpinBox(self)
            span = hi - lo
            decimals = 4 if hi <= 1.0 else (3 if span <= 10 else 2)
            self.spin.setDecimals(decimals)
            self.spin.setRange(float(lo), float(hi))
            self.spin.setSingleStep(10 ** -(decimals - 1) if span <= 10 else (0.5 if span <= 1000 else 10.0))
        self.spin.setObjectName(f"spin_{self.name}")
        self.spin.setKeyboardTracking(False)
        self.spin.setMinimumWidth(78)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    # user edits ---------------------------------------------------------
    def _from_slider(self, pos: int):
        v = self.mapping.to_value(pos)
        v = int(round(v)) if self.type is int else round(v, self.spin.decimals())
        with QSignalBlocker(self.spin):
            self.spin.setValue(v)
        emit(self.edited, self.name, self.spin.value())

    def _from_spin(self, v):
        with QSignalBlocker(self.slider):
            self.slider.setValue(self.mapping.to_pos(v))
        emit(self.edited, self.name, int(v) if self.type is int else float(v))

    # programmatic -------------------------------------------------------
    def set_value(self, v) -> None:
        """Show ``v`` without emitting ``edited`` (no echo)."""
        if self.check is not None:
            with QSignalBlocker(self.check):
                self.check.setChecked(bool(v))
            return
        with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
            self.spin.setValue(v)
            self.slider.setValue(self.mapping.to_pos(v))

    def value(self):
        if self.check is not None:
            return self.check.isChecked()
        return int(self.spin.value()) if self.type is int else float(self.spin.value())


class Section(QWidget):
    """A collapsible group of rows."""

    def __init__(self, title: str, expanded: bool, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.button = QToolButton(self)
        self.button.setText(title)
        self.button.setCheckable(True)
        self.button.setChecked(expanded)
        self.button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.button.setArrowType(Qt.DownArrow if expanded else Qt.RightArrow)
        self.button.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        self.body = QWidget(self)
        self.form = QFormLayout(self.body)
        self.form.setContentsMargins(14, 0, 0, 6)
        self.form.setFieldGrowthPolicy(QFormLayout.ExpandingFieldsGrow)
        self.body.setVisible(expanded)
        self.button.toggled.connect(self._toggle)
        lay.addWidget(self.button)
        lay.addWidget(self.body)

    def _toggle(self, on: bool):
        self.button.setArrowType(Qt.DownArrow if on else Qt.RightArrow)
        self.body.setVisible(on)


class ParamControls(QWidget):
    """The generated parameter panel."""

    paramChanged = Signal(str, object)

    def __init__(self, params: Params | None = None, parent=None):
        super().__init__(parent)
        self.rows: dict[str, ParamRow] = {}
        self.sections: dict[str, Section] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        recs = [r for r in spec() if r["gui"]]
        groups = sorted({r["group"] for r in recs}, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else 99, g))
        for g in groups:
            sec = Section(GROUP_TITLES.get(g, g.capitalize()), g in OPEN_GROUPS, self)
            self.sections[g] = sec
            lay.addWidget(sec)
            for r in recs:
                if r["group"] != g:
                    continue
                row = ParamRow(r, sec.body)
                row.edited.connect(self.paramChanged)
                lbl = QLabel(label_for(r["name"]), sec.body)
                lbl.setToolTip(row.toolTip())
                sec.form.addRow(lbl, row)
                self.rows[r["name"]] = row
        lay.addStretch(1)
        self.set_params(params or Params())

    def set_params(self, p: Params) -> None:
        """Move every widget to ``p`` (signals blocked: no paramChanged is emitted)."""
        for name, row in self.rows.items():
            row.set_value(getattr(p, name))

    def row(self, name: str) -> ParamRow:
        return self.rows[name]
