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
    .venv/bin/python bench/pipeline.py --frames 300 --isa avx2   # AVX2 code for the kernels (subprocess)
    .venv/bin/python bench/pipeline.py --notify --repeat 3       # + live events: hook, webhook, MQTT

With --notify, the same pipeline with parameters that make several events (motion_area 0.06,
event_gap 0.4) runs without notifiers and with --on-event true, --webhook (a server started
here on 127.0.0.1), --mqtt (a mosquitto broker started here on 127.0.0.1, when installed) and
all three.

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

import _isa                                               # noqa: E402  (bench/_isa.py)

from kl_motion.params import Params                      # noqa: E402
from kl_motion.analyzer import SimpleResult, make_detector      # noqa: E402
from kl_motion.pipeline import Options, ReaderThread, process_input   # noqa: E402
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


class NullDetector:
    """Returns an empty mask at once: what is left is the pipeline's own cost."""

    def __init__(self):
        self._m = {}
        self.params = Params()

    def apply(self, f):
        m = self._m.get(f.shape[:2])
        if m is None:
            m = self._m[f.shape[:2]] = np.zeros(f.shape[:2], np.uint8)
        return SimpleResult(m, [], None)

    def reset(self):
        pass

    relearn = reset


def notify_bench(video: Path, work: Path, params: Params, rounds: int) -> list[dict]:
    """The default pipeline with and without --on-event / --webhook / --mqtt, interleaved round by round;
    wall and CPU time (this process and its children: the hook's shells) per frame, medians."""
    import statistics
    sys.path.insert(0, str(ROOT / "tests"))
    from servers import Mosquitto, RecordingHTTPServer, mosquitto_path
    web = RecordingHTTPServer(codes=[200])
    broker = Mosquitto(work) if mosquitto_path() else None
    ev = params.replace(motion_area=0.06, event_gap=0.4)      # several events in a short clip
    configs = [("no notifier (default)", {}), ("--no-boxes --no-report", dict(boxes=False, report=False)),
               ("--on-event true", dict(on_event="true")),
               ("--webhook http://127.0.0.1", dict(webhook=web.url))]
    if broker:
        configs.append(("--mqtt 127.0.0.1 (mosquitto)", dict(mqtt=f"127.0.0.1:{broker.port}")))
    else:
        print("mosquitto not installed: no MQTT figure")
    every = {k: v for _, c in configs[2:] for k, v in c.items()}
    configs.append(("all three", every))
    res: dict[str, list] = {}
    try:
        for _ in range(max(3, rounds)):
            for name, extra in configs:
                out = work / "out_notify"
                if out.exists():
                    shutil.rmtree(out)
                opt = Options(method="kl", force=True, **extra)
                t0 = os.times()
                rep = process_input(str(video), out, ev, opt, stop=threading.Event())
                t1 = os.times()
                if rep.failed:
                    raise SystemExit(f"pipeline failed: {rep.message}")
                cpu = (t1.user - t0.user + t1.system - t0.system + t1.children_user - t0.children_user
                       + t1.children_system - t0.children_system)
                res.setdefault(name, []).append((rep.seconds / rep.frames * 1e3, cpu / rep.frames * 1e3, rep.events))
    finally:
        web.close()
        if broker:
            broker.stop()
    base = statistics.median(x[0] for x in res[configs[0][0]])
    rows = []
    print(f"live events: motion_area {ev.motion_area:g}, event_gap {ev.event_gap:g} s; median of {max(3, rounds)} interleaved rounds; "
          f"webhook server got {len(web.requests)} POSTs")
    print(f"{'notifiers':<30} {'wall ms/frame':>14} {'vs default':>11} {'CPU ms/frame':>13} {'events':>7}")
    for name, v in res.items():
        wall, cpu = statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)
        rows.append(dict(notifiers=name, wall_ms=round(wall, 2), cpu_ms=round(cpu, 2), events=v[0][2],
                         ratio=round(wall / base, 3)))
        print(f"{name:<30} {wall:>14.2f} {wall / base:>11.3f} {cpu:>13.2f} {v[0][2]:>7}")
    print()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=str(DEFAULT_SRC), help="frames to build the test video from")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--codec", default="mp4v", help="fourcc of the test video (mp4v .mp4, MJPG .avi)")
    ap.add_argument("--scale", type=float, default=0.5, help="also run kl_motion at this scale (1 = skip)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds: every stage runs once per round (interleaved, fair under changing load); "
                         "the fastest round of each stage is kept")
    ap.add_argument("--keep", metavar="DIR", help="keep the test video and outputs in DIR")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--notify", action="store_true",
                    help="also time the pipeline with --on-event / --webhook / --mqtt (servers on 127.0.0.1)")
    ap.add_argument("--notify-only", action="store_true", help="only the --notify table")
    _isa.add_argument(ap)
    a = ap.parse_args()
    rc = _isa.reexec_if_needed(a)
    if rc is not None:
        return rc
    rounds = max(1, a.repeat)
    W, H = (int(v) for v in a.size.lower().split("x"))
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="klbench-"))
    work.mkdir(parents=True, exist_ok=True)
    ext = ".avi" if a.codec.upper() == "MJPG" else ".mp4"
    video = make_video(a.source, a.frames, (W, H), work / f"bench_{W}x{H}{ext}", a.codec)
    params = Params()
    load0 = os.getloadavg()
    if a.notify_only:
        print(f"{W}x{H}, {a.frames} frames of {a.codec}, {os.cpu_count()} cores, load {load0[0]:.1f}")
        notify_bench(video, work, params, rounds)
        print(f"load after {os.getloadavg()[0]:.1f}")
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 0

    frames: list = []
    masks: list = []
    with open_source(str(video)) as s:
        frames.extend(ReaderThread(s, 8))
    n = len(frames)
    for method in ("kl", "mog2"):          # compile (numba) / warm up
        d = make_detector(method, params)
        for f in frames[:5]:
            d.apply(f)

    def decode():
        with open_source(str(video)) as s:
            k = sum(1 for _ in ReaderThread(s, 8))
        return k, f"{a.codec} {W}x{H}"

    def detect(method):
        def run():
            d = make_detector(method, params)
            out = [d.apply(f).mask for f in frames]
            if method == "kl":
                masks[:] = out
            return n, "detector + cleanup + blobs, frames in memory"
        return run

    def enc_ffv1():
        vw = cv2.VideoWriter(str(work / "enc.mkv"), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 30.0,
                             (W, H), False)
        for m in masks:
            vw.write(m)
        vw.release()
        return n, f"lossless, {os.path.getsize(work / 'enc.mkv') / 1e3 / n:.1f} kB/frame"

    def enc_png():
        (work / "png").mkdir(exist_ok=True)
        for i, m in enumerate(masks):
            cv2.imwrite(str(work / "png" / f"m{i:06d}.png"), m)
        size = sum(p.stat().st_size for p in (work / "png").iterdir())
        return n, f"lossless, {size / 1e3 / n:.1f} kB/frame"

    def pipeline(method, p=params, **outs):
        def run():
            out = work / f"out_{method}"
            if out.exists():
                shutil.rmtree(out)
            opt = Options(method=method, force=True, **outs)
            det = NullDetector() if method == "null" else make_detector(method, p)
            rep = process_input(str(video), out, p, opt, stop=threading.Event(), detector=det)
            if rep.failed:
                raise SystemExit(f"pipeline failed: {rep.message}")
            return rep.frames, f"{rep.events} events", rep.seconds
        return run

    base = dict(mask=True, stats=True, events=True)
    stages = [
        ("decode only (reader thread)", decode, None),
        ("kl_motion model only", detect("kl"), None),
        ("OpenCV MOG2 only", detect("mog2"), None),
        ("mask encode only: FFV1 .mkv (chosen)", enc_ffv1, None),
        ("mask encode only: PNG sequence", enc_png, None),
        ("PIPELINE kl_motion: decode->detect->mask.mkv+events+stats", pipeline("kl", **base), "kl_motion model only"),
        ("PIPELINE OpenCV MOG2: decode->detect->mask.mkv+events+stats", pipeline("mog2", **base), "OpenCV MOG2 only"),
        ("PIPELINE null detector: decode->mask.mkv+events+stats", pipeline("null", **base), None),
    ]
    if a.scale < 1.0:
        stages.append((f"PIPELINE kl_motion --scale {a.scale:g}: same outputs",
                       pipeline("kl", params.replace(scale=a.scale), **base), None))
    stages.append(("PIPELINE kl_motion: + overlay.mp4 + CDnet bins",
                   pipeline("kl", overlay=True, bins=True, **base), "kl_motion model only"))
    stages.append(("PIPELINE kl_motion: no boxes.csv, no report",
                   pipeline("kl", boxes=False, report=False, **base), "kl_motion model only"))
    best: dict[str, tuple] = {}
    for r in range(rounds):
        for name, fn, _ in stages:
            t = time.perf_counter()
            res = fn()
            sec = res[2] if len(res) > 2 else time.perf_counter() - t
            if name not in best or sec < best[name][0]:
                best[name] = (sec, res[0], res[1])

    rows = []
    for name, _, ref in stages:
        sec, k, note = best[name]
        ms = 1000 * sec / k
        if ref:
            ref_ms = 1000 * best[ref][0] / best[ref][1]
            note = f"{note}; {ms - ref_ms:+.2f} ms/frame vs {ref}"
        rows.append(dict(stage=name, frames=k, seconds=round(sec, 3), fps=round(k / sec, 1),
                         ms_per_frame=round(ms, 2), note=note))
    REPEAT = rounds

    w = max(len(r["stage"]) for r in rows)
    print(f"\n{W}x{H}, {n} frames, {os.cpu_count()} cores, OpenCV {cv2.__version__}, "
          f"cv2 threads {cv2.getNumThreads()}, best of {REPEAT}, load average before/after "
          f"{load0[0]:.1f}/{os.getloadavg()[0]:.1f}\n")
    print(f"{'stage':<{w}}  {'fps':>8}  {'ms/frame':>8}  note")
    print(f"{'-' * w}  {'-' * 8}  {'-' * 8}  ----")
    for r in rows:
        print(f"{r['stage']:<{w}}  {r['fps']:>8.1f}  {r['ms_per_frame']:>8.2f}  {r['note']}")
    print()
    isa = _isa.print_kernel_isa()
    notify_rows = notify_bench(video, work, params, rounds) if a.notify else []
    if a.json:
        Path(a.json).write_text(json.dumps(dict(rows=rows, kernel_isa=isa, notify=notify_rows), indent=1) + "\n")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
