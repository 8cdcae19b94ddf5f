"""Make docs/viewer.png (and docs/viewer-grid.png) from a real viewer window.

Run under a virtual X server:  xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python docs/make_viewer_png.py
(the demo clip played once at full speed: the event list and the motion timeline filled, then frame 79
in the 2x2 grid with MOG2 beside kl_motion, and in the overlay view).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from kl_motion import Params
from kl_motion.gui.main_window import MainWindow, demo_path

OUT = Path(__file__).resolve().parent


def pump(app, seconds):
    t = time.time()
    while time.time() - t < seconds:
        app.processEvents()
        time.sleep(0.005)


def main() -> int:
    app = QApplication(sys.argv[:1])
    params = Params(ignore_zones=[[[0.0, 0.0], [0.28, 0.0], [0.28, 0.12], [0.0, 0.12]]])
    w = MainWindow(params, str(demo_path()), playing=True, speed=0.0)
    w.resize(1280, 800)
    w.move(0, 0)
    w.show()
    w.set_mode("grid")                    # the grid's MOG2 learns from the first frame on
    w.boxes_box.setChecked(True)
    w.outlines_box.setChecked(True)
    t = time.time()                       # play the clip once: the event list and the timeline fill
    while not (w.packet is not None and w.packet.position == 149 and not w.worker.playing):
        if time.time() - t > 600:
            raise SystemExit("the demo did not play to its end within 10 minutes")
        pump(app, 0.02)
    pump(app, 0.3)
    w.set_playing(False)
    w.seek(78)
    pump(app, 0.8)
    w._on_hover(0.62, 0.55)
    w._update_status()
    pump(app, 0.3)
    grab(app, w, "viewer-grid.png")
    w.set_mode("overlay")
    pump(app, 0.6)
    w._update_status()
    pump(app, 0.3)
    grab(app, w, "viewer.png")
    w.close()
    print("wrote", OUT / "viewer.png", OUT / "viewer-grid.png")
    return 0


def grab(app, w, name):
    shot = app.primaryScreen().grabWindow(0, 0, 0, w.frameGeometry().width(), w.frameGeometry().height())
    shot.save(str(OUT / name), "PNG", 0)


if __name__ == "__main__":
    sys.exit(main())
