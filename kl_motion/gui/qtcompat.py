"""Work-arounds for bugs in the installed Qt binding.

PySide6 6.12.0: ``SignalInstance.emit()`` returns ``True`` without taking a
reference to it, so every emit from Python drops one reference to ``True``;
after a few thousand emits the interpreter aborts with
"Fatal Python error: bool_dealloc: deallocating True or False".  The viewer
emits a signal per frame and per mouse move, so it would crash within minutes.

``emit(signal, *args)`` emits and gives the reference back when (and only when)
a probe at import time shows the bug.  Use it for every emit made from Python.
"""
from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None


class _Probe(QObject):
    sig = Signal()


def _probe(n: int = 64) -> bool:
    """True when emit() loses a reference to its return value."""
    o = _Probe()
    before = sys.getrefcount(True)
    for _ in range(n):
        o.sig.emit()
    lost = before - sys.getrefcount(True)
    for _ in range(max(0, lost)):      # repair what the probe itself lost
        _incref(True)
    return lost >= n // 2


EMIT_LOSES_TRUE = _probe()


def emit(signal, *args) -> None:
    """``signal.emit(*args)`` without the PySide6 6.12.0 reference leak on True."""
    r = signal.emit(*args)
    if EMIT_LOSES_TRUE and r is True:
        _incref(r)
