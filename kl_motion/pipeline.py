"""Headless processing pipeline: reader thread -> model -> writer thread.

Decoding runs in its own thread and feeds a bounded queue; the model runs in the
calling thread; encoding and every file write run in a writer thread fed by a
second bounded queue.  So decoding, the model and encoding overlap, and memory
stays bounded.  Nothing here imports Qt.

``process_input(spec, out_dir, params, options)`` processes one input and returns
an ``InputReport``; it never raises for a bad input (the report carries the
one-line error), only for bugs.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import queue
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import fsnames
from .analyzer import WARMUP_FRAMES, Analyzer, Detector, make_detector  # noqa: F401  (WARMUP_FRAMES: public)
from .errors import KLMotionError, OutputError
from .outlock import OutputLock
from .events import Event, FrameEvents
from .overlay import Overlay, draw_overlay
from .params import Params
from .sinks import ImageSequenceSink, TextSink, VideoSink, check_new, write_image
from .sources import Source, classify, open_source

log = logging.getLogger("kl_motion")

_END = object()
CLIP_MEMORY_BYTES = 256e6   # frames held in memory for event clips (pre-capture / gap), at most
COMPILE_NOTICE_SECONDS = 3.0   # a first frame slower than this: say that numba is compiling
_compile_notice = threading.Lock()   # held once said: one notice per process
STATS_HEADER = "frame,time,fg_fraction,kl_mean,kl_max,blobs,motion,lightswitch,event"


# ============================================================================ threads
class ReaderThread:
    """Reads a Source in a thread into a bounded queue.  Iterate for frames; when it
    ends, ``error`` holds the SourceError that stopped it (None at a clean end)."""

    def __init__(self, source: Source, maxsize: int = 8, stop: threading.Event | None = None):
        self.source = source
        self.q: queue.Queue = queue.Queue(maxsize)
        self._ext_stop = stop
        self._halt = threading.Event()
        self.error: BaseException | None = None
        self._t = threading.Thread(target=self._run, name="kl-reader", daemon=True)
        self._t.start()

    def stopped(self) -> bool:
        return self._halt.is_set() or (self._ext_stop is not None and self._ext_stop.is_set())

    def _run(self) -> None:
        try:
            while not self.stopped():
                f = self.source.read()
                if f is None:
                    break
                while not self.stopped():
                    try:
                        self.q.put(f, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # handed to the consumer
            self.error = e
        finally:
            self._put_end()

    def _put_end(self) -> None:
        while True:
            try:
                self.q.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self.stopped():
                    try:
                        self.q.get_nowait()
                    except queue.Empty:
                        pass

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            try:
                f = self.q.get(timeout=0.1)
            except queue.Empty:
                if self.stopped():
                    return
                continue
            if f is _END:
                return
            yield f

    def close(self, timeout: float = 5.0) -> bool:
        """Stop reading; True if the reader thread is still stuck in a read after ``timeout``."""
        self._halt.set()
        end = time.monotonic() + timeout
        while self._t.is_alive() and time.monotonic() < end:
            try:
                while True:
                    self.q.get_nowait()
            except queue.Empty:
                pass
            self._t.join(0.05)
        return self._t.is_alive()


def frames(source: Source, maxsize: int = 8) -> Iterator[np.ndarray]:
    """A generator of the source's frames, decoded in a background thread."""
    r = ReaderThread(source, maxsize)
    try:
        yield from r
        if r.error is not None:
            raise r.error
    finally:
        r.close()


class WriterThread:
    """Calls ``handler(item)`` for each put item, in order, in a thread.  An exception in
    the handler is re-raised by the next put() or by close()."""

    def __init__(self, handler: Callable, maxsize: int = 8):
        self.handler = handler
        self.q: queue.Queue = queue.Queue(maxsize)
        self.error: BaseException | None = None
        self._t = threading.Thread(target=self._run, name="kl-writer", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is _END:
                return
            if self.error is None:
                try:
                    self.handler(item)
                except BaseException as e:
                    self.error = e

    def put(self, item) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(item)

    def close(self) -> None:
        self.q.put(_END)
        self._t.join()
        if self.error is not None:
            raise self.error


# ============================================================================ options / report
@dataclass
class Options:
    mask: bool = True               # mask video
    mask_format: str = "mkv"        # mkv (FFV1, lossless) or png (PNG sequence)
    overlay: bool = False
    bins: bool = False              # CDnet binNNNNNN.png
    stats: bool = True
    events: bool = True
    snapshots: bool = False
    clips: bool = False
    force: bool = False
    method: str = "kl_motion"      # a name of the detector registry (kl_motion.analyzer)
    max_frames: int = 0             # 0 = all
    reconnect: bool = False
    reconnect_attempts: int = 0     # 0 = forever
    reconnect_delay: float = 0.5
    stream_timeout: float = 10.0
    queue_size: int = 8


@dataclass
class InputReport:
    input: str
    name: str = ""
    out_dir: str = ""
    status: str = "ok"              # ok, ended, truncated, interrupted, failed
    frames: int = 0
    expected_frames: int | None = None
    events: int = 0
    lightswitches: int = 0
    resets: int = 0
    seconds: float = 0.0
    message: str = ""
    outputs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "truncated")

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = dict(vars(self))
        d["fps"] = round(self.fps, 2)
        d["seconds"] = round(self.seconds, 3)
        return d


def redact(spec: str) -> str:
    """A URL as shown to users: a password in it is replaced by ***."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", str(spec), flags=re.I)


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


def output_paths(out_dir: Path, opt: Options) -> dict[str, Path]:
    d = {}
    if opt.mask:
        d["mask"] = out_dir / ("mask" if opt.mask_format == "png" else f"mask.{opt.mask_format}")
    if opt.overlay:
        d["overlay"] = out_dir / "overlay.mp4"
    if opt.bins:
        d["bins"] = out_dir / "bin"
    if opt.stats:
        d["stats"] = out_dir / "stats.csv"
    if opt.events:
        d["events"] = out_dir / "events.jsonl"
    if opt.snapshots:
        d["snapshots"] = out_dir / "snapshots"
    if opt.clips:
        d["clips"] = out_dir / "clips"
    d["summary"] = out_dir / "summary.json"
    return d


# ============================================================================ writer side
@dataclass
class Item:
    index: int                      # 1-based frame number
    time: float
    frame: np.ndarray
    mask: np.ndarray
    kl: np.ndarray | None
    blobs: list
    fg_fraction: float
    ev: FrameEvents
    lightswitch: bool
    suppressed: bool
    event_id: int


class Outputs:
    """Everything written per frame; runs in the writer thread (handle())."""

    def __init__(self, paths: dict[str, Path], opt: Options, fps: float, params: Params):
        self.paths, self.opt, self.fps = paths, opt, fps
        self.sinks: list = []
        self.mask = self.overlay = self.bins = self.stats = self.events = None
        if "mask" in paths:
            if opt.mask_format == "png":
                self.mask = ImageSequenceSink(paths["mask"], prefix="mask", binary=False)
            else:
                self.mask = VideoSink(paths["mask"], fps, color=False)
        if "overlay" in paths:
            self.overlay = VideoSink(paths["overlay"], fps, color=True)
        if "bins" in paths:
            self.bins = ImageSequenceSink(paths["bins"], prefix="bin", binary=True)
        if "stats" in paths:
            self.stats = TextSink(paths["stats"], STATS_HEADER)
        if "events" in paths:
            self.events = TextSink(paths["events"], flush_lines=True)
        self.sinks = [s for s in (self.mask, self.overlay, self.bins, self.stats, self.events) if s is not None]
        # snapshots and clips
        self.snap_dir = paths.get("snapshots")
        self.clip_dir = paths.get("clips")
        self._peak: tuple[np.ndarray, list] | None = None
        self.pre = int(round(params.pre_capture * fps))
        self.post = int(round(params.post_capture * fps))
        keep = self.pre + params.event_start_frames + 1 if self.clip_dir else 0
        self._ring: collections.deque = collections.deque(maxlen=keep)
        self._clip: VideoSink | None = None
        self._clip_pending: list[np.ndarray] = []
        self._tails: list[list] = []            # [sink, frames still to write]
        self.max_pending = max(self.post, 1)
        self._budget_set = False
        self.tint = Overlay()
        self.wall0: float | None = None
        self.source = ""
        self._written: set[str] = set()         # snapshot and clip file names of this run

    # -- per frame
    def handle(self, it) -> None:
        if isinstance(it, _EndItem):
            for ev in it.ev.ended:
                self._end_event(ev)
            return
        if self.mask is not None:
            self.mask.write(it.mask)
        if self.bins is not None:
            self.bins.write(it.mask)
        if self.overlay is not None:
            self.overlay.write(self.tint.draw(it.frame, it.mask, boxes=it.blobs))
        if self.stats is not None:
            if it.kl is not None:
                klm, klx = f"{float(it.kl.mean()):.4f}", f"{float(it.kl.max()):.4f}"
            else:
                klm = klx = ""
            self.stats.line(f"{it.index},{it.time:.4f},{it.fg_fraction:.6f},{klm},{klx},{len(it.blobs)},"
                            f"{int(it.ev.in_motion)},{int(it.lightswitch)},{it.event_id or ''}")
        if self.snap_dir is not None and it.ev.is_peak:
            self._peak = (it.frame, it.blobs)
        if self.clip_dir is not None:
            self._clip_frame(it)
        for ev in it.ev.ended:
            self._end_event(ev)

    def _clip_frame(self, it: Item) -> None:
        for t in list(self._tails):
            t[0].write(it.frame)
            t[1] -= 1
            if t[1] <= 0:
                t[0].close()
                self._tails.remove(t)
        if not self._budget_set:        # bound the memory held for clips by bytes, not only frames
            self._budget_set = True
            cap = max(1, int(CLIP_MEMORY_BYTES // max(1, it.frame.nbytes)))
            if self._ring.maxlen and self._ring.maxlen > cap:
                log.warning("pre_capture limited to %d frames (%.0f MB) for clips", cap, CLIP_MEMORY_BYTES / 1e6)
                self._ring = collections.deque(maxlen=cap)
            self.max_pending = max(self.max_pending, cap)
        self._ring.append((it.index, it.frame))
        ev = it.ev.started
        if ev is not None:
            self._clip = VideoSink(self.clip_dir / f"event-{ev.id:04d}.mp4", self.fps, color=True)
            self._written.add(self._clip.path.name)
            for idx, f in self._ring:
                if idx >= ev.start_frame - self.pre:
                    self._clip.write(f)
            return
        if self._clip is None:
            return
        if it.ev.in_motion:
            for f in self._clip_pending:
                self._clip.write(f)
            self._clip_pending.clear()
            self._clip.write(it.frame)
        elif not it.ev.ended:
            self._clip_pending.append(it.frame)
            if len(self._clip_pending) > self.max_pending:   # bounded memory: long gaps stay in the clip
                self._clip.write(self._clip_pending.pop(0))

    def _end_event(self, ev: Event) -> None:
        rec = dict(source=self.source, **ev.to_dict())
        if self.wall0 is not None:    # live sources: wall-clock times too
            rec["start_utc"] = _utc(self.wall0 + ev.start_time)
            rec["end_utc"] = _utc(self.wall0 + ev.end_time)
        if self.snap_dir is not None and self._peak is not None:
            frame, blobs = self._peak
            img = draw_overlay(frame, np.zeros(frame.shape[:2], np.uint8), opacity=0.0, boxes=blobs)
            p = write_image(self.snap_dir / f"event-{ev.id:04d}.jpg", img)
            self._written.add(p.name)
            rec["snapshot"] = str(p.relative_to(self.snap_dir.parent))
            self._peak = None
        if self.clip_dir is not None and self._clip is not None:
            clip, pending = self._clip, self._clip_pending
            self._clip, self._clip_pending = None, []
            for f in pending[: self.post]:
                clip.write(f)
            left = self.post - min(self.post, len(pending))
            rec["clip"] = str(clip.path.relative_to(self.clip_dir.parent))
            if left > 0:
                self._tails.append([clip, left])
            else:
                clip.close()
        if self.events is not None:
            self.events.line(json.dumps(rec))

    def close(self, ok: bool) -> list[str]:
        """Close every output: renamed to its final name when ``ok`` and complete.  Outputs of a
        failed run keep their temporary names (readable as far as they got), except those that
        hold nothing, which are removed.  Raises the first OutputError (a failed rename or an
        incomplete video) after closing all the others: a run that cannot finish an output fails."""
        out, errors = [], []
        clips = ([self._clip] if self._clip is not None else []) + [t[0] for t in self._tails]
        sinks = [s for s in self.sinks + clips if not s.closed]
        for s in sinks:                # 1. close every file; videos are checked to decode to the end
            if not ok and not (getattr(s, "frames", 0) or getattr(s, "lines", 0)) and hasattr(s, "discard"):
                s.discard()            # nothing in it: no leftover .part
                continue
            try:
                if hasattr(s, "end"):
                    s.end(verify=ok)
                else:                  # a sink without end()/commit(): closed (and renamed) on its own
                    p = s.close(ok)
                    if p is not None and ok and s not in clips:
                        out.append(str(p))
            except Exception as e:     # keep closing the others
                errors.append(e)
        ok = ok and not errors         # 2. all or nothing: renamed only when every output is complete
        for s in sinks:
            if s.closed:
                continue
            s.closed = True
            if not ok:
                continue
            try:
                p = s.commit()
            except Exception as e:
                errors.append(e)
                continue
            if p is not None and s not in clips:
                out.append(str(p))
        if ok and not errors:
            self._remove_stale()
        if errors:
            raise errors[0]
        return out

    def _remove_stale(self) -> None:
        """After a complete run: snapshots and clips of an earlier run (--force) that this run did
        not replace, and .part files a killed run left there.  (They are kept until now so that
        a run that fails or is killed does not lose the earlier run's files.)"""
        for folder in (self.snap_dir, self.clip_dir):
            if folder is None or not folder.is_dir():
                continue
            for f in folder.iterdir():
                if f.name not in self._written:
                    try:
                        f.unlink() if not f.is_dir() else shutil.rmtree(f)
                    except OSError as e:
                        log.warning("cannot remove %s: %s", f, e.strerror or e)


# ============================================================================ one input
def open_input(spec: str, opt: Options, stop: threading.Event) -> Source:
    kind = classify(spec)
    if kind in ("camera", "stream"):
        from .streams import ReconnectingSource, open_live
        first = open_live(spec, opt.stream_timeout)
        if opt.reconnect:
            return ReconnectingSource(spec, opt.reconnect_attempts, opt.reconnect_delay, timeout=opt.stream_timeout,
                                      stop=stop, first=first)
        return first
    return open_source(spec)


def _say_compiling() -> None:
    if _compile_notice.acquire(blocking=False):
        log.info("compiling the detector's numba kernels: the first run on this machine takes about a "
                 "minute, later runs load them from numba's cache")


def notice_if_slow(say: Callable[[], None]) -> threading.Timer:
    """A started timer that calls say() (in its own thread) unless it is cancel()led within
    COMPILE_NOTICE_SECONDS: started before a first frame, cancelled when the frame is done, it
    tells the user that numba is compiling (the first run on a machine).  Used here and by the viewer."""
    t = threading.Timer(COMPILE_NOTICE_SECONDS, say)
    t.daemon = True
    t.start()
    return t


def process_input(spec: str, out_dir: str | Path, params: Params, opt: Options,
                  stop: threading.Event | None = None, progress: Callable | None = None,
                  detector: Detector | None = None) -> InputReport:
    """Process one input into ``out_dir``.  Returns a report; a bad input is a report
    with status 'failed' and a one-line message, not an exception.  ``detector`` (default:
    ``make_detector(opt.method, params)``) is the detector to run, built by the caller with
    ``params`` (its own parameters are used as they are)."""
    stop = stop or threading.Event()
    shown = redact(fsnames.shown(spec))
    rep = InputReport(input=shown, out_dir=str(out_dir), name=Path(out_dir).name)
    if stop.is_set():
        rep.status, rep.message = "interrupted", "not started"
        return rep
    t0 = time.perf_counter()
    try:
        with OutputLock(out_dir):      # one run at a time writes this folder
            _process(spec, Path(out_dir), params, opt, stop, progress, rep, detector)
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
             detector: Detector | None = None) -> None:
    paths = output_paths(out_dir, opt)
    check_new(paths.values(), opt.force)
    src = open_input(spec, opt, stop)
    info = src.info
    live = info.kind in ("camera", "stream")
    rep.expected_frames = info.total_frames
    if progress is not None:
        progress(0, info.total_frames if not opt.max_frames else min(opt.max_frames, info.total_frames or opt.max_frames))
    fps = info.fps
    try:
        if detector is None:
            detector = make_detector(opt.method, params)
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs = Outputs(paths, opt, fps, params)   # (--force: old snapshots/clips go only once replaced)
    except OSError as e:
        src.close()
        raise OutputError(f"cannot write to {out_dir}: {e.strerror or e}") from None
    except BaseException:
        src.close()
        raise
    outputs.source = Path(out_dir).name
    analyzer = Analyzer(detector, fps=fps)
    reader = ReaderThread(src, opt.queue_size, stop)
    writer = WriterThread(outputs.handle, opt.queue_size)
    n = 0
    shape = None
    start_wall = time.time()
    t_live0 = None
    ok = True
    notice = None
    try:
        tstart = time.perf_counter()
        for frame in reader:
            if stop.is_set():
                break
            n += 1
            if live:
                now = time.perf_counter()
                if t_live0 is None:
                    t_live0, outputs.wall0 = now, time.time()
                t = now - t_live0
            else:
                t = (n - 1) / fps
            first = notice is None
            if first:
                notice = notice_if_slow(_say_compiling)     # once per process: _say_compiling
            a = analyzer.analyze(frame, t, n)
            if first:
                notice.cancel()
            if a.reset:
                log.warning("%s: frame %s changed from %s to %s at frame %d; model reset", redact(info.name),
                            *_format_change(shape, frame.shape), n)
                rep.resets += 1
            shape = frame.shape
            if a.ended_before:
                writer.put(_end_only(a.ended_before, n - 1))
            if a.lightswitch:
                log.info("%s: light switch at frame %d; re-learning", redact(info.name), n)
            writer.put(Item(n, t, frame, a.mask, a.kl, a.blobs, a.fg_fraction, a.events,
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
        if notice is not None:
            notice.cancel()
        alive = reader.close(opt.stream_timeout + 2.0 if live else 5.0)
        err = reader.error
        if not alive:   # never release a capture another thread is still reading from
            src.close()
        ended = analyzer.finish()
        try:
            if ended:
                writer.put(_end_only(ended, n))
            writer.close()
        finally:
            rep.outputs = outputs.close(ok)
        rep.frames = n
        rep.events = len(analyzer.events)
        rep.lightswitches = analyzer.lightswitches
        if ok:
            _finish_report(rep, info, err, stop, opt, src)
            summary = dict(rep.to_dict(), started=start_wall, params=params.to_dict(),
                           source=dict(kind=info.kind, width=info.width, height=info.height, fps=fps))
            p = paths["summary"]
            tmp = p.with_name("summary.part.json")
            tmp.write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
            tmp.replace(p)


def _utc(t: float) -> str:
    import datetime
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="milliseconds")


def _end_only(ended: list[Event], n: int) -> Item:
    fe = FrameEvents(False, False, None, list(ended))
    return _EndItem(fe)


@dataclass
class _EndItem:
    ev: FrameEvents


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


def _finish_report(rep: InputReport, info, err, stop, opt: Options, src) -> None:
    n = rep.frames
    if stop.is_set():
        rep.status, rep.message = "interrupted", f"interrupted after {n} frames; outputs closed"
        return
    if err is not None:
        rep.status = "truncated" if n else "failed"
        rep.message = f"read error after {n} frames: {err}"
        return
    if info.kind in ("camera", "stream"):
        if opt.max_frames and n >= opt.max_frames:
            rep.status, rep.message = "ok", f"stopped after --max-frames {n}"
        else:
            gave_up = getattr(src, "gave_up", False)
            rep.status = "ended"
            rep.message = f"stream ended after {n} frames" + (" (reconnect gave up)" if gave_up else "")
        return
    total = info.total_frames
    if opt.max_frames and n >= opt.max_frames:
        return
    if total and info.kind == "file" and n < total - max(2, int(0.02 * total)):
        rep.status = "truncated"
        rep.message = (f"video ended early: read {n} of {total} frames (truncated or corrupt file); "
                       "outputs cover what was read")
