"""The desktop viewer (``kl-motion view``). The only package of kl_motion that imports Qt (PySide6).

Modules: ``app`` (entry point ``run(args)``), ``main_window``, ``worker`` (capture and
processing thread), ``controls`` (parameter panel generated from the parameter table),
``video_view`` (display, hover readout, zone drawing) and ``compose`` (numpy drawing of
the shown image, no Qt).
"""

# first: guard against the PySide6 6.12.0 / Python 3.11 reference-count bugs (see qtcompat)
from . import qtcompat  # noqa: E402,F401
