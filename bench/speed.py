"""Speed of kl_motion against OpenCV's MOG2 and KNN, in the same process, on the same frames.

    .venv/bin/python bench/speed.py [--data ../shared/data/cdnet/highway] [--frames 150]
                                    [--sizes 320x240,640x480,1280x720,1920x1080] [--json FILE]
                                    [--no-first-frame] [--no-scale] [--breakdown] [--isa avx2]

What is timed per frame: ``MotionModel.apply`` (mixture update + KL map + labels + cleanup,
the mask a user gets) against ``cv2.BackgroundSubtractorMOG2.apply`` and ``...KNN.apply``,
all with default parameters.  Frames are decoded and resized (cv2.resize, INTER_AREA) once,
up front, and cycled; every method gets a warm-up, then the three are called on the same
frame one after the other (so machine noise hits them alike) and the median is reported.
numba and OpenCV both use every core (os.cpu_count() threads).

Also: the first frame (model construction + first apply, and the import) in a NEW process
with numba's on-disk cache cold (empty NUMBA_CACHE_DIR) and warm (second run on the same
dir); the model's state bytes per pixel; the ``scale`` parameter's speed; with --breakdown,
where the time of one apply goes (kernel, cleanup, the rest).

``--isa avx2`` runs all of it (kl_motion and MOG2/KNN, so the reference stays in the same run) in a
subprocess where numba generates AVX2 code (bench/_isa.py); every run prints the instruction set
the kernels were built for, read from their machine code.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numba  # noqa: E402

import _isa  # noqa: E402  (bench/_isa.py)

from kl_motion import kernels, model as model_mod  # noqa: E402
from kl_motion.model import MotionModel  # noqa: E402
from kl_motion.params import Params  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cdnet" / "highway"
DEFAULT_SIZES = "320x240,640x480,1280x720,1920x1080"


# ----------------------------------------------------------------------------- frames
def load_frames(data: Path, n: int, start: int = 0) -> list[np.ndarray]:
    inp = data / "input" if (data / "input").is_dir() else data
    files = sorted(p for p in inp.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
    files = files[start:start + n]
    if not files:
        raise SystemExit(f"no frames in {inp}")
    frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files]
    return [f for f in frames if f is not None]


def resized(frames: list[np.ndarray], w: int, h: int) -> list[np.ndarray]:
    return [np.ascontiguousarray(cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)) for f in frames]


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for s in text.split(","):
        w, h = s.lower().split("x")
        out.append((int(w), int(h)))
    return out


# ----------------------------------------------------------------------------- timing
CLOCK = time.perf_counter     # --cpu-time: time.process_time (with --threads 1: immune to other load)


def time_methods(methods: dict, frames: list[np.ndarray], warmup: int, n: int) -> dict[str, float]:
    """Median ms/frame of each callable, called in turn on the same frame (cycling)."""
    for i in range(warmup):
        f = frames[i % len(frames)]
        for fn in methods.values():
            fn(f)
    times: dict[str, list[float]] = {k: [] for k in methods}
    for i in range(n):
        f = frames[(warmup + i) % len(frames)]
        for k, fn in methods.items():
            t0 = CLOCK()
            fn(f)
            times[k].append(CLOCK() - t0)
    return {k: 1000.0 * statistics.median(v) for k, v in times.items()}


def bench_sizes(frames0, sizes, n, warmup) -> list[dict]:
    rows = []
    for w, h in sizes:
        frames = resized(frames0, w, h)
        klm = MotionModel(Params())
        mog2 = cv2.createBackgroundSubtractorMOG2()
        knn = cv2.createBackgroundSubtractorKNN()
        ms = time_methods({"kl_motion": klm.apply, "mog2": mog2.apply, "knn": knn.apply}, frames, warmup, n)
        row = dict(width=w, height=h, kl_ms=ms["kl_motion"], mog2_ms=ms["mog2"], knn_ms=ms["knn"],
                   ratio_kl_mog2=ms["kl_motion"] / ms["mog2"], ratio_kl_knn=ms["kl_motion"] / ms["knn"],
                   state_bytes_per_pixel=klm.state_bytes_per_pixel)
        rows.append(row)
        print(f"{w:>5}x{h:<5} {row['kl_ms']:9.2f} {row['mog2_ms']:9.2f} {row['knn_ms']:9.2f} "
              f"{row['ratio_kl_mog2']:10.2f} {row['ratio_kl_knn']:9.2f}", flush=True)
        del frames
    return rows


def bench_scale(frames0, sizes, scales, n, warmup) -> list[dict]:
    """ms/frame of kl_motion at each scale (and MOG2 at full size as the yardstick)."""
    rows = []
    for w, h in sizes:
        frames = resized(frames0, w, h)
        methods = {f"scale={s}": MotionModel(Params(scale=s)).apply for s in scales}
        methods["mog2"] = cv2.createBackgroundSubtractorMOG2().apply
        ms = time_methods(methods, frames, warmup, n)
        for s in scales:
            r = dict(width=w, height=h, scale=s, kl_ms=ms[f"scale={s}"], mog2_ms=ms["mog2"],
                     ratio_kl_mog2=ms[f"scale={s}"] / ms["mog2"])
            rows.append(r)
            print(f"{w:>5}x{h:<5} {s:6.2f} {r['kl_ms']:9.2f} {r['mog2_ms']:9.2f} {r['ratio_kl_mog2']:10.2f}",
                  flush=True)
        del frames
    return rows


def breakdown(frames0, sizes, n, warmup) -> list[dict]:
    """Where one apply's time goes: kernels.step, postprocess.clean, the rest of apply."""
    rows = []
    orig_step, orig_clean = kernels.step, model_mod.clean
    acc = {"step": 0.0, "clean": 0.0}

    def timed(name, fn):
        def wrap(*a, **k):
            t0 = CLOCK()
            out = fn(*a, **k)
            acc[name] += CLOCK() - t0
            return out
        return wrap

    for w, h in sizes:
        frames = resized(frames0, w, h)
        m = MotionModel(Params())
        for i in range(warmup):
            m.apply(frames[i % len(frames)])
        kernels.step, model_mod.clean = timed("step", orig_step), timed("clean", orig_clean)
        try:
            tot, st, cl = [], [], []
            for i in range(n):
                acc["step"] = acc["clean"] = 0.0
                t0 = CLOCK()
                m.apply(frames[(warmup + i) % len(frames)])
                tot.append(CLOCK() - t0)
                st.append(acc["step"])
                cl.append(acc["clean"])
        finally:
            kernels.step, model_mod.clean = orig_step, orig_clean
        med = lambda v: 1000.0 * statistics.median(v)
        r = dict(width=w, height=h, apply_ms=med(tot), kernel_ms=med(st), clean_ms=med(cl),
                 rest_ms=med([t - s - c for t, s, c in zip(tot, st, cl)]))
        rows.append(r)
        print(f"{w:>5}x{h:<5} {r['apply_ms']:9.2f} {r['kernel_ms']:9.2f} {r['clean_ms']:9.2f} {r['rest_ms']:9.2f}",
              flush=True)
        del frames
    return rows


# ----------------------------------------------------------------------------- first frame
_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import cv2, numpy as np
from kl_motion.model import MotionModel
t1 = time.perf_counter()
f = cv2.imread(sys.argv[1], cv2.IMREAD_COLOR)
t2 = time.perf_counter()
c2 = time.process_time()
m = MotionModel()
r = m.apply(f)
t3 = time.perf_counter()
c3 = time.process_time()
m.apply(f)
t4 = time.perf_counter()
sys.path.insert(0, "bench")
import _isa
print(json.dumps(dict(import_s=t1 - t0, first_frame_s=t3 - t2, first_frame_cpu_s=c3 - c2, second_frame_s=t4 - t3,
                      isa=_isa.kernel_isa()["isa"])))
"""


def first_frame(frame_path: Path) -> dict:
    """Run a child process: cold cache (empty NUMBA_CACHE_DIR), then twice warm (same dir)."""
    def child(cache_dir: str) -> dict:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _CHILD, str(frame_path)], env=env, cwd=str(ROOT),
                             capture_output=True, text=True, check=True)
        d = json.loads(out.stdout.strip().splitlines()[-1])
        d["process_s"] = time.perf_counter() - t0
        return d

    with tempfile.TemporaryDirectory(prefix="klm-numba-cache-") as tmp:
        cold = child(tmp)
        child(tmp)
        warm = child(tmp)
    return dict(cold=cold, warm=warm)


# ----------------------------------------------------------------------------- main
def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return dict(cpu=cpu or platform.processor(), nproc=os.cpu_count(), numba_threads=numba.get_num_threads(),
                opencv_threads=cv2.getNumThreads(), numba=numba.__version__, opencv=cv2.__version__,
                numpy=np.__version__, python=platform.python_version(), loadavg_at_start=load)


def _layer() -> str:
    try:
        return numba.threading_layer()
    except ValueError:          # no parallel region has run yet
        return "(not started)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="sequence folder (CDnet layout) or image folder")
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="WxH,WxH,...")
    ap.add_argument("--frames", type=int, default=150, help="timed frames per size (median)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed frames first")
    ap.add_argument("--distinct", type=int, default=40, help="distinct frames decoded and cycled")
    ap.add_argument("--start", type=int, default=400, help="index of the first frame used")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    ap.add_argument("--no-first-frame", action="store_true", help="skip the new-process first-frame timing")
    ap.add_argument("--first-frame-only", action="store_true", help="only the new-process first-frame timing")
    ap.add_argument("--no-scale", action="store_true", help="skip the scale trade-off")
    ap.add_argument("--scale-sizes", default="1280x720,1920x1080")
    ap.add_argument("--scales", default="1.0,0.5")
    ap.add_argument("--breakdown", action="store_true", help="also time the pieces of apply")
    ap.add_argument("--threads", type=int, default=0, help="numba and OpenCV threads (default: every core)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with process CPU time instead of wall time (use with --threads 1 on a busy machine)")
    _isa.add_argument(ap)
    args = ap.parse_args(argv)
    rc = _isa.reexec_if_needed(args, argv)
    if rc is not None:
        return rc

    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    n = args.threads or os.cpu_count() or 1
    # pinned (kl_motion.threads.use_threads): the model's thread tuner would otherwise try one thread
    # fewer in blocks of frames, which in a run this short is a good part of the timed frames
    from kl_motion.threads import use_threads
    use_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    cv2.setNumThreads(n)
    info = machine()
    print(f"cpu: {info['cpu']}  nproc: {info['nproc']}  numba threads: {info['numba_threads']}  "
          f"opencv threads: {info['opencv_threads']}  loadavg: {info['loadavg_at_start']}")
    print(f"numba {info['numba']}  opencv {info['opencv']}  numpy {info['numpy']}  python {info['python']}")
    import kl_motion
    info["kl_motion"] = str(Path(kl_motion.__file__).parent)
    print(f"kl_motion from {info['kl_motion']}  threading layer: {_layer()}")
    frames0 = [] if args.first_frame_only else load_frames(args.data, args.distinct, args.start)
    print(f"frames: {len(frames0)} distinct from {args.data} (from index {args.start}), cycled; "
          f"warm-up {args.warmup}, median of {args.frames}")
    result: dict = dict(machine=info, frames=args.frames, warmup=args.warmup, data=str(args.data),
                        clock="process_time" if args.cpu_time else "perf_counter")
    if args.cpu_time:
        print("clock: process CPU time (all threads of this process)")

    if not args.first_frame_only:
        print("\nms/frame (median)  kl_motion = MotionModel.apply (update + KL + labels + cleanup)")
        print(f"{'size':<11} {'kl_motion':>9} {'MOG2':>9} {'KNN':>9} {'kl/MOG2':>10} {'kl/KNN':>9}")
        result["table"] = bench_sizes(frames0, parse_sizes(args.sizes), args.frames, args.warmup)
        info["threading_layer"] = _layer()
        try:
            info["loadavg_after_table"] = os.getloadavg()
        except OSError:
            pass
        print(f"numba threading layer: {info['threading_layer']}  loadavg now: {info.get('loadavg_after_table')}")
        info["kernel_isa"] = _isa.print_kernel_isa()
        bpp = result["table"][0]["state_bytes_per_pixel"]
        result["state_bytes_per_pixel"] = bpp
        print(f"\nmodel state: {bpp:.1f} bytes per pixel (MotionModel.state_bytes_per_pixel, default parameters)")

        if args.breakdown:
            print("\nbreakdown of one apply (ms, medians of each piece)")
            print(f"{'size':<11} {'apply':>9} {'kernel':>9} {'cleanup':>9} {'rest':>9}")
            result["breakdown"] = breakdown(frames0, parse_sizes(args.sizes), args.frames, args.warmup)

        if not args.no_scale:
            scales = [float(s) for s in args.scales.split(",")]
            print("\nscale trade-off (ms/frame, MOG2 at full size for reference)")
            print(f"{'size':<11} {'scale':>6} {'kl_motion':>9} {'MOG2':>9} {'kl/MOG2':>10}")
            result["scale"] = bench_scale(frames0, parse_sizes(args.scale_sizes), scales, args.frames, args.warmup)

    if not args.no_first_frame:
        inp = args.data / "input" if (args.data / "input").is_dir() else args.data
        path = sorted(p for p in inp.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))[0]
        ff = first_frame(path)
        result["first_frame"] = ff
        print(f"\nfirst frame in a new process ({path.name}, model construction + first apply; "
              f"kernels built for {ff['cold']['isa']}):")
        for k in ("cold", "warm"):
            d = ff[k]
            print(f"  numba cache {k}: first frame {d['first_frame_s']:.3f} s, CPU {d['first_frame_cpu_s']:.3f} s  "
                  f"(import {d['import_s']:.3f} s, "
                  f"second frame {1000 * d['second_frame_s']:.1f} ms, whole process {d['process_s']:.2f} s)")

    if args.json:
        tmp = args.json.with_name(args.json.name + ".part")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(args.json)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
