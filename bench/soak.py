"""Soak test: long runs of `kl-motion process`, the library and the viewer, with the resident
memory (RSS) at the start, the middle and the end of each, and OpenCV's MOG2 run the same way in
the same run as the reference.

    .venv/bin/python bench/soak.py                              # 3000 frames, viewer 30 s
    .venv/bin/python bench/soak.py --frames 50000 --viewer-seconds 60 --json soak.json

It makes a 640x480 clip from CDnet highway (played forwards then backwards, so a long clip has no
jump), then runs, one after another:

- process: `python -m kl_motion process CLIP --overlay` (and `--method mog2`) as a subprocess,
  its RSS read from /proc/PID/status every 0.2 s, its progress from the rows of stats.part.csv;
  every output is checked to decode to the last frame afterwards;
- library: MotionModel.apply (and cv2 MOG2 apply) on the clip's frames in this process;
- viewer: the real window (QT_QPA_PLATFORM=offscreen) playing the clip at maximum speed, restarted
  at its end, for --viewer-seconds, in a subprocess that reports its own RSS.

RSS "start" is taken once the first frames are done (numba's kernels loaded, buffers allocated),
"middle" at half the frames (or half the time), "end" at the last frame; "growth" is end - start.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("KL_MOTION_DATA", ROOT.parent / "shared" / "data"))
HIGHWAY = DATA / "cdnet" / "highway" / "input"
SIZE = (640, 480)


def rss_mb(pid: int | str = "self") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def make_clip(path: Path, n: int) -> Path:
    src = HIGHWAY if HIGHWAY.is_dir() else ROOT / "kl_motion" / "data" / "demo" / "input"
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not files:
        sys.exit(f"no frames in {src}")
    imgs = [cv2.resize(cv2.imread(str(f)), SIZE, interpolation=cv2.INTER_AREA) for f in files[:600]]
    loop = imgs + imgs[-2:0:-1]                  # forwards, then backwards: no jump when it repeats
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE)
    for i in range(n):
        vw.write(loop[i % len(loop)])
    vw.release()
    return path


def decoded_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def soak_process(clip: Path, n: int, out: Path, method: str) -> dict:
    d = out / method
    cmd = [sys.executable, "-m", "kl_motion", "process", str(clip), "--out", str(d), "--overlay", "--force", "-q",
           "--method", method]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stats = d / "clip" / "stats.part.csv"
    samples: list[tuple[int, float]] = []        # (frames done, RSS MB)
    while p.poll() is None:
        r = rss_mb(p.pid)
        try:
            done = max(0, stats.read_bytes().count(b"\n") - 1)
        except OSError:
            done = 0
        if r is not None and done > 0:
            samples.append((done, r))
        time.sleep(0.2)
    err = p.stderr.read()
    wall = time.perf_counter() - t0
    summary = json.loads((d / "clip" / "summary.json").read_text())
    ok = (p.returncode == 0 and summary["frames"] == n and decoded_frames(d / "clip" / "mask.mkv") == n
          and decoded_frames(d / "clip" / "overlay.mp4") == n)
    return dict(what=f"process --method {method} --overlay", frames=summary["frames"], seconds=summary["seconds"],
                wall=wall, fps=summary["fps"], **_rss(samples, n), outputs_complete=ok, stderr=err.strip()[-300:])


def _rss(samples: list[tuple[int, float]], total: float) -> dict:
    if not samples:
        return dict(rss_start=None, rss_middle=None, rss_end=None, rss_peak=None)
    start = samples[0][1]
    middle = min(samples, key=lambda s: abs(s[0] - total / 2))[1]
    return dict(rss_start=start, rss_middle=middle, rss_end=samples[-1][1], rss_peak=max(s[1] for s in samples))


def soak_library(clip: Path, n: int, method: str) -> dict:
    from kl_motion import MotionModel
    cap = cv2.VideoCapture(str(clip))
    ring = []
    while len(ring) < 300:
        ok, f = cap.read()
        if not ok:
            break
        ring.append(f)
    cap.release()
    if method == "kl_motion":
        model = MotionModel()
        apply = model.apply
    else:
        sub = cv2.createBackgroundSubtractorMOG2()
        apply = sub.apply
    samples = []
    every = max(1, n // 200)
    t0 = time.perf_counter()
    for i in range(n):
        apply(ring[i % len(ring)])
        if i % every == 0 or i == n - 1:
            samples.append((i + 1, rss_mb()))
    secs = time.perf_counter() - t0
    return dict(what=f"library {method} apply (300 frames in memory, looped)", frames=n, seconds=secs, wall=secs,
                fps=n / secs, **_rss(samples, n), outputs_complete=None)


VIEWER = """
import json, os, sys, time
from PySide6.QtWidgets import QApplication
from kl_motion import Params
from kl_motion.gui.main_window import MainWindow

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0

app = QApplication([])
w = MainWindow(Params(), sys.argv[1], playing=True, speed=0.0)
w.resize(1000, 700)
w.show()
seconds = float(sys.argv[2])
samples, t0, t_first, restarts = [], None, None, 0
while True:
    app.processEvents()
    time.sleep(0.002)
    if w.frames_shown > 10 and t_first is None:
        t_first, shown0 = time.perf_counter(), w.frames_shown
    if t_first is None:
        continue
    el = time.perf_counter() - t_first
    if not samples or el - samples[-1][0] >= 0.5:
        samples.append((el, w.frames_shown - shown0, rss()))
    if w.worker is not None and not w.worker.playing:       # end of the clip: from the start again
        w.seek(0)
        w.set_playing(True)
        restarts += 1
    if el >= seconds:
        break
w.shutdown()
print(json.dumps(dict(samples=samples, restarts=restarts)))
"""


def soak_viewer(clip: Path, seconds: float) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(VIEWER), str(clip), str(seconds)], capture_output=True,
                       text=True, env=env, timeout=seconds + 300)
    if r.returncode != 0:
        return dict(what="viewer", error=r.stderr[-500:])
    res = json.loads(r.stdout.strip().splitlines()[-1])
    s = res["samples"]
    el, shown = s[-1][0], s[-1][1]
    rs = [(t, m) for t, _, m in s]
    return dict(what=f"viewer (offscreen, max speed, restarted {res['restarts']}x at the clip's end)", frames=shown,
                seconds=el, wall=el, fps=shown / el if el else 0.0, **_rss(rs, el), outputs_complete=None)


def fmt(rows: list[dict]) -> str:
    head = ("run", "frames", "seconds", "fps", "RSS start", "middle", "end", "peak", "growth", "outputs")
    out = [head]
    for r in rows:
        if "error" in r:
            out.append((r["what"], "error: " + r["error"].splitlines()[-1] if r["error"] else "error", *[""] * 8))
            continue
        mb = lambda v: "-" if v is None else f"{v:.0f} MB"   # noqa: E731
        g = None if r["rss_start"] is None else r["rss_end"] - r["rss_start"]
        out.append((r["what"], str(r["frames"]), f"{r['seconds']:.1f}", f"{r['fps']:.1f}", mb(r["rss_start"]),
                    mb(r["rss_middle"]), mb(r["rss_end"]), mb(r["rss_peak"]), "-" if g is None else f"{g:+.0f} MB",
                    {None: "-", True: "complete", False: "INCOMPLETE"}[r["outputs_complete"]]))
    w = [max(len(row[i]) for row in out) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)) for row in out]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=3000, help="frames for process and the library (default 3000)")
    ap.add_argument("--viewer-seconds", type=float, default=30.0, help="seconds of viewer playback (0 = skip)")
    ap.add_argument("--skip", nargs="*", default=[], choices=("process", "library", "viewer", "mog2"),
                    help="leave these runs out")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    import _isa
    load0 = os.getloadavg()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    work = Path(tempfile.mkdtemp(prefix="kl-soak-"))
    rows = []
    try:
        t = time.perf_counter()
        clip = make_clip(work / "clip.mp4", a.frames)
        print(f"clip: {a.frames} frames {SIZE[0]}x{SIZE[1]} mp4v in {time.perf_counter() - t:.0f} s", flush=True)
        methods = ["kl_motion"] + ([] if "mog2" in a.skip else ["mog2"])
        if "process" not in a.skip:
            for m in methods:
                rows.append(soak_process(clip, a.frames, work / "out", "kl" if m == "kl_motion" else m))
                print(fmt(rows[-1:]), flush=True)
        if "library" not in a.skip:
            for m in methods:
                rows.append(soak_library(clip, a.frames, m))
                print(fmt(rows[-1:]), flush=True)
        if "viewer" not in a.skip and a.viewer_seconds > 0:
            rows.append(soak_viewer(clip, a.viewer_seconds))
            print(fmt(rows[-1:]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()
    print()
    print(f"{cpu}, {os.cpu_count()} cores, OpenCV {cv2.__version__}, numba target: {_isa.numba_target()}; "
          f"load average before/after {load0[0]:.1f}/{load1[0]:.1f}")
    print(fmt(rows))
    if a.json:
        a.json.write_text(json.dumps(dict(cpu=cpu, cores=os.cpu_count(), load=[load0[0], load1[0]], rows=rows),
                                     indent=1))
    bad = [r for r in rows if r.get("outputs_complete") is False or "error" in r]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
