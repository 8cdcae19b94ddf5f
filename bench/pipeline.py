"""Benchmark of the headless pipeline (`kl-motion process`), end to end.

Makes a 640x480 test video from CDnet highway frames (resized), then measures, in
the same run and on the same frames:

- decode only (the reader thread alone),
- detector only on frames already in memory (kl_motion model, OpenCV MOG2),
- mask encoders alone (FFV1 .mkv, PNG sequence),
- the whole pipeline, decode -> detector -> mask video + events + stats written,
  for kl_motion and for MOG2 through the same pipeline.

    .venv/bin/python bench/pipeline.py                       # 600 frames of highway
    .venv/bin/python bench/pipeline.py --frames 300 --source DIR_OR_VIDEO --json out.json

Prints a table; "overhead" is pipeline ms/frame minus detector-only ms/frame.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kl_motion.params import Params                      # noqa: E402
from kl_motion.pipeline import Options, ReaderThread, make_detector, process_input   # noqa: E402
from kl_motion.sources import open_source                 # noqa: E402

DEFAULT_SRC = ROOT.parent / "shared" / "data" / "cdnet" / "highway" / "input"


def make_video(src: str, n: int, size: tuple[int, int], path: Path, fourcc: str) -> Path:
    with open_source(src) as s:
        vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0, size)
        k = 0
        for f in s:
            if k >= n:
                break
            vw.write(cv2.resize(f, size, interpolation=cv2.INTER_LINEAR))
            k += 1
        vw.release()
    if k == 0:
        raise SystemExit(f"no frames in {src}")
    return path


REPEAT = 1


def timed(fn) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=str(DEFAULT_SRC), help="frames to build the test video from")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--codec", default="mp4v", help="fourcc of the test video (mp4v .mp4, MJPG .avi)")
    ap.add_argument("--scale", type=float, default=0.5, help="also run kl_motion at this scale (1 = skip)")
    ap.add_argument("--repeat", type=int, default=1, help="run each stage this many times, keep the fastest")
    ap.add_argument("--keep", metavar="DIR", help="keep the test video and outputs in DIR")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    global REPEAT
    REPEAT = max(1, a.repeat)
    W, H = (int(v) for v in a.size.lower().split("x"))
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="klbench-"))
    work.mkdir(parents=True, exist_ok=True)
    ext = ".avi" if a.codec.upper() == "MJPG" else ".mp4"
    video = make_video(a.source, a.frames, (W, H), work / f"bench_{W}x{H}{ext}", a.codec)
    params = Params()
    rows = []
    load0 = os.getloadavg()

    def row(name, n, sec, note=""):
        rows.append(dict(stage=name, frames=n, seconds=round(sec, 3), fps=round(n / sec, 1),
                         ms_per_frame=round(1000 * sec / n, 2), note=note))

    # --- decode only (reader thread)
    frames = []

    def decode():
        frames.clear()
        with open_source(str(video)) as s:
            frames.extend(ReaderThread(s, 8))
    sec = timed(decode)
    n = len(frames)
    row("decode only (reader thread)", n, sec, f"{a.codec} {W}x{H}")

    # --- detectors on frames in memory
    det_ms = {}
    for method in ("kl", "mog2"):
        d = make_detector(method, params)
        for f in frames[:5]:          # compile (numba) / warm up
            d.apply(f)
        results = []

        def detect():
            d = make_detector(method, params)
            results.clear()
            results.extend(d.apply(f).mask for f in frames)
        sec = timed(detect)
        det_ms[method] = 1000 * sec / n
        row(f"{'kl_motion model' if method == 'kl' else 'OpenCV MOG2'} only (in memory)", n, sec,
            "detector + cleanup + blobs")
        if method == "kl":
            masks = results

    # --- mask encoders alone
    def enc_ffv1():
        vw = cv2.VideoWriter(str(work / "enc.mkv"), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 30.0,
                             (W, H), False)
        for m in masks:
            vw.write(m)
        vw.release()
    row("mask encode only: FFV1 .mkv (chosen)", n, timed(enc_ffv1),
        f"lossless, {os.path.getsize(work / 'enc.mkv') / 1e3 / n:.1f} kB/frame")
    (work / "png").mkdir(exist_ok=True)

    def enc_png():
        for i, m in enumerate(masks):
            cv2.imwrite(str(work / "png" / f"m{i:06d}.png"), m)
    sec = timed(enc_png)
    size = sum(p.stat().st_size for p in (work / "png").iterdir())
    row("mask encode only: PNG sequence", n, sec, f"lossless, {size / 1e3 / n:.1f} kB/frame")

    # --- the whole pipeline, in this process (as `kl-motion process` runs it)
    def pipeline(method, p=params, **outs):
        best = None
        for _ in range(REPEAT):
            out = work / f"out_{method}"
            if out.exists():
                shutil.rmtree(out)
            opt = Options(method=method, force=True, **outs)
            rep = process_input(str(video), out, p, opt, stop=threading.Event())
            if rep.failed:
                raise SystemExit(f"pipeline failed: {rep.message}")
            best = rep if best is None or rep.seconds < best.seconds else best
        return best

    for method, label in (("kl", "kl_motion"), ("mog2", "OpenCV MOG2")):
        rep = pipeline(method, mask=True, stats=True, events=True)
        ms = 1000 * rep.seconds / rep.frames
        row(f"PIPELINE {label}: decode->detect->mask.mkv+events+stats", rep.frames, rep.seconds,
            f"overhead {ms - det_ms[method]:+.2f} ms/frame vs {label} only; {rep.events} events")
    # the pipeline alone: a detector that returns an empty mask at once (the ceiling of the pipeline)
    import kl_motion.pipeline as pl
    real = pl.make_detector

    class NullDetector:
        def __init__(self):
            self._m = {}

        def apply(self, f):
            m = self._m.get(f.shape[:2])
            if m is None:
                m = self._m[f.shape[:2]] = np.zeros(f.shape[:2], np.uint8)
            return pl.SimpleResult(m, [], None)

        def reset(self):
            pass
        relearn = reset

    pl.make_detector = lambda method, params: NullDetector() if method == "null" else real(method, params)
    try:
        rep = pipeline("null", mask=True, stats=True, events=True)
    finally:
        pl.make_detector = real
    row("PIPELINE null detector: decode->mask.mkv+events+stats", rep.frames, rep.seconds,
        "pipeline ceiling: everything but the detector")
    if a.scale < 1.0:
        rep = pipeline("kl", params.replace(scale=a.scale), mask=True, stats=True, events=True)
        row(f"PIPELINE kl_motion --scale {a.scale:g}: same outputs", rep.frames, rep.seconds,
            "model at reduced resolution, mask resized back")
    rep = pipeline("kl", mask=True, stats=True, events=True, overlay=True, bins=True)
    ms = 1000 * rep.seconds / rep.frames
    row("PIPELINE kl_motion: + overlay.mp4 + CDnet bins", rep.frames, rep.seconds,
        f"overhead {ms - det_ms['kl']:+.2f} ms/frame vs kl_motion only")

    w = max(len(r["stage"]) for r in rows)
    print(f"\n{W}x{H}, {n} frames, {os.cpu_count()} cores, OpenCV {cv2.__version__}, "
          f"cv2 threads {cv2.getNumThreads()}, best of {REPEAT}, load average before/after "
          f"{load0[0]:.1f}/{os.getloadavg()[0]:.1f}\n")
    print(f"{'stage':<{w}}  {'fps':>8}  {'ms/frame':>8}  note")
    print(f"{'-' * w}  {'-' * 8}  {'-' * 8}  ----")
    for r in rows:
        print(f"{r['stage']:<{w}}  {r['fps']:>8.1f}  {r['ms_per_frame']:>8.2f}  {r['note']}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
