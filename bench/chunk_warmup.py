"""How long must a chunk's warm-up be?  Events of one long clip, unchunked against chunked, per
``--chunk-warmup``, without a cluster: the chunks run one after another in this process through the
same code the workers run (``pipeline.process_input`` with the chunk's options, then
``chunks.join``), so only the warm-up differs from ``kl-motion process --cluster local:2 --chunk``.

The clip is CDnet highway played forwards then backwards (bench/cluster.py's long clip), event
parameters that make many short events in dense traffic (motion_area 0.06, event_gap 0.4 s).  An
event of the unchunked run is found when one chunked event starts and ends within ``--tol`` frames
of it; "worst" is the largest offset of a found event.

    .venv/bin/python bench/chunk_warmup.py --frames 3600 --chunk 1.0 --warmups 10,20,33.34,40
    .venv/bin/python bench/chunk_warmup.py --frames 3600 --chunk 0.5 --warmups 10,33.34     # 4 chunks
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numba

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cluster import FPS, agreement, events, highway_frames, write_clip   # noqa: E402  (bench/cluster.py)

from kl_motion.chunks import chunk_dir, chunk_options, default_warmup, join, plan   # noqa: E402
from kl_motion.outputs import Options   # noqa: E402
from kl_motion.params import Params   # noqa: E402
from kl_motion.pipeline import ChunkInfo, process_input   # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=3600, help="frames of the long clip (default 3600)")
    ap.add_argument("--size", default="320x240", help="frame size WxH (default 320x240)")
    ap.add_argument("--chunk", type=float, default=1.0, help="--chunk minutes (default 1.0: 2 chunks of 3600)")
    ap.add_argument("--warmups", default="10,20,33.34", help="--chunk-warmup seconds to try, comma-separated")
    ap.add_argument("--motion-area", type=float, default=0.06)
    ap.add_argument("--event-gap", type=float, default=0.4)
    ap.add_argument("--history", type=int, default=200)
    ap.add_argument("--tol", type=int, default=int(FPS), help="frames an event may move (default 1 s)")
    a = ap.parse_args()
    numba.set_num_threads(1)
    w, h = (int(v) for v in a.size.lower().split("x"))
    p = Params(motion_area=a.motion_area, event_gap=a.event_gap, history=a.history)
    opt = Options(mask=False, report=False)
    tmp = Path(tempfile.mkdtemp(prefix="kl-bench-warmup-"))
    try:
        clip = write_clip(tmp / "long.avi", highway_frames((w, h)), a.frames)
        t = time.perf_counter()
        ref = process_input(str(clip), tmp / "whole" / "long", p, opt)
        assert ref.status == "ok", ref.message
        ev0 = events(tmp / "whole" / "long" / "events.jsonl")
        print(f"{w}x{h}, {a.frames} frames at {FPS:g} fps, history {a.history}, motion_area {a.motion_area}, "
              f"event_gap {a.event_gap}; unchunked: {len(ev0)} events ({time.perf_counter() - t:.0f} s); "
              f"default warm-up {default_warmup(p, FPS):.4g} s")
        for ws in (float(x) for x in a.warmups.split(",")):
            out = tmp / f"w{ws:g}" / "long"
            cs = plan(a.frames, FPS, a.chunk, ws)
            res = []
            for c in cs:
                info = ChunkInfo()
                res.append((process_input(str(clip), chunk_dir(out, c), p, chunk_options(opt, c), chunk=info), info))
            join(out, opt, p, cs, res, time.time())
            ag = agreement(ev0, events(out / "events.jsonl"), a.tol)
            print(f"warm-up {ws:g} s ({cs[-1].lead} frames), {len(cs)} chunks: {ag['ref']} events, chunked "
                  f"{ag['got']}: {ag['exact']} same frames, {ag['near']} within {a.tol} frames (worst {ag['worst']}), "
                  f"{ag['missed']} missed, {ag['extra']} extra", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
