"""Model time (MotionModel.apply: kernel, cleanup, feedback) of this tree against another revision's,
in one process, one thread, CPU time (``--wall``: every numba thread, wall clock): the cost check of a
detector change (issue 11: "at most 15 % above main's before the work, at every size").

The other revision's whole `kl_motion` package is exported (`git archive`) to bench/.model_ab/REV/ and
imported under another name, so both models run in this process over the same highway frames
(resized with INTER_AREA); each frame the two (and OpenCV's MOG2, the reference) run one after the
other, in an order that alternates, so load and clock changes hit all of them alike. numba's cache of
this run goes to bench/.model_ab/numba-cache (a module loaded under another name must not write into
the tree's own __pycache__). Prints the median ms per frame and the ratios.

    NUMBA_NUM_THREADS=1 .venv/bin/python bench/model_ab.py --ref a3c8bd5
    NUMBA_NUM_THREADS=1 .venv/bin/python bench/model_ab.py --ref a3c8bd5 --isa avx2
    .venv/bin/python bench/model_ab.py --ref a3c8bd5 --wall        # every core, wall clock

The first run compiles both trees' kernels (a minute or two); later runs use the cache.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "bench" / ".model_ab"
os.environ.setdefault("NUMBA_CACHE_DIR", str(HERE / "numba-cache"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _isa  # noqa: E402


def package_at(rev: str):
    """kl_motion as it was at a git revision, imported as the package `klm_<sha>`."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True,
                         capture_output=True, text=True).stdout.strip()
    dest = HERE / sha
    if not (dest / "kl_motion" / "__init__.py").exists():
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "kl_motion"], check=True,
                             capture_output=True).stdout
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            t.extractall(dest, filter="data")
    name = f"klm_{sha}"
    spec = importlib.util.spec_from_file_location(name, dest / "kl_motion" / "__init__.py",
                                                  submodule_search_locations=[str(dest / "kl_motion")])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return sha, mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="a3c8bd5", help="git revision to compare with")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/cdnet/highway"))
    ap.add_argument("--sizes", default="320x240,640x480,1280x720,1920x1080")
    ap.add_argument("--start", type=int, default=400, help="index of the first frame used")
    ap.add_argument("--warmup", type=int, default=20, help="untimed frames first")
    ap.add_argument("--frames", type=int, default=40, help="timed frames (distinct, each run twice)")
    ap.add_argument("--wall", action="store_true",
                    help="wall-clock ms with all of numba's threads (both models pinned to them, MOG2 given as "
                         "many OpenCV threads): the two-thread comparison; default: one thread's CPU time")
    _isa.add_argument(ap)
    args = ap.parse_args()
    rc = _isa.reexec_if_needed(args)              # --isa avx2: this script again, in a subprocess
    if rc is not None:
        return rc
    import cv2
    import numba
    import numpy as np
    from kl_motion import MotionModel
    data = Path(args.data)
    if not (data / "input").is_dir():
        print(f"model_ab: no frames at {data / 'input'} (set --data)", file=sys.stderr)
        return 2
    files = sorted(p for p in (data / "input").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    files = files[args.start:args.start + args.warmup + args.frames]
    sha, ref = package_at(args.ref)
    nthreads = numba.get_num_threads()
    if args.wall:
        # every thread for all three, pinned so the models' thread tuners do not try fewer meanwhile
        import importlib

        from kl_motion.threads import use_threads
        use_threads(nthreads)
        importlib.import_module(f"{ref.__name__}.threads").use_threads(nthreads)
        cv2.setNumThreads(nthreads)
        clock, what = time.perf_counter, "wall-clock"
    else:
        cv2.setNumThreads(1)
        clock, what = time.thread_time, "thread-CPU"
    print(f"MotionModel.apply, median {what} ms/frame; ref {sha} vs this tree; numba threads "
          f"{numba.get_num_threads()}; numba target {_isa.numba_target()}; "
          f"loadavg {tuple(round(v, 2) for v in os.getloadavg())}")
    print(f"{'size':>10} {'ref':>8} {'this':>8} {'MOG2':>8} {'this/ref':>9} {'ref/MOG2':>9} {'this/MOG2':>10}")
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        frames = [cv2.resize(cv2.imread(str(f)), (w, h), interpolation=cv2.INTER_AREA) for f in files]
        runners = {"ref": ref.MotionModel(), "this": MotionModel(), "mog2": cv2.createBackgroundSubtractorMOG2()}
        calls = {"ref": runners["ref"].apply, "this": runners["this"].apply, "mog2": runners["mog2"].apply}
        times: dict[str, list[float]] = {k: [] for k in calls}
        order = list(calls)
        for f in frames[:args.warmup]:
            for k in order:
                calls[k](f)
        timed = frames[args.warmup:]
        for i, f in enumerate(timed + timed):
            for k in (order if i % 2 == 0 else order[::-1]):
                t0 = clock()
                calls[k](f)
                times[k].append(clock() - t0)
        m = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
        if size == args.sizes.split(",")[0]:
            _isa.print_kernel_isa()
        print(f"{size:>10} {m['ref']:8.2f} {m['this']:8.2f} {m['mog2']:8.2f} {m['this'] / m['ref']:9.2f} "
              f"{m['ref'] / m['mog2']:9.2f} {m['this'] / m['mog2']:10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
