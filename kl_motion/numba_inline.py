"""A fix for a quadratic cost in numba's inliner, applied before any kernel is compiled.

numba inlines a function marked ``inline="always"`` by copying its IR block by block
(``InlineWorker.inline_ir``, its nested ``copy_ir``), with one ``copy.deepcopy`` per block and so
one memo per block.  Every variable of a block refers to the function's scope, which holds every
variable of the function: each block's copy copies the whole scope again.  The cost grows with
blocks x variables; for the model kernel (passes of a few hundred blocks, inlined into a band
function) it was ~18 s of CPU time of a cold first frame (numba 0.68, profiled: 18 million
deepcopy calls).  Here the blocks of one copy share one memo, as one deepcopy of the whole IR
would: the scope is copied once.  The copied IR is the same up to object identity (the copies of
one function share one scope object, as the original blocks do), and the machine code numba
emits is the same (checked by disassembling the cached kernels of both; tests/test_numba_inline.py
compares a compiled function's LLVM IR and results).

The fix replaces the method with numba's own source, changed in those two lines, and only when
that source is exactly the expected text; any other numba version is left alone (compiles are
then as slow as before, nothing else changes).  ``KL_MOTION_NUMBA_INLINE_FIX=0`` turns it off.
No Qt here, and nothing is compiled.
"""
from __future__ import annotations

import os

_OLD = """        kernel_copy.blocks = {}
        for block_label, block in the_ir.blocks.items():
            new_block = copy.deepcopy(the_ir.blocks[block_label])
"""
_NEW = """        kernel_copy.blocks = {}
        memo = {}   # kl_motion.numba_inline: one memo for all the blocks (the scope copied once)
        for block_label, block in the_ir.blocks.items():
            new_block = copy.deepcopy(the_ir.blocks[block_label], memo)
"""

state = "not applied"       # "applied", "off", "unknown numba source", "not applied"
_original = None


def apply() -> str:
    """Install the fix (once); returns the state: "applied", "off" (by the environment variable)
    or "unknown numba source" (the method is not the text this fix was written for)."""
    global state, _original
    if state in ("applied", "off", "unknown numba source"):
        return state
    if os.environ.get("KL_MOTION_NUMBA_INLINE_FIX", "1") == "0":
        state = "off"
        return state
    import inspect
    import textwrap
    from numba.core import inline_closurecall as icc
    try:
        src = textwrap.dedent(inspect.getsource(icc.InlineWorker.inline_ir))
    except (OSError, TypeError):
        src = ""
    if src.count(_OLD) != 1:
        state = "unknown numba source"
        return state
    ns: dict = {}
    exec(compile(src.replace(_OLD, _NEW), icc.__file__, "exec"), icc.__dict__, ns)
    _original = icc.InlineWorker.inline_ir
    icc.InlineWorker.inline_ir = ns["inline_ir"]
    state = "applied"
    return state


def remove() -> None:
    """Put numba's own method back (tests compare the two)."""
    global state, _original
    if _original is not None:
        from numba.core import inline_closurecall as icc
        icc.InlineWorker.inline_ir = _original
        _original = None
    state = "not applied"
