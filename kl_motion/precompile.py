"""A cold first frame compiles part of the kernels on the other core, while this process compiles the model's band.

On a new machine (an empty numba cache) the first frame compiles the model's band kernel (~13-24 s of
CPU on our 2-core VM), its parallel loop over bands (~1.6 s) and the cleanup kernels of blobs_nb
(~8.5 s), one after the other: numba compiles under one global lock, so a thread cannot help.  A second
process can: when neither the model's band kernel nor the cleanup is in the cache, the model starts
``python -m kl_motion.precompile`` with the frame size, the parameters and the channel count, which
first compiles the small functions the band calls (the band's own compile, here, reaches them a few
seconds in and then loads them from the cache: ~2 s less), then the parallel loop (it calls the band
by its address, so it needs no band, and serves both channel counts) and then runs the cleanup once
on a made-up label image (the same code paths: shadows, zones, feedback), writing their kernels to
the shared on-disk cache; by the time this process has compiled the band it loads them.
On a machine with a free core the first frame is that much shorter; with a warm cache nothing starts.
If the helper fails or is not done, this process compiles the kernels itself, as before (the cache
writes are numba's, atomic).  ``KL_MOTION_PRECOMPILE=0`` turns it off.  No Qt here.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys

_started: list[subprocess.Popen] = []


def _cached(dispatcher) -> bool | None:
    """Whether numba's on-disk cache holds a version of ``dispatcher`` for this CPU (None: cannot tell)."""
    try:
        cache = dispatcher._cache
        index = cache._cache_file._load_index()
        magic = dispatcher.targetctx.codegen().magic_tuple()
    except Exception:       # numba internals: any change means "cannot tell"
        return None
    return any(len(k) > 1 and k[1] == magic for k in index)


def cold(colour: bool) -> bool:
    """True when both the model's band kernel for this channel count and the cleanup are missing from the cache."""
    from . import blobs_nb, kernels
    band = kernels._band3 if colour else kernels._band1
    return _cached(band) is False and _cached(blobs_nb.paint_runs) is False      # paint_runs: on every path


def start(height: int, width: int, params, colour: bool = True) -> subprocess.Popen | None:
    """Start the helper process if the cache is cold and this is a plain Python (not a frozen app)."""
    if os.environ.get("KL_MOTION_PRECOMPILE", "1") == "0" or getattr(sys, "frozen", False) or not sys.executable:
        return None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kl_motion.precompile", str(int(height)), str(int(width)),
             json.dumps(params.to_dict()), "3" if colour else "1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    if not _started:
        atexit.register(_stop_all)
    _started.append(proc)
    return proc


def _stop_all() -> None:
    """At exit: a helper still compiling is stopped (its cache writes are atomic; nothing half-written)."""
    for p in _started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def warm_cleanup(height: int, width: int, params) -> None:
    """Run the cleanup (and the feedback's cover) once on a label image with foreground, shadow and
    background, with these parameters and frame size: numba compiles (or loads) every kernel they use."""
    import numpy as np

    from .postprocess import clean, feedback_cover, zone_mask
    raw = np.zeros((height, width), np.uint8)
    raw[height // 4: height // 2, width // 4: width // 2] = 255
    raw[height // 2: height // 2 + max(1, height // 8), width // 4: width // 2] = 127
    zone = zone_mask(params, width, height)
    feedback = np.zeros_like(raw)
    out = np.zeros_like(raw)
    clean(raw, params, zone, 1.0, feedback=feedback)
    feedback_cover(feedback, out)


def main(argv: list[str]) -> int:
    """``H W params-json [channels]``: first the functions the model's band calls (``kernels.compile_band_callees``:
    the band's compile, running meanwhile in the model's process, finds them in the cache), then the parallel
    loop over bands (``kernels.compile_step``: it needs no band compiled, the band is called by its address),
    then the cleanup."""
    from . import kernels
    from .params import Params
    h, w, p = int(argv[0]), int(argv[1]), Params.from_dict(json.loads(argv[2]))
    kernels.compile_band_callees(len(argv) < 4 or argv[3] != "1")
    kernels.compile_step()
    warm_cleanup(h, w, p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
