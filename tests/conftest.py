"""Suite-wide set-up: compile the detector's numba kernels (colour and grey) once, first.

numba caches compiled kernels on disk; in a fresh clone the first test that needs a kernel would
otherwise pay the compile (40-80 s on a 2-core machine) inside its own subprocess timeout. Here the
compile happens once, before any test, and every later process (tests and the `kl-motion` runs they
start) loads the kernels from the cache.
"""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _kernels_compiled():
    from kl_motion.model import MotionModel

    for shape in ((24, 32, 3), (24, 32)):
        m = MotionModel()
        f = np.full(shape, 90, np.uint8)
        m.apply(f)
        m.apply(f)
    yield
