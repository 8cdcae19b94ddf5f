"""Make docs/viewer.png (and docs/viewer-grid.png) from a real viewer window.

Run under a virtual X server:  xvfb-run -s "-screen 0 1400x860x24" .venv/bin/python docs/make_viewer_png.py
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
    w = MainWindow(params, str(demo_path()), playing=True, speed=1.0)
    w.resize(1280, 760)
    w.move(0, 0)
    w.show()
    w.set_view(outlines=True, boxes=True)
    with_boxes = w.boxes_box
    with_boxes.setChecked(True)
    w.outlines_box.setChecked(True)
    t = time.time()
    while (w.packet is None or w.packet.position < 78) and time.time() - t < 30:
        pump(app, 0.02)
    w.set_playing(False)
    pump(app, 0.6)
    w._on_hover(0.62, 0.55)
    w._update_status()
    pump(app, 0.3)
    shot = app.primaryScreen().grabWindow(0, 0, 0, w.frameGeometry().width(), w.frameGeometry().height())
    shot.save(str(OUT / "viewer.png"), "PNG", 0)
    w.set_mode("grid")
    pump(app, 0.6)
    w._update_status()
    pump(app, 0.2)
    shot = app.primaryScreen().grabWindow(0, 0, 0, w.frameGeometry().width(), w.frameGeometry().height())
    shot.save(str(OUT / "viewer-grid.png"), "PNG", 0)
    w.close()
    print("wrote", OUT / "viewer.png", OUT / "viewer-grid.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
