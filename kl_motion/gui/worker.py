"""Capture and processing off the UI thread.

One ``Worker`` per open source.  It runs a Python thread that opens the source
(so a slow URL never blocks the window), reads frames, runs the model, composes
the displayed image and, if asked, writes it to a recording.  Results go to a
*latest-value slot*: the worker overwrites the newest packet and emits
``frameReady`` only when the UI has taken the previous one, so nothing queues up
and the UI always paints the newest frame (older ones are dropped).

Live sources (cameras, streams) get a second thread that grabs frames as fast as
they come and keeps only the newest, so a slow model drops frames instead of
lagging behind real time.  A stalled or lost camera is reported through
``message`` and never blocks the UI.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import cv2
import numba
import numpy as np
from PySide6.QtCore import QObject, Signal

from ..analyzer import Analysis, Analyzer, Detector
from ..errors import FrameError, KLMotionError, OutputError, SourceError
from ..events import Event
from ..model import FrameResult
from ..sinks import VideoSink
from ..sources import Source, VideoInfo, is_live, open_source
from ..streams import ReconnectingSource, open_live
from .compose import Composer, ViewSettings
from .qtcompat import emit

THREAD_PREFIX = "kl-motion-"


def model_threads() -> int:
    """numba threads for the model in the viewer's worker thread: every core but one, which is left
    to decoding (reader/grabber thread), painting (UI thread) and drawing; NUMBA_NUM_THREADS, when set,
    wins.  On a 2-core machine this is 1: a parallel kernel on both cores competes with the decoder and
    the UI, and numba's OpenMP workers spin-wait after each parallel region (libgomp's default wait
    policy), so the viewer spent ~16 ms of CPU per 720p frame in a second thread that mostly waited."""
    if os.environ.get("NUMBA_NUM_THREADS"):
        return numba.config.NUMBA_NUM_THREADS
    return max(1, min((os.cpu_count() or 1) - 1, numba.config.NUMBA_NUM_THREADS))


@dataclass
class EventItem:
    """A motion event for the viewer's list: the event and a thumbnail of its peak frame."""
    event: Event
    thumb: np.ndarray | None       # BGR uint8, THUMB_WIDTH wide


class TimelineData:
    """Per-frame foreground fraction and peak KL for the motion timeline, written by the worker
    thread and read by the UI (numpy arrays; a torn read shows one stale sample at worst).  Files:
    one slot per frame of the file (frame numbers 1..total); live sources: the newest ``capacity``
    frames, in a ring."""

    def __init__(self, total: int | None, capacity: int = 3000):
        self.total = total
        self.size = int(total) if total else capacity
        self.fg = np.full(self.size, np.nan, np.float32)
        self.kl = np.full(self.size, np.nan, np.float32)
        self.last = 0                  # the newest frame number written

    def put(self, index: int, fg: float, kl: float) -> None:
        if self.total and not 1 <= index <= self.size:
            return
        slot = (index - 1) % self.size
        self.fg[slot], self.kl[slot] = fg, kl
        self.last = index

    @property
    def first(self) -> int:
        """The frame number shown at the left end."""
        return 1 if self.total else max(1, self.last - self.size + 1)

    def series(self) -> tuple[np.ndarray, np.ndarray]:
        """(fg, kl) in frame order from ``first``."""
        if self.total or self.last <= self.size:
            return self.fg, self.kl
        k = self.last % self.size
        return np.roll(self.fg, -k), np.roll(self.kl, -k)


THUMB_WIDTH = 112


@dataclass
class Packet:
    """One processed frame, ready to paint."""
    image: np.ndarray          # BGR uint8, what the view shows
    frame: np.ndarray          # the input frame
    result: FrameResult        # the detector's result (FrameResult, or SimpleResult for OpenCV's)
    position: int              # index of this frame in the source (0-based), -1 for live
    read_ms: float
    model_ms: float
    compose_ms: float
    total_ms: float
    cpu_ms: float = 0.0        # CPU time of the worker thread for this frame (read+model+draw)
    analysis: Analysis | None = None   # events, light switch (None for a redraw of the same frame)
    t_done: float = field(default_factory=time.perf_counter)


class _Grabber:
    """For live sources: read continuously, keep only the newest frame."""

    def __init__(self, src: Source, name: str):
        self.src = src
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._frame = None
        self._seq = 0
        self._taken = 0
        self.ended = False
        self.last_time = time.perf_counter()
        self.fps = 0.0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self._loop()
        finally:
            if self._stop.is_set():
                _close_quietly(self.src)

    def _loop(self):
        t_prev = None
        while not self._stop.is_set():
            try:
                f = self.src.read()
            except Exception:  # a driver error is a lost source
                f = None
            now = time.perf_counter()
            with self._cond:
                if f is None:
                    self.ended = True
                    self._cond.notify_all()
                    return
                self._frame = f
                self._seq += 1
                self.last_time = now
                if t_prev is not None:
                    dt = now - t_prev
                    self.fps = 0.9 * self.fps + 0.1 * (1.0 / dt) if self.fps and dt > 0 else (1.0 / dt if dt > 0 else 0)
                t_prev = now
                self._cond.notify_all()

    def take(self, timeout: float):
        """The newest frame not taken yet; None on timeout; raises EOFError when the source ended."""
        with self._cond:
            if self._seq == self._taken and not self.ended:
                self._cond.wait(timeout)
            if self._seq != self._taken:
                self._taken = self._seq
                return self._frame
            if self.ended:
                raise EOFError
            return None

    def stop(self, timeout: float = 1.0):
        self._stop.set()
        self.thread.join(timeout)


class _Prefetcher:
    """For files and folders: decode up to ``depth`` frames ahead in a thread, in order.

    Decoding the next frame overlaps with processing this one.  ``seek`` drops what
    was read ahead (a generation counter discards frames read before the seek)."""

    def __init__(self, src: Source, name: str, depth: int = 2):
        self.src = src
        self.depth = depth
        self._cond = threading.Condition()
        self._q: deque = deque()       # (generation, frame | None | Exception)
        self._gen = 0
        self._seek: int | None = None
        self._eof = False
        self._stop = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            with self._cond:
                while not self._stop and self._seek is None and (len(self._q) >= self.depth or self._eof):
                    self._cond.wait()
                if self._stop:
                    return
                seek, self._seek = self._seek, None
                gen = self._gen
            if seek is not None:
                try:
                    self.src.seek(seek)
                except Exception as e:
                    with self._cond:
                        if gen == self._gen:
                            self._q.append((gen, e))
                            self._cond.notify_all()
                continue
            try:
                f = self.src.read()
            except Exception as e:
                f = e
            with self._cond:
                if gen == self._gen:          # else a seek came in meanwhile: drop it
                    self._q.append((gen, f))
                    self._eof = f is None or isinstance(f, Exception)
                self._cond.notify_all()

    def read(self):
        """The next frame; None at the end (or when stopped). Re-raises a read error."""
        with self._cond:
            while True:
                while self._q and self._q[0][0] != self._gen:
                    self._q.popleft()
                if self._q:
                    _, f = self._q.popleft()
                    self._cond.notify_all()
                    if isinstance(f, Exception):
                        raise f
                    return f
                if self._stop or self._eof:
                    return None
                self._cond.wait(0.5)

    def seek(self, index: int):
        with self._cond:
            self._gen += 1
            self._seek = index
            self._q.clear()
            self._eof = False
            self._cond.notify_all()

    def stop(self, timeout: float = 1.0):
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)


class Worker(QObject):
    """Owns the reading/processing thread for one source."""

    opened = Signal(object)        # VideoInfo
    failed = Signal(str)           # the source could not be opened (one line)
    frameReady = Signal()          # a new packet is in the slot (coalesced: at most one pending)
    message = Signal(str)          # "", or a problem to show over the video (stalled, lost, ended)
    stateChanged = Signal(bool)    # playing?
    recordingChanged = Signal(str)  # path being recorded to, "" when stopped
    eventEnded = Signal(object)    # EventItem: a motion event ended (never coalesced: one signal per event)

    def __init__(self, spec, detector: Detector, settings: ViewSettings | None = None, playing: bool = True,
                 speed: float = 1.0, stall_timeout: float = 3.0, reconnect: bool = True, parent=None):
        super().__init__(parent)
        self.spec = spec
        self.analyzer = Analyzer(detector, on_slow_start=self._say_compiling)
        self._said_compiling = False
        self.timeline: TimelineData | None = None
        self.events: list[EventItem] = []      # ended events, in the order they ended
        self._peak_thumb: np.ndarray | None = None
        self._last_index: int | None = None
        self.compare: Detector | None = None   # the grid's second detector
        self._compare_req: object = False      # False: no change; (detector or None, name): use it
        self._compare_name = ""
        self.detector_name = ""                # shown on the grid's first tile
        self.settings = settings or ViewSettings()
        self.speed = speed                  # 0 = as fast as possible; ignored for live sources
        self.stall_timeout = stall_timeout
        self.reconnect = reconnect
        self.info: VideoInfo | None = None
        self.source: Source | None = None
        self.composer = Composer()
        self._lock = threading.Lock()
        self._latest: Packet | None = None
        self._signal_pending = False
        self._playing = playing
        self._busy = False
        self._cpu0 = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._seek: int | None = None
        self._steps = 0
        self._reset = False
        self._recompose = False
        self._rec_path: str | None = None
        self._rec_request: str | None | bool = False   # False: no change; None: stop; str: start
        self._writer = None
        self._grabber: _Grabber | None = None
        self._prefetch: _Prefetcher | None = None
        self.prefetch = True            # read files ahead in a second thread
        self.model_threads: int | None = None   # numba threads for the model; None = model_threads()
        self._last: tuple | None = None     # (frame, result, position, bg) of the newest processed frame
        self.position = -1
        self.frames_processed = 0
        self.bg_interval = 0.25
        self._bg = None
        self._bg_time = 0.0
        self._t_live0: float | None = None
        self.thread = threading.Thread(target=self._run_guarded, name=THREAD_PREFIX + "worker", daemon=True)

    @property
    def model(self) -> Detector:
        """The detector in use (MotionModel for kl_motion)."""
        return self.analyzer.detector

    # ------------------------------------------------------------------ control (any thread)
    def start(self):
        self.thread.start()

    def stop(self, timeout: float = 3.0) -> bool:
        """Ask the thread to finish and wait for it; True when every thread of this worker has ended."""
        self._stop.set()
        self._wake.set()
        if self._prefetch is not None:
            self._prefetch.stop(0)
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout)
        g = self._grabber
        if g is not None:
            g.stop(0.5)
        return not self.thread.is_alive() and (g is None or not g.thread.is_alive())

    @property
    def live(self) -> bool:
        return self.info is not None and self.info.live

    @property
    def idle(self) -> bool:
        """Paused with nothing in flight: no frame being read or processed, no step or seek pending."""
        with self._lock:
            pending = self._steps > 0 or self._seek is not None
        return not self._playing and not pending and not self._busy and not self._recompose

    @property
    def playing(self) -> bool:
        return self._playing

    def set_playing(self, playing: bool):
        self._playing = bool(playing)
        self._wake.set()
        emit(self.stateChanged, self._playing)

    def step(self, n: int = 1):
        """Process the next frame (n=1) or go back one (n=-1) while paused."""
        with self._lock:
            if n < 0:
                if self.position > 0:
                    self._seek = self.position - 1
                    self._steps = 1
            else:
                self._steps += n
        self._wake.set()

    def seek(self, index: int):
        with self._lock:
            self._seek = max(0, int(index))
            self._steps = max(self._steps, 1) if not self._playing else self._steps
        self._wake.set()

    def reset_background(self):
        self._reset = True
        self._wake.set()

    def set_settings(self, s: ViewSettings):
        self.settings = s
        self._recompose = True
        self._wake.set()

    def recompose(self):
        """Redraw the newest frame (e.g. after a parameter or zone change while paused)."""
        self._recompose = True
        self._wake.set()

    def start_recording(self, path: str):
        self._rec_request = str(path)
        self._wake.set()

    def stop_recording(self):
        self._rec_request = None
        self._wake.set()

    @property
    def recording(self) -> str | None:
        return self._rec_path

    def take(self) -> Packet | None:
        """UI side of the latest-value slot: the newest packet (or None), and re-arm the signal."""
        with self._lock:
            p = self._latest
            self._signal_pending = False
            return p

    def peek(self) -> Packet | None:
        return self._latest

    # ------------------------------------------------------------------ thread
    def _run_guarded(self):
        try:
            self._run()
        except Exception as e:  # never die silently: tell the window
            emit(self.message, f"Processing stopped: {type(e).__name__}: {e}")
        finally:
            self._close_writer()
            if self._prefetch is not None:
                self._prefetch.stop(2.0)
            g = self._grabber
            if g is not None:
                g.stop(0.5)
            # a grabber still blocked in read() closes the source itself when the read returns
            # (releasing a capture under a running read is not safe)
            if self.source is not None and (g is None or not g.thread.is_alive()):
                _close_quietly(self.source)

    def _open(self) -> bool:
        try:
            if isinstance(self.spec, Source):
                self.source = self.spec
            elif is_live(self.spec) and self.reconnect:    # cameras and streams reconnect (kl_motion.streams)
                self.source = ReconnectingSource(self.spec, stop=self._stop, first=open_live(self.spec),
                                                 max_delay=5.0, on_status=self._on_stream_status)
            else:
                self.source = open_source(self.spec)
        except KLMotionError as e:
            emit(self.failed, str(e))
            return False
        except Exception as e:
            emit(self.failed, f"{self.spec}: cannot open ({type(e).__name__}: {e})")
            return False
        self.info = self.source.info
        if self.live:
            self._grabber = _Grabber(self.source, THREAD_PREFIX + "grabber")
        elif self.prefetch:
            self._prefetch = _Prefetcher(self.source, THREAD_PREFIX + "reader")
        return True

    def _run(self):
        # numba's thread count is per calling thread: this sets it for the model calls made here only
        numba.set_num_threads(max(1, min(self.model_threads or model_threads(), numba.config.NUMBA_NUM_THREADS)))
        if not self._open():
            return
        if self._stop.is_set():
            return
        self.analyzer.set_fps(self.info.fps)
        self.timeline = TimelineData(None if self.info.live else self.info.total_frames)
        self.model.reset()
        self._t_live0 = None
        emit(self.opened, self.info)
        next_due = time.perf_counter()
        stalled_shown = False
        while not self._stop.is_set():
            self._busy = False
            self._handle_recording_request()
            if self._reset:
                self._reset = False
                self.analyzer.reset()
                self._bg = None
            with self._lock:
                seek, self._seek = self._seek, None
                stepping = self._steps > 0
            if seek is not None and not self.live:
                try:
                    if self._prefetch is not None:
                        self._prefetch.seek(seek)
                    else:
                        self.source.seek(seek)
                    self.position = seek - 1
                except SourceError as e:
                    emit(self.message, str(e))
            if not (self._playing or stepping):
                if self._recompose:
                    self._recompose = False
                    self._redraw_last()
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            # pacing for files: speed x the file's frame rate (speed 0 = as fast as possible)
            if not self.live and self._playing and not stepping and self.speed > 0:
                delay = next_due - time.perf_counter()
                if delay > 0.0005:
                    self._wake.wait(min(delay, 0.1))
                    self._wake.clear()
                    continue
            self._busy = True
            self._cpu0 = time.thread_time()
            t0 = time.perf_counter()
            frame = self._read()
            if frame is None:
                if self.live:
                    g = self._grabber
                    if g is not None and g.ended:
                        self._lost()
                        return
                    # stalled: no frame within the timeout
                    if not stalled_shown and time.perf_counter() - (g.last_time if g else t0) > self.stall_timeout:
                        emit(self.message, f"No frames from {self.info.name} for {self.stall_timeout:g} s "
                                          "(stalled?) - waiting")
                        stalled_shown = True
                    continue
                # end of a file / folder: pause at the end
                with self._lock:
                    self._steps = 0
                if self._playing:
                    self._playing = False
                    emit(self.stateChanged, False)
                self._end_events(self.analyzer.finish())     # as process does at the end of the input
                emit(self.message, "End of video")
                continue
            if stalled_shown:
                emit(self.message, "")
                stalled_shown = False
            if stepping:
                with self._lock:
                    self._steps = max(0, self._steps - 1)
            self.position = -1 if self.live else self.position + 1
            t1 = time.perf_counter()
            self._process(frame, t0, t1)
            if self._said_compiling:          # the first frame was slow and said so: done now
                self._said_compiling = False
                emit(self.message, "")
            if not self.live and self.info.fps > 0 and self.speed > 0:
                period = 1.0 / (self.info.fps * self.speed)
                next_due = max(next_due + period, time.perf_counter() - period)
            else:
                next_due = time.perf_counter()

    def _say_compiling(self):
        """The Analyzer's first frame is slow (numba compiling on a new machine): say so over the video."""
        self._said_compiling = True
        emit(self.message, "Compiling the detector (first run on this machine, half a minute or more)...")

    def _read(self):
        if self._grabber is not None:
            try:
                return self._grabber.take(timeout=0.25)
            except EOFError:
                return None
        try:
            return self._prefetch.read() if self._prefetch is not None else self.source.read()
        except Exception as e:
            emit(self.message, f"Read error: {e}")
            return None

    def _lost(self) -> None:
        """A live source ended for good (no reconnecting, or it gave up): say so and wait to be stopped."""
        gave_up = getattr(self.source, "gave_up", False)
        emit(self.message, f"Lost {self.info.name}" + (" (reconnecting gave up)" if gave_up else ""))
        self._stop.wait()

    def _on_stream_status(self, state: str, attempt: int) -> None:
        """ReconnectingSource's news (from the grabber thread), shown over the video."""
        name = self.info.name if self.info is not None else str(self.spec)
        if state in ("dropped", "retrying"):
            emit(self.message, f"Lost {name} - reconnecting" + (f" (attempt {attempt})" if attempt else ""))
        elif state == "reconnected":
            emit(self.message, "")

    def _frame_time(self) -> tuple[float, int | None]:
        """(time in s, 1-based index) of the frame just read: a file's own timing, or the wall
        clock since the first frame for live sources."""
        if self.live:
            now = time.perf_counter()
            if self._t_live0 is None:
                self._t_live0 = now
            return now - self._t_live0, None
        return self.position / (self.info.fps or 25.0), self.position + 1

    def set_detector(self, detector: Detector, name: str = "") -> None:
        """Use another detector from the next frame on (any thread); playback goes on."""
        self.detector_name = name
        self.analyzer.set_detector(detector)
        self._recompose = True
        self._wake.set()

    def set_compare(self, detector: Detector | None, name: str = "") -> None:
        """The detector shown beside the main one in the 2x2 grid (None: none), and its name."""
        self._compare_req = (detector, name)
        self._wake.set()

    def _end_events(self, ended) -> None:
        for ev in ended:
            item = EventItem(ev, self._peak_thumb)
            self.events.append(item)
            emit(self.eventEnded, item)
        if ended:
            self._peak_thumb = None

    def _thumb(self, frame, result) -> np.ndarray:
        img = self.composer.overlay(frame, result.mask, self.settings, result.blobs)
        h, w = img.shape[:2]
        return cv2.resize(img, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)

    def _process(self, frame, t0, t1):
        # a frame of another size (camera switched resolution) starts a new background: the Analyzer does it
        t, index = self._frame_time()
        if index is not None and self._last_index is not None and index != self._last_index + 1:
            self._end_events(self.analyzer.finish())     # a seek: the open event ends where it was
        self._last_index = index
        a = self.analyzer.analyze(frame, t, index)
        result = a.result
        self._end_events(a.ended_before)
        if a.events.is_peak:
            self._peak_thumb = self._thumb(frame, result)
        self._end_events(a.events.ended)
        kl = getattr(result, "kl", None)
        if self.timeline is not None:
            self.timeline.put(a.index, a.fg_fraction, float(kl.max()) if kl is not None else float("nan"))
        if self._compare_req is not False:
            (self.compare, self._compare_name), self._compare_req = self._compare_req, False
        s = self.settings
        other = None
        if s.mode == "grid" and self.compare is not None:
            try:
                other = self.compare.apply(frame)
            except FrameError:               # frame size changed
                self.compare.reset()
                other = self.compare.apply(frame)
        t2 = time.perf_counter()
        need_bg = s.needs_background or (s.mode == "heatmap" and kl is None)
        bg = self._background(t2, frame.shape) if need_bg else None
        image = self.composer.compose(frame, result, s, bg, threshold=self._threshold(result), other=other,
                                      other_name=self._compare_name, name=self.detector_name)
        t3 = time.perf_counter()
        self._write(image)
        self._last = (frame, result, self.position, bg, other)
        self.frames_processed += 1
        self._publish(Packet(image, frame, result, self.position, (t1 - t0) * 1e3, (t2 - t1) * 1e3,
                             (t3 - t2) * 1e3, (time.perf_counter() - t0) * 1e3,
                             (time.thread_time() - self._cpu0) * 1e3, a))

    def _threshold(self, result) -> float | None:
        """The KL threshold to mark on the heat map's colour bar (None without a KL map)."""
        return self.model.params.kl_threshold if getattr(result, "kl", None) is not None else None

    def _background(self, now: float, shape):
        """The background image, recomputed at most every ``bg_interval`` s while playing
        (it changes slowly and costs about as much as a model step at full size)."""
        if (self._bg is None or not self._playing or now - self._bg_time >= self.bg_interval
                or self._bg.shape[:2] != shape[:2]):
            self._bg = self.model.background()
            self._bg_time = now
        return self._bg

    def _redraw_last(self):
        if self._last is None:
            return
        frame, result, pos, bg, other = self._last
        s = self.settings
        if (s.needs_background or s.mode == "heatmap") and bg is None:
            bg = self.model.background()
            self._last = (frame, result, pos, bg, other)
        t = time.perf_counter()
        image = self.composer.compose(frame, result, s, bg, threshold=self._threshold(result), other=other,
                                      other_name=self._compare_name, name=self.detector_name)
        dt = (time.perf_counter() - t) * 1e3
        self._publish(Packet(image, frame, result, pos, 0.0, 0.0, dt, dt))

    def _publish(self, packet: Packet):
        with self._lock:
            self._latest = packet
            notify = not self._signal_pending
            self._signal_pending = True
        if notify:
            emit(self.frameReady)

    # ------------------------------------------------------------------ recording
    def _handle_recording_request(self):
        req, self._rec_request = self._rec_request, False
        if req is False:
            return
        self._close_writer()
        if req:
            self._rec_path = req
            emit(self.recordingChanged, req)

    def _write(self, image):
        """Record the shown image (kl_motion.sinks.VideoSink: written under a .part name, renamed when
        the recording stops)."""
        if self._rec_path is None:
            return
        try:
            if self._writer is None:
                fps = self.info.fps if self.info and self.info.fps > 0 else 25.0
                self._writer = VideoSink(self._rec_path, fps, color=True)
            self._writer.write(np.ascontiguousarray(image))
        except OutputError as e:
            w, self._writer = self._writer, None
            if w is not None:
                _close_quietly_sink(w)
            self._rec_path = None
            emit(self.recordingChanged, "")
            emit(self.message, f"{e}")

    def _close_writer(self):
        if self._writer is not None:
            w, self._writer = self._writer, None
            try:
                w.close(ok=True)
            except OutputError as e:
                emit(self.message, str(e))
        if self._rec_path is not None:
            self._rec_path = None
            emit(self.recordingChanged, "")


def _close_quietly_sink(sink) -> None:
    try:
        sink.close(ok=False)
    except Exception:
        pass


def _close_quietly(src: Source) -> None:
    try:
        src.close()
    except Exception:
        pass


def running_threads() -> list[threading.Thread]:
    """Threads this package started that are still alive (for tests and shutdown checks)."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]
