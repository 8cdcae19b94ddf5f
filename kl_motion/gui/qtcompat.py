"""Work-arounds for reference-count bugs in the installed Qt binding.

PySide6 6.12.0 on Python 3.11 hands back ``None`` from every void method
(``setText``, ``update``, ``setValue``, ``processEvents``...) and ``True`` from
``SignalInstance.emit()`` without taking a reference to them.  Each call drops
one reference; after some thousands of calls the interpreter aborts with
"Fatal Python error: none_dealloc: deallocating None" (or ``bool_dealloc``).
A viewer makes such calls for every frame, so it died within a minute.
(On Python >= 3.12 these objects are immortal and the bug is invisible.)

At import this module probes for the bug and, only when it is present, does what
Python 3.12 does: it makes ``None``, ``True`` and ``False`` effectively immortal
by adding 2**48 to their reference counts (no object is ever freed by this, the
singletons never are anyway).  ``emit(signal, *args)`` additionally gives back
the reference ``emit()`` drops, so signals stay balanced even without the bump.
"""
from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None

_BUMP = 1 << 48


class _Probe(QObject):
    sig = Signal()


def _probe(n: int = 64) -> tuple[bool, bool]:
    """(void methods lose None, emit loses True), measured on a throw-away QObject."""
    o = _Probe()
    none0, true0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(n):
        o.setObjectName("probe")        # a void method: returns None
    none_lost = none0 - sys.getrefcount(None)
    for _ in range(n):
        o.sig.emit()
    true_lost = true0 - sys.getrefcount(True)
    for _ in range(max(0, none_lost)):     # repair what the probe itself lost
        _incref(None)
    for _ in range(max(0, true_lost)):
        _incref(True)
    return none_lost >= n // 2, true_lost >= n // 2


def _refcnt_field(obj) -> ctypes.c_ssize_t | None:
    """The ob_refcnt field of ``obj`` (CPython < 3.12, non trace-refs builds), checked."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12) or hasattr(sys, "getobjects"):
        return None
    field = ctypes.c_ssize_t.from_address(id(obj))
    # sys.getrefcount sees one extra reference (its argument)
    return field if field.value == sys.getrefcount(obj) - 1 else None


def _immortalize(*objs) -> bool:
    ok = True
    for obj in objs:
        f = _refcnt_field(obj)
        if f is None:
            ok = False
            continue
        if f.value < _BUMP // 2:
            f.value += _BUMP
    return ok


VOID_LOSES_NONE, EMIT_LOSES_TRUE = _probe()
IMMORTALIZED = _immortalize(None, True, False) if (VOID_LOSES_NONE or EMIT_LOSES_TRUE) else False


def emit(signal, *args) -> None:
    """``signal.emit(*args)`` without the PySide6 6.12.0 reference leak on True."""
    r = signal.emit(*args)
    if EMIT_LOSES_TRUE and r is True:
        _incref(r)
