#!/usr/bin/env python3
"""A fake RTSP camera on 127.0.0.1 for trying `kl-motion process rtsp://...` without a camera.

Serves rtsp://127.0.0.1:PORT/cam: 320x240 H.264 at 25 fps, a grey scene with a little sensor
noise where a bright box crosses the picture for 3 s every 10 s (an event starts and ends each
time).  Runs with Debian's Python and GStreamer (not the project's venv):

    sudo apt-get install python3-gi python3-numpy gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly \
        gstreamer1.0-plugins-good
    /usr/bin/python3 tools/fake_camera.py [--port 8554] [--every 10] [--moving 3]
"""
import argparse
import time

import gi
import numpy as np

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

W, H, FPS = 320, 240, 25


def frame(i: int, every: float, moving: float) -> bytes:
    rng = np.random.default_rng(i)
    f = np.full((H, W, 3), 95, np.uint8) + rng.integers(0, 4, (H, W, 3), dtype=np.uint8)
    f[170:, :] = 70                                          # a floor
    t = (i / FPS) % every
    if t < moving:                                           # the box crosses left to right
        x = int(-40 + (W + 40) * t / moving)
        f[110:170, max(0, x):max(0, x + 40)] = (230, 220, 200)
    return f.tobytes()


class Factory(GstRtspServer.RTSPMediaFactory):
    def __init__(self, every: float, moving: float):
        super().__init__()
        self.every, self.moving = every, moving
        self.set_shared(True)

    def do_create_element(self, url):
        pipe = (f"appsrc name=src is-live=true format=time do-timestamp=false "
                f"caps=video/x-raw,format=RGB,width={W},height={H},framerate={FPS}/1 ! videoconvert ! "
                f"video/x-raw,format=I420 ! "
                f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} ! rtph264pay name=pay0 pt=96")
        el = Gst.parse_launch(pipe)
        src = el.get_by_name("src")
        state = {"i": 0, "t0": None}

        def need_data(appsrc, length):
            i = state["i"]
            if state["t0"] is None:
                state["t0"] = time.monotonic()
            wait = state["t0"] + i / FPS - time.monotonic()     # real time, as a camera
            if wait > 0:
                time.sleep(wait)
            buf = Gst.Buffer.new_wrapped(frame(i, self.every, self.moving))
            buf.pts = buf.dts = i * Gst.SECOND // FPS
            buf.duration = Gst.SECOND // FPS
            state["i"] = i + 1
            appsrc.emit("push-buffer", buf)

        src.connect("need-data", need_data)
        return el


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", default="8554")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between two crossings")
    ap.add_argument("--moving", type=float, default=3.0, help="seconds a crossing lasts")
    a = ap.parse_args()
    Gst.init(None)
    srv = GstRtspServer.RTSPServer()
    srv.set_address("127.0.0.1")
    srv.set_service(a.port)
    srv.get_mount_points().add_factory("/cam", Factory(a.every, a.moving))
    srv.attach(None)
    print(f"fake camera: rtsp://127.0.0.1:{a.port}/cam", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
