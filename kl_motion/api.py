"""The library's two front doors, with no Qt: ``frames(source, **params)`` and ``detect(source, **params)``.

    import kl_motion
    events = kl_motion.detect("clip.mp4", kl_threshold=30)        # -> [Event, ...]
    for f in kl_motion.frames("clip.mp4"):                         # -> MotionFrame per frame
        f.index, f.time, f.mask, f.kl, f.boxes, f.motion

Both drive the same ``Analyzer`` as ``kl-motion process`` (detector, warm-up, light-switch guard,
events), so they give the same masks, motion flags and events as the command on the same input and
parameters.  ``source`` is anything ``open_source`` opens (a video file, an image folder, a camera index,
a stream URL) or an already opened ``Source`` (then it is left open).  ``params`` is a ``Params`` and
keyword arguments change single parameters of it (the names of ``kl-motion config --dump``); an unknown
name or a value out of range is a ``ParameterError``, a source that cannot be read a ``SourceError``.
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np

from .analyzer import Analyzer, make_detector
from .events import Event
from .io_threads import frames as _read_frames
from .params import Params
from .sources import Source, open_source

SourceLike = Union[str, Path, int, Source]


@dataclass
class MotionFrame:
    """What ``frames()`` gives for one frame."""
    index: int                  #: 1-based frame number
    time: float                 #: seconds: (index - 1) / fps for files and folders; live: since the first frame
    image: np.ndarray           #: the frame as read (uint8, BGR or grey)
    mask: np.ndarray            #: uint8 (H, W): 0 background, 255 motion, 127 shadow
    kl: np.ndarray | None       #: float32 (H, W) KL map (None for the OpenCV detectors)
    boxes: list[tuple[int, int, int, int]]   #: (x, y, w, h) of each foreground blob after cleanup and zones
    motion: bool                #: area >= motion_area, not in warm-up, not settling after a light switch
    fg_fraction: float          #: foreground pixels that count toward motion / pixels of the frame
    lightswitch: bool           #: a light switch was seen on this frame (the background is re-learned)
    event_id: int               #: the id of the event in progress, 0 when none
    started: Event | None = None    #: the event that started with this frame (its start_frame may be earlier)
    ended: list[Event] = field(default_factory=list)   #: events that ended on this frame


def _params(params: Params | None, changes: dict[str, Any]) -> Params:
    p = params if params is not None else Params()
    return (p.replace(**changes) if changes else p).validate()


def _run(source: SourceLike, p: Params, detector: str, max_frames: int | None,
         finished: list[Event] | None = None) -> Iterator[MotionFrame]:
    """The loop behind frames() and detect(); at the end of the source the events still open are ended
    and added to ``finished`` (when given)."""
    own = not isinstance(source, Source)
    src = source if isinstance(source, Source) else open_source(source)
    try:
        info = src.info
        analyzer = Analyzer(make_detector(detector, p), fps=info.fps)
        t0: float | None = None
        n = 0
        for image in _read_frames(src):
            n += 1
            if info.live:
                now = _time.perf_counter()
                t0 = now if t0 is None else t0
                t = now - t0
            else:
                t = (n - 1) / info.fps
            a = analyzer.analyze(image, t, n)
            ev = a.events
            yield MotionFrame(n, t, image, a.mask, a.kl, [b.box for b in a.blobs], ev.in_motion, a.fg_fraction,
                              a.lightswitch, a.event_id, ev.started, a.ended_before + ev.ended)
            if max_frames and n >= max_frames:
                break
        if finished is not None:
            finished += analyzer.finish()
    finally:
        if own:
            src.close()


def frames(source: SourceLike, params: Params | None = None, *, detector: str = "kl_motion",
           max_frames: int | None = None, **changes: Any) -> Iterator[MotionFrame]:
    """Yield a ``MotionFrame`` per frame of ``source``, in order (decoding runs in a background thread).

    ``detector`` is a name of the detector registry (``kl_motion``, ``mog2``, ``knn``, ...);
    ``max_frames`` stops after that many frames.  An event still open when the source ends is ended by
    ``detect()``; here the last frames show it in progress (``event_id``) with no ``ended``.  Parameters
    are checked at the call; the source is opened at the first ``next()`` and closed when the iteration
    ends or is abandoned.
    """
    return _run(source, _params(params, changes), detector, max_frames)


def detect(source: SourceLike, params: Params | None = None, *, detector: str = "kl_motion",
           max_frames: int | None = None, **changes: Any) -> list[Event]:
    """The motion events of ``source``, in order, each with its start and end (frame and time), peak area and
    frame, and the bounding box of all its motion (``Event.to_dict()`` is a line of ``events.jsonl``).
    Same arguments as ``frames()``; an event still open at the end of the source ends with it."""
    events: list[Event] = []
    open_at_end: list[Event] = []
    for f in _run(source, _params(params, changes), detector, max_frames, open_at_end):
        events += f.ended
    return events + open_at_end


__all__ = ["MotionFrame", "frames", "detect", "SourceLike"]
