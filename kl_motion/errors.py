"""Named exceptions. The CLI turns each into a one-line message and a non-zero exit."""


class KLMotionError(Exception):
    """Base class of every error kl_motion reports to a user."""


class ParameterError(KLMotionError, ValueError):
    """An invalid parameter value, name or config file."""


class FrameError(KLMotionError, ValueError):
    """A frame the model cannot take (dtype, shape, size change without reset)."""


class SourceError(KLMotionError):
    """A video source that cannot be opened or read."""


class StateError(KLMotionError):
    """A saved model state that cannot be loaded."""


class OutputError(KLMotionError):
    """An output that cannot be written (exists without --force, unwritable folder)."""


class FrameTypeError(FrameError, TypeError):
    """A frame of the wrong type or dtype."""
