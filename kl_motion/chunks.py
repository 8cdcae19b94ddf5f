"""Long recordings in chunks: the plan, and the join of the chunks' outputs into one run's.

A chunk is an ordinary ``process_input`` run with a frame range (``Options.start``/``end``) and a
lead-in (``Options.lead_in``): the frames of its warm-up (``--chunk-warmup`` seconds before its
first frame) are analysed, so the background model has learned the scene when the chunk begins,
but write nothing.  Each chunk writes into ``DIR/NAME/chunks.part/NNNN/``; ``join`` then writes
the input's outputs as one run would have:

- ``mask.mkv`` (or ``mask/``), ``bin/``: the chunks' frames in order (the FFV1 packets copied into
  one file, PNGs renumbered: the masks are the chunks' masks byte for byte);
- ``stats.csv``: the chunks' rows in order, event ids renumbered;
- ``boxes.csv``: the rows in order; a track still on screen at a boundary keeps its id (the next
  chunk's tracker also ran on the warm-up frames; its boxes on the last warm-up frame are matched
  with the previous chunk's boxes on that frame), ids numbered in order of first appearance;
- ``events.jsonl``: an event open at a chunk's end and still open (or starting again within
  ``event_gap``) at the next chunk's start is one event: start from the first, end from the
  second, peak, box, motion frames and tracks of both; events that ended in a chunk's warm-up
  are the previous chunk's and are not counted twice;
- ``summary.json`` (with ``chunks``), then ``report.html`` and ``motion.png`` from the joined
  files.

Everything is written under temporary names and renamed when all of it is complete, then
``chunks.part/`` is removed.  Nothing here imports dask (``kl_motion.cluster`` runs the chunks).
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .atomic import finish, part_name, write_text
from .errors import KLMotionError, OutputError
from .outputs import STATS_HEADER, InputReport, Options
from .params import Params
from .pipeline import ChunkInfo
from .sinks import ImageSequenceSink, TextSink, VideoSink, verify_video
from .timefmt import Position, timecode
from .tracker import BOXES_HEADER, iou

CHUNKS_DIR = "chunks.part"
# The default warm-up, in multiples of the model's ``history`` (processed frames).  The model forgets
# with a time constant of ``history`` frames (slower at pixels seen as foreground, which learn at
# fg_learn_factor of the rate), so what a chunk's model has not seen weighs about e^-(warm-up/history)
# at the boundary: 22 % after 1.5 histories (10 s at 30 fps, the earlier default), under 1 % after 5.
# Measured on CDnet highway (bench/cluster.py, motion_area 0.06, event_gap 0.4, dense traffic): a
# 10 s warm-up split and joined events near the boundaries (2 of 22 missed, 1 extra); 20-40 s found
# all 22 within 2 frames, at 1 and at 3 boundaries (docs/headless.md).
WARMUP_HISTORIES = 5


@dataclass
class Chunk:
    """Frames ``first`` .. ``end - 1`` (0-based source indices) written; ``lead`` frames before
    ``first`` analysed only.  ``end`` None: to the end of the input."""
    index: int
    first: int
    end: int | None
    lead: int


def plan(total_frames: int, fps: float, chunk_minutes: float, warmup_seconds: float, first: int = 0,
         end: int | None = None, step: int = 1) -> list[Chunk]:
    """Chunks of ``chunk_minutes`` of the frames ``first`` .. ``end`` (None: ``total_frames``), each
    with ``warmup_seconds`` of lead-in (never before ``first``).  Boundaries and lead-ins are
    multiples of ``step`` (--frame-skip + 1) from ``first``, so the chunks process exactly the frames
    an unchunked run does.  One chunk (``end`` as given) when the range is not longer than a chunk
    and a quarter: a short tail is not worth a warm-up of its own."""
    fps = fps if fps and fps > 0 else 25.0
    stop = min(total_frames, end) if end is not None else total_frames
    length = max(step, int(round(chunk_minutes * 60 * fps)) // step * step)
    lead = int(math.ceil(warmup_seconds * fps / step)) * step
    if chunk_minutes <= 0 or stop - first <= length * 1.25:
        return [Chunk(0, first, end, 0)]
    out = []
    s = first
    while True:
        e = s + length
        last = stop - e <= length // 4           # what is left is the last chunk's
        out.append(Chunk(len(out), s, end if last else e, min(lead, s - first)))
        if last:
            return out
        s = e


def default_warmup(params: Params, fps: float, step: int = 1) -> float:
    """``--chunk-warmup``'s default in seconds: WARMUP_HISTORIES x ``history`` processed frames
    (and at least twice the events' warm-up, ``warmup_frames``, which suppresses motion on a model's
    first frames)."""
    from .analyzer import WARMUP_FRAMES
    fps = fps if fps and fps > 0 else 25.0
    frames = max(WARMUP_HISTORIES * params.history, 2 * max(WARMUP_FRAMES, params.warmup_frames))
    return frames * max(1, step) / fps


def chunk_options(opt: Options, c: Chunk) -> Options:
    """The options of one chunk's run: its frame range and lead-in; stats, events and boxes always
    (the join needs them), the report only at the join, no live notifications."""
    return replace(opt, start=Position(frame=c.first) if c.first else None,
                   end=Position(frame=c.end - 1) if c.end is not None else None,
                   lead_in=c.lead, force=True, stats=True, events=True, boxes=True, report=False,
                   on_event="", webhook="", mqtt="", max_frames=0)


def check_options(opt: Options) -> None:
    """What a chunked run cannot do yet: one line, before any work."""
    bad = [f for f, on in (("--overlay", opt.overlay), ("--snapshots", opt.snapshots), ("--clips", opt.clips),
                           ("--on-event", opt.on_event), ("--webhook", opt.webhook), ("--mqtt", opt.mqtt))
           if on]
    if bad:
        raise KLMotionError(f"--chunk cannot be combined with {', '.join(bad)} (yet); run those inputs "
                            "without --chunk")


def chunk_dir(out_dir: str | Path, c: Chunk) -> Path:
    return Path(out_dir) / CHUNKS_DIR / f"{c.index:04d}"


# ============================================================================ join
def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _union(a: list[int], b: list[int]) -> list[int]:
    if a[2] <= 0 or a[3] <= 0:
        return list(b)
    if b[2] <= 0 or b[3] <= 0:
        return list(a)
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    return [x0, y0, max(a[0] + a[2], b[0] + b[2]) - x0, max(a[1] + a[3], b[1] + b[3]) - y0]


def _merge_tracks(first: list[dict], second: list[dict], limit: int = 20) -> list[dict]:
    seen: dict[int, dict] = {t["id"]: dict(t) for t in first}
    for t in second:
        s = seen.get(t["id"])
        if s is None:
            seen[t["id"]] = dict(t)
            continue
        s.update(last_frame=t["last_frame"], last_box=t["last_box"], box=_union(s["box"], t["box"]),
                 frames=s["frames"] + t["frames"], peak_pixels=max(s["peak_pixels"], t["peak_pixels"]))
    best = sorted(seen.values(), key=lambda s: -s["frames"])[:limit]
    return sorted(best, key=lambda s: (s["first_frame"], s["id"]))


def _merge_events(a: dict, b: dict, head: dict | None, pixels: int) -> dict:
    """Event ``a`` (open at a chunk's end) and ``b`` (its continuation in the next chunk; ``head``:
    b's part on that chunk's written frames when it was already open there) as one end record."""
    part = head if head is not None else b
    out = dict(a)
    if b["end_frame"] > a["end_frame"]:
        out.update(end_frame=b["end_frame"], end_time=b["end_time"], end_timecode=b["end_timecode"])
    if part["motion_frames"] and part["peak_pixels"] > a["peak_pixels"]:
        out.update(peak_pixels=part["peak_pixels"], peak_frame=part["peak_frame"],
                   peak_time=round(part["peak_time"], 4), peak_timecode=timecode(part["peak_time"]),
                   peak_area=round(part["peak_pixels"] / pixels, 6) if pixels else b["peak_area"])
    out["box"] = _union(a["box"], part["box"]) if part["motion_frames"] else list(a["box"])
    out["motion_frames"] = a["motion_frames"] + part["motion_frames"]
    out["duration"] = round(out["end_time"] - out["start_time"], 4)
    out["tracks"] = _merge_tracks(a.get("tracks", []), b.get("tracks", []))
    for k in ("start_utc", "end_utc"):
        if k in b:
            out[k] = b[k]
    return out


def _track_map(rows: list[list[str]], lead_boxes: list, prev_last: list[tuple[int, list[int]]],
               next_id: int) -> tuple[dict[int, int], int]:
    """Local track id -> joined id for one chunk: the tracks on its last warm-up frame continue
    the previous chunk's tracks with the same box on that frame (else the best IoU >= 0.5); the
    others get new ids in order of first appearance."""
    m: dict[int, int] = {}
    free = list(prev_last)
    for lid, box in lead_boxes:
        best, k = 0.0, -1
        for j, (gid, pbox) in enumerate(free):
            s = 2.0 if list(pbox) == list(box) else iou(pbox, box)
            if s > best:
                best, k = s, j
        if k >= 0 and best >= 0.5:
            m[lid] = free.pop(k)[0]
    for r in rows:
        lid = int(r[3])
        if lid not in m:
            m[lid] = next_id
            next_id += 1
    return m, next_id


def _read_csv_rows(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split(",") for line in lines[1:] if line]


def join(out_dir: str | Path, opt: Options, params: Params, chunks: list[Chunk],
         results: list[tuple[InputReport, ChunkInfo]], started: float) -> InputReport:
    """Write ``out_dir``'s outputs from its chunks (see the module docstring); the input's report.
    A chunk that failed or was interrupted fails the input (its chunks stay in chunks.part/)."""
    out_dir = Path(out_dir)
    reps = [r for r, _ in results]
    rep = InputReport(input=reps[0].input, name=out_dir.name, out_dir=str(out_dir))
    bad = next((r for r in reps if r.status in ("failed", "interrupted")), None)
    truncated = next((r for i, r in enumerate(reps) if r.status == "truncated"), None)
    if bad is None and truncated is not None and truncated is not reps[-1]:
        bad = truncated          # a chunk in the middle that ends early: frames are missing
    rep.frames = sum(r.frames for r in reps)
    rep.lightswitches = sum(r.lightswitches for r in reps)
    rep.resets = sum(r.resets for r in reps)
    rep.expected_frames = reps[0].expected_frames
    if bad is not None:
        rep.status = bad.status
        k = reps.index(bad)
        rep.message = f"chunk {k + 1} of {len(reps)}: {bad.message}"
        rep.seconds = time.time() - started
        return rep
    from .outlock import OutputLock
    from .sinks import check_new
    from .outputs import output_paths
    from .report import write_report
    paths = output_paths(out_dir, opt)
    with OutputLock(out_dir):
        check_new([p for k, p in paths.items()], opt.force)
        written = _join_files(out_dir, opt, params, chunks, results, paths, rep)
        sums = [json.loads((chunk_dir(out_dir, c) / "summary.json").read_text(encoding="utf-8")) for c in chunks]
        if truncated is not None:
            rep.status, rep.message = truncated.status, truncated.message
        rep.seconds = time.time() - started
        rep.outputs = [str(p) for p in written]
        src = sums[0]["source"]
        summary = dict(rep.to_dict(), started=started, params=params.to_dict(), source=src,
                       range=dict(first_frame=sums[0]["range"]["first_frame"], last_frame=sums[-1]["range"]["last_frame"],
                                  frame_skip=opt.frame_skip, start=sums[0]["range"]["start"],
                                  end=sums[-1]["range"]["end"]),
                       chunks=[dict(first_frame=s["range"]["first_frame"], last_frame=s["range"]["last_frame"],
                                    warmup_frames=c.lead, frames=s["frames"], seconds=s["seconds"])
                               for c, s in zip(chunks, sums)])
        write_text(paths["summary"], json.dumps(summary, indent=1, default=str) + "\n")
        if "report" in paths:
            try:
                rep.outputs += [str(p) for p in write_report(out_dir)]
            except Exception as e:   # as in pipeline: the report is a picture, never fatal
                import logging
                logging.getLogger("kl_motion").warning("%s: report not written: %s", out_dir.name, e)
        shutil.rmtree(out_dir / CHUNKS_DIR, ignore_errors=True)
    return rep


def _join_files(out_dir: Path, opt: Options, params: Params, chunks: list[Chunk],
                results: list[tuple[InputReport, ChunkInfo]], paths: dict, rep: InputReport) -> list[Path]:
    name = out_dir.name
    dirs = [chunk_dir(out_dir, c) for c in chunks]
    gap = params.event_gap
    # ---- events and tracks: one pass over the chunks, in order
    ev_lines: list[dict] = []
    stats_rows: list[str] = []
    box_rows: list[str] = []
    next_event, next_track = 1, 1
    prev_last: list[tuple[int, list[int]]] = []       # (joined track id, box) on the previous chunk's last frame
    held: dict | None = None                          # the previous chunk's open event's end record (joined ids)
    held_pixels = 0
    for k, (d, (r, info)) in enumerate(zip(dirs, results)):
        boxes = _read_csv_rows(d / "boxes.csv")
        tmap, next_track = _track_map(boxes, info.lead_boxes if k else [], prev_last, next_track)
        recs = _records(d / "events.jsonl")
        local_ids = sorted({rec["id"] for rec in recs})
        emap: dict[int, int] = {}
        cont = None       # this chunk's local id of the continuation of `held`
        if held is not None and local_ids:
            if info.head is not None:
                cont = info.head["id"]
            else:
                first_start = min((rec["start_time"] for rec in recs if rec["id"] == local_ids[0]))
                if first_start - held["end_time"] < gap:
                    cont = local_ids[0]
        # an event open at this chunk's start that the previous chunk did not have open at its end (the
        # warm-up's model saw motion the previous chunk did not): kept only when it moves after the boundary
        orphan = info.head if info.head is not None and cont != info.head["id"] else None
        for lid in local_ids:
            if lid == cont:
                emap[lid] = held["id"]
            elif orphan is not None and lid == orphan["id"] and not orphan["motion_frames"]:
                emap[lid] = 0
            else:
                emap[lid] = next_event
                next_event += 1
        if held is not None and cont is None:
            ev_lines.append(held)         # the previous chunk's open event did not go on: as it was
            held = None
        if orphan is not None and emap[orphan["id"]]:     # it needs a start record (it started in the warm-up)
            end = next(r for r in recs if r["id"] == orphan["id"] and r["type"] == "end")
            ev_lines.append(dict(type="start", source=name, input=end.get("input", ""), id=emap[orphan["id"]],
                                 start_frame=end["start_frame"], start_time=end["start_time"],
                                 start_timecode=end["start_timecode"], box=list(orphan["box"]), tracks=[]))
        last = k + 1 == len(chunks)
        tail = emap.get(info.tail_id) if info.tail_id and not last else None
        for rec in recs:
            if not emap[rec["id"]]:
                continue
            rec = dict(rec, source=name, id=emap[rec["id"]])
            rec["tracks"] = [dict(t, id=tmap.get(t["id"], t["id"])) for t in rec.get("tracks", [])]
            if held is not None and rec["id"] == held["id"]:     # the continuation of the held event
                if rec["type"] == "start":
                    continue              # it started in the previous chunk
                head = info.head if info.head is not None and cont == info.head["id"] else None
                rec = _merge_events(held, rec, head, info.pixels or held_pixels)
                held = None
            if rec["type"] == "end" and rec["id"] == tail:
                held = rec                # open at this chunk's end: may go on in the next chunk
                continue
            ev_lines.append(rec)
        held_pixels = info.pixels or held_pixels
        # the frames of a gap joined into one event (no event on them in this chunk, as it started
        # after the boundary) are the event's, as in one run
        fill = emap[cont] if cont is not None and (info.head is None or cont != info.head["id"]) else 0
        for row in (d / "stats.csv").read_text(encoding="utf-8").splitlines()[1:]:
            if not row:
                continue
            head_cols, _, ev = row.rpartition(",")
            if ev and fill and int(ev) == cont:
                fill = 0
            g = emap[int(ev)] if ev else fill
            stats_rows.append(f"{head_cols},{g or ''}")
        for row in boxes:
            row[3] = str(tmap[int(row[3])])
            box_rows.append(",".join(row))
        lf = str(_last_frame(d))
        prev_last = [(int(b[3]), [int(v) for v in b[4:8]]) for b in boxes if b[0] == lf]
    if held is not None:
        ev_lines.append(held)
    rep.events = sum(1 for e in ev_lines if e.get("type") == "end")
    # ---- the files, under temporary names; renamed only when all are complete
    sinks: list = []
    try:
        if "stats" in paths:
            s = TextSink(paths["stats"], STATS_HEADER)
            sinks.append(s)
            for row in stats_rows:
                s.line(row)
        if "boxes" in paths:
            s = TextSink(paths["boxes"], BOXES_HEADER)
            sinks.append(s)
            for row in box_rows:
                s.line(row)
        if "events" in paths:
            s = TextSink(paths["events"])
            sinks.append(s)
            for e in ev_lines:
                s.line(json.dumps(e))
        fps = _fps(dirs[0]) / (max(0, opt.frame_skip) + 1)
        if "mask" in paths:
            sinks.append(_join_frames(paths["mask"], [d / paths["mask"].name for d in dirs], fps, opt, "mask"))
        if "bins" in paths:
            sinks.append(_join_frames(paths["bins"], [d / "bin" for d in dirs], fps, opt, "bin"))
        for s in sinks:
            s.end(verify=True)
    except BaseException:
        for s in sinks:
            if not s.closed:
                s.discard()
        raise
    return [p for p in (s.commit() for s in sinks) if p is not None]


def _last_frame(d: Path) -> int:
    rows = (d / "stats.csv").read_text(encoding="utf-8").splitlines()
    return int(rows[-1].split(",")[0]) if len(rows) > 1 else 0


def _fps(d: Path) -> float:
    s = json.loads((d / "summary.json").read_text(encoding="utf-8"))
    return float(s["source"]["fps"])


class _Remuxed:
    """The chunks' videos as one, their packets copied (FFV1 frames are independent: nothing is
    decoded or encoded), written under the temporary name; the sinks' end/commit/discard."""

    def __init__(self, dst: Path, parts: list[Path], fps: float):
        from fractions import Fraction

        import av
        self.path, self.tmp = dst, part_name(dst)
        self.frames, self.closed = 0, False
        tb = 1 / Fraction(fps).limit_denominator(1001)
        try:
            with av.open(str(self.tmp), "w", format="matroska") as out:
                ost = None
                for p in parts:
                    with av.open(str(p)) as inp:
                        ist = inp.streams.video[0]
                        if ost is None:
                            ost = out.add_stream_from_template(ist)
                        for pkt in inp.demux(ist):
                            if pkt.dts is None:
                                continue       # the demuxer's end-of-stream packet
                            pkt.stream = ost
                            pkt.time_base = tb
                            pkt.pts = pkt.dts = self.frames
                            pkt.duration = 1
                            out.mux(pkt)
                            self.frames += 1
        except BaseException:
            self.discard()
            raise

    def end(self, verify: bool = True) -> None:
        if verify:
            bad = verify_video(self.tmp, self.frames)
            if bad is not None:
                raise OutputError(f"{self.tmp}: incomplete: {bad}; kept under its temporary name")

    def commit(self) -> Path:
        return finish(self.tmp, self.path, True)

    def discard(self) -> None:
        self.closed = True
        try:
            self.tmp.unlink()
        except OSError:
            pass


def _join_frames(dst: Path, parts: list[Path], fps: float, opt: Options, prefix: str):
    """The chunks' mask video (FFV1 packets copied; decoded and re-encoded, lossless, if that
    fails) or PNG folders (renumbered) as one; the sink, not yet committed."""
    import cv2
    if dst.suffix:      # a video
        try:
            return _Remuxed(dst, parts, fps)
        except Exception as e:    # (an FFmpeg without the Matroska muxer?) the slow way, same frames
            import logging
            logging.getLogger("kl_motion").debug("%s: remux failed (%s); re-encoding", dst, e)
        sink = VideoSink(dst, fps, color=False)
        try:
            for p in parts:
                cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
                if not cap.isOpened():
                    raise OutputError(f"{p}: cannot be read for the join")
                try:
                    while True:
                        ok, img = cap.read()
                        if not ok:
                            break
                        sink.write(img[:, :, 0] if img.ndim == 3 else img)
                finally:
                    cap.release()
        except BaseException:
            sink.discard()
            raise
        return sink
    seq = ImageSequenceSink(dst, prefix=prefix, binary=False)
    try:
        for p in parts:
            for f in sorted(p.glob(f"{prefix}*.png")):
                shutil.copyfile(f, seq.tmp / f"{prefix}{seq.n:06d}.png")
                seq.n += 1
                seq.frames += 1
    except BaseException:
        seq.discard()
        raise
    return seq
