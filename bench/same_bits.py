"""Whether this tree's MotionModel gives the same KL maps and masks as another revision's, bit for bit.

The check behind "the same bits" in docs/speed.md: a kernel change meant to be faster, not different, must
leave every KL value and every mask pixel as it was. Both models (the other revision's `kl_motion` exported
and imported under another name, as bench/model_ab.py does) run over the same frames of each sequence, one
after the other, with default parameters; each frame's KL map and mask are compared exactly. Prints, per
sequence, the number of pixels where they differ; exits 1 if any does.

    .venv/bin/python bench/same_bits.py --ref HEAD                 # this tree's changes against the last commit
    .venv/bin/python bench/same_bits.py --ref a31f4dc --isa avx2   # AVX2 code for both (bench/_isa.py)

Sequences from ../shared/data (CDnet layout, `input/`), each at its own size or resized (`seq@WxH`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _isa  # noqa: E402
from model_ab import package_at  # noqa: E402  (also points numba's cache at bench/.model_ab)

DEFAULT_CASES = ("cdnet/highway@640x480,cdnet/highway,sbi/HallAndMonitor,ucsd/boats,cdnet-partial/fall@320x240,"
                 "sbi/CAVIAR2")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="HEAD", help="git revision to compare with")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder of the sequences")
    ap.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated sequence[@WxH] under --data")
    ap.add_argument("--frames", type=int, default=150, help="frames of each sequence, from its first")
    ap.add_argument("--this", action="append", default=[], metavar="NAME=VALUE",
                    help="a parameter of this tree's model only (repeatable), e.g. learn_every=1 against a "
                         "revision that had no such parameter")
    _isa.add_argument(ap)
    args = ap.parse_args()
    rc = _isa.reexec_if_needed(args)              # --isa avx2: this script again, in a subprocess
    if rc is not None:
        return rc
    import cv2

    from kl_motion import MotionModel
    from kl_motion.params import Params
    from sweep import parse_value                 # the value typed by the parameter table, as sweep.py's --set
    this = {k: parse_value(k, v) for k, v in (kv.split("=", 1) for kv in args.this)}
    sha, ref = package_at(args.ref)
    ref_params = sys.modules[f"{ref.__name__}.params"]
    print(f"this tree against {sha}; numba target {_isa.numba_target()}; first {args.frames} frames of each")
    differ = 0
    for case in args.cases.split(","):
        seq, _, size = case.partition("@")
        folder = Path(args.data) / seq / "input"
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:args.frames] \
            if folder.is_dir() else []
        if not files:
            print(f"same_bits: no frames at {folder}", file=sys.stderr)
            return 2
        wh = tuple(int(v) for v in size.split("x")) if size else None
        a, b = MotionModel(Params().replace(**this)), ref.MotionModel(ref_params.Params())
        nk = nm = 0
        for f in files:
            frame = cv2.imread(str(f))
            if wh:
                frame = cv2.resize(frame, wh, interpolation=cv2.INTER_AREA)
            ra, rb = a.apply(frame), b.apply(frame)
            nk += int((ra.kl != rb.kl).sum())
            nm += int((ra.mask != rb.mask).sum())
        print(f"  {case:32s} {len(files):4d} frames: KL differs at {nk} pixels, mask at {nm}")
        differ += nk + nm
    print("SAME BITS" if differ == 0 else "DIFFERENT")
    return 0 if differ == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
