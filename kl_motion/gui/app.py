"""Entry point of ``kl-motion view``."""
from __future__ import annotations

import glob
import os
import sys

from ..flags import params_from_args
from ..errors import KLMotionError
from ..threads import check as check_threads


def first_camera() -> int | None:
    """Index 0 if a camera can be opened, else None (quick: on Linux, no /dev/video* means no camera)."""
    if sys.platform.startswith("linux") and not glob.glob("/dev/video*"):
        return None
    import cv2
    cap = cv2.VideoCapture(0)
    try:
        return 0 if cap.isOpened() else None
    finally:
        cap.release()


def default_source():
    """The first camera if one exists, else the bundled demo clip."""
    cam = first_camera()
    if cam is not None:
        return cam
    from .main_window import demo_path
    p = demo_path()
    if p is None:
        raise KLMotionError("no camera found and the demo clip is not installed; give a SOURCE")
    return str(p)


def check_display() -> None:
    """Qt aborts the process when it finds no display: say so in one line instead."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise KLMotionError("no display (DISPLAY is not set): kl-motion view needs a desktop; "
                            "use kl-motion process for headless work")


def run(args) -> int:
    """Open the viewer window; returns the exit code when it is closed."""
    params = params_from_args(args)          # ParameterError -> one-line CLI error
    threads = getattr(args, "threads", None)
    check_threads(threads)
    check_display()
    from ..sources import quiet_opencv
    quiet_opencv()                           # one-line messages in the window, no raw OpenCV/FFmpeg warnings
    from PySide6.QtWidgets import QApplication
    from .main_window import MainWindow

    source = getattr(args, "source", None)
    if source is None:
        source = default_source()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("kl-motion")
    win = MainWindow(params, source, threads=threads)
    win.show()
    # Ctrl+C in the terminal, SIGTERM and SIGHUP close the window (Qt's loop would otherwise hold
    # the signal back; SIGTERM would end the process without stopping a recording cleanly)
    import signal
    from ..process_cmd import STOP_SIGNALS
    from PySide6.QtCore import QTimer
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: win.close())
    wake = QTimer(win)
    wake.timeout.connect(lambda: None)
    wake.start(250)
    try:
        return int(app.exec())
    finally:
        win.shutdown()
