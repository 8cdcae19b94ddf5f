"""Throughput of `kl-motion process` when a core is busy: 1 and 2 threads, with and without a
competitor process spinning on one core, for several threading set-ups.

    .venv/bin/python bench/busy.py                        # 640x480, 300 frames, 2 rounds
    .venv/bin/python bench/busy.py --configs passive,spin --rounds 3 --json busy.json
    .venv/bin/python bench/busy.py --isa avx2             # AVX2 code for the kernels
    .venv/bin/python bench/busy.py --configs default --threads 1,2,auto   # auto: no --threads (the tuner)

A 640x480 clip is made from CDnet highway frames (resized, mp4v).  Each cell runs the real
command (`python -m kl_motion process CLIP --out TMP --force --threads N`, mask video + stats +
events) in a new process with the configuration's environment, and reads the frame rate the
command reports for the input (decode -> model -> outputs, import and start-up not counted).
"Busy": a Python process spinning in a loop, pinned to CPU 0 with sched_setaffinity, started
before the command and killed after it; the command itself is not pinned.  The cells of a round
run one after the other in a fixed order and the rounds repeat it, so a change of the machine's
load hits every cell alike; the median of the rounds is printed, and the load average.

``--mode model`` is steadier on a loaded machine: one new process per configuration (and busy or
not) runs ``MotionModel.apply`` on 640x480 frames in memory, alternating blocks of 10 frames with 1
and with 2 numba threads (numba's count is per call), so a burst of other load hits both thread
counts alike; it prints the median ms/frame of each and their ratio.

Configurations (environment of the command; kl_motion/__init__.py adds OMP_WAIT_POLICY=PASSIVE
only when none of OMP_WAIT_POLICY, GOMP_SPINCOUNT, KMP_BLOCKTIME is set):

- spin:      GOMP_SPINCOUNT=300000, libgomp's own default when OMP_WAIT_POLICY is not set
             (the OpenMP workers spin ~0.3 M iterations before sleeping; main before issue 14)
- passive:   OMP_WAIT_POLICY=PASSIVE (workers sleep at once after a parallel region)
- spin10k:   GOMP_SPINCOUNT=10000 (a short spin)
- workqueue: NUMBA_THREADING_LAYER=workqueue (numba's own pthreads pool)
- tbb:       NUMBA_THREADING_LAYER=tbb (needs the `tbb` package, found through LD_LIBRARY_PATH=<venv>/lib;
             skipped if numba cannot load it)
- default:   nothing set (what a user gets: kl_motion's own choice)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _isa  # noqa: E402  (bench/_isa.py)

DEFAULT_SRC = ROOT.parent / "shared" / "data" / "cdnet" / "highway" / "input"
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "NUMBA_THREADING_LAYER")
CONFIGS = {
    "spin": {"GOMP_SPINCOUNT": "300000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
    # pip's tbb puts libtbb.so.12 in <venv>/lib, which is not on the loader's path in a venv
    "tbb": {"NUMBA_THREADING_LAYER": "tbb",
            "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(Path(sys.prefix) / "lib"),
                                                              os.environ.get("LD_LIBRARY_PATH")]))},
    "default": {},
}
SPINNER = "import os\nos.sched_setaffinity(0, {%d})\nwhile True:\n    pass\n"
FPS = re.compile(r": (\d+) frames in ([\d.]+) s \(([\d.]+) fps\)")


def make_clip(src: Path, n: int, size: tuple[int, int], path: Path) -> Path:
    import cv2
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".png", ".bmp"))[:n]
    if not files:
        raise SystemExit(f"no frames in {src}")
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for p in files:
        vw.write(cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA))
    vw.release()
    return path


def tbb_works(env: dict) -> bool:
    code = ("import numba, numpy as np\n@numba.njit(parallel=True)\ndef f(a):\n"
            "    for i in numba.prange(a.size):\n        a[i] += 1\nf(np.zeros(8))\n"
            "print(numba.threading_layer())")
    r = subprocess.run([sys.executable, "-c", code], env=dict(env, **CONFIGS["tbb"]),
                       capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() == "tbb"


def run_cell(clip: Path, out: Path, env: dict, threads, busy_cpu: int | None) -> float:
    spinner = None
    if busy_cpu is not None:
        spinner = subprocess.Popen([sys.executable, "-c", SPINNER % busy_cpu])
        time.sleep(0.3)
    try:
        cmd = [sys.executable, "-m", "kl_motion", "process", str(clip), "--out", str(out), "--force"]
        if threads != "auto":           # "auto": no --threads, the model's tuner chooses
            cmd += ["--threads", str(threads)]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(ROOT))
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    m = FPS.search(r.stderr)
    if r.returncode != 0 or not m:
        raise SystemExit(f"kl-motion process failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return float(m.group(3))


MODEL_CHILD = r"""
import json, statistics, sys, time
import cv2, numba, numpy as np
from pathlib import Path
from kl_motion.model import MotionModel
src, n, W, H, blocks, block = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5]), int(sys.argv[6])
files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".png", ".bmp"))[400:400 + n]
frames = [cv2.resize(cv2.imread(str(p)), (W, H), interpolation=cv2.INTER_AREA) for p in files]
threads = [int(t) for t in sys.argv[7].split(",")]
m = MotionModel()
for i in range(20):
    numba.set_num_threads(threads[i % len(threads)])
    m.apply(frames[i % len(frames)])
times = {t: [] for t in threads}
k = 0
for b in range(blocks):
    for t in threads:
        numba.set_num_threads(t)
        for _ in range(block):
            t0 = time.perf_counter()
            m.apply(frames[k % len(frames)])
            times[t].append(time.perf_counter() - t0)
            k += 1
print(json.dumps({"layer": numba.threading_layer(),
                  "ms": {str(t): 1000 * statistics.median(v) for t, v in times.items()}}))
"""


def run_model(src: Path, env: dict, size, threads, busy_cpu, blocks: int, block: int) -> dict:
    spinner = None
    if busy_cpu is not None:
        spinner = subprocess.Popen([sys.executable, "-c", SPINNER % busy_cpu])
        time.sleep(0.3)
    try:
        r = subprocess.run([sys.executable, "-c", MODEL_CHILD, str(src), "40", str(size[0]), str(size[1]),
                            str(blocks), str(block), ",".join(map(str, threads))],
                           env=env, capture_output=True, text=True, cwd=str(ROOT))
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if r.returncode != 0:
        raise SystemExit(f"model child failed: {r.stderr.strip()[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main_model(a, configs, base, size, threads, cpu) -> int:
    load0 = os.getloadavg()
    res = {}
    for r in range(a.rounds):
        for c in configs:
            for busy in (False, True):
                d = run_model(a.source, dict(base, **CONFIGS[c]), size, threads, a.busy_cpu if busy else None,
                              a.blocks, 10)
                res.setdefault((c, busy), []).append(d)
        print(f"round {r + 1}/{a.rounds} done, load average {os.getloadavg()[0]:.2f}", flush=True)
    load1 = os.getloadavg()
    print(f"\nMotionModel.apply on {size[0]}x{size[1]} highway frames in memory, alternating blocks of 10 frames "
          f"with {' and '.join(map(str, threads))} numba threads ({a.blocks} blocks each); median ms/frame (fps), "
          f"median over {a.rounds} process(es) per cell; cpu {cpu}, {os.cpu_count()} cores; isa {a.isa}; competitor "
          f"spinning on CPU {a.busy_cpu} for 'busy'; load average {load0[0]:.2f} at the start, {load1[0]:.2f} at "
          f"the end\n")
    t1, t2 = str(threads[0]), str(threads[-1])
    print(f"| config | layer | idle {t1}T | idle {t2}T | idle {t2}T/{t1}T fps | busy {t1}T | busy {t2}T | "
          f"busy {t2}T/{t1}T fps |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for c in configs:
        cells = []
        row = dict(config=c, env=CONFIGS[c])
        for busy in (False, True):
            runs = res[(c, busy)]
            ms1 = statistics.median(d["ms"][t1] for d in runs)
            ms2 = statistics.median(d["ms"][t2] for d in runs)
            ratio = statistics.median(d["ms"][t1] / d["ms"][t2] for d in runs)
            key = "busy" if busy else "idle"
            row[key] = dict(ms={t1: ms1, t2: ms2}, fps_ratio=ratio, runs=runs)
            cells += [f"{ms1:.2f} ({1000 / ms1:.0f})", f"{ms2:.2f} ({1000 / ms2:.0f})", f"**{ratio:.2f}**"]
        layer = res[(c, False)][0]["layer"]
        rows.append(row)
        print(f"| {c} | {layer} | " + " | ".join(cells) + " |")
    if a.json:
        a.json.write_text(json.dumps(dict(mode="model", size=a.size, rounds=a.rounds, blocks=a.blocks, cpu=cpu,
                                          isa=a.isa, load=[load0, load1], rows=rows), indent=1) + "\n")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--configs", default="spin,passive,workqueue,tbb",
                    help=f"comma-separated, from {','.join(CONFIGS)}")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--busy-cpu", type=int, default=0, help="CPU the competitor is pinned to")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--mode", choices=("process", "model"), default="process",
                    help="process: kl-motion process runs (fps); model: MotionModel.apply in memory, 1 and 2 "
                         "threads alternating in one process")
    ap.add_argument("--blocks", type=int, default=10, help="--mode model: blocks of 10 frames per thread count")
    _isa.add_argument(ap)
    a = ap.parse_args()
    rc = _isa.reexec_if_needed(a)
    if rc is not None:
        return rc

    W, H = (int(v) for v in a.size.lower().split("x"))
    threads = [t if t == "auto" else int(t) for t in a.threads.split(",")]
    if a.mode == "model" and "auto" in threads:
        raise SystemExit("--threads auto is for --mode process (the command without --threads)")
    base = {k: v for k, v in os.environ.items() if k not in WAIT_VARS}
    base.pop("NUMBA_NUM_THREADS", None)
    base.pop("KL_MOTION_DEBUG", None)
    configs = [c.strip() for c in a.configs.split(",") if c.strip()]
    for c in configs:
        if c not in CONFIGS:
            raise SystemExit(f"unknown config {c!r} (known: {', '.join(CONFIGS)})")
    if "tbb" in configs and not tbb_works(base):
        print("tbb: numba cannot load the TBB threading layer here (pip install tbb); skipped")
        configs.remove("tbb")

    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    if a.mode == "model":
        return main_model(a, configs, base, (W, H), threads, cpu)

    work = Path(tempfile.mkdtemp(prefix="klbusy-"))
    try:
        clip = make_clip(a.source, a.frames, (W, H), work / f"busy_{W}x{H}.mp4")
        # compile / load the kernels once before timing anything
        run_cell(clip, work / "warm", base, 1, None)
        load0 = os.getloadavg()
        cells = [(c, t, busy) for c in configs for busy in (False, True) for t in threads]
        fps: dict = {cell: [] for cell in cells}
        for r in range(a.rounds):
            for c, t, busy in cells:
                env = dict(base, **CONFIGS[c])
                fps[(c, t, busy)].append(run_cell(clip, work / "out", env, t, a.busy_cpu if busy else None))
            print(f"round {r + 1}/{a.rounds} done, load average {os.getloadavg()[0]:.2f}", flush=True)
        load1 = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in fps.items()}
    print(f"\n`kl-motion process` on a {W}x{H} clip of {a.frames} frames, fps (median of {a.rounds} rounds); "
          f"cpu {cpu}, {os.cpu_count()} cores; isa {a.isa}; competitor spinning on CPU {a.busy_cpu} for 'busy'; "
          f"load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end\n")
    head = ["config"] + [f"idle {t}T" for t in threads] + [f"busy {t}T" for t in threads]
    head += [f"busy {t}T/{threads[0]}T" for t in threads[1:]]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    rows = []
    for c in configs:
        cells = [med[(c, t, False)] for t in threads] + [med[(c, t, True)] for t in threads]
        row = dict(config=c, env=CONFIGS[c], fps={f"{'busy' if b else 'idle'}_{t}": med[(c, t, b)]
                                                  for t in threads for b in (False, True)},
                   all=({f"{'busy' if b else 'idle'}_{t}": fps[(c, t, b)] for t in threads for b in (False, True)}))
        text = [c] + [f"{v:.1f}" for v in cells]
        for t in threads[1:]:
            ratio = med[(c, t, True)] / med[(c, threads[0], True)]
            row[f"busy_ratio_{t}"] = ratio
            text.append(f"**{ratio:.2f}**")
        rows.append(row)
        print("| " + " | ".join(text) + " |")
    if a.json:
        a.json.write_text(json.dumps(dict(size=a.size, frames=a.frames, rounds=a.rounds, cpu=cpu, isa=a.isa,
                                          load=[load0, load1], rows=rows), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
