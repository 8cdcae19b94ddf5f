"""What ``kl-motion process`` writes for one input: the options, the report, the output paths and
``Outputs``, which writes every file of a frame (it runs in the writer thread).  No Qt here.

To add an output kind: a flag in ``Options`` (and ``process_cmd.add_arguments``), its path in
``output_paths`` and its sink in ``Outputs`` (opened in ``__init__``, written in ``handle``).
"""
from __future__ import annotations

import collections
import datetime
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .events import Event, FrameEvents
from .h264 import MP4_COPY_CODECS, H264Sink, codec_of, cut_clip
from .notify import Notifiers
from .overlay import Overlay, draw_overlay
from .params import Params
from .sinks import ImageSequenceSink, TextSink, VideoSink, write_image
from .timefmt import Position, timecode
from .tracker import BOXES_HEADER, BoxTracker, EventTracks, box_rows

log = logging.getLogger("kl_motion")

CLIP_MEMORY_BYTES = 256e6   # frames held in memory for event clips (pre-capture / gap), at most
STATS_HEADER = "frame,time,timecode,fg_fraction,kl_mean,kl_max,blobs,motion,lightswitch,event"
THUMB_WIDTH = 240           # report.html's event thumbnails


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
    boxes: bool = True              # boxes.csv: every box of every frame with its track id
    report: bool = True             # report.html + motion.png at the end (needs stats)
    on_event: str = ""              # shell command run at event start and end
    webhook: str = ""               # URL POSTed a JSON record at event start and end
    mqtt: str = ""                  # HOST[:PORT] of an MQTT broker
    mqtt_prefix: str = "kl_motion"
    start: Position | None = None   # first frame (files and folders) ...
    end: Position | None = None     # ... and where to stop (files, folders; live: a time)
    frame_skip: int = 0             # frames skipped after each processed one
    fps: float = 0.0                # image folders: frames per second (0: 25)
    lead_in: int = 0                # frames before --start analysed (the model learns) but not written: a
                                    # chunk's warm-up (kl_motion.chunks)


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
    if opt.boxes:
        d["boxes"] = out_dir / "boxes.csv"
    if opt.events:
        d["events"] = out_dir / "events.jsonl"
    if opt.snapshots:
        d["snapshots"] = out_dir / "snapshots"
    if opt.clips:
        d["clips"] = out_dir / "clips"
    if opt.report and opt.stats:
        d["report"] = out_dir / "report.html"
        d["motion"] = out_dir / "motion.png"
    d["summary"] = out_dir / "summary.json"
    return d


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


@dataclass
class LeadItem:
    """A lead-in frame (before --start, see ``Options.lead_in``): only the box tracker sees it."""
    blobs: list


@dataclass
class EndItem:
    """Events that ended without a frame of their own (end of input, a reset)."""
    ev: FrameEvents


def end_item(ended: list[Event]) -> EndItem:
    return EndItem(FrameEvents(False, False, None, list(ended)))


class Outputs:
    """Everything written per frame; runs in the writer thread (handle()).

    ``fps`` is the rate of the frames handed in (the source's, divided by ``frame_skip + 1``);
    ``source_file`` (a video file) lets clips be cut from it without re-encoding; ``notifiers``
    get a record at each event's start and end; ``input_shown`` is the input as shown to users."""

    def __init__(self, paths: dict[str, Path], opt: Options, fps: float, params: Params,
                 source_file: str | None = None, notifiers: Notifiers | None = None, input_shown: str = ""):
        self.paths, self.opt, self.fps = paths, opt, fps
        self.sinks: list = []
        self.mask = self.overlay = self.bins = self.stats = self.events = self.boxes = None
        if "mask" in paths:
            if opt.mask_format == "png":
                self.mask = ImageSequenceSink(paths["mask"], prefix="mask", binary=False)
            else:
                self.mask = VideoSink(paths["mask"], fps, color=False)
        if "overlay" in paths:
            self.overlay = H264Sink(paths["overlay"], fps)
        if "bins" in paths:
            self.bins = ImageSequenceSink(paths["bins"], prefix="bin", binary=True)
        if "stats" in paths:
            self.stats = TextSink(paths["stats"], STATS_HEADER)
        if "events" in paths:
            self.events = TextSink(paths["events"], flush_lines=True)
        if "boxes" in paths:
            self.boxes = TextSink(paths["boxes"], BOXES_HEADER)
        self.sinks = [s for s in (self.mask, self.overlay, self.bins, self.stats, self.events, self.boxes)
                      if s is not None]
        self.notifiers = notifiers or Notifiers()
        self.input_shown = input_shown
        self.tracker = BoxTracker()
        self.tracks = EventTracks()          # tracks of the open (or starting) event
        # snapshots, report thumbnails and clips
        self.snap_dir = paths.get("snapshots")
        self.clip_dir = paths.get("clips")
        self.thumbs: dict[int, bytes] | None = {} if "report" in paths else None
        self._peak: tuple[np.ndarray, list] | None = None
        self.pre_s, self.post_s = params.pre_capture, params.post_capture
        self.pre = int(round(params.pre_capture * fps))
        self.post = int(round(params.post_capture * fps))
        # clips of a file whose codec an MP4 holds are cut from it (no re-encoding); else encoded
        self.clip_source = None
        if self.clip_dir is not None and source_file and codec_of(source_file) in MP4_COPY_CODECS:
            self.clip_source = source_file
        encode = self.clip_dir is not None and self.clip_source is None
        keep = self.pre + params.event_start_frames + 1 if encode else 0
        self._ring: collections.deque = collections.deque(maxlen=keep)
        self._clip: H264Sink | None = None
        self._clip_pending: list[np.ndarray] = []
        self._tails: list[list] = []            # [sink, frames still to write]
        self.max_pending = max(self.post, 1)
        self._budget_set = False
        self.tint = Overlay()
        self.wall0: float | None = None
        self.source = ""
        self._written: set[str] = set()         # snapshot and clip file names of this run
        self.lead_boxes: list[tuple[int, list[int]]] = []   # (track id, box) of the last lead-in frame

    # -- per frame
    def _lead(self, it: LeadItem) -> None:
        ids = self.tracker.update(it.blobs)
        self.lead_boxes = [(i, list(b.box if hasattr(b, "box") else b)) for i, b in zip(ids, it.blobs)]

    def handle(self, it) -> None:
        if isinstance(it, LeadItem):
            self._lead(it)
            return
        if isinstance(it, EndItem):
            for ev in it.ev.ended:
                self._end_event(ev)
            return
        if self.mask is not None:
            self.mask.write(it.mask)
        if self.bins is not None:
            self.bins.write(it.mask)
        if self.overlay is not None:
            self.overlay.write(self.tint.draw(it.frame, it.mask, boxes=it.blobs))
        tc = timecode(it.time)
        if self.stats is not None:
            if it.kl is not None:
                klm, klx = f"{float(it.kl.mean()):.4f}", f"{float(it.kl.max()):.4f}"
            else:
                klm = klx = ""
            self.stats.line(f"{it.index},{it.time:.4f},{tc},{it.fg_fraction:.6f},{klm},{klx},{len(it.blobs)},"
                            f"{int(it.ev.in_motion)},{int(it.lightswitch)},{it.event_id or ''}")
        ids = self.tracker.update(it.blobs)
        if self.boxes is not None and it.blobs:
            for row in box_rows(it.index, it.time, tc, it.blobs, ids, it.kl):
                self.boxes.line(row)
        if it.ev.in_motion or it.event_id:
            self.tracks.add(it.index, it.blobs, ids)
        if (self.snap_dir is not None or self.thumbs is not None) and it.ev.is_peak:
            self._peak = (it.frame, it.blobs)
        if it.ev.started is not None:
            self._start_event(it.ev.started)
        if self.clip_dir is not None and self.clip_source is None:
            self._clip_frame(it)
        for ev in it.ev.ended:
            self._end_event(ev)
        if not it.ev.in_motion and not it.event_id:
            self.tracks.clear()          # a run of motion frames that did not become an event

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
            self._clip = H264Sink(self.clip_dir / f"event-{ev.id:04d}.mp4", self.fps)
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
        else:          # after the last motion frame: the frame that ends the event is post-capture too
            self._clip_pending.append(it.frame)
            if len(self._clip_pending) > self.max_pending:   # bounded memory: long gaps stay in the clip
                self._clip.write(self._clip_pending.pop(0))

    # -- events
    def _start_event(self, ev: Event) -> None:
        rec = dict(type="start", source=self.source, input=self.input_shown, id=ev.id,
                   start_frame=ev.start_frame, start_time=round(ev.start_time, 4),
                   start_timecode=timecode(ev.start_time))
        if self.wall0 is not None:
            rec["start_utc"] = _utc(self.wall0 + ev.start_time)
        rec["box"] = list(ev.box)
        rec["tracks"] = self.tracks.to_list()
        if self.events is not None:
            self.events.line(json.dumps(rec))
        self.notifiers.emit(rec)

    def _end_event(self, ev: Event) -> None:
        rec = dict(type="end", source=self.source, input=self.input_shown, **ev.to_dict())
        for k in ("start", "end", "peak"):
            rec[f"{k}_timecode"] = timecode(getattr(ev, f"{k}_time"))
        if self.wall0 is not None:    # live sources: wall-clock times too
            rec["start_utc"] = _utc(self.wall0 + ev.start_time)
            rec["end_utc"] = _utc(self.wall0 + ev.end_time)
        rec["tracks"] = self.tracks.to_list()
        self.tracks.clear()
        peak_img = None
        if self._peak is not None:
            frame, blobs = self._peak
            peak_img = draw_overlay(frame, np.zeros(frame.shape[:2], np.uint8), opacity=0.0, boxes=blobs)
            self._peak = None
        if self.snap_dir is not None and peak_img is not None:
            p = write_image(self.snap_dir / f"event-{ev.id:04d}.jpg", peak_img)
            self._written.add(p.name)
            rec["snapshot"] = str(p.relative_to(self.snap_dir.parent))
        if self.thumbs is not None and peak_img is not None:
            h, w = peak_img.shape[:2]
            small = cv2.resize(peak_img, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))),
                               interpolation=cv2.INTER_AREA) if w > THUMB_WIDTH else peak_img
            self.thumbs[ev.id] = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        if self.clip_dir is not None:
            path = self._end_clip(ev)
            if path is not None:
                rec["clip"] = str(path.relative_to(self.clip_dir.parent))
        if self.events is not None:
            self.events.line(json.dumps(rec))
        if self.notifiers:
            out = dict(rec)
            if "snapshot" in rec:
                out["snapshot_path"] = str(self.snap_dir.parent.resolve() / rec["snapshot"])
            self.notifiers.emit(out)

    def _end_clip(self, ev: Event) -> Path | None:
        if self.clip_source is not None:    # cut from the file: the source's codec, no re-encoding
            dst = self.clip_dir / f"event-{ev.id:04d}.mp4"
            self._written.add(dst.name)
            if cut_clip(self.clip_source, dst, ev.start_time - self.pre_s, ev.end_time + self.post_s):
                return dst
            log.warning("%s: could not cut event %d's clip from the file", self.source, ev.id)
            return None
        if self._clip is None:
            return None
        clip, pending = self._clip, self._clip_pending
        self._clip, self._clip_pending = None, []
        for f in pending[: self.post]:
            clip.write(f)
        left = self.post - min(self.post, len(pending))
        if left > 0:
            self._tails.append([clip, left])
        else:
            clip.close()
        return clip.path

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


def _utc(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="milliseconds")
