"""The desktop viewer (``kl-motion view``). The only package of kl_motion that imports Qt (PySide6).

Modules: ``app`` (entry point ``run(args)``), ``main_window``, ``worker`` (capture and
processing thread), ``controls`` (parameter panel generated from the parameter table),
``video_view`` (display, hover readout, zone drawing) and ``compose`` (numpy drawing of
the shown image, no Qt).
"""
