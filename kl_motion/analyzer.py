"""One frame analyser behind ``process``, ``view`` and ``eval`` (no Qt, no I/O).

Detector registry
-----------------
Every detector has one name that means the same thing in ``kl-motion process --method``,
``kl-motion eval --method`` and the viewer's detector choice:

- ``kl_motion``: the KL-divergence model (:class:`kl_motion.MotionModel`); alias ``kl``.
- ``mog2``, ``knn``: OpenCV's subtractor built from the table's ``history`` and
  ``detect_shadows``, followed by kl_motion's own cleanup and zones (same median, closing,
  hole filling, ``min_area`` and zones as kl_motion), so only the background model differs.
- ``mog2-raw``, ``knn-raw``: OpenCV's subtractor with OpenCV's default parameters, its mask
  as it comes (no cleanup, no zones): what OpenCV alone gives.
- ``gsoc``, ``cnt``, ``mog``, ``gmg``, ``lsbp`` and their ``-raw`` twins: the ``cv2.bgsegm``
  subtractors, listed only when ``cv2.bgsegm`` is installed (opencv-contrib-python-headless).

``detector_names()`` lists what is available here, ``make_detector(name, params)`` builds one,
``describe(name)`` gives its one-line help.  A detector has ``apply(frame) -> result`` (the
result has ``mask`` uint8, ``kl`` float32 or None, ``blobs``, ``area``), ``reset()``,
``relearn()``, ``background()``, ``params`` and ``set_params(**changes)`` (taking effect on the
next frame).

Analyzer
--------
``Analyzer(detector, params=None, fps=25.0)`` turns frames into results, events and light
switches, the same way for every front end::

    a = Analyzer(make_detector("kl_motion", params), fps=src.info.fps)
    for i, frame in enumerate(frames):
        r = a.analyze(frame, i / fps)      # -> Analysis
        r.mask, r.kl, r.blobs, r.area, r.fg_fraction
        r.events.started / r.events.ended / r.events.in_motion   # kl_motion.events.FrameEvents
        r.lightswitch, r.suppressed, r.event_id, r.reset, r.ended_before
    a.finish()                             # -> events still open, now ended

- ``on_slow_start``: called (from a timer thread) when the first frame takes over
  ``COMPILE_NOTICE_SECONDS`` (numba compiling the kernels on a new machine); done when analyze returns.
- ``analyze(frame, time, index=None)``: ``index`` is the 1-based frame number (default: one
  more than the previous), ``time`` its time in seconds.  A frame of another size resets the
  detector first (``r.reset``; events closed by it are in ``r.ended_before``).
- The first ``max(WARMUP_FRAMES, warmup_frames)`` frames after a (re)start are neither motion
  nor a light switch.  A light switch (``lightswitch_fraction`` of the frame changed) makes the
  detector re-learn; the frames until it settles are not motion.
- ``set_params(**changes)`` (any thread) changes detector and event parameters; both take
  effect on the next frame.  ``set_detector(det)`` swaps the detector (the next frame starts
  it; open events end).  ``reset()`` forgets the background and ends open events.
- ``events`` (ended events, in order) and ``lightswitches`` (count) are kept.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

import cv2
import numpy as np

from .errors import ParameterError
from .events import Event, EventDetector, FrameEvents, LightSwitch, settle_frames_for
from .params import Params, PendingParams
from .postprocess import Blob, clean, zone_mask

WARMUP_FRAMES = 1     # at least this many frames after a (re)start never count as motion
COMPILE_NOTICE_SECONDS = 3.0   # a first frame slower than this: numba is compiling (on_slow_start)

KL_ALIASES = ("kl", "klm", "kl-motion", "kl_motion")


# ============================================================================ detectors
class Detector(Protocol):
    """What the Analyzer needs of a detector (MotionModel and OpenCVDetector have it)."""
    params: Params

    def apply(self, frame: np.ndarray): ...
    def reset(self) -> None: ...
    def relearn(self) -> None: ...
    def background(self) -> np.ndarray | None: ...
    def set_params(self, **changes) -> Params: ...


@dataclass
class SimpleResult:
    """The result of an OpenCV subtractor (no KL map)."""
    mask: np.ndarray
    blobs: list[Blob] = field(default_factory=list)
    kl: np.ndarray | None = None
    raw_area: int | None = None     # foreground pixels when there are no blobs (raw detectors)

    @property
    def area(self) -> int:
        """Foreground pixels that count toward motion (the blobs' area; raw: every 255 pixel)."""
        return sum(b.area for b in self.blobs) if self.raw_area is None else self.raw_area

    @property
    def fg_fraction(self) -> float:
        return float(np.count_nonzero(self.mask == 255)) / self.mask.size


class OpenCVDetector(PendingParams):
    """An OpenCV background subtractor behind the model's interface.  With ``cleanup`` the
    mask goes through kl_motion's cleanup and zones (so only the background model differs);
    without it the subtractor's mask is given as it is ("-raw" detectors)."""

    def __init__(self, name: str, params: Params, create: Callable[[Params], object], cleanup: bool = True,
                 tune: Callable[[object, Params], None] | None = None):
        self.name = name
        self._create, self._tune, self.cleanup = create, tune, cleanup
        self._init_params(params)
        self._zone_key = None
        self._zone = None
        self.reset()

    def _params_changed(self, old: Params, p: Params) -> None:
        if self._tune is not None and self.cleanup:
            self._tune(self._sub, p)

    def reset(self) -> None:
        self._sub = self._create(self._params)

    relearn = reset

    def apply(self, frame: np.ndarray) -> SimpleResult:
        self._take_pending()
        raw = self._sub.apply(frame)
        if not self.cleanup:
            return SimpleResult(raw, [], raw_area=int(np.count_nonzero(raw == 255)))
        h, w = raw.shape
        if self._zone_key != (w, h):
            self._zone, self._zone_key = zone_mask(self._params, w, h), (w, h)
        mask, blobs = clean(raw, self._params, self._zone)
        return SimpleResult(mask, blobs)

    __call__ = apply

    def background(self) -> np.ndarray | None:
        try:
            return self._sub.getBackgroundImage()
        except (cv2.error, AttributeError):
            return None


def _tune_history_shadows(sub, p: Params) -> None:
    sub.setHistory(p.history)
    sub.setDetectShadows(p.detect_shadows)


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    help: str
    make: Callable[[Params], Detector]
    kl: bool = False           # gives a KL map


def _make_kl(p: Params):
    from .model import MotionModel
    return MotionModel(p)


def _opencv(name: str, create, help: str, raw_create=None, tune=None) -> list[DetectorSpec]:
    raw_create = raw_create or create
    return [DetectorSpec(name, help + " + kl_motion's cleanup and zones",
                         lambda p: OpenCVDetector(name, p, create, True, tune)),
            DetectorSpec(name + "-raw", help + " alone (OpenCV's defaults, no cleanup, no zones)",
                         lambda p: OpenCVDetector(name + "-raw", p, lambda _p: raw_create(), False))]


def _registry() -> dict[str, DetectorSpec]:
    specs = [DetectorSpec("kl_motion", "kl_motion: Gaussian-mixture background, KL-divergence motion score",
                          _make_kl, kl=True)]
    specs += _opencv("mog2", lambda p: cv2.createBackgroundSubtractorMOG2(history=p.history,
                                                                          detectShadows=p.detect_shadows),
                     "OpenCV MOG2", cv2.createBackgroundSubtractorMOG2, _tune_history_shadows)
    specs += _opencv("knn", lambda p: cv2.createBackgroundSubtractorKNN(history=p.history,
                                                                        detectShadows=p.detect_shadows),
                     "OpenCV KNN", cv2.createBackgroundSubtractorKNN, _tune_history_shadows)
    bg = getattr(cv2, "bgsegm", None)
    if bg is not None:
        for name, fn in (("gsoc", "createBackgroundSubtractorGSOC"), ("cnt", "createBackgroundSubtractorCNT"),
                         ("mog", "createBackgroundSubtractorMOG"), ("gmg", "createBackgroundSubtractorGMG"),
                         ("lsbp", "createBackgroundSubtractorLSBP")):
            f = getattr(bg, fn, None)
            if f is not None:
                specs += _opencv(name, lambda p, f=f: f(), f"OpenCV bgsegm {name.upper()}", f)
    return {s.name: s for s in specs}


DETECTORS: dict[str, DetectorSpec] = _registry()
BGSEGM_NAMES = ("gsoc", "cnt", "mog", "gmg", "lsbp")


def canonical(name: str) -> str:
    """The registry name for a user's spelling (``kl``, ``KL-Motion`` -> ``kl_motion``)."""
    n = str(name).strip().lower()
    return "kl_motion" if n in KL_ALIASES else n


def detector_names() -> list[str]:
    """Every detector available here, kl_motion first."""
    return list(DETECTORS)


def describe(name: str) -> str:
    return DETECTORS[canonical(name)].help


def gives_kl(name: str) -> bool:
    return DETECTORS[canonical(name)].kl


def make_detector(name: str, params: Params | None = None) -> Detector:
    """A new detector of the registry; an unknown name is a ParameterError (one line)."""
    n = canonical(name)
    spec = DETECTORS.get(n)
    if spec is None:
        base = n[:-4] if n.endswith("-raw") else n
        if base in BGSEGM_NAMES:
            raise ParameterError(f"detector {name} needs cv2.bgsegm (pip install opencv-contrib-python-headless "
                                 "of the same version as opencv-python-headless)")
        raise ParameterError(f"unknown detector {name!r} (known: {', '.join(detector_names())})")
    return spec.make(params or Params())


# ============================================================================ analyser
def notice_if_slow(say: Callable[[], None]) -> threading.Timer:
    """A started timer that calls say() (in its own thread) unless it is cancel()led within
    COMPILE_NOTICE_SECONDS: started before a first frame, cancelled when the frame is done, it
    tells the user that numba is compiling (the first run on a machine)."""
    t = threading.Timer(COMPILE_NOTICE_SECONDS, say)
    t.daemon = True
    t.start()
    return t


@dataclass
class Analysis:
    """What the Analyzer says about one frame."""
    index: int                      # 1-based frame number
    time: float                     # seconds
    frame: np.ndarray
    result: object                  # the detector's result (FrameResult or SimpleResult)
    area: int                       # foreground pixels that count toward motion
    fg_fraction: float              # area / pixels of the frame
    events: FrameEvents
    lightswitch: bool               # a light switch seen on this frame (the detector re-learns)
    suppressed: bool                # not counted as motion (warm-up or settling after a light switch)
    event_id: int                   # the active event's id, 0 when none
    reset: bool = False             # the frame size changed: the detector started again on this frame
    ended_before: list[Event] = field(default_factory=list)   # events ended by that reset

    @property
    def mask(self) -> np.ndarray:
        return self.result.mask

    @property
    def kl(self) -> np.ndarray | None:
        return getattr(self.result, "kl", None)

    @property
    def blobs(self) -> list:
        return self.result.blobs


class Analyzer:
    """Frames in, results + events + light switches out (see the module docstring)."""

    def __init__(self, detector: Detector, params: Params | None = None, fps: float = 25.0,
                 on_slow_start: Callable[[], None] | None = None):
        self.on_slow_start = on_slow_start
        if params is not None:
            detector.params = params
        self.detector = detector
        self.fps = float(fps) if fps and fps > 0 else 25.0
        p = detector.params
        self.event_detector = EventDetector(p, 1)
        self.light = LightSwitch(p.lightswitch_fraction, settle_frames_for(p, self.fps))
        self._p: Params | None = None
        self._configure(p)
        self._shape = None
        self._n = 0
        self._since_reset = 0
        self._swap: Detector | None = None
        self._reset = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ control (any thread)
    @property
    def params(self) -> Params:
        return self.detector.params

    def set_params(self, params: Params | None = None, **changes) -> Params:
        """Detector and event parameters; they take effect on the next frame."""
        if params is not None:
            self.detector.params = params
        return self.detector.set_params(**changes) if changes else self.detector.params

    def set_detector(self, detector: Detector) -> None:
        """Use another detector from the next frame on (it starts learning; open events end)."""
        with self._lock:
            self._swap = detector

    def reset(self) -> None:
        """Forget the background on the next frame (open events end, warm-up starts again)."""
        with self._lock:
            self._reset = True

    def set_fps(self, fps: float) -> None:
        """The source's frame rate (the light switch's settling time is counted in frames)."""
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self._configure(self.detector.params)

    @property
    def events(self) -> list[Event]:
        return self.event_detector.events

    @property
    def active_event(self) -> Event | None:
        return self.event_detector.active

    @property
    def lightswitches(self) -> int:
        return self.light.count

    @property
    def frames(self) -> int:
        return self._n

    # ------------------------------------------------------------------ frames
    def _configure(self, p: Params) -> None:
        ev = self.event_detector
        ev.motion_area, ev.start_frames, ev.gap = p.motion_area, p.event_start_frames, p.event_gap
        self.light.fraction = p.lightswitch_fraction
        self.light.settle_frames = max(0, int(settle_frames_for(p, self.fps)))
        self.warmup = max(WARMUP_FRAMES, p.warmup_frames)
        self._p = p

    def _restart(self) -> list[Event]:
        self.detector.reset()
        self.light.reset()
        self._since_reset = 0
        return self.event_detector.finish()

    def analyze(self, frame: np.ndarray, time: float, index: int | None = None) -> Analysis:
        """One frame and its time (s); ``index`` is its 1-based number (default: the next)."""
        with self._lock:
            swap, self._swap = self._swap, None
            reset, self._reset = self._reset, False
        ended_before: list[Event] = []
        if swap is not None:
            p = self.detector.params
            self.detector = swap
            swap.params = p
            ended_before += self._restart()
        elif reset:
            ended_before += self._restart()
        p = self.detector.params
        if p is not self._p:
            self._configure(p)
        resized = self._shape is not None and frame.shape != self._shape
        if resized:
            ended_before += self._restart()
        if resized or self._shape is None:
            self.event_detector.set_frame_area(frame.shape[0] * frame.shape[1])
        self._shape = frame.shape
        self._n = n = self._n + 1 if index is None else int(index)
        notice = None
        if self.on_slow_start is not None:
            notice, self.on_slow_start = notice_if_slow(self.on_slow_start), None
        try:
            r = self.detector.apply(frame)
        finally:
            if notice is not None:
                notice.cancel()
                notice.join()         # a notice being said is finished when analyze returns
        mask = r.mask
        area = r.area
        npx = mask.shape[0] * mask.shape[1]
        self._since_reset += 1
        if self._since_reset <= self.warmup:   # background still being learned: neither motion nor light switch
            switched, suppressed = False, True
        else:
            switched, suppressed = self.light.check(cv2.countNonZero(mask) / npx)
        if switched:
            self.detector.relearn()
        fe = self.event_detector.update(n, time, area, r.blobs, suppressed)
        act = self.event_detector.active
        return Analysis(n, time, frame, r, area, area / npx, fe, switched, suppressed,
                        act.id if act is not None else 0, resized, ended_before)

    __call__ = analyze

    def finish(self) -> list[Event]:
        """End of input: close the open event (returned), drop a pending run."""
        return self.event_detector.finish()


__all__ = ["Analyzer", "Analysis", "COMPILE_NOTICE_SECONDS", "notice_if_slow", "OpenCVDetector", "SimpleResult", "DetectorSpec", "DETECTORS", "WARMUP_FRAMES",
           "canonical", "describe", "detector_names", "gives_kl", "make_detector"]
