"""kl_motion.numba_inline: numba's inliner copies a callee's IR with one memo for all its blocks.

The fix must change how much is copied and nothing else: a function whose inlined callee has many
blocks is compiled with the fix and with numba's own method; the number of variable copies falls
by far, and the LLVM IR and the results are the same.  Planted and seen failing: a memo per block
again (the count test), apply() returning before it installs the method (the state test)."""
from __future__ import annotations

import re

import numba
import numpy as np
import pytest
from numba import njit
from numba.core import ir

from kl_motion import kernels, numba_inline  # noqa: F401  (kernels applies the fix at import)

KNOWN = numba.__version__.startswith("0.68.")


def _callee(a, x):
    """Many blocks (each ternary and branch is a few); compiled inline="always" by _make, and run as
    plain Python for the expected value."""
    s = 0.0
    for i in range(a.shape[0]):
        v = a[i]
        s += v if v > x else -v
        if v > 2 * x:
            s += 1.0
        elif v < -x:
            s -= 2.0
        t = v * 0.5 if s > 0 else v * 0.25
        s += t if t < 3.0 else 3.0
        u = s - v if s > v else v - s
        s = u if u < 100.0 else s
    return s


def _make():
    """A fresh caller that inlines _callee at two call sites."""
    callee = njit(inline="always", cache=False)(_callee)

    @njit(cache=False)
    def caller(a, x):
        return callee(a, x) + callee(a, -x)

    return caller


def _compile_counting(monkeypatch):
    """Compile a fresh caller; return (number of ir.Var deep copies, LLVM IR, result)."""
    n = [0]
    orig = ir.Var.__deepcopy__

    def counting(self, memo):
        n[0] += 1
        return orig(self, memo)

    monkeypatch.setattr(ir.Var, "__deepcopy__", counting)
    f = _make()
    a = np.linspace(-5, 5, 101)
    r = f(a, 1.5)
    monkeypatch.setattr(ir.Var, "__deepcopy__", orig)
    llvm = f.inspect_llvm(f.signatures[0])
    # numba's mangled names carry a counter and an encoding of the defining function's identity
    llvm = re.sub(r"[\w.$]*_ZN[\w.$]*|\$\d+|0x[0-9a-f]+|\bB\d+", "#", llvm)   # and block labels (a global counter)
    llvm = re.sub(r";.*", "", llvm)                     # comments (aligned to the names' lengths)
    llvm = re.sub(r"[ \t]+", " ", llvm)
    llvm = re.sub(r"_v\d+", "_v#", llvm)                  # inlined names: the callee's unique id
    return n[0], llvm, r


@pytest.mark.skipif(not KNOWN, reason=f"the fix is written for numba 0.68's inliner (this is {numba.__version__})")
def test_the_fix_is_applied_when_kernels_are_imported():
    assert numba_inline.state == "applied"
    from numba.core import inline_closurecall as icc
    assert numba_inline._original is not None and icc.InlineWorker.inline_ir is not numba_inline._original


@pytest.mark.skipif(not KNOWN, reason=f"the fix is written for numba 0.68's inliner (this is {numba.__version__})")
def test_the_scope_is_copied_once_and_the_code_is_the_same(monkeypatch):
    assert numba_inline.state == "applied"
    fixed = _compile_counting(monkeypatch)
    numba_inline.remove()
    try:
        plain = _compile_counting(monkeypatch)
    finally:
        assert numba_inline.apply() == "applied"
    # numba's own copy: every block copies every variable of the scope again
    assert plain[0] > 4 * fixed[0], (plain[0], fixed[0])
    assert fixed[1] == plain[1]
    assert fixed[2] == plain[2]
    # and the inlined code is right: the same function run as plain Python
    a = np.linspace(-5, 5, 101)
    assert fixed[2] == pytest.approx(_callee(a, 1.5) + _callee(a, -1.5), rel=1e-12)


def test_off_by_the_environment(monkeypatch):
    """KL_MOTION_NUMBA_INLINE_FIX=0 leaves numba's method alone."""
    from numba.core import inline_closurecall as icc
    was = icc.InlineWorker.inline_ir
    numba_inline.remove()
    own = icc.InlineWorker.inline_ir
    try:
        monkeypatch.setenv("KL_MOTION_NUMBA_INLINE_FIX", "0")
        assert numba_inline.apply() == "off"
        assert icc.InlineWorker.inline_ir is own
    finally:
        numba_inline.state = "not applied"
        monkeypatch.delenv("KL_MOTION_NUMBA_INLINE_FIX")
        numba_inline.apply()
    if KNOWN:
        assert numba_inline.state == "applied" and icc.InlineWorker.inline_ir is not own
    else:
        assert icc.InlineWorker.inline_ir is was
