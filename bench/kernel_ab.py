"""Time the model's kernel (kernels.step) alone: this tree's against another revision's, in one process.

Two MotionModels run over the same highway frames (resized with INTER_AREA), one calling this
tree's kl_motion/kernels.py, the other the file as it was at --ref; each frame the two run one
after the other, in alternating order, so load hits both. Prints the median ms of the kernel
per frame and whether the two gave the same masks, KL maps and mixture bit for bit (a hash of
them). The reference must take the same arguments as this tree's kernels.step.

    .venv/bin/python bench/kernel_ab.py                            # against 7779135
    NUMBA_NUM_THREADS=1 .venv/bin/python bench/kernel_ab.py --ref HEAD~1 --sizes 1920x1080
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kl_motion import MotionModel  # noqa: E402
from kl_motion import kernels as this_kernels  # noqa: E402
from kl_motion import model as model_mod  # noqa: E402


def kernels_at(rev: str):
    """kl_motion/kernels.py as it was at a git revision, imported as its own module (kept in
    bench/.kernel_ab/ so numba's on-disk cache works for it across runs)."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True,
                         capture_output=True, text=True).stdout.strip()
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{sha}:kl_motion/kernels.py"], check=True,
                         capture_output=True, text=True).stdout
    folder = ROOT / "bench" / ".kernel_ab"
    folder.mkdir(exist_ok=True)
    path = folder / f"kernels_{sha}.py"
    if not path.exists() or path.read_text() != src:
        path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"kernels_{sha}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod                # numba's cache of parallel functions finds it here
    spec.loader.exec_module(mod)
    return sha, mod


class Timed:
    """A model whose kernel is `kern`; apply() returns the kernel's seconds."""

    def __init__(self, kern):
        self.kern = kern
        self.model = MotionModel()
        self.hash = hashlib.sha256()
        self.seconds = 0.0

    def apply(self, frame) -> float:
        model_mod.kernels = self              # MotionModel.apply calls kernels.step(...)
        try:
            r = self.model.apply(frame)
        finally:
            model_mod.kernels = this_kernels
        self.hash.update(r.mask.tobytes())
        self.hash.update(r.kl.tobytes())
        return self.seconds

    def step(self, *args):
        t0 = time.perf_counter()
        self.kern.step(*args)
        self.seconds = time.perf_counter() - t0

    def digest(self) -> str:
        h = self.hash.copy()
        h.update(np.ascontiguousarray(self.model._gmm).tobytes())
        return h.hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="7779135", help="git revision to compare with")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/cdnet/highway"))
    ap.add_argument("--sizes", default="320x240,640x480,1280x720,1920x1080")
    ap.add_argument("--start", type=int, default=400, help="index of the first frame used")
    ap.add_argument("--warmup", type=int, default=20, help="untimed frames first")
    ap.add_argument("--frames", type=int, default=40, help="timed frames (distinct, each run twice)")
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "input").is_dir():
        print(f"kernel_ab: no frames at {data / 'input'} (set --data)", file=sys.stderr)
        return 2
    files = sorted(p for p in (data / "input").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    files = files[args.start:args.start + args.warmup + args.frames]
    sha, ref = kernels_at(args.ref)
    print(f"kernel only, median ms/frame; ref {sha} vs this tree; numba threads {numba.get_num_threads()};"
          f" loadavg {tuple(round(v, 2) for v in os.getloadavg())}")
    print(f"{'size':>10} {'ref':>8} {'this':>8} {'this/ref':>9}  same results")
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        frames = [cv2.resize(cv2.imread(str(f)), (w, h), interpolation=cv2.INTER_AREA) for f in files]
        a, b = Timed(ref), Timed(this_kernels)
        for f in frames[:args.warmup]:
            a.apply(f)
            b.apply(f)
        ta, tb = [], []
        timed = frames[args.warmup:]
        for i, f in enumerate(timed + timed):
            if i % 2:
                tb.append(b.apply(f))
                ta.append(a.apply(f))
            else:
                ta.append(a.apply(f))
                tb.append(b.apply(f))
        ma, mb = np.median(ta) * 1e3, np.median(tb) * 1e3
        same = "yes" if a.digest() == b.digest() else "NO"
        print(f"{size:>10} {ma:8.2f} {mb:8.2f} {mb / ma:9.2f}  {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
