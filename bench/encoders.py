"""Overlay encoders at 640x480: OpenCV's mp4v (what overlay.mp4 was) against H264Sink (PyAV/libx264)
with three x264 presets, on 150 CDnet highway frames, 3 interleaved rounds, median wall and CPU
time per frame and size per frame.

    .venv/bin/python bench/encoders.py [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kl_motion.h264 import H264Sink          # noqa: E402
from kl_motion.sinks import VideoSink         # noqa: E402
from kl_motion.sources import open_source     # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("KL_MOTION_DATA", str(ROOT.parent / "shared" / "data")))
    a = ap.parse_args()
    frames = []
    with open_source(str(Path(a.data) / "cdnet" / "highway" / "input")) as s:
        for f in s:
            if len(frames) >= 150:
                break
            frames.append(cv2.resize(f, (640, 480)))
    work = Path(tempfile.mkdtemp(prefix="klenc-"))
    makers = [("OpenCV mp4v (before)", lambda: VideoSink(work / "a.mp4", 25, True)),
              ("H.264 ultrafast (chosen)", lambda: H264Sink(work / "b.mp4", 25, preset="ultrafast")),
              ("H.264 superfast", lambda: H264Sink(work / "c.mp4", 25, preset="superfast")),
              ("H.264 veryfast", lambda: H264Sink(work / "d.mp4", 25, preset="veryfast"))]
    res: dict[str, list] = {}
    load0 = os.getloadavg()[0]
    for _ in range(3):
        for name, mk in makers:
            s = mk()
            c0, t0 = time.process_time(), time.perf_counter()
            for f in frames:
                s.write(f)
            p = s.close()
            n = len(frames)
            res.setdefault(name, []).append(((time.perf_counter() - t0) / n * 1e3, (time.process_time() - c0) / n * 1e3,
                                             os.path.getsize(p) / n / 1e3))
    print(f"640x480, {len(frames)} frames, {os.cpu_count()} cores, load {load0:.1f}/{os.getloadavg()[0]:.1f}, "
          "median of 3 rounds")
    print(f"{'encoder':<26} {'wall ms/frame':>14} {'CPU ms/frame':>13} {'kB/frame':>9}")
    for name, v in res.items():
        print(f"{name:<26} {statistics.median(x[0] for x in v):>14.2f} {statistics.median(x[1] for x in v):>13.2f} "
              f"{statistics.median(x[2] for x in v):>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
