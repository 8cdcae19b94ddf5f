"""Where the band kernel's time goes: the hottest loops of its machine code, from `perf` samples.

Runs MotionModel.apply on highway frames (one thread) under `perf record -e cpu-clock`, maps the samples
that fall in the compiled band function (`kernels._band3`) to its instructions (`objdump` of the object
code in numba's cache entry, as bench/_isa.py reads it) and prints the innermost loops (a backward jump
and the instructions it spans) by their share of the band's samples, with their length in instructions,
then the hottest 1 KiB regions (scalar and unrolled code has no short loop); `--dump A-B` prints a range
of instructions with their samples. A loop of 8 (AVX2) or 16 (AVX-512) pixels per iteration shows which
source loop it is by its content. `--isa avx2` builds AVX2 code in bench/.numba-cache/avx2 (bench/_isa.py).
Needs `perf` and `objdump` (linux-tools, binutils); timings inside a VM are sampled by the kernel's
clock, so shares are what counts, not absolute figures.

    .venv/bin/python bench/hotloops.py --isa avx2 --size 640x480 --frames 300
    .venv/bin/python bench/hotloops.py --isa avx2 --dump 111c0-11340
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _isa  # noqa: E402

_CHILD = r"""
import glob, json, sys
sys.path[:0] = [{root!r}, {bench!r}]
import cv2
import _isa
from kl_motion import kernels
from kl_motion.model import MotionModel
cv2.setNumThreads(1)
w, h = {size}
files = sorted(glob.glob({data!r} + "/input/*.jpg"))[300:400]
frames = [cv2.resize(cv2.imread(f), (w, h), interpolation=cv2.INTER_AREA) for f in files]
m = MotionModel()
for f in frames[:20]:
    m.apply(f)
sig, cres = next(iter(kernels._band3.overloads.items()))
open({obj!r}, "wb").write(_isa.cached_object(kernels._band3, sig) or b"")
json.dump(cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name), open({addr!r}, "w"))
for i in range({frames}):
    m.apply(frames[20 + i % 80])
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/cdnet/highway"))
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--top", type=int, default=20)
    _isa.add_argument(ap)
    ap.add_argument("--dump", help="print the instructions of this offset range (hex, A-B) with their samples")
    args = ap.parse_args()
    for tool in ("perf", "objdump", "nm"):
        if shutil.which(tool) is None:
            print(f"hotloops: `{tool}` is not installed (linux-tools / binutils)", file=sys.stderr)
            return 2
    if not (Path(args.data) / "input").is_dir():
        print(f"hotloops: no frames at {args.data}/input (set --data)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="hotloops-"))
    obj, addr, pdata, child = tmp / "band.o", tmp / "addr.json", tmp / "perf.data", tmp / "child.py"
    env = dict(_isa.isa_env(args.isa, args.numba_cache), NUMBA_NUM_THREADS="1", KL_MOTION_PRECOMPILE="0")
    w, h = (int(v) for v in args.size.split("x"))
    child.write_text(_CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), size=(w, h), data=args.data,
                                   obj=str(obj), addr=str(addr), frames=args.frames))
    # (a cold cache compiles first: those samples fall in numba and LLVM, not in the band)
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-o", str(pdata), sys.executable,
                    str(child)], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not obj.stat().st_size:
        print("hotloops: no cache entry for the band kernel (numba's cache not writable?)", file=sys.stderr)
        return 2
    base = json.loads(addr.read_text())
    size = max(int(line.split()[1], 16) for line in subprocess.run(["nm", "-S", str(obj)], capture_output=True,
               text=True).stdout.splitlines() if " T _ZN9kl_motion" in line)
    ips = [int(v, 16) for v in subprocess.run(["perf", "script", "-i", str(pdata), "-F", "ip"], capture_output=True,
                                             text=True).stdout.split()]
    hits = collections.Counter(ip - base for ip in ips if base <= ip < base + size)
    lines = []
    for line in subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-M", "intel", str(obj)], capture_output=True,
                               text=True).stdout.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\s+(.*)", line)
        if m and int(m.group(1), 16) < size:
            lines.append((int(m.group(1), 16), m.group(2).split("<")[0].strip()))
    counts = [hits.get(off, 0) for off, _ in lines]
    total = sum(counts) or 1
    print(f"{args.size}, {args.frames} frames, {args.isa} code: {len(ips)} samples, {sum(counts)} in the band "
          f"({100 * sum(counts) / max(len(ips), 1):.0f} %, the rest: Python, cleanup, OpenCV, start-up)")
    if args.dump:
        a, b = (int(v, 16) for v in args.dump.split("-"))
        for c, (off, ins) in zip(counts, lines):
            if a <= off <= b:
                print(f"{c:6d} {off:6x}  {ins}")
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    index = {off: i for i, (off, _) in enumerate(lines)}
    loops = []
    for i, (off, ins) in enumerate(lines):
        m = re.match(r"j\w+\s+([0-9a-f]+)", ins)
        if m and int(m.group(1), 16) <= off and int(m.group(1), 16) in index:
            j = index[int(m.group(1), 16)]
            loops.append((sum(counts[j:i + 1]), lines[j][0], off, i - j + 1))
    inner = [lp for lp in loops if not any(o[1] >= lp[1] and o[2] <= lp[2] and (o[1], o[2]) != (lp[1], lp[2])
                                           for o in loops)]
    print(f"{'samples':>8} {'band %':>7} {'cum %':>6}  {'offsets':>13} {'instructions':>12}")
    cum = 0
    for s, a, b, n in sorted(inner, reverse=True)[:args.top]:
        cum += s
        print(f"{s:8d} {100 * s / total:6.1f} {100 * cum / total:6.1f}  {a:6x}-{b:6x} {n:12d}")
    # straight-line and branchy code (a scalar loop over flagged pixels, an unrolled run) has no short
    # backward jump: the hottest 1 KiB regions of the code show it
    region: collections.Counter = collections.Counter()
    vec: collections.Counter = collections.Counter()
    for c, (off, ins) in zip(counts, lines):
        region[off >> 10] += c
        vec[off >> 10] += ("ymm" in ins) or ("zmm" in ins)
    print(f"\n{'band %':>7}  {'offsets':>13}  vector instructions of the region's")
    for r, c in region.most_common(args.top // 2):
        n = sum(1 for off, _ in lines if off >> 10 == r)
        print(f"{100 * c / total:7.1f}  {r << 10:6x}-{(r + 1) << 10:6x}  {vec[r]} of {n}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
