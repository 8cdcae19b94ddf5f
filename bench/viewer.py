"""Viewer benchmark: displayed frames per second on a 1280x720 file, and where the time goes.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/viewer.py            # default configurations
    .venv/bin/python bench/viewer.py --scales 1 0.5 --modes overlay grid --seconds 10 --json out.json

It makes a 1280x720 clip (CDnet highway frames upscaled, or the bundled demo if
highway is missing) in a temporary folder, opens it in the real viewer window
(offscreen is fine) playing as fast as it can ("max" speed), and reports for
each configuration:

* displayed fps  - frames painted per second by the UI (the figure the issue asks for)
* processed fps  - frames the worker thread read+processed per second
* read / model / draw / total ms - per processed frame, measured in the worker
* paint ms       - time in the view's paintEvent per painted frame (UI thread)
* model-only ms  - MotionModel.apply alone on the same frames, no GUI (what the kernel costs)
* worker CPU ms  - CPU time of the worker thread per frame; process CPU ms/frame - CPU time of the
                   whole process (all threads) per processed frame
* idle-machine fps est. - 1000 / max(worker CPU ms, process CPU ms / 2): what an otherwise idle
                   2-core machine would sustain (wall-clock figures suffer when other jobs share the cores)

It also runs the clip at 1x speed (real time, 30 fps) and reports whether the
viewer keeps up.  The model kernel is being optimised separately: when
model ms is most of total ms, the model is the bottleneck, not the viewer.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from kl_motion.sources import demo_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HIGHWAY = ROOT.parent / "shared" / "data" / "cdnet" / "highway" / "input"


def make_clip(folder: Path, n: int, size=(1280, 720), fps=30.0) -> Path:
    src = HIGHWAY if HIGHWAY.is_dir() else demo_path() / "input"
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not files:
        sys.exit(f"no frames in {src}")
    start = min(len(files) - 1, 470) if len(files) > 600 else 0   # highway: cars are on the road by then
    files = (files[start:] + files[:start])[:n]
    path = folder / "clip_1280x720.mp4"
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for f in files:
        wr.write(cv2.resize(cv2.imread(str(f)), size, interpolation=cv2.INTER_CUBIC))
    wr.release()
    return path


def model_only(path: Path, scale: float, n: int) -> float:
    from kl_motion import MotionModel, Params
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    m = MotionModel(Params(scale=scale))
    warm = len(frames) // 3
    for f in frames[:warm]:
        m.apply(f)
    t = time.perf_counter()
    for f in frames[warm:]:
        m.apply(f)
    return (time.perf_counter() - t) / max(1, len(frames) - warm) * 1e3


def model_only_in_thread(path: Path, scale: float, n: int) -> float:
    """model_only, called from a worker thread like the viewer does (on this box a numba
    parallel kernel called from the main thread measured up to 2x slower under load)."""
    import threading
    out = []
    t = threading.Thread(target=lambda: out.append(model_only(path, scale, n)))
    t.start()
    t.join()
    return out[0]


def run_viewer(app, path: Path, scale: float, mode: str, seconds: float, speed: float, window=(1280, 760),
               warmup: float = 1.5):
    from kl_motion import Params
    from kl_motion.gui.compose import ViewSettings
    from kl_motion.gui.main_window import MainWindow

    w = MainWindow(Params(scale=scale), None, playing=True, speed=speed, settings=ViewSettings(mode=mode))
    w.testing = True
    w.resize(*window)
    w.show()
    w.open_source(str(path))
    # warm up (JIT, first frames, the learning phase of the model) for `warmup` seconds
    t0 = time.perf_counter()
    while ((w.worker is None or w.worker.frames_processed < 5 or time.perf_counter() - t0 < warmup)
           and time.perf_counter() - t0 < 60):
        app.processEvents()
        time.sleep(0.001)
    wk = w.worker
    samples = []

    def sample():
        p = wk.peek()
        if p is not None and p.model_ms > 0 and (not samples or samples[-1] is not p):
            samples.append(p)

    shown0, proc0, paints0, paint_ms0 = w.frames_shown, wk.frames_processed, w.view.paints, w.view.paint_ms_total
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds and wk.thread.is_alive():
        app.processEvents()
        sample()
        if wk.info and wk.info.total_frames and wk.position >= wk.info.total_frames - 1:
            break   # end of clip
        time.sleep(0.0005)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    shown = w.frames_shown - shown0
    proc = wk.frames_processed - proc0
    paints = w.view.paints - paints0
    paint_ms = (w.view.paint_ms_total - paint_ms0) / max(1, paints)
    view_size = (w.view.image_rect().width(), w.view.image_rect().height())
    w.close()
    app.processEvents()

    def mean(attr):
        return float(np.mean([getattr(p, attr) for p in samples])) if samples else float("nan")

    return dict(scale=scale, mode=mode, speed="max" if speed == 0 else f"{speed:g}x", seconds=round(dt, 2),
                displayed_fps=shown / dt, processed_fps=proc / dt, read_ms=mean("read_ms"),
                model_ms=mean("model_ms"), draw_ms=mean("compose_ms"), total_ms=mean("total_ms"),
                paint_ms=paint_ms, painted_at=f"{view_size[0]:.0f}x{view_size[1]:.0f}",
                worker_cpu_ms=mean("cpu_ms"), process_cpu_ms=cpu / max(1, proc) * 1e3,
                idle_fps_estimate=_idle_estimate(mean("cpu_ms"), cpu / max(1, proc) * 1e3),
                load=os.getloadavg()[0])


def _idle_estimate(worker_cpu_ms: float, process_cpu_ms: float, cores: int = 2) -> float:
    """Frames per second an otherwise idle machine would sustain: bounded by the worker
    thread (a serial pipeline) and by all threads of the process sharing the cores."""
    return 1000.0 / max(worker_cpu_ms, process_cpu_ms / cores, 1e-6)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    ap.add_argument("--modes", nargs="+", default=["overlay"], help="view modes to measure (overlay, mask, heatmap, "
                                                                    "background, grid)")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds per configuration")
    ap.add_argument("--frames", type=int, default=450, help="frames in the generated clip")
    ap.add_argument("--no-realtime", action="store_true", help="skip the 1x (real time) runs")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)

    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(sys.argv[:1])
    rows = []
    with tempfile.TemporaryDirectory(prefix="klm-bench-") as tmp:
        clip = make_clip(Path(tmp), args.frames)
        print(f"clip: 1280x720, {args.frames} frames, 30 fps ({'CDnet highway' if HIGHWAY.is_dir() else 'demo'} "
              f"upscaled); {os.cpu_count()} cores; Qt platform {app.platformName()}; {platform.processor() or ''}",
              flush=True)
        print(f"load average at start: {os.getloadavg()[0]:.1f} (other processes compete for the 2 cores when > 2)",
              flush=True)
        model_ms = {s: model_only_in_thread(clip, s, 90) for s in args.scales}
        for s in args.scales:
            for mode in args.modes:
                r = run_viewer(app, clip, s, mode, args.seconds, speed=0.0)
                r["model_only_ms"] = model_ms[s]
                rows.append(r)
                print(_fmt_row(r), flush=True)
            if not args.no_realtime:
                r = run_viewer(app, clip, s, args.modes[0], min(args.seconds, 6.0), speed=1.0)
                r["model_only_ms"] = model_ms[s]
                rows.append(r)
                print(_fmt_row(r), flush=True)
    print()
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


COLS = [("scale", "scale", "{:g}"), ("mode", "mode", "{}"), ("speed", "speed", "{}"),
        ("displayed_fps", "displayed fps", "{:.1f}"), ("processed_fps", "processed fps", "{:.1f}"),
        ("read_ms", "read ms", "{:.1f}"), ("model_ms", "model ms", "{:.1f}"), ("draw_ms", "draw ms", "{:.1f}"),
        ("total_ms", "worker total ms", "{:.1f}"), ("paint_ms", "UI paint ms", "{:.1f}"),
        ("model_only_ms", "model alone ms", "{:.1f}"), ("worker_cpu_ms", "worker CPU ms", "{:.1f}"),
        ("process_cpu_ms", "process CPU ms/frame", "{:.1f}"), ("idle_fps_estimate", "idle-machine fps est.", "{:.0f}"),
        ("load", "load avg", "{:.1f}")]


def _fmt_row(r):
    return "  ".join(f"{h}={f.format(r[k])}" for k, h, f in COLS)


def table(rows) -> str:
    head = "| " + " | ".join(h for _, h, _ in COLS) + " |"
    sep = "|" + "|".join("---" for _ in COLS) + "|"
    body = ["| " + " | ".join(f.format(r[k]) for k, _, f in COLS) + " |" for r in rows]
    return "\n".join([head, sep] + body)


if __name__ == "__main__":
    sys.exit(main())
