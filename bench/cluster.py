"""Benchmark of `kl-motion process --cluster` against the local paths, in the same run.

1. N clips through `--jobs 2` and through `--cluster local:2` (a LocalCluster of 2 worker
   processes started by the command itself: its start-up is part of the time): the cluster path's
   overhead; and the same with 10 frames per clip: the fixed cost of each path (start-up, stop).
   The default, 8 clips of 1700 frames (7.6 min of 30 fps video), is a small fleet: a run of
   ~30 s here; the issue's users run hours, where the fixed cost is a smaller share still.
2. One long clip unchunked (one process, numba on every core; and on one thread) and
   `--cluster local:2 --chunk M` (2 chunks, each with --chunk-warmup seconds of lead-in, on 2
   workers of 1 thread each): the speed-up, and how well the chunked run's events agree with the
   unchunked run's (event parameters that make many events: motion_area 0.06, event_gap 0.4).
3. The reference: OpenCV MOG2 (`--method mog2`) on the long clip, unchunked, in the same run.

Every run is the real command in a subprocess (`-q`, outputs to a temporary folder), wall time
from start to exit; the rounds are interleaved and the median is shown.  The clips are CDnet
highway (from $KL_MOTION_DATA, default ../shared/data), the long clip plays it forwards then
backwards (no jump at the seam), as many times as needed.

    .venv/bin/python bench/cluster.py                      # 8 clips x 1700 frames, long clip 3400, 3 rounds
    .venv/bin/python bench/cluster.py --clips 6 --repeat 5 --size 640x480
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kl_motion.sources import open_source     # noqa: E402

FPS = 30.0


def data_dir() -> Path:
    return Path(os.environ.get("KL_MOTION_DATA", ROOT.parent / "shared" / "data"))


def highway_frames(size: tuple[int, int]) -> list:
    src = data_dir() / "cdnet" / "highway" / "input"
    if not src.is_dir():
        sys.exit(f"bench/cluster.py: {src} not found (set KL_MOTION_DATA)")
    with open_source(str(src)) as s:
        return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in s]


def write_clip(path: Path, frames: list, n: int, offset: int = 0) -> Path:
    """``n`` frames of highway from ``offset``, forwards then backwards (ping-pong)."""
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
    period = 2 * len(frames) - 2
    for i in range(offset, offset + n):
        k = i % period
        vw.write(frames[k if k < len(frames) else period - k])
    vw.release()
    return path


def run(args: list, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "kl_motion", "process", *map(str, args), "--out", str(out), "-q"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"bench/cluster.py: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return dt


def events(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip() and json.loads(x)["type"] == "end"]


def agreement(ref: list[dict], got: list[dict], tol_frames: int) -> dict:
    """Events of ``ref`` found in ``got`` with the same start and end frame, within ``tol_frames``,
    not found; and events of ``got`` matching none of ``ref``."""
    exact = near = worst = 0
    used: set[int] = set()
    for e in ref:
        best = None
        for j, g in enumerate(got):
            if j in used:
                continue
            d = max(abs(g["start_frame"] - e["start_frame"]), abs(g["end_frame"] - e["end_frame"]))
            if d <= tol_frames and (best is None or d < best[0]):
                best = (d, j)
        if best is not None:
            used.add(best[1])
            exact += best[0] == 0
            near += best[0] > 0
            worst = max(worst, best[0])
    return dict(ref=len(ref), got=len(got), exact=exact, near=near, missed=len(ref) - exact - near,
                extra=len(got) - len(used), worst=worst)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=8, help="clips for --jobs 2 vs --cluster local:2 (default 8)")
    ap.add_argument("--clip-frames", type=int, default=1700,
                    help="frames per clip (default 1700: highway's length, 57 s at 30 fps)")
    ap.add_argument("--long-frames", type=int, default=3400, help="frames of the long clip (default 3400)")
    ap.add_argument("--size", default="320x240", help="frame size WxH (default 320x240, highway's own)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="--chunk-warmup seconds (default: the command's, 5 x history frames)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the median is shown (default 3)")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="kl-bench-cluster-"))
    try:
        frames = highway_frames((w, h))
        clips = [write_clip(tmp / f"clip{i + 1}.avi", frames, a.clip_frames, offset=i * 397) for i in range(a.clips)]
        long = write_clip(tmp / "long.avi", frames, a.long_frames)
        tiny = [write_clip(tmp / f"tiny{i + 1}.avi", frames, 10, offset=i * 397) for i in range(a.clips)]
        chunk_min = a.long_frames / FPS / 60 / 2          # two chunks
        ev = ["--motion-area", "0.06", "--event-gap", "0.4"]
        runs = {
            "jobs": ([*clips, "--jobs", "2"], f"{a.clips} clips, --jobs 2"),
            "cluster": ([*clips, "--cluster", "local:2"], f"{a.clips} clips, --cluster local:2"),
            "jobs0": ([*tiny, "--jobs", "2"], f"{a.clips} clips of 10 frames, --jobs 2 (fixed cost)"),
            "cluster0": ([*tiny, "--cluster", "local:2"], f"{a.clips} clips of 10 frames, --cluster local:2 (fixed cost)"),
            "whole": ([long, *ev], "long clip, unchunked (1 process, every core)"),
            "whole1": ([long, *ev, "--threads", "1"], "long clip, unchunked, --threads 1"),
            "chunked": ([long, *ev, "--cluster", "local:2", "--chunk", f"{chunk_min:.4f}",
                         *(["--chunk-warmup", str(a.warmup)] if a.warmup is not None else [])],
                        f"long clip, --cluster local:2 --chunk {chunk_min:.2f} (2 chunks, "
                        f"{'%g s' % a.warmup if a.warmup is not None else 'default'} warm-up)"),
            "mog2": ([long, *ev, "--method", "mog2"], "long clip, unchunked, --method mog2 (reference)"),
        }
        run([clips[0], "--max-frames", "5"], tmp / "warm")       # numba's cache loaded once before timing
        load0 = os.getloadavg()
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(a.repeat):
            for k, (args, _) in runs.items():
                times[k].append(run(args, tmp / f"out-{k}"))
        load1 = os.getloadavg()
        ag = agreement(events(tmp / "out-whole" / "long" / "events.jsonl"),
                       events(tmp / "out-chunked" / "long" / "events.jsonl"), tol_frames=int(FPS))
        med = {k: statistics.median(v) for k, v in times.items()}
        nframes = {"jobs": a.clips * a.clip_frames, "cluster": a.clips * a.clip_frames, "jobs0": a.clips * 10,
                   "cluster0": a.clips * 10, "whole": a.long_frames, "whole1": a.long_frames,
                   "chunked": a.long_frames, "mog2": a.long_frames}
        print(f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, {w}x{h} MJPG at {FPS:g} fps; "
              f"median of {a.repeat} interleaved rounds; load average before/after {load0[0]:.1f}/{load1[0]:.1f}")
        print()
        rows = [("run", "frames", "wall s (median)", "fps", "all rounds (s)")]
        for k, (_, label) in runs.items():
            rows.append((label, str(nframes[k]), f"{med[k]:.2f}", f"{nframes[k] / med[k]:.1f}",
                         " ".join(f"{t:.2f}" for t in times[k])))
        wd = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for i, r in enumerate(rows):
            print("  ".join(c.ljust(wd[j]) if j == 0 else c.rjust(wd[j]) for j, c in enumerate(r)))
            if i == 0:
                print("  ".join("-" * x for x in wd))
        print()
        print(f"cluster path overhead: --cluster local:2 / --jobs 2 = {med['cluster'] / med['jobs']:.3f} "
              f"({100 * (med['cluster'] / med['jobs'] - 1):+.1f} %); fixed cost {med['cluster0']:.2f} s against "
              f"{med['jobs0']:.2f} s ({med['cluster0'] - med['jobs0']:+.2f} s)")
        print(f"chunked speed-up: unchunked / chunked = {med['whole'] / med['chunked']:.2f}x (one thread unchunked: "
              f"{med['whole1'] / med['chunked']:.2f}x); kl_motion unchunked takes {med['whole'] / med['mog2']:.2f}x "
              f"MOG2's time")
        print(f"events: unchunked {ag['ref']}, chunked {ag['got']}: {ag['exact']} at the same start and end frame, "
              f"{ag['near']} within 1 s (at most {ag['worst']} frames off), {ag['missed']} missed, {ag['extra']} extra")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
