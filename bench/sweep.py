"""Score parameter sets over all shared sequences at once (frames cached in memory).

    python bench/sweep.py [--data ../shared/data] [--set name=value ...] [--grid name=v1,v2,...]

Prints per-sequence F and the mean F for each parameter set. For tuning the
defaults over every scene together (never one scene alone).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kl_motion.evaluate import Counts, gt_for, load_sequence  # noqa: E402
from kl_motion.model import MotionModel  # noqa: E402
from kl_motion.params import Params, spec  # noqa: E402

SEQS = ["cdnet/highway", "cdnet-partial/fall", "sbi/HallAndMonitor", "sbi/HighwayII", "sbi/CAVIAR2", "ucsd/boats",
        "ucsd/ocean"]
_cache: dict = {}


def load(data: Path, name: str):
    if name not in _cache:
        seq = load_sequence(data / name)
        frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in seq.inputs[: seq.last]]
        gts = {i: gt_for(seq, i) for i in range(seq.first, seq.last + 1)}
        _cache[name] = (seq, frames, gts)
    return _cache[name]


def score(data: Path, name: str, p: Params):
    seq, frames, gts = load(data, name)
    m = MotionModel(p)
    c = Counts()
    t = 0.0
    for i, f in enumerate(frames, start=1):
        t0 = time.perf_counter()
        mask = m.apply(f).mask
        t += time.perf_counter() - t0
        if i in gts:
            c.add(mask == 255, gts[i], seq.roi)
    return c.metrics(), 1000 * t / len(frames)


def parse_value(name, text):
    t = {s["name"]: s["type"] for s in spec()}[name]
    if t is bool:
        return text.lower() in ("1", "true", "yes", "on")
    return t(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("KL_MOTION_DATA", str(Path(__file__).resolve().parents[2] / "shared/data")))
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--grid", action="append", default=[])
    ap.add_argument("--seqs", default=",".join(SEQS))
    a = ap.parse_args()
    data = Path(a.data)
    base = {k: parse_value(k, v) for k, v in (s.split("=", 1) for s in a.set)}
    grid = [(k, [parse_value(k, x) for x in v.split(",")]) for k, v in (g.split("=", 1) for g in a.grid)]
    seqs = a.seqs.split(",")
    short = [s.split("/")[-1][:8] for s in seqs]
    print("params".ljust(40), " ".join(f"{s:>8}" for s in short), "    mean", flush=True)
    for combo in itertools.product(*[v for _, v in grid]) if grid else [()]:
        ch = dict(base)
        ch.update({k: v for (k, _), v in zip(grid, combo)})
        p = Params().replace(**ch)
        fs = []
        for s in seqs:
            met, ms = score(data, s, p)
            fs.append(met["f_measure"])
        label = " ".join(f"{k}={v}" for k, v in ch.items())[:40]
        print(label.ljust(40), " ".join(f"{f:8.3f}" for f in fs), f"{np.mean(fs):8.3f}", flush=True)


if __name__ == "__main__":
    main()
