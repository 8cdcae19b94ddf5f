"""kl_motion: per-pixel Gaussian-mixture background with a KL-divergence motion score."""
import os as _os

from . import jitcache

# numba runs the kernels' parallel regions on OpenMP workers (libgomp), which by default spin for a
# while after each region before they sleep.  On a machine where another process keeps a core busy
# the spinning worker and the busy process share that core, and with two threads the frame rate fell
# below one thread's (docs/speed.md, "Busy cores").  Passive waiting is set here, before numba's
# thread pool starts (at the first parallel call), unless the user chose a wait policy.
if not any(_os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
jitcache.configure()   # before the kernels are compiled: a per-user numba cache when the package is read-only

from .api import MotionFrame, detect, frames  # noqa: E402
from .errors import (FrameError, FrameTypeError, KLMotionError, OutputError, ParameterError,  # noqa: E402
                     SourceError, StateError)
from .events import Event, EventDetector, FrameEvents  # noqa: E402
from .model import FrameResult, MotionModel  # noqa: E402
from .params import Params  # noqa: E402
from .sources import Source, VideoInfo, demo_path, open_source  # noqa: E402

__version__ = "0.1.0"
__all__ = ["frames", "detect", "MotionFrame", "MotionModel", "FrameResult", "Params", "EventDetector", "Event", "FrameEvents", "open_source", "Source",
           "VideoInfo", "demo_path", "KLMotionError", "ParameterError", "FrameError", "FrameTypeError", "SourceError",
           "StateError", "OutputError", "__version__"]
