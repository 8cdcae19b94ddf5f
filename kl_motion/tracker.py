"""Boxes per frame with track ids kept across frames: greedy IoU matching against each
track's predicted box (last box moved by its last step), then centre distance for boxes
that overlap no prediction.  No frames, no I/O here.

``BoxTracker.update(boxes)`` returns one id per box; ``EventTracks`` gathers the tracks
seen during an event (first/last frame, first/last box, their union, the largest area),
which the event record carries instead of one union box of everything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

BOXES_HEADER = "frame,time,timecode,track,x,y,w,h,area,kl_max"


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = min(ax1, bx1) - max(a[0], b[0])
    ih = min(ay1, by1) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


@dataclass
class Track:
    id: int
    box: tuple[int, int, int, int]
    step: tuple[float, float] = (0.0, 0.0)    # last move of the box's centre, per frame
    missed: int = 0
    hits: int = 1

    def predicted(self) -> tuple[float, float, float, float]:
        k = self.missed + 1
        return (self.box[0] + self.step[0] * k, self.box[1] + self.step[1] * k, self.box[2], self.box[3])


class BoxTracker:
    """Matches each frame's boxes to the tracks of earlier frames.  A box with IoU of at
    least ``min_iou`` with a track's predicted box continues it (best pairs first); other
    boxes are matched by centre distance (at most ``gate`` times the larger side, similar
    area); the rest start new tracks; a track unseen for ``max_missed`` frames is dropped."""

    def __init__(self, min_iou: float = 0.1, max_missed: int = 5, gate: float = 1.5):
        self.min_iou = min_iou
        self.gate = gate
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next = 1

    def reset(self) -> None:
        self.tracks.clear()

    def update(self, boxes: Iterable) -> list[int]:
        bx = [tuple(int(v) for v in (b.box if hasattr(b, "box") else b)) for b in boxes]
        pairs = []
        for ti, t in enumerate(self.tracks):
            p = t.predicted()
            for bi, b in enumerate(bx):
                s = iou(p, b)
                if s >= self.min_iou:
                    pairs.append((s, 0.0, ti, bi))
                    continue
                # no overlap (a fast object, or a track without a speed yet): a box of similar
                # size whose centre is near the predicted centre continues the track
                d = np.hypot(p[0] + p[2] / 2 - b[0] - b[2] / 2, p[1] + p[3] / 2 - b[1] - b[3] / 2)
                ratio = (b[2] * b[3] + 1) / (p[2] * p[3] + 1)
                if d <= self.gate * max(p[2], p[3], b[2], b[3]) and 1 / 3 <= ratio <= 3:
                    pairs.append((0.0, -d, ti, bi))
        pairs.sort(reverse=True)
        ids = [0] * len(bx)
        used_t: set[int] = set()
        for s, _, ti, bi in pairs:
            if ti in used_t or ids[bi]:
                continue
            used_t.add(ti)
            t = self.tracks[ti]
            b = bx[bi]
            k = t.missed + 1
            t.step = ((b[0] + b[2] / 2 - t.box[0] - t.box[2] / 2) / k, (b[1] + b[3] / 2 - t.box[1] - t.box[3] / 2) / k)
            t.box, t.missed, t.hits = b, 0, t.hits + 1
            ids[bi] = t.id
        for ti, t in enumerate(self.tracks):
            if ti not in used_t:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for bi, b in enumerate(bx):
            if not ids[bi]:
                t = Track(self._next, b)
                self._next += 1
                self.tracks.append(t)
                ids[bi] = t.id
        return ids


def box_rows(frame: int, time: float, tc: str, blobs, ids: list[int], kl: np.ndarray | None) -> list[str]:
    """``boxes.csv`` lines of one frame."""
    out = []
    for b, tid in zip(blobs, ids):
        x, y, w, h = b.box if hasattr(b, "box") else b
        area = getattr(b, "area", w * h)
        klx = f"{float(kl[y:y + h, x:x + w].max()):.4f}" if kl is not None and w > 0 and h > 0 else ""
        out.append(f"{frame},{time:.4f},{tc},{tid},{x},{y},{w},{h},{area},{klx}")
    return out


@dataclass
class _Seen:
    id: int
    first_frame: int
    last_frame: int
    first_box: list[int]
    last_box: list[int]
    box: list[int]
    frames: int = 1
    peak_pixels: int = 0


@dataclass
class EventTracks:
    """The tracks seen while an event is open (``add`` per frame), as the event's boxes."""
    seen: dict[int, _Seen] = field(default_factory=dict)

    def add(self, frame: int, blobs, ids: list[int]) -> None:
        for b, tid in zip(blobs, ids):
            box = list(b.box if hasattr(b, "box") else b)
            area = int(getattr(b, "area", box[2] * box[3]))
            s = self.seen.get(tid)
            if s is None:
                self.seen[tid] = _Seen(tid, frame, frame, box, box, list(box), 1, area)
                continue
            s.last_frame, s.last_box, s.frames = frame, box, s.frames + 1
            x0, y0 = min(s.box[0], box[0]), min(s.box[1], box[1])
            x1, y1 = max(s.box[0] + s.box[2], box[0] + box[2]), max(s.box[1] + s.box[3], box[1] + box[3])
            s.box = [x0, y0, x1 - x0, y1 - y0]
            s.peak_pixels = max(s.peak_pixels, area)

    def to_list(self, limit: int = 20, min_frames: int = 3) -> list[dict]:
        """The longest-lived ``limit`` tracks seen in at least ``min_frames`` frames (shorter ones are
        mostly flicker: leaves, noise), in order of appearance."""
        kept = [s for s in self.seen.values() if s.frames >= min_frames]
        best = sorted(kept, key=lambda s: -s.frames)[:limit]
        return [vars(s).copy() for s in sorted(best, key=lambda s: (s.first_frame, s.id))]

    def clear(self) -> None:
        self.seen.clear()
