"""Time postprocess.clean alone: this tree's against another revision's, in one process.

Raw labels (MotionModel._raw, before cleanup) come from running the model over highway
frames resized with INTER_AREA to each size; then both clean() versions run on the same
labels, alternating, and each is checked to give the same mask and blobs. Medians of --calls.

    .venv/bin/python bench/cleanup.py                      # against 82aed46 (before the run-based cleanup)
    .venv/bin/python bench/cleanup.py --ref HEAD~1 --cold  # labels not in cache (cycled)
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kl_motion import MotionModel, postprocess  # noqa: E402
from kl_motion.params import Params  # noqa: E402


def clean_at(rev: str):
    """postprocess.clean as it was at a git revision (imported as kl_motion.<name>)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:kl_motion/postprocess.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "postprocess_ref.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("kl_motion.postprocess_ref", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.clean


def raw_labels(data: Path, size, start: int, warmup: int, keep: int, p: Params):
    files = sorted(p for p in (data / "input").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    model = MotionModel(p)
    out = []
    for i, f in enumerate(files[start:start + warmup + keep]):
        model.apply(cv2.resize(cv2.imread(str(f)), size, interpolation=cv2.INTER_AREA))
        if i >= warmup:
            out.append(model._raw.copy())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="82aed46", help="git revision to compare with")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/cdnet/highway"))
    ap.add_argument("--sizes", default="320x240,640x480,1280x720,1920x1080")
    ap.add_argument("--labels", type=int, default=25, help="label images per size")
    ap.add_argument("--calls", type=int, default=150, help="timed calls per version and size")
    ap.add_argument("--threads", type=int, default=2, help="cv2.setNumThreads")
    ap.add_argument("--cold", action="store_true",
                    help="labels cycled as they are (not in cache); default: a fresh copy each call, "
                         "as after the kernel wrote them")
    ap.add_argument("--params", default="{}", help="Params overrides, e.g. \"{'detect_shadows': True}\"")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    p = Params(**eval(args.params))
    fns = {"ref": clean_at(args.ref), "new": postprocess.clean}
    print(f"cv2 threads {cv2.getNumThreads()}, ref {args.ref}, {'cold' if args.cold else 'hot'}, params {args.params}")
    print(f"{'size':>10} {'ref ms':>8} {'new ms':>8} {'ref/new':>8}")
    for s in args.sizes.split(","):
        size = tuple(int(v) for v in s.split("x"))
        raws = raw_labels(Path(args.data), size, 300, 100, args.labels, p)
        for r in raws:
            a, b = (f(r, p) for f in fns.values())
            assert np.array_equal(a[0], b[0]) and [x.box + (x.area,) for x in a[1]] == [x.box + (x.area,) for x in b[1]]
        ts = {k: [] for k in fns}
        for i in range(args.calls):
            r = raws[i % len(raws)]
            for k in (("ref", "new") if i % 2 else ("new", "ref")):
                rr = r if args.cold else r.copy()
                t0 = time.perf_counter()
                fns[k](rr, p)
                ts[k].append(time.perf_counter() - t0)
        ref, new = (float(np.median(ts[k])) * 1e3 for k in ("ref", "new"))
        print(f"{s:>10} {ref:8.3f} {new:8.3f} {ref / new:8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
