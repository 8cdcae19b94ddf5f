"""What is written for each frame of an input (kl_motion/outputs.py), in-process and exact (issue
17: the mutation run of outputs.py; each test names in its docstring the bugs it was checked
against: the mutant, or the same change made by hand, failed it).

``drive`` does what pipeline.process_input does with its writer thread, in this thread: real
frames go through a real Analyzer (its detector is tests/test_pipeline_exact.py's ``Bright``, a
threshold, so the frames of each event are known) into ``Outputs.handle``, and the files are read
back: PNG exactly, JPEG snapshots byte for byte against the same encoder, H.264 clips by the frame
number each frame carries in binary in its bottom rows.  Notifiers are a recording notifier object.
"""
from __future__ import annotations

import datetime
import json
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from kl_motion import outputs as outputs_mod
from kl_motion.analyzer import Analyzer
from kl_motion.errors import OutputError
from kl_motion.events import Event, FrameEvents
from kl_motion.notify import Notifiers
from kl_motion.outputs import (CLIP_MEMORY_BYTES, STATS_HEADER, THUMB_WIDTH, EndItem, InputReport, Item, LeadItem,
                               Options, Outputs, end_item, output_paths)
from kl_motion.overlay import draw_overlay
from kl_motion.params import Params
from kl_motion.postprocess import Blob
from kl_motion.sinks import write_image

from conftest_process import video_frames
from test_pipeline_exact import Bright

P = Params(event_start_frames=2, event_gap=0.2, warmup_frames=0, pre_capture=0.0, post_capture=0.0)


class Recorder:
    """A notifier that keeps what it is sent."""

    def __init__(self):
        self.records, self.closed = [], []

    def send(self, rec):
        self.records.append(rec)

    def close(self, timeout):
        self.closed.append(timeout)


def marked(i: int, box=None, size=(32, 24)) -> np.ndarray:
    """Frame i (1-based): its number in binary in the bottom rows (5 blocks 6 pixels wide, level 120
    for a 1, not foreground), and a bright box."""
    w, h = size
    f = np.full((h, w, 3), 40, np.uint8)
    for b in range(5):
        if i >> b & 1:
            f[h - 4:, 6 * b:6 * b + 6] = 120
    if box is not None:
        x, y, bw, bh = box
        f[y:y + bh, x:x + bw] = 230
    return f


def number_of(f: np.ndarray) -> int:
    h = f.shape[0]
    return sum(1 << b for b in range(5) if f[h - 3:h - 1, 6 * b + 1:6 * b + 5].mean() > 80)


def clip_frames(path: Path) -> list[int]:
    return [number_of(f) for f in video_frames(path)]


def drive(out: Path, frames, opt: Options, params: Params = P, fps: float = 25.0, ok: bool = True,
          notifiers=None, wall0=None, source_file=None, lead: int = 0) -> Outputs:
    """The frames through an Analyzer into Outputs (the first ``lead`` as lead-in), closed."""
    paths = output_paths(out, opt)
    out.mkdir(parents=True, exist_ok=True)
    o = Outputs(paths, opt, fps, params, source_file=source_file, notifiers=notifiers, input_shown="the input")
    o.source, o.wall0 = out.name, wall0
    an = Analyzer(Bright(params), fps=fps)
    for i, f in enumerate(frames, 1):
        a = an.analyze(f, (i - 1) / fps, i)
        if i <= lead:
            o.handle(LeadItem(a.blobs))
            continue
        if a.ended_before:
            o.handle(end_item(a.ended_before))
        o.handle(Item(i, (i - 1) / fps, f, a.mask, a.kl, a.blobs, a.fg_fraction, a.events, a.lightswitch,
                      a.suppressed, a.event_id))
    ended = an.finish()
    if ended:
        o.handle(end_item(ended))
    o.closed_outputs = o.close(ok)
    return o


def moving(n, motion, size=(32, 24), big=()):
    """n marked frames, a 6x5 box moving right on the frames of ``motion`` (9x7 on those of ``big``)."""
    return [marked(i, (4 + i % 5, 5, 9 if i in big else 6, 7 if i in big else 5) if i in motion else None, size)
            for i in range(1, n + 1)]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in lines(path)]


# ----------------------------------------------------------------------------------- the small parts
def test_options_and_report_defaults():
    """Planted: any default of Options or InputReport changed (True/False, numbers +-1, a string),
    `failed` for another status or without 'truncated', fps at 0 seconds (`>= 0`: division by
    zero) or `*`, `seconds > 1`, to_dict's rounding (2 and 3 digits)."""
    assert Options() == Options(mask=True, mask_format="mkv", overlay=False, bins=False, stats=True, events=True,
                                snapshots=False, clips=False, force=False, method="kl_motion", max_frames=0,
                                reconnect=False, reconnect_attempts=0, reconnect_delay=0.5, stream_timeout=10.0,
                                queue_size=8, boxes=True, report=True, on_event="", webhook="", mqtt="",
                                mqtt_prefix="kl_motion", start=None, end=None, frame_skip=0, fps=0.0, lead_in=0)
    r = InputReport("x")
    assert vars(r) == dict(input="x", name="", out_dir="", status="ok", frames=0, expected_frames=None, events=0,
                           lightswitches=0, resets=0, seconds=0.0, message="", outputs=[])
    assert InputReport("y").outputs is not r.outputs
    assert [InputReport("x", status=s).failed for s in ("ok", "ended", "truncated", "interrupted", "failed")] == [
        False, False, True, False, True]
    assert r.fps == 0.0 and InputReport("x", frames=10, seconds=4.0).fps == 2.5
    assert InputReport("x", frames=5, seconds=-1.0).fps == 0.0
    assert InputReport("x", frames=1, seconds=0.5).fps == 2.0                     # under a second too
    assert InputReport("x", frames=1, seconds=1.2344).to_dict()["seconds"] == 1.234
    d = InputReport("x", frames=10, seconds=3.0004999).to_dict()
    assert (d["fps"], d["seconds"]) == (3.33, 3.0)
    d = InputReport("x", frames=2, seconds=3.0).to_dict()
    assert (d["fps"], d["seconds"]) == (0.67, 3.0) and list(d) == list(vars(r)) + ["fps"]
    assert STATS_HEADER == "frame,time,timecode,fg_fraction,kl_mean,kl_max,blobs,motion,lightswitch,event"


def test_output_paths(tmp_path):
    """Planted: a flag's test reversed or dropped, a file name, 'png' compared with `!=`, the
    report without stats (`or`)."""
    d = tmp_path
    assert output_paths(d, Options()) == dict(mask=d / "mask.mkv", stats=d / "stats.csv", boxes=d / "boxes.csv",
                                              events=d / "events.jsonl", report=d / "report.html",
                                              motion=d / "motion.png", summary=d / "summary.json")
    assert list(output_paths(d, Options())) == ["mask", "stats", "boxes", "events", "report", "motion", "summary"]
    every = Options(mask_format="png", overlay=True, bins=True, snapshots=True, clips=True)
    assert output_paths(d, every) == dict(mask=d / "mask", overlay=d / "overlay.mp4", bins=d / "bin",
                                          stats=d / "stats.csv", boxes=d / "boxes.csv", events=d / "events.jsonl",
                                          snapshots=d / "snapshots", clips=d / "clips", report=d / "report.html",
                                          motion=d / "motion.png", summary=d / "summary.json")
    assert output_paths(d, Options(mask_format="avi", stats=False)) == dict(
        mask=d / "mask.avi", boxes=d / "boxes.csv", events=d / "events.jsonl", summary=d / "summary.json")
    assert output_paths(d, Options(mask=False, boxes=False, events=False, report=False)) == dict(
        stats=d / "stats.csv", summary=d / "summary.json")


def test_end_item():
    """Planted: in_motion or is_peak True in the EndItem, the list not copied."""
    ev = Event(1, 2, 0.1, 3, 0.2, 0.5, 9, 2, 0.1)
    ended = [ev]
    it = end_item(ended)
    assert it == EndItem(FrameEvents(False, False, None, [ev]))
    ended.append(ev)
    assert it.ev.ended == [ev]


def test_utc():
    """Planted: local time instead of UTC, seconds or microseconds instead of milliseconds."""
    assert outputs_mod._utc(1000.1234) == "1970-01-01T00:16:40.123+00:00"
    assert outputs_mod._utc(0) == datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc).isoformat(
        timespec="milliseconds")


# ------------------------------------------------------------------------------------------- runs
def test_every_file_of_a_run(tmp_path):
    """Every output kind on 16 frames with one event (frames 5-8, its peak on 7).  Planted: a sink
    not opened or written (mask, bins, overlay, stats, events, boxes), the mask PNGs made binary or
    the bins not, the stats line's fields (kl mean/max, the fg fraction's digits, motion,
    lightswitch, the event id or '' for 0), box rows written without blobs, the tracks not kept
    while the event is open (`and`), the peak frame not kept (snapshot of another frame), the
    snapshot or thumbnail not written (`is None`), the thumbnail's width, height or quality, the
    start and end records (utc from wall0, tracks cleared at the end, snapshot and clip paths),
    the notifiers not given a record or the snapshot's absolute path, close()'s list (clips
    excluded, order)."""
    rec = Recorder()
    params = P.replace(pre_capture=0.08, post_capture=0.08, motion_area=0.0001)
    frames = moving(16, range(5, 9), size=(320, 240), big=(7,))
    opt = Options(mask_format="png", overlay=True, bins=True, snapshots=True, clips=True)
    o = drive(tmp_path / "o", frames, opt, params, notifiers=Notifiers([rec]), wall0=1000.0)
    out = tmp_path / "o"
    assert o.closed_outputs == [str(out / n) for n in ("mask", "overlay.mp4", "bin", "stats.csv", "events.jsonl",
                                                        "boxes.csv")]
    assert sorted(p.name for p in out.iterdir()) == ["bin", "boxes.csv", "clips", "events.jsonl", "mask",
                                                     "overlay.mp4", "snapshots", "stats.csv"]
    for i, f in enumerate(frames, 1):
        m = cv2.imread(str(out / "mask" / f"mask{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(out / "bin" / f"bin{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        g = f[:, :, 1]
        assert np.array_equal(m, np.where(g > 128, 255, np.where(g > 100, 127, 0)))
        assert np.array_equal(b, np.where(g > 128, 255, 0))
    assert len(list((out / "mask").iterdir())) == 16 and (m == 127).any()
    assert clip_frames(out / "overlay.mp4") == list(range(1, 17))
    st = lines(out / "stats.csv")
    assert st[0] == STATS_HEADER and len(st) == 17
    kl = [f[:, :, 1].astype(np.float32) / 255 for f in frames]
    for i, row in enumerate(st[1:], 1):
        fg = float(np.count_nonzero(frames[i - 1][:, :, 1] > 128)) / (320 * 240)
        evid = "1" if 6 <= i <= 13 else ""
        assert row == (f"{i},{(i - 1) / 25:.4f},00:00:00.{(i - 1) * 40:03d},{fg:.6f},{float(kl[i - 1].mean()):.4f},"
                       f"{float(kl[i - 1].max()):.4f},{int(5 <= i <= 8)},{int(5 <= i <= 8)},0,{evid}")
    assert lines(out / "boxes.csv") == ["frame,time,timecode,track,x,y,w,h,area,kl_max"] + [
        f"{i},{(i - 1) / 25:.4f},00:00:00.{(i - 1) * 40:03d},1,{4 + i % 5},5,{9 if i == 7 else 6},"
        f"{7 if i == 7 else 5},{63 if i == 7 else 30},0.9020" for i in range(5, 9)]
    start, end = jsonl(out / "events.jsonl")
    assert start == dict(type="start", source="o", input="the input", id=1, start_frame=5, start_time=0.16,
                         start_timecode="00:00:00.160", start_utc="1970-01-01T00:16:40.160+00:00", box=[4, 5, 7, 5],
                         tracks=[])
    assert end == dict(type="end", source="o", input="the input", id=1, start_frame=5, start_time=0.16, end_frame=8,
                       end_time=0.28, peak_area=round(63 / 76800, 6), peak_pixels=63, peak_frame=7, peak_time=0.24,
                       box=[4, 5, 11, 7], motion_frames=4, duration=0.12, start_timecode="00:00:00.160",
                       end_timecode="00:00:00.280", peak_timecode="00:00:00.240",
                       start_utc="1970-01-01T00:16:40.160+00:00", end_utc="1970-01-01T00:16:40.280+00:00",
                       tracks=[dict(id=1, first_frame=5, last_frame=8, first_box=[4, 5, 6, 5], last_box=[7, 5, 6, 5],
                                    box=[4, 5, 11, 7], frames=4, peak_pixels=63)],
                       snapshot="snapshots/event-0001.jpg", clip="clips/event-0001.mp4")
    assert rec.records == [start, dict(end, snapshot_path=str((out / "snapshots" / "event-0001.jpg").resolve()))]
    peak = draw_overlay(frames[6], np.zeros((240, 320), np.uint8), opacity=0.0, boxes=[Blob(6, 5, 9, 7, 63)])
    assert (out / "snapshots" / "event-0001.jpg").read_bytes() == write_image(tmp_path / "peak.jpg", peak).read_bytes()
    small = cv2.resize(peak, (THUMB_WIDTH, 180), interpolation=cv2.INTER_AREA)
    assert o.thumbs == {1: cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()}
    assert THUMB_WIDTH == 240
    assert clip_frames(out / "clips" / "event-0001.mp4") == list(range(3, 11))
    assert o._written == {"event-0001.mp4", "event-0001.jpg"}


def test_thumbnails_of_small_frames_and_without_kl(tmp_path):
    """A frame 240 wide or less is its own thumbnail; an odd height rounds; no KL map: empty kl
    fields.  Planted: `w >= THUMB_WIDTH`, the height's `max(1, ...)` / rounding, kl fields written
    as 0 when the detector gives none (`is None`), thumbs kept without a report (`in` reversed),
    `max(0, ...)` for the height (0 for a very wide frame)."""
    class NoKl(Bright):
        def apply(self, frame):
            r = super().apply(frame)
            r.kl = None
            return r

    frames = moving(12, range(5, 9), size=(240, 24))
    paths = output_paths(tmp_path / "o", Options())
    o = Outputs(paths, Options(), 25.0, P)
    an = Analyzer(NoKl(P), fps=25.0)
    for i, f in enumerate(frames, 1):
        a = an.analyze(f, (i - 1) / 25, i)
        o.handle(Item(i, (i - 1) / 25, f, a.mask, a.kl, a.blobs, a.fg_fraction, a.events, False, False, a.event_id))
    o.handle(end_item(an.finish()))
    o.close(True)
    peak = draw_overlay(frames[4], np.zeros((24, 240), np.uint8), opacity=0.0, boxes=[Blob(4, 5, 6, 5, 30)])
    assert o.thumbs == {1: cv2.imencode(".jpg", peak, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()}
    assert [r.split(",")[4:6] for r in lines(tmp_path / "o" / "stats.csv")[1:]] == [["", ""]] * 12
    assert lines(tmp_path / "o" / "boxes.csv")[1].endswith(",30,")
    small_area = P.replace(motion_area=0.0001)
    o = drive(tmp_path / "w", moving(12, range(5, 9), size=(250, 15)), Options(), small_area)
    img = cv2.imdecode(np.frombuffer(o.thumbs[1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (14, 240, 3)
    o = drive(tmp_path / "t", moving(12, range(5, 9), size=(2000, 8)), Options(), small_area)
    img = cv2.imdecode(np.frombuffer(o.thumbs[1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (1, 240, 3)
    o = drive(tmp_path / "u", moving(12, range(5, 9), size=(4000, 8)), Options(), small_area)   # 0.48 rounds to 0
    img = cv2.imdecode(np.frombuffer(o.thumbs[1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (1, 240, 3)
    assert drive(tmp_path / "n", moving(12, range(5, 9)), Options(report=False)).thumbs is None


def test_lead_in_frames_only_feed_the_tracker(tmp_path):
    """Planted: a LeadItem written like a frame, its boxes not tracked (the next frame's track id),
    lead_boxes of tuples (no .box) or of another frame."""
    frames = moving(12, range(2, 10))
    o = drive(tmp_path / "o", frames, Options(report=False), lead=6)
    assert o.lead_boxes == [(1, [4 + 6 % 5, 5, 6, 5])]
    assert [r.split(",")[0] for r in lines(tmp_path / "o" / "stats.csv")[1:]] == [str(i) for i in range(7, 13)]
    assert {r.split(",")[3] for r in lines(tmp_path / "o" / "boxes.csv")[1:]} == {"1"}
    o = Outputs({}, Options(), 25.0, P)
    o.handle(LeadItem([(1, 2, 3, 4), Blob(5, 6, 7, 8, 9)]))
    assert o.lead_boxes == [(1, [1, 2, 3, 4]), (2, [5, 6, 7, 8])]


def test_tracks_of_a_motion_run_that_is_no_event_are_forgotten(tmp_path):
    """Two motion frames apart (no event with event_start_frames 2), then an event: its start
    record's tracks hold only its own frames.  Planted: the tracks not cleared after a frame
    without motion or event (`or`, `not` dropped), cleared while the event is open."""
    params = P.replace(event_start_frames=3)
    frames = moving(20, {3, 4, 8, 9, 10, 11, 12})
    drive(tmp_path / "o", frames, Options(report=False), params)
    start, end = jsonl(tmp_path / "o" / "events.jsonl")
    assert start["tracks"] == [dict(id=1, first_frame=8, last_frame=10, first_box=[7, 5, 6, 5], last_box=[4, 5, 6, 5],
                                    box=[4, 5, 10, 5], frames=3, peak_pixels=30)]
    assert end["tracks"][0]["frames"] == 5 and end["tracks"][0]["first_frame"] == 8


# ------------------------------------------------------------------------------------------- clips
def test_a_short_gap_keeps_every_frame_of_the_clip(tmp_path):
    """post_capture (3 frames) longer than event_gap (1 frame): the clip is frames 3-11, the frame
    that ends the event (10) included.  This found a bug: that frame was left out of the clip and
    the post-capture ran one frame too far (3-9, 11, 12).  Planted: the tails not written or not
    counted down (`t[1] += 1`, `< 0`), the clip's pre-capture (`idx > start - pre`, `+ pre`), the
    pending frames written past post (`pending[: post + 1]`), a tail for `left >= 0`."""
    params = P.replace(event_gap=0.04, post_capture=0.12, pre_capture=0.08)
    drive(tmp_path / "o", moving(16, range(5, 9)), Options(clips=True, report=False), params)
    assert clip_frames(tmp_path / "o" / "clips" / "event-0001.mp4") == list(range(3, 12))
    drive(tmp_path / "p", moving(30, set(range(5, 9)) | set(range(14, 18))), Options(clips=True, report=False), params)
    assert clip_frames(tmp_path / "p" / "clips" / "event-0001.mp4") == list(range(3, 12))
    assert clip_frames(tmp_path / "p" / "clips" / "event-0002.mp4") == list(range(12, 21))


def test_clip_gaps_ends_and_the_memory_bound(tmp_path, monkeypatch, caplog):
    """Planted: pending frames of a long gap written beyond post_capture, a clip ended by the end
    of the input missing its last frames (the tail not closed by close()), the ring's length
    (`pre + event_start_frames`), the memory bound (ring not limited, its warning, pending not
    bounded: `max(self.max_pending, cap)` as `min`), frames of the gap dropped when the bound is
    reached, the clip still open at close() or a video without frames listed (`p is not None or s not in
    clips`)."""
    params = P.replace(pre_capture=0.08, post_capture=0.08)
    drive(tmp_path / "a", moving(20, range(5, 9)), Options(clips=True, report=False), params)
    assert clip_frames(tmp_path / "a" / "clips" / "event-0001.mp4") == list(range(3, 11))
    params = P.replace(pre_capture=0.2, post_capture=0.2)
    o = drive(tmp_path / "b", moving(10, range(7, 10)), Options(clips=True, report=False), params)
    assert clip_frames(tmp_path / "b" / "clips" / "event-0001.mp4") == list(range(2, 11))
    assert o.closed_outputs == [str(tmp_path / "b" / n) for n in ("mask.mkv", "stats.csv", "events.jsonl", "boxes.csv")]
    o = drive(tmp_path / "z", [], Options(overlay=True, report=False))      # nothing written: no video listed
    assert o.closed_outputs == [str(tmp_path / "z" / n) for n in ("stats.csv", "events.jsonl", "boxes.csv")]
    drive(tmp_path / "c", moving(10, range(2, 5)), Options(clips=True, report=False), params)
    assert clip_frames(tmp_path / "c" / "clips" / "event-0001.mp4") == list(range(1, 10))
    monkeypatch.setattr(outputs_mod, "CLIP_MEMORY_BYTES", 3 * 32 * 24 * 3)
    params = P.replace(pre_capture=0.12, post_capture=0.08, event_gap=0.32)
    with caplog.at_level(logging.INFO, logger="kl_motion"):
        drive(tmp_path / "d", moving(22, range(5, 9)), Options(clips=True, report=False), params)
    assert caplog.messages == ["pre_capture limited to 3 frames (0 MB) for clips"]
    assert clip_frames(tmp_path / "d" / "clips" / "event-0001.mp4") == list(range(4, 17))
    monkeypatch.setattr(outputs_mod, "CLIP_MEMORY_BYTES", 6 * 32 * 24 * 3)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kl_motion"):
        drive(tmp_path / "e", moving(22, range(5, 9)), Options(clips=True, report=False), params)
    assert caplog.messages == []
    assert clip_frames(tmp_path / "e" / "clips" / "event-0001.mp4") == list(range(2, 14))   # 9-11 past the bound


def test_clip_of_an_event_with_a_pause_and_of_one_from_the_lead_in(tmp_path):
    """Motion that pauses inside an event: the paused frames are in the clip.  An event that
    started in the lead-in has no clip (no start seen): its end record has none.  Planted: the
    pending frames not written when motion resumes (or written twice: not cleared), the frame of
    the resumed motion not written, `self._clip is not None` in _end_clip."""
    params = P.replace(pre_capture=0.08, post_capture=0.08)
    drive(tmp_path / "a", moving(24, {5, 6, 7, 8, 11, 12}), Options(clips=True, report=False), params)
    assert clip_frames(tmp_path / "a" / "clips" / "event-0001.mp4") == list(range(3, 15))
    drive(tmp_path / "b", moving(20, range(3, 9)), Options(clips=True, report=False), params, lead=5)
    (end,) = jsonl(tmp_path / "b" / "events.jsonl")
    assert end["type"] == "end" and "clip" not in end and not (tmp_path / "b" / "clips").exists()


def test_memory_bound_message_in_megabytes(tmp_path, monkeypatch, caplog):
    """The bound's message rounds the megabytes (printf's half to even): 1.5 MB -> 2, 2.5 MB -> 2.
    Planted: `CLIP_MEMORY_BYTES * 1e6`, 1e6 as 1000001 or 999999, `max(2, ...)` for the cap (a
    budget smaller than one frame still keeps one)."""
    params = P.replace(pre_capture=0.4, post_capture=0.0, motion_area=0.0001)
    for budget, said, cap, last in ((1.5e6, 2, 6, 16), (2.5e6, 2, 10, 16), (100, 0, 1, 19)):
        monkeypatch.setattr(outputs_mod, "CLIP_MEMORY_BYTES", budget)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="kl_motion"):
            drive(tmp_path / str(cap), moving(20, range(14, 17), size=(320, 240)), Options(clips=True, report=False),
                  params)
        assert caplog.messages == [f"pre_capture limited to {cap} frames ({said} MB) for clips"]
        # the ring holds `cap` frames up to the event's second (15); with a cap of 1 frames of the gap
        # (17-19) are written once more than 1 wait
        assert clip_frames(tmp_path / str(cap) / "clips" / "event-0001.mp4") == list(range(16 - cap, last + 1))


def test_events_reach_the_file_as_they_happen_and_the_mask_video_is_grey(tmp_path):
    """Planted: the events file not flushed per line (flush_lines False), the mask video in
    colour (`color=True`), the notifiers given records without an events file (`if self.events`
    guarding emit), a snapshot without thumbnails (`and` for `or`)."""
    import av
    rec = Recorder()
    opt = Options(events=False, snapshots=True, report=False)
    paths = output_paths(tmp_path / "o", opt)
    o = Outputs(paths, opt, 25.0, P, notifiers=Notifiers([rec]))
    an = Analyzer(Bright(P), fps=25.0)
    for i, f in enumerate(moving(12, range(5, 9)), 1):
        a = an.analyze(f, (i - 1) / 25, i)
        o.handle(Item(i, (i - 1) / 25, f, a.mask, a.kl, a.blobs, a.fg_fraction, a.events, False, False, a.event_id))
    o.handle(end_item(an.finish()))
    o.close(True)
    assert [r["type"] for r in rec.records] == ["start", "end"]
    assert rec.records[1]["snapshot"] == "snapshots/event-0001.jpg" and o.thumbs is None
    assert (tmp_path / "o" / "snapshots" / "event-0001.jpg").is_file()
    with av.open(str(tmp_path / "o" / "mask.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "gray"
    opt = Options(report=False)
    o = Outputs(output_paths(tmp_path / "p", opt), opt, 25.0, P)
    an = Analyzer(Bright(P), fps=25.0)
    for i, f in enumerate(moving(6, range(2, 5)), 1):
        a = an.analyze(f, (i - 1) / 25, i)
        o.handle(Item(i, (i - 1) / 25, f, a.mask, a.kl, a.blobs, a.fg_fraction, a.events, False, False, a.event_id))
    assert [json.loads(x)["type"] for x in (tmp_path / "p" / "events.part.jsonl").read_text().splitlines()] == ["start"]
    o.close(True)


def test_a_failed_run_keeps_what_it_wrote_under_temporary_names(tmp_path):
    """close(ok=False): outputs holding something keep their .part names, empty ones are removed,
    nothing is renamed or listed, earlier snapshots stay.  Planted: `getattr(s, "lines", -1)` (an
    empty PNG folder kept), `not ok` dropped (empty
    outputs discarded on success too), `frames and lines` (a text file with lines discarded),
    commit run for a failed run (`if ok`), the stale files removed after a failure."""
    old = tmp_path / "o" / "snapshots"
    old.mkdir(parents=True)
    (old / "event-0007.jpg").write_bytes(b"old")
    opt = Options(mask_format="png", bins=True, snapshots=True, report=False)
    o = drive(tmp_path / "o", moving(5, ()), opt, ok=False)
    assert o.closed_outputs == []
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["bin.part", "mask.part", "snapshots",
                                                                  "stats.part.csv"]
    assert len(lines(tmp_path / "o" / "stats.part.csv")) == 6 and len(list((tmp_path / "o" / "mask.part").iterdir())) == 5
    assert [p.name for p in old.iterdir()] == ["event-0007.jpg"]
    o = drive(tmp_path / "e", [], Options(overlay=True, bins=True, report=False), ok=False)
    assert o.closed_outputs == [] and list((tmp_path / "e").iterdir()) == []
    o = drive(tmp_path / "k", moving(5, ()), Options(report=False))
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["boxes.csv", "events.jsonl", "mask.mkv",
                                                                  "stats.csv"]
    assert (tmp_path / "k" / "events.jsonl").read_text() == ""


def test_one_output_that_cannot_be_finished_fails_the_run(tmp_path):
    """A file that cannot be completed (boxes on a full device): nothing is renamed, the error is
    raised after every file is closed, earlier snapshots stay.  A rename that fails (a folder in
    the way): the others are still renamed, the error raised.  Planted: the except not catching
    (the other outputs left open), `ok or not errors`, the commits' except not catching, the
    stale files removed despite an error, `raise errors[-1]`, the error not raised, `break` after a
    failed rename (the later outputs not renamed)."""
    import os
    out = tmp_path / "o"
    (out / "snapshots").mkdir(parents=True)
    (out / "snapshots" / "event-0007.jpg").write_bytes(b"old")
    os.symlink("/dev/full", out / "boxes.part.csv")
    with pytest.raises(OutputError, match=r"boxes.part.csv: cannot write: No space left on device$"):
        drive(out, moving(5, ()), Options(snapshots=True, report=False, events=False))
    assert sorted(p.name for p in out.iterdir()) == ["boxes.part.csv", "mask.part.mkv", "snapshots", "stats.part.csv"]
    assert len(lines(out / "stats.part.csv")) == 6 and (out / "snapshots" / "event-0007.jpg").exists()
    out = tmp_path / "p"
    (out / "stats.csv" / "x").mkdir(parents=True)           # stats, then boxes cannot be renamed; events between
    (out / "snapshots").mkdir()
    (out / "snapshots" / "event-0007.jpg").write_bytes(b"old")
    (out / "boxes.csv").mkdir()
    (out / "boxes.csv" / "y").write_text("")
    with pytest.raises(OutputError, match=r"^cannot rename .*stats.part.csv to .*stats.csv: "):
        drive(out, moving(5, ()), Options(snapshots=True, report=False, force=True))
    assert (out / "mask.mkv").is_file() and (out / "events.jsonl").is_file()
    assert (out / "boxes.part.csv").is_file() and (out / "snapshots" / "event-0007.jpg").exists()


def test_a_complete_run_removes_what_an_earlier_run_left(tmp_path):
    """--force over an earlier run: its snapshots and clips that this run did not write (and
    .part leftovers, a folder) are removed; this run's are kept.  Planted: `f.name in
    self._written`, the folder test (`and`: None.is_dir()), `break` for its `continue` (the clips
    of a run without snapshots not cleaned), a folder unlinked (`is_dir()` reversed), the removal
    skipped (`if ok and errors`)."""
    out = tmp_path / "o"
    for d in ("snapshots", "clips"):
        (out / d / "junk").mkdir(parents=True)
        (out / d / "junk" / "f").write_text("")
    (out / "snapshots" / "event-0001.jpg").write_bytes(b"old")
    (out / "snapshots" / "event-0009.jpg").write_bytes(b"old")
    (out / "snapshots" / "event-0002.part.jpg").write_bytes(b"old")
    (out / "clips" / "event-0003.mp4").write_bytes(b"old")
    params = P.replace(pre_capture=0.08, post_capture=0.08)
    o = drive(out, moving(16, range(5, 9)), Options(snapshots=True, clips=True, report=False, force=True), params)
    assert [p.name for p in (out / "snapshots").iterdir()] == ["event-0001.jpg"]
    assert (out / "snapshots" / "event-0001.jpg").read_bytes() != b"old"
    assert [p.name for p in (out / "clips").iterdir()] == ["event-0001.mp4"]
    assert o._written == {"event-0001.jpg", "event-0001.mp4"}
    o = drive(tmp_path / "n", moving(8, ()), Options(clips=True, report=False))   # no event: no clips folder
    assert not (tmp_path / "n" / "clips").exists()
    (tmp_path / "c" / "clips").mkdir(parents=True)                  # clips without snapshots: still cleaned
    (tmp_path / "c" / "clips" / "event-0005.mp4").write_bytes(b"old")
    drive(tmp_path / "c", moving(16, range(5, 9)), Options(clips=True, report=False, force=True), params)
    assert [p.name for p in (tmp_path / "c" / "clips").iterdir()] == ["event-0001.mp4"]


def test_clips_cut_from_an_h264_file(tmp_path, caplog):
    """A source file whose codec an MP4 holds: the clip is cut from it (no re-encoding), from the
    key frame at or before start - pre_capture to end + post_capture; a file that cannot be cut
    any more (replaced by an MJPG AVI) gives a warning and no clip.  Planted: clip_source for a
    file of another codec or without --clips, `start_time + pre_s`, `end_time - post_s`, the
    clip's name not kept (removed as stale), the warning, a clip path for a failed cut."""
    from kl_motion.h264 import H264Sink
    frames = moving(30, range(10, 14))
    src = tmp_path / "src.mp4"
    sink = H264Sink(src, 25.0, gop_seconds=0.04)          # every frame a key frame: cuts to the frame
    for f in frames:
        sink.write(f)
    sink.close(True)
    avi = tmp_path / "src.avi"
    vw = cv2.VideoWriter(str(avi), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (32, 24))
    for f in frames:
        vw.write(f)
    vw.release()
    params = P.replace(pre_capture=0.10, post_capture=0.22)    # [0.26, 0.70] s: frames 7 (0.24) to 18 (0.68)
    opt = Options(clips=True, report=False)
    assert Outputs(output_paths(tmp_path / "x", opt), opt, 25.0, params, source_file=str(avi)).clip_source is None
    assert Outputs(output_paths(tmp_path / "y", Options()), Options(), 25.0, params,
                   source_file=str(src)).clip_source is None
    o = drive(tmp_path / "o", frames, opt, params, source_file=str(src))
    assert o.clip_source == str(src) and o._written == {"event-0001.mp4"}
    assert clip_frames(tmp_path / "o" / "clips" / "event-0001.mp4") == list(range(7, 19))
    assert jsonl(tmp_path / "o" / "events.jsonl")[1]["clip"] == "clips/event-0001.mp4"

    class Swap(Outputs):
        def _end_clip(self, ev):
            Path(self.clip_source).write_bytes(avi.read_bytes())    # the file changed under us
            return super()._end_clip(ev)

    out = tmp_path / "s"
    out.mkdir()
    o = Swap(output_paths(out, opt), opt, 25.0, params, source_file=str(src))
    o.source = "s"
    an = Analyzer(Bright(params), fps=25.0)
    with caplog.at_level(logging.INFO, logger="kl_motion"):
        for i, f in enumerate(frames, 1):
            a = an.analyze(f, (i - 1) / 25, i)
            o.handle(Item(i, (i - 1) / 25, f, a.mask, a.kl, a.blobs, a.fg_fraction, a.events, False, False, a.event_id))
        o.handle(end_item(an.finish()))
        o.close(True)
    assert caplog.messages == ["s: could not cut event 1's clip from the file"]
    assert "clip" not in jsonl(out / "events.jsonl")[1] and not (out / "clips" / "event-0001.mp4").exists()


def test_without_boxes_and_at_30_fps(tmp_path):
    """--no-boxes on frames with blobs; an input at 30 fps, whose times have more than two decimals.
    Planted: `self.boxes is not None or it.blobs` (None.line), the start record's time rounded to 3
    digits."""
    o = drive(tmp_path / "o", moving(12, range(5, 9)), Options(boxes=False, report=False), fps=30.0)
    assert not (tmp_path / "o" / "boxes.csv").exists() and o.closed_outputs[-1].endswith("events.jsonl")
    start, end = jsonl(tmp_path / "o" / "events.jsonl")
    assert start["start_time"] == end["start_time"] == round(4 / 30, 4) == 0.1333
