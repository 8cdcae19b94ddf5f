"""kl_motion: per-pixel Gaussian-mixture background with a KL-divergence motion score."""
from .errors import (FrameError, FrameTypeError, KLMotionError, OutputError, ParameterError, SourceError,
                     StateError)
from .model import FrameResult, MotionModel
from .params import Params

__version__ = "0.1.0"
__all__ = ["MotionModel", "FrameResult", "Params", "KLMotionError", "ParameterError", "FrameError",
           "FrameTypeError", "SourceError", "StateError", "OutputError", "__version__"]
