"""Headless processing of one input: reader thread -> Analyzer -> writer thread.

``process_input(spec, out_dir, params, options, detector=None)`` processes one input and
returns an ``InputReport``; it never raises for a bad input (the report carries the one-line
error), only for bugs.  The pieces: ``io_threads`` (reader/writer), ``analyzer`` (the detector,
events, light switch), ``outputs`` (what is written per frame).  Nothing here imports Qt.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import fsnames
from .analyzer import Analyzer, Detector, make_detector
from .atomic import write_text
from .errors import KLMotionError, OutputError
from .outlock import OutputLock
from .outputs import (STATS_HEADER, EndItem, InputReport, Item, LeadItem, Options, Outputs, end_item,  # noqa: F401
                      output_paths)
from .notify import make_notifiers
from .params import Params
from .report import write_report
from .timefmt import timecode
from .sinks import check_new
from .io_threads import ReaderThread, WriterThread, frames  # noqa: F401  (public here too)
from .sources import Source, classify, is_live, open_source, redact  # noqa: F401  (redact: public here too)
from .streams import ReconnectingSource, open_live

log = logging.getLogger("kl_motion")

_compile_notice = threading.Lock()   # held once said: one notice per process


@dataclass
class ChunkInfo:
    """What a chunk of a long recording (``Options.lead_in`` frames of warm-up before ``--start``)
    tells the join (kl_motion.chunks) besides its outputs; filled in by ``process_input``.

    ``lead_events``: events that ended during the lead-in (the previous chunk has them; their ids
    come first in this chunk's numbering).  ``head``: the event open at the first written frame,
    as seen on the written frames only (id, motion_frames, peak_pixels, peak_frame, peak_time,
    box), or None.  ``tail_id``: the id of the event still open at the chunk's end (closed by its
    end, not by a gap), or 0.  ``lead_boxes``: (track id, box) of the last lead-in frame's boxes.
    ``pixels``: pixels of a frame."""
    lead_events: int = 0
    head: dict | None = None
    tail_id: int = 0
    lead_boxes: list = field(default_factory=list)
    pixels: int = 0


def input_name(spec: str) -> str:
    """A folder name for an input's outputs."""
    kind = classify(spec)
    if kind == "camera":
        return f"camera{int(spec)}"
    if kind == "stream":
        s = re.sub(r"^[a-z][a-z0-9+.-]*://([^/@]*@)?", "", str(spec), flags=re.I)
        s = re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")
        return s[:80] or "stream"
    p = Path(str(spec))
    if kind == "folder":
        p = p.resolve()
        return p.parent.name if p.name == "input" and p.parent.name else p.name
    return p.stem or p.name


# ============================================================================ one input
def open_input(spec: str, opt: Options, stop: threading.Event) -> Source:
    if is_live(spec):
        first = open_live(spec, opt.stream_timeout)
        if opt.reconnect:
            return ReconnectingSource(spec, opt.reconnect_attempts, opt.reconnect_delay, timeout=opt.stream_timeout,
                                      stop=stop, first=first)
        return first
    return open_source(spec)


def _say_compiling() -> None:
    if _compile_notice.acquire(blocking=False):
        log.info("compiling the detector's numba kernels: the first run on this machine takes half a "
                 "minute or more, later runs load them from numba's cache")


def process_input(spec: str, out_dir: str | Path, params: Params, opt: Options,
                  stop: threading.Event | None = None, progress: Callable | None = None,
                  detector: Detector | None = None, chunk: ChunkInfo | None = None) -> InputReport:
    """Process one input into ``out_dir``.  Returns a report; a bad input is a report
    with status 'failed' and a one-line message, not an exception.  ``detector`` (default:
    ``make_detector(opt.method, params)``) is the detector to run, built by the caller with
    ``params`` (its own parameters are used as they are).  ``chunk``: filled in for the join of a
    chunked recording (see ChunkInfo)."""
    stop = stop or threading.Event()
    shown = redact(fsnames.shown(spec))
    rep = InputReport(input=shown, out_dir=str(out_dir), name=Path(out_dir).name)
    if stop.is_set():
        rep.status, rep.message = "interrupted", "not started"
        return rep
    t0 = time.perf_counter()
    try:
        with OutputLock(out_dir):      # one run at a time writes this folder
            _process(spec, Path(out_dir), params, opt, stop, progress, rep, detector, chunk)
    except KLMotionError as e:
        rep.status, rep.message = "failed", fsnames.shown(str(e).replace(str(spec), shown))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a bug must not stop the other inputs of a batch
        if os.environ.get("KL_MOTION_DEBUG"):
            raise
        rep.status, rep.message = "failed", f"internal error: {type(e).__name__}: {e}"
    rep.seconds = time.perf_counter() - t0 if not rep.seconds else rep.seconds
    return rep


def _process(spec, out_dir: Path, params: Params, opt: Options, stop, progress, rep: InputReport,
             detector: Detector | None = None, chunk: ChunkInfo | None = None) -> None:
    paths = output_paths(out_dir, opt)
    check_new(paths.values(), opt.force)
    src = open_input(spec, opt, stop)
    info = src.info
    live = info.live
    if opt.fps and info.kind == "folder":
        info.fps = float(opt.fps)
    elif opt.fps:
        log.warning("%s: --fps applies to image folders; this %s has its own frame rate (%g fps)",
                    redact(info.name), info.kind, info.fps)
    fps = info.fps
    if info.kind == "folder":
        log.info("%s: image folder at %g fps%s", redact(info.name), fps, "" if opt.fps else " (--fps to change)")
    step = max(0, opt.frame_skip) + 1
    try:
        first_index, end_index, lead = _range(opt, info, src, step)
    except BaseException:
        src.close()
        raise
    chunk = chunk if chunk is not None else ChunkInfo()
    rep.expected_frames = info.total_frames
    if progress is not None:
        total = info.total_frames
        if total and (first_index or end_index is not None or step > 1):
            total = max(0, (min(total, end_index or total) - first_index + step - 1) // step)
        progress(0, total if not opt.max_frames else min(opt.max_frames, total or opt.max_frames))
    notifiers = None
    try:
        if detector is None:
            detector = make_detector(opt.method, params)
        notifiers = make_notifiers(Path(out_dir).name, opt.on_event, opt.webhook, opt.mqtt, opt.mqtt_prefix)
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs = Outputs(paths, opt, fps / step, params,   # (--force: old snapshots/clips go only once replaced)
                          source_file=spec if info.kind == "file" else None, notifiers=notifiers,
                          input_shown=redact(spec))
    except OSError as e:
        src.close()
        if notifiers is not None:
            notifiers.close(1.0)
        raise OutputError(f"cannot write to {out_dir}: {e.strerror or e}") from None
    except BaseException:
        src.close()
        if notifiers is not None:
            notifiers.close(1.0)
        raise
    outputs.source = Path(out_dir).name
    analyzer = Analyzer(detector, fps=fps / step, on_slow_start=_say_compiling)   # once per process: _say_compiling
    reader = ReaderThread(src, opt.queue_size, stop)
    writer = WriterThread(outputs.handle, opt.queue_size)
    n = 0                       # frames processed
    index = first_index - lead  # 0-based index in the source of the frame read last
    head = None                 # the event open at the first written frame (after a lead-in)
    shape = None
    start_wall = time.time()
    t_live0 = None
    t = 0.0
    at_end = False              # stopped by --end
    ok = True
    try:
        tstart = time.perf_counter()
        for frame in reader:
            if stop.is_set():
                break
            if live:
                now = time.perf_counter()
                if t_live0 is None:
                    t_live0, outputs.wall0 = now, time.time()
                t = now - t_live0
                if end_index is not None and t >= opt.end.seconds:
                    at_end = True
                    break
            else:
                t = index / fps
                if end_index is not None and index >= end_index:
                    at_end = True
                    break
            index += 1              # now the 1-based number of this frame
            if (index - 1 - first_index) % step:
                continue            # --frame-skip: read, not processed
            if index <= first_index:   # lead-in: the model learns, nothing is written
                a = analyzer.analyze(frame, t, index)
                writer.put(LeadItem(a.blobs))
                continue
            n += 1
            if n == 1 and lead:     # the events of the lead-in: ended (the previous chunk's) or open
                chunk.lead_events = len(analyzer.events)
                act = analyzer.active_event
                if act is not None:
                    head = chunk.head = dict(id=act.id, motion_frames=0, peak_pixels=0, peak_frame=0,
                                             peak_time=0.0, box=[0, 0, 0, 0])
            a = analyzer.analyze(frame, t, index)
            if head is not None and a.event_id == head["id"] and a.events.in_motion:
                _add_to_head(head, a)
            if a.reset:
                log.warning("%s: frame %s changed from %s to %s at frame %d; model reset", redact(info.name),
                            *_format_change(shape, frame.shape), index)
                rep.resets += 1
            shape = frame.shape
            if a.ended_before:
                writer.put(end_item(a.ended_before))
            if a.lightswitch:
                log.info("%s: light switch at frame %d; re-learning", redact(info.name), n)
            writer.put(Item(index, t, frame, a.mask, a.kl, a.blobs, a.fg_fraction, a.events,
                            a.lightswitch, a.suppressed, a.event_id))
            if progress is not None:
                progress(1, None)
            if opt.max_frames and n >= opt.max_frames:
                break
        rep.seconds = time.perf_counter() - tstart
    except BaseException:
        ok = False
        raise
    finally:
        alive = reader.close(opt.stream_timeout + 2.0 if live else 5.0)
        err = reader.error
        if not alive:   # never release a capture another thread is still reading from
            src.close()
        ended = analyzer.finish()
        chunk.tail_id = ended[0].id if ended else 0
        chunk.pixels = int(shape[0] * shape[1]) if shape is not None else 0
        try:
            if ended:
                writer.put(end_item(ended))
            writer.close()
        finally:
            rep.outputs = outputs.close(ok)
            notifiers.close(10.0)     # deliver what is queued (the last 'end' records), for at most 10 s
        rep.frames = n
        rep.events = len(analyzer.events) - chunk.lead_events
        chunk.lead_boxes = outputs.lead_boxes
        rep.lightswitches = analyzer.lightswitches
        if ok:
            _finish_report(rep, info, err, stop, opt, src, index, first_index, end_index, at_end)
            summary = dict(rep.to_dict(), started=start_wall, params=params.to_dict(),
                           source=dict(kind=info.kind, width=info.width, height=info.height, fps=fps,
                                       fps_from=("--fps" if opt.fps and info.kind == "folder" else
                                                 "default" if not info.fps_known else info.kind)),
                           range=dict(first_frame=first_index + 1, last_frame=index, frame_skip=step - 1,
                                      start=timecode(first_index / fps), end=timecode(t if live else index / fps)))
            write_text(paths["summary"], json.dumps(summary, indent=1, default=str) + "\n")
            if "report" in paths:
                try:
                    rep.outputs += [str(p) for p in write_report(out_dir, thumbs=outputs.thumbs)]
                except Exception as e:     # the report is a picture of what was written: never fatal
                    log.warning("%s: report not written: %s", out_dir.name, e)


def _add_to_head(head: dict, a) -> None:
    """A written motion frame of the event open at the first written frame (its part in this chunk)."""
    from .events import boxes_union
    head["motion_frames"] += 1
    if a.area > head["peak_pixels"]:
        head.update(peak_pixels=int(a.area), peak_frame=a.index, peak_time=a.time)
    b = boxes_union(a.blobs)
    if b:
        x, y, w, h = head["box"]
        if w <= 0 or h <= 0:
            head["box"] = list(b)
        else:
            x0, y0 = min(x, b[0]), min(y, b[1])
            head["box"] = [x0, y0, max(x + w, b[0] + b[2]) - x0, max(y + h, b[1] + b[3]) - y0]


def finished_report(out_dir: str, since: float):
    """The report of an input whose worker finished it (summary.json written after ``since``)
    although the pool broke before its result came back; None otherwise."""
    import dataclasses
    import json
    try:
        s = json.loads((Path(out_dir) / "summary.json").read_text(encoding="utf-8"))
        if float(s.get("started", 0)) < since:
            return None
        return InputReport(**{f.name: s[f.name] for f in dataclasses.fields(InputReport) if f.name in s})
    except (OSError, ValueError, TypeError):
        return None


def _format_change(old: tuple, new: tuple) -> tuple[str, str, str]:
    """("size", "160x120", "120x90"), or ("format", "320x240 colour", "320x240 grey") when only the
    channels changed (the size alone would read "from 320x240 to 320x240")."""
    def size(s):
        return f"{s[1]}x{s[0]}"

    def kind(s):
        return "grey" if len(s) == 2 or s[2] == 1 else "colour"
    if size(old) != size(new):
        return "size", size(old), size(new)
    return "format", f"{size(old)} {kind(old)}", f"{size(new)} {kind(new)}"


def _range(opt: Options, info, src, step: int = 1) -> tuple[int, int | None, int]:
    """--start/--end as 0-based source indices: the first frame to write and the last one to
    process (None: to the end), and the lead-in: frames before the first one that are read
    (seeked to) and analysed but not written (``opt.lead_in``, at most --start, a multiple of
    the frame step).  Live sources take only an --end time."""
    first, end = 0, None
    fps = info.fps
    if opt.start is not None:
        if info.live or not info.seekable:
            raise KLMotionError(f"{redact(info.name)}: --start needs a file or an image folder")
        first = opt.start.to_frame(fps)
        if info.total_frames and first >= info.total_frames:
            raise KLMotionError(f"{redact(info.name)}: --start {opt.start} is past the end "
                                f"({info.total_frames} frames)")
    if opt.end is not None:
        if info.live and opt.end.frame is not None:
            raise KLMotionError(f"{redact(info.name)}: --end on a camera or stream is a time, not a frame")
        end = opt.end.frame + 1 if opt.end.frame is not None else opt.end.to_frame(fps)
        if end <= first:
            raise KLMotionError(f"--end ({opt.end}) is not after --start ({opt.start or 'the first frame'})")
    lead = 0
    if opt.lead_in > 0 and not info.live:
        lead = min(opt.lead_in, first) // step * step
    if first - lead:
        src.seek(first - lead)
    return first, end, lead


def _finish_report(rep: InputReport, info, err, stop, opt: Options, src, index: int = 0, first: int = 0,
                   end: int | None = None, at_end: bool = False) -> None:
    n = rep.frames
    if stop.is_set():
        rep.status, rep.message = "interrupted", f"interrupted after {n} frames; outputs closed"
        return
    if err is not None:
        rep.status = "truncated" if n else "failed"
        rep.message = f"read error after {n} frames: {err}"
        return
    if info.live:
        if at_end:
            rep.status, rep.message = "ok", f"stopped at --end {opt.end} after {n} frames"
        elif opt.max_frames and n >= opt.max_frames:
            rep.status, rep.message = "ok", f"stopped after --max-frames {n}"
        else:
            gave_up = getattr(src, "gave_up", False)
            rep.status = "ended"
            rep.message = f"stream ended after {n} frames" + (" (reconnect gave up)" if gave_up else "")
        return
    total = info.total_frames
    if opt.max_frames and n >= opt.max_frames:
        return
    if end is not None and total:
        total = min(total, end)
    if total and index < total - max(2, int(0.02 * total)):     # (a folder's count is exact: a short read is an error)
        rep.status = "truncated"
        rep.message = (f"video ended early: read {index} of {total} frames (truncated or corrupt file); "
                       "outputs cover what was read")
