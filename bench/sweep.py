"""Score parameter sets over all shared sequences at once, the way `kl-motion eval` reads them.

    python bench/sweep.py [--data ../shared/data] [--set name=value ...] [--grid name=v1,v2,...]
                          [--jobs 2] [--loo]

Prints per-sequence F and the mean F for each parameter set (every combination of the --grid
values on top of the defaults and --set).  Frames are read with the same source as
`kl-motion eval` (grey clips stay grey), and scored by the same rules (kl_motion.evaluate).

--loo (leave one out): for each sequence, the parameter set with the best mean F over the OTHER
six is chosen and scored on the held-out one; the mean of those seven scores estimates how the
tuning generalises to a scene it has not seen.  A change to the detector is kept only when this
mean rises (docs/accuracy.md).  For tuning the defaults over every scene together, never one.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kl_motion.evaluate import Counts, gt_for, load_sequence  # noqa: E402
from kl_motion.params import Params, spec  # noqa: E402
from kl_motion.sources import FolderSource  # noqa: E402

SEQS = ["cdnet/highway", "cdnet-partial/fall", "sbi/HallAndMonitor", "sbi/HighwayII", "sbi/CAVIAR2", "ucsd/boats",
        "ucsd/ocean"]
_cache: dict = {}


def load(data: Path, name: str):
    """Frames (as `kl-motion eval` reads them), ground truth of the scored frames, the sequence."""
    if name not in _cache:
        seq = load_sequence(data / name)
        src = FolderSource(seq.path / "input")
        frames = []
        for _ in range(seq.last):
            f = src.read()
            if f is None:
                break
            frames.append(f)
        gts = {i: gt_for(seq, i) for i in range(seq.first, seq.last + 1)}
        _cache[name] = (seq, frames, gts)
    return _cache[name]


def score(data: str, name: str, changes: dict) -> dict:
    """Metrics of kl_motion with the default parameters plus ``changes`` on one sequence."""
    import numba
    numba.set_num_threads(1)             # the processes are the parallelism (no spinning pools)
    from kl_motion.model import MotionModel
    seq, frames, gts = load(Path(data), name)
    m = MotionModel(Params().replace(**changes))
    c = Counts()
    for i, f in enumerate(frames, start=1):
        mask = m.apply(f).mask
        if i in gts:
            c.add(mask == 255, gts[i], seq.roi)
    return c.metrics()


def parse_value(name, text):
    t = {s["name"]: s["type"] for s in spec()}[name]
    if t is bool:
        return text.lower() in ("1", "true", "yes", "on")
    return t(text)


def leave_one_out(labels: list[str], F: np.ndarray, seqs: list[str]) -> tuple[list[float], list[int]]:
    """F: (combos, sequences).  For each sequence s, the combo with the best mean over the others,
    scored on s."""
    out, pick = [], []
    for j in range(len(seqs)):
        others = np.delete(F, j, axis=1).mean(axis=1)
        best = int(np.argmax(others))
        out.append(float(F[best, j]))
        pick.append(best)
    return out, pick


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("KL_MOTION_DATA", str(Path(__file__).resolve().parents[2] / "shared/data")))
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--grid", action="append", default=[])
    ap.add_argument("--seqs", default=",".join(SEQS))
    ap.add_argument("--jobs", type=int, default=2, help="processes (sequences run side by side)")
    ap.add_argument("--loo", action="store_true", help="leave-one-out table over the grid (see the docstring)")
    a = ap.parse_args()
    data = str(Path(a.data))
    base = {k: parse_value(k, v) for k, v in (s.split("=", 1) for s in a.set)}
    grid = [(k, [parse_value(k, x) for x in v.split(",")]) for k, v in (g.split("=", 1) for g in a.grid)]
    seqs = a.seqs.split(",")
    short = [s.split("/")[-1][:8] for s in seqs]
    combos = []
    for combo in (itertools.product(*[v for _, v in grid]) if grid else [()]):
        ch = dict(base)
        ch.update({k: v for (k, _), v in zip(grid, combo)})
        Params().replace(**ch)                   # invalid values fail here, before any work
        combos.append(ch)
    print("params".ljust(44), " ".join(f"{s:>8}" for s in short), "    mean", flush=True)
    F = np.zeros((len(combos), len(seqs)))
    labels = [" ".join(f"{k}={v}" for k, v in ch.items() if k not in base or len(grid) == 0)[:44] for ch in combos]
    # one process per sequence keeps each sequence's frames cached in one place
    with ProcessPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futs = {(i, j): ex.submit(score, data, s, ch) for j, s in enumerate(seqs) for i, ch in enumerate(combos)}
        for i, ch in enumerate(combos):
            for j in range(len(seqs)):
                F[i, j] = futs[(i, j)].result()["f_measure"]
            print(labels[i].ljust(44), " ".join(f"{f:8.4f}" for f in F[i]), f"{F[i].mean():8.4f}", flush=True)
    if a.loo and len(seqs) > 1:
        loo, pick = leave_one_out(labels, F, seqs)
        print()
        print("leave one out: tuned on the other sequences, scored on this one")
        for s, f, b in zip(seqs, loo, pick):
            print(f"  {s:<22} {f:6.4f}   chosen: {labels[b] or '(defaults)'}")
        print(f"  {'mean':<22} {np.mean(loo):6.4f}")


if __name__ == "__main__":
    main()
