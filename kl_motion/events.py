"""Motion events and light-switch detection: pure logic, no I/O, no frames.

A frame is *in motion* when its foreground area (blobs left after ``min_area``)
is at least ``motion_area`` of the frame.  An event starts after
``event_start_frames`` consecutive motion frames (it starts at the first of them)
and ends when ``event_gap`` seconds pass without motion (it ends at the last
motion frame).  Each event records its start and end (frame and time), the peak
area and the frame of the peak, and the bounding box of all its motion.

A *light switch* is a frame where more than ``lightswitch_fraction`` of the
picture changes at once: the caller re-learns the background and the frames
until it settles are never counted as motion.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Iterable

from .params import Params


@dataclass
class Event:
    """A motion event: first and last motion frame (1-based) and their times (s), the peak foreground area
    (fraction of the frame, pixels, frame, time), the box (x, y, w, h) around all its motion and its count
    of motion frames.  ``to_dict()`` is one line of ``events.jsonl``."""
    id: int
    start_frame: int
    start_time: float
    end_frame: int
    end_time: float
    peak_area: float          # fraction of the frame
    peak_pixels: int
    peak_frame: int
    peak_time: float
    box: list[int] = field(default_factory=lambda: [0, 0, 0, 0])   # x, y, w, h (union of all motion)
    motion_frames: int = 0

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration"] = round(self.duration, 4)
        for k in ("start_time", "end_time", "peak_time"):
            d[k] = round(d[k], 4)
        d["peak_area"] = round(d["peak_area"], 6)
        return d


@dataclass
class FrameEvents:
    """What the detector says about one frame."""
    in_motion: bool
    is_peak: bool                       # this frame is now the peak of the pending or active event
    started: Event | None = None        # a copy, safe to hand to another thread
    ended: list[Event] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.started is not None


def _union(a: list[int] | None, b: tuple[int, int, int, int]) -> list[int]:
    if a is None or a[2] <= 0 or a[3] <= 0:
        return list(b)
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return [x0, y0, x1 - x0, y1 - y0]


def boxes_union(boxes: Iterable) -> tuple[int, int, int, int] | None:
    u = None
    for b in boxes:
        bb = b.box if hasattr(b, "box") else tuple(b)
        u = _union(u, bb)
    return (u[0], u[1], u[2], u[3]) if u else None


class EventDetector:
    """Turns per-frame foreground areas into events.  Feed frames in order with update()."""

    def __init__(self, params: Params | None = None, frame_area: int = 1):
        p = params or Params()
        self.motion_area = p.motion_area
        self.start_frames = p.event_start_frames
        self.gap = p.event_gap
        self.frame_area = max(1, int(frame_area))
        self._next_id = 1
        self._run: list[tuple[int, float, int, tuple | None]] = []   # pending motion frames
        self._active: Event | None = None
        self._last_motion_time = -math.inf
        self.events: list[Event] = []     # ended events, in order

    @property
    def active(self) -> Event | None:
        return self._active

    def set_frame_area(self, frame_area: int) -> None:
        self.frame_area = max(1, int(frame_area))

    def is_motion(self, area_pixels: int) -> bool:
        return area_pixels > 0 and area_pixels / self.frame_area >= self.motion_area

    def update(self, frame: int, time: float, area_pixels: int, boxes: Iterable = (),
               suppressed: bool = False) -> FrameEvents:
        """One frame: its index, time (s), foreground pixels after min_area and blob boxes.
        ``suppressed`` frames (light switch) are never motion."""
        motion = not suppressed and self.is_motion(area_pixels)
        out = FrameEvents(in_motion=motion, is_peak=False)
        ev = self._active
        if ev is not None and not motion and time - self._last_motion_time >= self.gap:
            out.ended.append(self._close())
            ev = None
        if not motion:
            self._run.clear()
            return out
        box = boxes_union(boxes)
        self._last_motion_time = time
        if ev is not None:
            ev.end_frame, ev.end_time = frame, time
            ev.motion_frames += 1
            if box:
                ev.box = _union(ev.box, box)
            if area_pixels > ev.peak_pixels:
                self._set_peak(ev, frame, time, area_pixels)
                out.is_peak = True
            return out
        # a run of motion frames that may become an event
        if not self._run or area_pixels > max(r[2] for r in self._run):
            out.is_peak = True
        self._run.append((frame, time, area_pixels, box))
        if len(self._run) >= self.start_frames:
            f0, t0 = self._run[0][0], self._run[0][1]
            ev = Event(self._next_id, f0, t0, frame, time, 0.0, 0, f0, t0, [0, 0, 0, 0], 0)
            self._next_id += 1
            for f, t, a, b in self._run:
                ev.motion_frames += 1
                if b:
                    ev.box = _union(ev.box, b)
                if a > ev.peak_pixels:
                    self._set_peak(ev, f, t, a)
            self._run.clear()
            self._active = ev
            out.started = replace(ev, box=list(ev.box))
        return out

    def _set_peak(self, ev: Event, frame: int, time: float, pixels: int) -> None:
        ev.peak_pixels = int(pixels)
        ev.peak_area = pixels / self.frame_area
        ev.peak_frame, ev.peak_time = frame, time

    def _close(self) -> Event:
        ev, self._active = self._active, None
        assert ev is not None, "no active event"
        self.events.append(ev)
        return ev

    def finish(self) -> list[Event]:
        """End of input (or a model reset): close the active event, drop a pending run."""
        self._run.clear()
        self._last_motion_time = -math.inf
        return [self._close()] if self._active is not None else []


class LightSwitch:
    """Flags illumination changes: more than ``fraction`` of the frame changed at once.

    ``check(changed_fraction)`` returns ``(switched, suppressed)``: *switched* on the
    frame the change is seen (re-learn then), *suppressed* on it and on the following
    ``settle_frames`` frames, which must not count as motion.
    """

    def __init__(self, fraction: float, settle_frames: int = 10):
        self.fraction = fraction
        self.settle_frames = max(0, int(settle_frames))
        self._left = 0
        self.count = 0

    def check(self, changed_fraction: float) -> tuple[bool, bool]:
        high = changed_fraction > self.fraction
        if self._left > 0:
            self._left -= 1          # still settling: suppress, do not re-learn again yet
            return False, True
        if high:
            self.count += 1
            self._left = self.settle_frames
            return True, True
        return False, False

    def reset(self) -> None:
        self._left = 0


def settle_frames_for(params: Params, fps: float) -> int:
    """Frames after a light switch that never count as motion: the start run plus half a second."""
    return int(params.event_start_frames + math.ceil(0.5 * max(1.0, fps)))
