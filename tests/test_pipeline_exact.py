"""One input's processing (kl_motion/pipeline.py), in-process and exact (issue 17: the mutation
run of pipeline.py; each test names in its docstring the bugs it was checked against: the
mutant, or the same change made by hand, failed it).

The inputs are real files: folders of 32x24 PNG images (lossless, so every pixel is known), MJPG
AVI files and an MJPEG stream served on 127.0.0.1 (tests/mjpeg_server.py).  The detector is
``Bright``, a real detector object with the Detector interface whose foreground is every pixel
brighter than 128: with it the frames of each event, its peak and its box are known exactly, and
the run needs no numba kernel.  One thing is faked in two tests: the frame count a source
announces (a wrapper around a real FolderSource), to put the "video ended early" rule on its
boundary.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from kl_motion import pipeline
from kl_motion.analyzer import SimpleResult
from kl_motion.errors import KLMotionError
from kl_motion.outputs import InputReport, Options
from kl_motion.params import Params
from kl_motion.postprocess import Blob
from kl_motion.sources import FolderSource, VideoInfo
from kl_motion.timefmt import Position

from mjpeg_server import MJPEGServer

H, W = 24, 32
BG = 40


class Bright:
    """Foreground = pixels brighter than 128 (green channel of colour frames), shadow (127) those of
    101..128; blobs = the foreground's connected components; kl = the grey level / 255.  Counts
    its resets and relearns."""

    def __init__(self, params: Params | None = None):
        self.params = params or P
        self.resets = self.relearns = 0
        self.fail_at = None          # (frame number, exception) raised by apply
        self.n = 0

    def apply(self, frame):
        self.n += 1
        if self.fail_at and self.n == self.fail_at[0]:
            raise self.fail_at[1]
        g = frame if frame.ndim == 2 else frame[:, :, 1]
        mask = np.where(g > 128, 255, np.where(g > 100, 127, 0)).astype(np.uint8)     # 101..128: shadow
        _, _, st, _ = cv2.connectedComponentsWithStats((mask == 255).astype(np.uint8), connectivity=8)
        blobs = [Blob(int(x), int(y), int(w), int(h), int(a)) for x, y, w, h, a in st[1:]]
        return SimpleResult(mask, blobs, kl=g.astype(np.float32) / 255.0)

    def reset(self):
        self.resets += 1

    def relearn(self):
        self.relearns += 1

    def background(self):
        return None

    def set_params(self, **changes):
        self.params = self.params.replace(**changes) if hasattr(self.params, "replace") else self.params
        return self.params


# events: 2 motion frames start one, 0.2 s (5 frames at 25 fps) without motion end it
P = Params(event_start_frames=2, event_gap=0.2, warmup_frames=0, pre_capture=0.0, post_capture=0.0)


def frame(box=None, size=(W, H), colour=False, level=230):
    w, h = size
    f = np.full((h, w), BG, np.uint8)
    if box is not None:
        x, y, bw, bh = box
        f[y:y + bh, x:x + bw] = level
    return cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if colour else f


def folder(path: Path, frames) -> Path:
    path.mkdir(parents=True)
    for i, f in enumerate(frames):
        assert cv2.imwrite(str(path / f"{i + 1:04d}.png"), f)
    return path


def video(path: Path, frames, fps=25.0) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    for f in frames:
        vw.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    vw.release()
    return path


def scene(n, boxes: dict[int, tuple]):
    """n frames; ``boxes``: 1-based frame number -> (x, y, w, h) of a bright box."""
    return [frame(boxes.get(i + 1)) for i in range(n)]


def run(spec, out, opt=None, detector=None, **kw):
    return pipeline.process_input(str(spec), out, P, opt or Options(report=False), detector=detector or Bright(),
                                  **kw)


def stats(out: Path) -> list[list[str]]:
    return [r.split(",") for r in (out / "stats.csv").read_text().splitlines()[1:]]


def events(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# ------------------------------------------------------------------------------------ small parts
def test_the_compile_notice_is_said_once(monkeypatch, caplog):
    """Planted: `if not ...acquire(...)` (said from the second call on), `blocking=True` (the
    second call waits forever)."""
    monkeypatch.setattr(pipeline, "_compile_notice", threading.Lock())
    with caplog.at_level(logging.INFO, logger="kl_motion"):
        pipeline._say_compiling()
        assert len(caplog.messages) == 1
        pipeline._say_compiling()
        pipeline._say_compiling()
    assert caplog.messages == ["compiling the detector's numba kernels: the first run on this machine takes half a "
                               "minute or more, later runs load them from numba's cache"]


def test_chunk_info_defaults():
    """Planted: any default of ChunkInfo changed (0 -> 1 / -1, lead_boxes shared)."""
    a, b = pipeline.ChunkInfo(), pipeline.ChunkInfo()
    assert (a.lead_events, a.head, a.tail_id, a.lead_boxes, a.pixels) == (0, None, 0, [], 0)
    a.lead_boxes.append(1)
    assert b.lead_boxes == []


def test_input_names(tmp_path):
    """Planted: camera name, the scheme/credentials pattern (case, user@), the 80-character cut,
    'stream' for an empty name, an `input` folder named after its parent (and a bare `input`),
    the stem of a file or its name when it has none."""
    assert pipeline.input_name("0") == "camera0" and pipeline.input_name("12") == "camera12"
    assert pipeline.input_name("RTSP://user:pw@10.0.0.5:554/live/ch1?x=1") == "10.0.0.5_554_live_ch1_x_1"
    assert pipeline.input_name("http://cam@host/a b") == "host_a_b"
    assert pipeline.input_name("rtsp://" + "h" * 100) == "h" * 80
    assert pipeline.input_name("rtsp://@") == "stream"
    assert pipeline.input_name("rtsp://u:p@//__") == "stream"
    (tmp_path / "seq" / "input").mkdir(parents=True)
    (tmp_path / "plain").mkdir()
    assert pipeline.input_name(str(tmp_path / "seq" / "input")) == "seq"
    assert pipeline.input_name(str(tmp_path / "seq" / "input") + "/") == "seq"
    assert pipeline.input_name(str(tmp_path / "plain")) == "plain"
    assert pipeline.input_name(str(tmp_path / "seq" / "input" / "..")) == "seq"
    assert pipeline.input_name("/input") == "input"
    assert pipeline.input_name(str(tmp_path / "clip.v1.avi")) == "clip.v1"
    assert pipeline.input_name(str(tmp_path / ".hidden")) == ".hidden"


def test_format_change():
    """Planted: width and height swapped, the size compared wrongly (`==`), grey for len 3 or
    for 3 channels, 'colour' for one channel."""
    f = pipeline._format_change
    assert f((24, 32), (30, 40)) == ("size", "32x24", "40x30")
    assert f((24, 32, 3), (24, 40, 3)) == ("size", "32x24", "40x24")
    assert f((24, 32, 3), (24, 32)) == ("format", "32x24 colour", "32x24 grey")
    assert f((24, 32, 1), (24, 32, 3)) == ("format", "32x24 grey", "32x24 colour")
    assert f((24, 32, 4), (24, 32, 1)) == ("format", "32x24 colour", "32x24 grey")


def test_add_to_head():
    """Planted: `w <= 1` (a box one pixel wide replaced), `y - h` for the box's bottom, motion_frames not counted or by 2, the peak
    taken on `>=` / `<`, peak not updated,
    the first box kept when w or h is 0 (`and`, `< 0`), the union's min/max or width/height wrong,
    a frame without blobs changing the box."""
    head = dict(id=3, motion_frames=0, peak_pixels=0, peak_frame=0, peak_time=0.0, box=[0, 0, 0, 0])

    def a(area, index, blobs):
        return types.SimpleNamespace(area=area, index=index, time=index / 10, blobs=blobs)

    pipeline._add_to_head(head, a(20, 5, [Blob(10, 4, 5, 4, 20)]))
    assert head == dict(id=3, motion_frames=1, peak_pixels=20, peak_frame=5, peak_time=0.5, box=[10, 4, 5, 4])
    pipeline._add_to_head(head, a(20, 6, [Blob(2, 8, 3, 10, 20)]))        # the same area: not a new peak
    assert head == dict(id=3, motion_frames=2, peak_pixels=20, peak_frame=5, peak_time=0.5, box=[2, 4, 13, 14])
    pipeline._add_to_head(head, a(21, 7, []))                              # no blob: the box stays
    assert head == dict(id=3, motion_frames=3, peak_pixels=21, peak_frame=7, peak_time=0.7, box=[2, 4, 13, 14])
    pipeline._add_to_head(head, a(5, 8, [Blob(20, 1, 2, 2, 4), Blob(0, 20, 1, 1, 1)]))
    assert head == dict(id=3, motion_frames=4, peak_pixels=21, peak_frame=7, peak_time=0.7, box=[0, 1, 22, 20])
    for empty in ([0, 0, 0, 5], [0, 0, 5, 0]):      # a head box of no width or no height is replaced
        h2 = dict(head, box=list(empty))
        pipeline._add_to_head(h2, a(1, 9, [Blob(7, 7, 2, 3, 6)]))
        assert h2["box"] == [7, 7, 2, 3]
    h2 = dict(head, box=[5, 5, 1, 1])                  # one pixel: a box, united
    pipeline._add_to_head(h2, a(1, 9, [Blob(7, 7, 2, 3, 6)]))
    assert h2["box"] == [5, 5, 4, 5]
    h2 = dict(head, box=[0, 0, 10, 10])               # a blob inside the box: the box stays
    pipeline._add_to_head(h2, a(1, 9, [Blob(2, 2, 2, 2, 4)]))
    assert h2["box"] == [0, 0, 10, 10]


def test_finished_report(tmp_path):
    """Planted: `started < since` / `<=`, the default 0 of started, a field dropped or an unknown
    key passed on, an unreadable, missing or broken summary raising instead of None."""
    d = tmp_path / "o"
    d.mkdir()
    assert pipeline.finished_report(str(d), 100.0) is None                     # no summary
    (d / "summary.json").write_text(json.dumps(dict(started=100.0, input="a", name="n", status="ok", frames=7,
                                                    events=2, seconds=1.5, fps=4.67, params={}, outputs=["x"])))
    r = pipeline.finished_report(str(d), 100.0)
    assert r == InputReport(input="a", name="n", status="ok", frames=7, events=2, seconds=1.5, outputs=["x"])
    assert pipeline.finished_report(str(d), 100.001) is None                   # written before `since`
    (d / "summary.json").write_text(json.dumps(dict(input="a")))
    assert pipeline.finished_report(str(d), 0.0) == InputReport(input="a")   # no time: 0, not before 0
    assert pipeline.finished_report(str(d), 1e-9) is None
    (d / "summary.json").write_text("{")
    assert pipeline.finished_report(str(d), 0.0) is None                       # ValueError
    (d / "summary.json").write_text(json.dumps(dict(started=None, input="a")))
    assert pipeline.finished_report(str(d), 0.0) is None                       # TypeError
    (d / "summary.json").write_text(json.dumps(dict(started=5, name="n")))
    assert pipeline.finished_report(str(d), 0.0) is None                       # no input: TypeError
    (d / "summary.json").unlink()
    (d / "summary.json").mkdir()
    assert pipeline.finished_report(str(d), 0.0) is None                       # OSError


class _Src:
    """A real FolderSource whose announced frame count (and seekability) can be changed."""

    def __init__(self, inner, total=None, seekable=None, live=None):
        self.inner = inner
        i = inner.info
        self.info = VideoInfo(i.width, i.height, i.fps, i.total_frames if total is None else total, i.kind, i.name,
                              live=live, seekable=seekable)
        self.seeks, self.closed = [], 0

    def read(self):
        return self.inner.read()

    def __iter__(self):
        return iter(self.inner)

    def seek(self, i):
        self.seeks.append(i)
        self.inner.seek(i)

    def close(self):
        self.closed += 1
        self.inner.close()


def test_range(tmp_path):
    """--start/--end as indices and the lead-in.  Planted: `info.live and not seekable`, `first >
    total`, the message's frame count, `end.frame - 1` / `+ 2`, `end < first`, 'the first frame'
    when --start is given, the default step 0 (division by zero) or 2, `lead_in >= 0`, `lead_in > 1`, lead not a multiple of the step (`* step`
    dropped, `/`), `min(lead_in, first)` as `max`, the seek skipped or to `first + lead`."""
    src = _Src(FolderSource(folder(tmp_path / "f", scene(10, {}))))
    info = src.info

    def r(step=1, **kw):
        src.seeks.clear()
        return pipeline._range(Options(**kw), info, src, step), list(src.seeks)

    assert r() == ((0, None, 0), [])
    assert r(start=Position(frame=3)) == ((3, None, 0), [3])
    assert r(start=Position(seconds=0.2)) == ((5, None, 0), [5])
    assert r(start=Position(frame=9)) == ((9, None, 0), [9])
    with pytest.raises(KLMotionError, match=r"^.*f: --start frame 11 is past the end \(10 frames\)$"):
        r(start=Position(frame=10))
    assert r(end=Position(frame=0)) == ((0, 1, 0), [])
    assert r(end=Position(seconds=0.2)) == ((0, 5, 0), [])
    assert r(start=Position(frame=3), end=Position(frame=3)) == ((3, 4, 0), [3])
    with pytest.raises(KLMotionError, match=r"^--end \(frame 3\) is not after --start \(frame 4\)$"):
        r(start=Position(frame=3), end=Position(frame=2))
    with pytest.raises(KLMotionError, match=r"^--end \(00:00:00.000\) is not after --start \(the first frame\)$"):
        r(end=Position(seconds=0.0))
    assert r(start=Position(frame=7), lead_in=4) == ((7, None, 4), [3])
    assert r(start=Position(frame=7), lead_in=4, step=3) == ((7, None, 3), [4])
    assert r(start=Position(frame=3), lead_in=9, step=2) == ((3, None, 2), [1])
    assert r(start=Position(frame=3), lead_in=1) == ((3, None, 1), [2])
    assert r(start=Position(frame=4), lead_in=4) == ((4, None, 4), [])       # the lead-in from frame 0: no seek
    assert r(lead_in=5) == ((0, None, 0), [])
    assert r(start=Position(frame=3), lead_in=0) == ((3, None, 0), [3])
    unseekable = _Src(src.inner, seekable=False)
    with pytest.raises(KLMotionError, match=r"f: --start needs a file or an image folder$"):
        pipeline._range(Options(start=Position(frame=1)), unseekable.info, unseekable)
    assert pipeline._range(Options(end=Position(frame=1)), unseekable.info, unseekable) == (0, 2, 0)
    live = _Src(src.inner, live=True, seekable=True)
    with pytest.raises(KLMotionError, match=r"f: --start needs a file or an image folder$"):
        pipeline._range(Options(start=Position(frame=1)), live.info, live)
    with pytest.raises(KLMotionError, match=r"f: --end on a camera or stream is a time, not a frame$"):
        pipeline._range(Options(end=Position(frame=1)), live.info, live)
    assert pipeline._range(Options(end=Position(seconds=1.0), lead_in=5), live.info, live) == (0, 25, 0)
    assert pipeline._range(Options(start=Position(frame=5), lead_in=3), info, src) == (5, None, 3)   # step 1
    nototal = _Src(src.inner, total=0)
    assert pipeline._range(Options(start=Position(frame=50)), nototal.info, nototal) == (50, None, 0)
    src.inner.close()


# ------------------------------------------------------------------------------------------- runs
MOVING = {4: (8, 5, 4, 3), 5: (9, 5, 4, 3), 6: (2, 2, 6, 5), 7: (11, 5, 4, 3)}
STATS_14 = [
    "1,0.0000,00:00:00.000,0.000000,0.1569,0.1569,0,0,0,",
    "2,0.0400,00:00:00.040,0.000000,0.1569,0.1569,0,0,0,",
    "3,0.0800,00:00:00.080,0.000000,0.1569,0.1569,0,0,0,",
    "4,0.1200,00:00:00.120,0.015625,0.1685,0.9020,1,1,0,",
    "5,0.1600,00:00:00.160,0.015625,0.1685,0.9020,1,1,0,1",
    "6,0.2000,00:00:00.200,0.039062,0.1860,0.9020,1,1,0,1",
    "7,0.2400,00:00:00.240,0.015625,0.1685,0.9020,1,1,0,1",
    "8,0.2800,00:00:00.280,0.000000,0.1569,0.1569,0,0,0,1",
    "9,0.3200,00:00:00.320,0.000000,0.1569,0.1569,0,0,0,1",
    "10,0.3600,00:00:00.360,0.000000,0.1569,0.1569,0,0,0,1",
    "11,0.4000,00:00:00.400,0.000000,0.1569,0.1569,0,0,0,1",
    "12,0.4400,00:00:00.440,0.000000,0.1569,0.1569,0,0,0,",
    "13,0.4800,00:00:00.480,0.000000,0.1569,0.1569,0,0,0,",
    "14,0.5200,00:00:00.520,0.000000,0.1569,0.1569,0,0,0,",
]


def test_a_folder_run_writes_its_outputs_report_and_summary(tmp_path, caplog):
    """Every frame of a 14-image folder through the real reader, Analyzer and writer.  Planted:
    summary.json indented by 0 or 2,
    the frame time `index * fps` / `(index + 1) / fps`, the 1-based number (`index += 2`), the
    first frame skipped (`% step` reversed), `n == 2` (max_frames off by one), the events count
    `+ lead_events`, `rep.frames = index`, the summary's keys (first_frame `+ 0`, last_frame,
    frame_skip `step + 1`, start/end timecodes, fps_from, params, started), the report written
    when not asked (`not in paths`) or its outputs not added, progress totals and steps, the log
    line's '(--fps to change)', the event source name."""
    src = folder(tmp_path / "cam", scene(14, MOVING))
    calls = []
    t0 = time.time()
    with caplog.at_level(logging.INFO, logger="kl_motion"):
        rep = run(src, tmp_path / "o", Options(), progress=lambda *a: calls.append(a))
    t1 = time.time()
    out = tmp_path / "o"
    assert f"{src}: image folder at 25 fps (--fps to change)" in caplog.messages
    assert calls == [(0, 14)] + [(1, None)] * 14
    assert 0 < rep.seconds < 60
    assert rep == InputReport(input=str(src), name="o", out_dir=str(out), status="ok", frames=14, expected_frames=14,
                              events=1, seconds=rep.seconds, outputs=[str(out / n) for n in (
                                  "mask.mkv", "stats.csv", "events.jsonl", "boxes.csv", "report.html", "motion.png")])
    assert [",".join(r) for r in stats(out)] == STATS_14
    ev = events(out)
    assert [e["type"] for e in ev] == ["start", "end"]
    assert ev[0] == dict(type="start", source="o", input=str(src), id=1, start_frame=4, start_time=0.12,
                         start_timecode="00:00:00.120", box=[8, 5, 5, 3], tracks=[])
    assert {k: ev[1][k] for k in ("source", "id", "start_frame", "end_frame", "peak_pixels", "peak_frame", "box",
                                  "motion_frames")} == dict(source="o", id=1, start_frame=4, end_frame=7,
                                                            peak_pixels=30, peak_frame=6, box=[2, 2, 13, 6],
                                                            motion_frames=4)
    s = summary(out)
    assert t0 <= s.pop("started") <= t1
    assert s.pop("params") == P.to_dict()
    assert s.pop("source") == dict(kind="folder", width=32, height=24, fps=25.0, fps_from="default")
    assert s.pop("range") == dict(first_frame=1, last_frame=14, frame_skip=0, start="00:00:00.000",
                                  end="00:00:00.560")
    assert s == dict(rep.to_dict(), outputs=rep.outputs[:4])      # the report's two files come after it
    text = (out / "summary.json").read_text()
    assert text == json.dumps(json.loads(text), indent=1) + "\n"
    cap = cv2.VideoCapture(str(out / "mask.mkv"))
    assert cap.get(cv2.CAP_PROP_FPS) == 25.0 and cap.get(cv2.CAP_PROP_FRAME_COUNT) == 14
    cap.release()
    rep = run(src, tmp_path / "p", Options(report=False, events=False))
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["boxes.csv", "mask.mkv", "stats.csv",
                                                                  "summary.json"]
    assert rep.events == 1


def test_frame_skip_fps_start_end_and_progress(tmp_path, caplog):
    """--fps on a folder, --frame-skip, --start/--end.  Planted: --fps not taken for a folder (or
    taken for a file), its log line, `step = frame_skip` / `+ 2`, the skip test (`index + 1`,
    `- first_index` dropped), the frame rate of the outputs not divided by the step, `t = index /
    fps` moved, --end's test `>` (one frame more), the progress total's formula (`+ step`, `- step`,
    `* step`, `end_index or total` dropped, `min` of max_frames), the summary's range."""
    src = folder(tmp_path / "cam", scene(14, MOVING))
    calls = []
    with caplog.at_level(logging.INFO, logger="kl_motion"):
        rep = run(src, tmp_path / "a", Options(report=False, fps=10, frame_skip=1), progress=lambda *a: calls.append(a))
    assert f"{src}: image folder at 10 fps" in caplog.messages
    assert calls == [(0, 7)] + [(1, None)] * 7 and rep.frames == 7
    assert [(r[0], r[1], r[2]) for r in stats(tmp_path / "a")] == [
        (str(i), f"{(i - 1) / 10:.4f}", f"00:00:0{(i - 1) // 10}.{(i - 1) % 10}00") for i in range(1, 15, 2)]
    s = summary(tmp_path / "a")
    assert s["source"] == dict(kind="folder", width=32, height=24, fps=10.0, fps_from="--fps")
    assert s["range"] == dict(first_frame=1, last_frame=14, frame_skip=1, start="00:00:00.000", end="00:00:01.400")
    cap = cv2.VideoCapture(str(tmp_path / "a" / "mask.mkv"))
    assert cap.get(cv2.CAP_PROP_FPS) == 5.0
    cap.release()

    calls.clear()
    rep = run(src, tmp_path / "b", Options(report=False, start=Position(frame=3), end=Position(frame=10), frame_skip=2),
              progress=lambda *a: calls.append(a))
    assert calls == [(0, 3)] + [(1, None)] * 3
    assert [r[0] for r in stats(tmp_path / "b")] == ["4", "7", "10"] and rep.status == "ok" and rep.message == ""
    assert summary(tmp_path / "b")["range"] == dict(first_frame=4, last_frame=11, frame_skip=2,
                                                    start="00:00:00.120", end="00:00:00.440")
    for kw, total, rows in ((dict(end=Position(frame=10)), 11, 11), (dict(start=Position(frame=12)), 2, 2),
                            (dict(max_frames=5), 5, 5), (dict(max_frames=50), 14, 14),
                            (dict(max_frames=3, frame_skip=1), 3, 3), (dict(frame_skip=2), 5, 5),
                            (dict(start=Position(frame=1), frame_skip=3), 4, 4)):
        calls.clear()
        o = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        rep = run(src, o, Options(report=False, **kw), progress=lambda *a: calls.append(a))
        assert calls == [(0, total)] + [(1, None)] * rows, kw
        assert rep.frames == rows and len(stats(o)) == rows and rep.status == "ok", kw


def test_fps_on_a_file_is_refused_with_a_warning(tmp_path, caplog):
    """Planted: --fps taken for a file (`or` for `and`), the warning dropped or its frame rate, the
    summary's fps_from for a file."""
    v = video(tmp_path / "clip.avi", scene(6, MOVING))
    with caplog.at_level(logging.INFO, logger="kl_motion"):
        rep = run(v, tmp_path / "o", Options(report=False, fps=10))
    assert rep.status == "ok" and rep.frames == 6
    assert caplog.messages == [f"{v}: --fps applies to image folders; this file has its own frame rate (25 fps)"]
    assert summary(tmp_path / "o")["source"] == dict(kind="file", width=32, height=24, fps=25.0, fps_from="file")
    assert [r[1] for r in stats(tmp_path / "o")][-1] == "0.2000"


def test_a_lead_in_is_analysed_not_written_and_fills_the_chunk_info(tmp_path):
    """A chunk (--start with a lead-in): event 1 ends inside the lead-in, event 2 starts there
    and is open at the first written frame.  Planted: lead-in frames written (`index < first`),
    their boxes not given to the tracker, `n == 1 and not lead`, lead_events `+ 1`, head not
    made (`act is None`) or with another id, _add_to_head skipped (`!=`, `or`), tail_id, pixels
    (`shape[0] + shape[1]`, `shape[0] * shape[0]`), rep.events not less the lead-in's."""
    boxes = {2: (3, 3, 4, 4), 3: (3, 3, 4, 4)}
    boxes.update({i: (5 + i % 3, 6, 5, 4) for i in range(10, 17)})
    boxes[15] = (1, 1, 9, 9)
    src = folder(tmp_path / "cam", scene(24, boxes))
    chunk = pipeline.ChunkInfo()
    rep = run(src, tmp_path / "o", Options(report=False, start=Position(frame=12), lead_in=12), chunk=chunk)
    assert rep.status == "ok" and rep.frames == 12 and rep.events == 1
    rows = stats(tmp_path / "o")
    assert [r[0] for r in rows] == [str(i) for i in range(13, 25)]
    assert [r[-1] for r in rows] == ["2"] * 8 + [""] * 4
    assert [e["type"] for e in events(tmp_path / "o")] == ["end"] and events(tmp_path / "o")[0]["id"] == 2
    assert chunk.lead_events == 1 and chunk.tail_id == 0 and chunk.pixels == H * W
    assert chunk.head == dict(id=2, motion_frames=4, peak_pixels=81, peak_frame=15, peak_time=0.56, box=[1, 1, 11, 9])
    assert chunk.lead_boxes == [(2, [5, 6, 5, 4])]     # track 1: the lead-in's first event
    assert summary(tmp_path / "o")["range"] == dict(first_frame=13, last_frame=24, frame_skip=0,
                                                    start="00:00:00.480", end="00:00:00.960")

    chunk = pipeline.ChunkInfo()         # an event still open at the end: its id; no lead-in: no head
    rep = run(src, tmp_path / "p", Options(report=False, start=Position(frame=12), end=Position(frame=14)),
              chunk=chunk)
    assert rep.events == 1 and chunk.lead_events == 0 and chunk.head is None and chunk.tail_id == 1
    assert chunk.lead_boxes == [] and chunk.pixels == H * W
    assert [e["type"] for e in events(tmp_path / "p")] == ["start", "end"]


def test_a_size_change_resets_the_model_and_ends_the_open_event(tmp_path, caplog):
    """Planted: the reset not counted or its warning (sizes swapped), the events it ended not
    written (`if not a.ended_before`), the light switch's log line, the shape remembered from the
    first frame only, chunk.pixels of the first size."""
    frames = [frame(MOVING.get(i)) for i in range(1, 8)]
    frames += [frame((10, 10, 30, 20), size=(40, 30), level=250)] + [frame(size=(40, 30)) for _ in range(4)]
    src = folder(tmp_path / "cam", frames)
    det = Bright()
    chunk = pipeline.ChunkInfo()
    with caplog.at_level(logging.INFO, logger="kl_motion"):
        rep = run(src, tmp_path / "o", detector=det, chunk=chunk)
    assert rep.status == "ok" and rep.resets == 1 and det.resets == 1 and rep.events == 1
    assert f"{src}: frame size changed from 32x24 to 40x30 at frame 8; model reset" in caplog.messages
    ev = events(tmp_path / "o")
    assert [(e["type"], e["id"]) for e in ev] == [("start", 1), ("end", 1)] and ev[1]["end_frame"] == 7
    assert chunk.pixels == 40 * 30
    caplog.clear()
    frames = [frame() for _ in range(4)] + [frame((0, 0, W, H))] * 3 + [frame() for _ in range(3)]
    src = folder(tmp_path / "sw", frames)
    det = Bright()
    with caplog.at_level(logging.INFO, logger="kl_motion"):
        rep = run(src, tmp_path / "s", Options(report=False, frame_skip=1), detector=det)
    assert rep.lightswitches == 1 and det.relearns == 1 and rep.resets == 0
    assert f"{src}: light switch at frame 3; re-learning" in caplog.messages     # the 3rd processed frame (5th)
    assert [r[8] for r in stats(tmp_path / "s")] == ["0", "0", "1", "0", "0"]


def test_outputs_that_exist_stop_unless_forced_and_a_stop_before_is_not_started(tmp_path):
    """Planted: check_new given force reversed, the 'not started' report for a set stop (`if not
    stop.is_set()`), its status or message, an out folder made for it."""
    src = folder(tmp_path / "cam", scene(3, {}))
    assert run(src, tmp_path / "o").status == "ok"
    rep = run(src, tmp_path / "o")
    assert (rep.status, rep.message) == ("failed", f"{tmp_path / 'o' / 'mask.mkv'} exists (use --force to overwrite)")
    assert run(src, tmp_path / "o", Options(report=False, force=True)).status == "ok"
    stop = threading.Event()
    stop.set()
    rep = run(src, tmp_path / "n", stop=stop)
    assert (rep.status, rep.message, rep.frames, rep.seconds) == ("interrupted", "not started", 0, 0.0)
    assert not (tmp_path / "n").exists()


def test_failures_are_reports_with_one_line(tmp_path, monkeypatch):
    """Planted: the KLMotionError branch not catching (or its message without the redaction), the
    seconds of a failed input (`+ t0`, `if rep.seconds`), an internal error raised instead of
    reported or its message, KL_MOTION_DEBUG ignored, a KeyboardInterrupt turned into a report,
    the seconds of the loop `+ tstart`, `ok = True` after an exception in the loop (outputs renamed,
    summary written)."""
    rep = run(tmp_path / "missing.avi", tmp_path / "o")
    assert (rep.status, rep.message) == ("failed", f"{tmp_path / 'missing.avi'}: no such file")
    assert 0 < rep.seconds < 60
    src = folder(tmp_path / "cam", scene(6, MOVING))
    det = Bright()
    det.fail_at = (3, ValueError("boom"))
    rep = run(src, tmp_path / "b", detector=det)
    assert (rep.status, rep.message, rep.frames) == ("failed", "internal error: ValueError: boom", 3)
    assert 0 < rep.seconds < 60
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["mask.part.mkv", "stats.part.csv"]   # no summary
    monkeypatch.setenv("KL_MOTION_DEBUG", "1")
    det = Bright()
    det.fail_at = (3, ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        run(src, tmp_path / "c", detector=det)
    monkeypatch.delenv("KL_MOTION_DEBUG")
    det = Bright()
    det.fail_at = (2, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run(src, tmp_path / "d", detector=det)
    rep = run(src, tmp_path / "e")
    assert rep.status == "ok" and 0 < rep.seconds < 60
    rep = pipeline.process_input(str(src), tmp_path / "f", P, Options(method="nonsense"))
    assert (rep.status, rep.message) == ("failed", "unknown detector 'nonsense' (known: kl_motion, mog2, mog2-raw, "
                                               "knn, knn-raw)")


def test_the_source_is_closed_when_the_run_cannot_start(tmp_path, monkeypatch):
    """Planted: src.close() dropped after a bad --start (_range raising) or a detector that cannot
    be made, or after the run (`if alive`)."""
    src = folder(tmp_path / "cam", scene(4, {}))
    made = []

    def open_input(spec, opt, stop):
        made.append(_Src(FolderSource(spec)))
        return made[-1]

    monkeypatch.setattr(pipeline, "open_input", open_input)
    rep = run(src, tmp_path / "a", Options(report=False, start=Position(frame=9)))
    assert rep.status == "failed" and rep.message == f"{src}: --start frame 10 is past the end (4 frames)"
    assert made[-1].closed == 1
    rep = pipeline.process_input(str(src), tmp_path / "b", P, Options(report=False, method="nonsense"))
    assert rep.status == "failed" and made[-1].closed == 1
    rep = run(src, tmp_path / "c", Options(report=False))
    assert rep.status == "ok" and made[-1].closed == 1


def test_how_a_file_or_folder_ends(tmp_path, monkeypatch):
    """The status of a file or folder read to its end.  Planted: the "video ended early" rule's
    margin (`max(3, ...)`, `max(1, ...)`, 0.02 as 1.02 or -0.98, `<=`), `total = min(total, end)`
    skipped or `max`, `end is None`, the max_frames return skipped, a read error's status
    (`if not n`) and message, the interruption's message."""
    f10 = FolderSource(folder(tmp_path / "ten", scene(10, {})))
    f157 = FolderSource(folder(tmp_path / "many", scene(157, {})))
    announced = {}

    def open_input(spec, opt, stop):
        inner = f10 if spec.endswith("ten") else f157
        inner.seek(0)
        return _Src(inner, total=announced[spec])

    monkeypatch.setattr(pipeline, "open_input", open_input)
    ten, many = str(tmp_path / "ten"), str(tmp_path / "many")

    def status(spec, total, **kw):
        announced[spec] = total
        o = tmp_path / f"o{len(list(tmp_path.iterdir()))}"
        rep = pipeline.process_input(spec, o, P, Options(mask=False, report=False, **kw), detector=Bright())
        return rep.status, rep.message

    assert status(ten, 12) == ("ok", "")
    assert status(ten, 13) == ("truncated", "video ended early: read 10 of 13 frames (truncated or corrupt file); "
                                            "outputs cover what was read")
    assert status(many, 160) == ("ok", "")
    assert status(many, 161)[0] == "truncated"
    assert status(ten, 13, end=Position(frame=9)) == ("ok", "")
    assert status(ten, 40, end=Position(frame=12)) == ("truncated", "video ended early: read 10 of 13 frames "
                                                                     "(truncated or corrupt file); outputs cover "
                                                                     "what was read")
    assert status(ten, 13, max_frames=10) == ("ok", "")
    assert status(ten, 13, max_frames=11)[0] == "truncated"
    assert status(ten, 0) == ("ok", "")
    f10.close()
    f157.close()


def test_a_read_error_or_a_stop_during_the_run(tmp_path):
    """Planted: a read error's status (`if not n`: 'failed' after frames, 'truncated' before any)
    and message, the interruption's message and status, the outputs of a stopped run not renamed
    (ok False)."""
    src = folder(tmp_path / "cam", scene(5, {}))
    (src / "0003.png").write_bytes(b"not a png")
    rep = run(src, tmp_path / "a")
    assert rep.status == "truncated" and rep.frames == 2
    assert rep.message.startswith("read error after 2 frames: ") and "0003.png" in rep.message
    rep = run(src, tmp_path / "b", Options(report=False, start=Position(frame=2)))
    assert rep.status == "failed" and rep.frames == 0 and rep.message.startswith("read error after 0 frames: ")
    stop = threading.Event()
    seen = []

    def progress(step, total):
        seen.append(step)
        if len(seen) == 3:
            stop.set()

    src = folder(tmp_path / "long", scene(30, {}))
    rep = run(src, tmp_path / "c", stop=stop, progress=progress)
    assert (rep.status, rep.message, rep.frames) == ("interrupted", "interrupted after 2 frames; outputs closed", 2)
    assert (tmp_path / "c" / "mask.mkv").is_file() and len(stats(tmp_path / "c")) == 2


def test_a_report_that_cannot_be_written_is_a_warning(tmp_path, monkeypatch, caplog):
    """Planted: the report's exception not caught (the run failed), its warning."""
    def boom(*a, **k):
        raise RuntimeError("no room")

    monkeypatch.setattr(pipeline, "write_report", boom)
    src = folder(tmp_path / "cam", scene(3, {}))
    with caplog.at_level(logging.INFO, logger="kl_motion"):
        rep = run(src, tmp_path / "o", Options())
    assert rep.status == "ok" and "o: report not written: no room" in caplog.messages
    assert not any(p.endswith(".html") for p in rep.outputs)


# ----------------------------------------------------------------------------------------- streams
def _jpeg(i: int) -> bytes:
    return cv2.imencode(".jpg", frame((8, 4, 16, 12) if 2 <= i % 40 <= 5 else None, colour=True),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def test_a_stream_runs_on_wall_clock_time_and_ends(tmp_path):
    """An MJPEG stream on 127.0.0.1, 10 frames per connection.  Planted: a stream opened without
    reconnecting when asked (`if not opt.reconnect`), the live branch not taken (times from the
    frame number), the first frame's time not 0 (`t_live0 is not None`), wall0 not set (no
    start_utc), the status and message of an ended stream and of one whose reconnect gave up,
    --max-frames and --end on a stream (`t > end`, at_end not set), the summary's end time and
    fps_from, the progress total of a stream (`total or ...`: min(None, ...) with --end)."""
    with MJPEGServer(frames_per_connection=10, connections=1, fps=50, frame=_jpeg) as srv:
        calls = []
        rep = run(srv.url, tmp_path / "a", Options(report=False, stream_timeout=5), progress=lambda *a: calls.append(a))
    assert (rep.status, rep.message, rep.frames, rep.expected_frames) == ("ended", "stream ended after 10 frames",
                                                                          10, None)
    assert calls == [(0, None)] + [(1, None)] * 10
    times = [float(r[1]) for r in stats(tmp_path / "a")]
    assert times[0] == 0.0 and all(b >= a for a, b in zip(times, times[1:])) and 0 < times[-1] < 30
    ev = events(tmp_path / "a")
    assert [e["type"] for e in ev] == ["start", "end"] and ev[0]["start_frame"] == 3
    assert ev[0]["start_utc"].endswith("+00:00") and ev[1]["end_utc"] >= ev[1]["start_utc"] == ev[0]["start_utc"]
    s = summary(tmp_path / "a")
    assert s["source"]["kind"] == "stream" and s["source"]["fps_from"] == "stream"
    assert s["range"]["end"].startswith("00:00:") and abs(float(s["range"]["end"][6:]) - times[-1]) <= 0.0011
    assert s["range"]["last_frame"] == 10

    with MJPEGServer(frames_per_connection=10, connections=1, fps=50, frame=_jpeg) as srv:
        rep = run(srv.url, tmp_path / "b", Options(report=False, stream_timeout=5, reconnect=True,
                                                   reconnect_attempts=1, reconnect_delay=0.05))
    assert (rep.status, rep.message, rep.frames) == ("ended", "stream ended after 10 frames (reconnect gave up)", 10)

    with MJPEGServer(frames_per_connection=40, connections=1, fps=50, frame=_jpeg) as srv:
        calls.clear()
        rep = run(srv.url, tmp_path / "c", Options(report=False, stream_timeout=5, max_frames=4),
                  progress=lambda *a: calls.append(a))
    assert (rep.status, rep.message, rep.frames) == ("ok", "stopped after --max-frames 4", 4)
    assert calls == [(0, 4)] + [(1, None)] * 4

    with MJPEGServer(frames_per_connection=40, connections=1, fps=50, frame=_jpeg) as srv:
        calls.clear()
        rep = run(srv.url, tmp_path / "d", Options(report=False, stream_timeout=5, end=Position(seconds=0.1)),
                  progress=lambda *a: calls.append(a))
    assert calls[0] == (0, None)
    assert rep.status == "ok" and rep.message == f"stopped at --end 00:00:00.100 after {rep.frames} frames"
    # stats.csv holds times to 4 decimals: a frame just before 0.1 s (0.09996) is written 0.1000
    assert 1 <= rep.frames < 40 and float(stats(tmp_path / "d")[-1][1]) <= 0.1


def test_a_stream_that_cannot_open_fails_without_its_password(tmp_path):
    """Planted: the spec not replaced by its redacted form in the message (or the input)."""
    from servers import free_port
    url = f"http://user:secret@127.0.0.1:{free_port()}/s.mjpg"
    rep = run(url, tmp_path / "o", Options(report=False, stream_timeout=1))
    assert rep.status == "failed" and "secret" not in rep.message + rep.input
    assert rep.input == url.replace("secret", "***") and rep.message.startswith(rep.input + ": ")


def test_finish_report_defaults():
    """_finish_report's defaults: nothing read, not stopped by --end.  Planted: `index: int = 1`,
    `at_end: bool = True`."""
    rep = InputReport("x")
    info = VideoInfo(32, 24, 25.0, 10, "file", "x")
    pipeline._finish_report(rep, info, None, threading.Event(), Options(), None)
    assert (rep.status, rep.message) == ("truncated", "video ended early: read 0 of 10 frames (truncated or corrupt "
                                                      "file); outputs cover what was read")
    rep = InputReport("x")
    pipeline._finish_report(rep, VideoInfo(32, 24, 25.0, None, "stream", "x"), None, threading.Event(), Options(), None)
    assert (rep.status, rep.message) == ("ended", "stream ended after 0 frames")


def test_a_chunk_whose_open_event_has_no_more_motion(tmp_path):
    """An event open at the first written frame that never moves again in the chunk: its head
    keeps the starting values.  Planted: any of them changed (peak_pixels -1, peak_frame 1,
    peak_time 1.0, a box corner -1 or 1, motion_frames 1)."""
    src = folder(tmp_path / "cam", scene(16, {i: (3, 3, 4, 4) for i in range(3, 9)}))
    chunk = pipeline.ChunkInfo()
    rep = run(src, tmp_path / "o", Options(report=False, start=Position(frame=8), lead_in=8), chunk=chunk)
    assert rep.status == "ok" and rep.events == 1 and chunk.lead_events == 0
    assert chunk.head == dict(id=1, motion_frames=0, peak_pixels=0, peak_frame=0, peak_time=0.0, box=[0, 0, 0, 0])


def test_clips_of_an_h264_file_are_cut_from_it(tmp_path):
    """A video file whose codec an MP4 holds: its clips are cut from it (from the key frame before
    the event: here the first frame), an image folder's are encoded (from pre_capture before the
    event).  Planted: `info.kind != "file"` for the source file handed to Outputs."""
    from kl_motion.h264 import H264Sink
    frames = scene(30, {i: (8, 4, 16, 12) for i in range(10, 14)})
    sink = H264Sink(tmp_path / "clip.mp4", 25.0)          # one key frame every 2 s: the first
    for f in frames:
        sink.write(f)
    sink.close(True)
    params = P.replace(pre_capture=0.08, post_capture=0.0)
    for spec, first in ((tmp_path / "clip.mp4", 1), (folder(tmp_path / "cam", frames), 8)):
        out = tmp_path / f"o-{spec.name}"
        rep = pipeline.process_input(str(spec), out, params, Options(report=False, clips=True), detector=Bright(params))
        assert rep.status == "ok" and rep.events == 1
        cap = cv2.VideoCapture(str(out / "clips" / "event-0001.mp4"))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        assert n == 13 - first + 1, spec


def test_outputs_that_cannot_be_made_close_the_source_and_the_notifiers(tmp_path, monkeypatch):
    """Outputs that cannot be opened (a file where the bins' folder goes: OSError) fail the input
    with one line; the source and the notifiers already made are closed.  A notifier that cannot
    be made (an empty --on-event) fails it too, with the source closed.  Planted: the OSError
    branch's message (`e.strerror and e`), src.close() or notifiers.close() dropped there (`is
    None`), `notifiers is None` in the other branch (None.close())."""
    from kl_motion import notify
    src = folder(tmp_path / "cam", scene(4, {}))
    made, notes = [], []

    def open_input(spec, opt, stop):
        made.append(_Src(FolderSource(spec)))
        return made[-1]

    def make_notifiers(*a):
        notes.append(notify.make_notifiers(*a))
        return notes[-1]

    monkeypatch.setattr(pipeline, "open_input", open_input)
    monkeypatch.setattr(pipeline, "make_notifiers", make_notifiers)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "bin.part").write_text("a file")
    rep = run(src, tmp_path / "o", Options(report=False, bins=True, on_event="true"))
    assert (rep.status, rep.message) == ("failed", f"cannot write to {tmp_path / 'o'}: Not a directory")
    assert made[-1].closed == 1 and not notes[-1].items[0]._t.is_alive()
    rep = run(src, tmp_path / "p", Options(report=False, on_event=" "))
    assert (rep.status, rep.message) == ("failed", "--on-event: empty command") and made[-1].closed == 1
    rep = run(src, tmp_path / "q", Options(report=False, on_event="true"))
    assert rep.status == "ok" and not notes[-1].items[0]._t.is_alive()       # closed at the end too


def test_end_stops_reading(tmp_path, monkeypatch):
    """--end stops the reading too, not only the processing.  Planted: `continue` for the `break`
    at --end (the rest of the file read for nothing)."""
    src = folder(tmp_path / "cam", scene(40, {}))
    made = []

    class Counting(_Src):
        reads = 0

        def read(self):
            self.reads += 1
            return self.inner.read()

    def open_input(spec, opt, stop):
        made.append(Counting(FolderSource(spec)))
        return made[-1]

    monkeypatch.setattr(pipeline, "open_input", open_input)
    rep = run(src, tmp_path / "o", Options(report=False, queue_size=2, end=Position(frame=2)))
    assert rep.status == "ok" and rep.frames == 3 and made[-1].reads < 20


def test_a_stream_stopped_before_its_first_frame(tmp_path):
    """A stop before any frame of a stream is processed: the summary's end time is 0 and the
    chunk's pixels 0.  Planted: `t = 1.0` before the loop, `else 1` for the pixels of no frame."""
    stop = threading.Event()
    chunk = pipeline.ChunkInfo()
    with MJPEGServer(frames_per_connection=40, connections=1, fps=50, frame=_jpeg) as srv:
        rep = run(srv.url, tmp_path / "o", Options(report=False, stream_timeout=5), stop=stop,
                  progress=lambda i, n: stop.set(), chunk=chunk)
    assert (rep.status, rep.message, rep.frames) == ("interrupted", "interrupted after 0 frames; outputs closed", 0)
    assert summary(tmp_path / "o")["range"]["end"] == "00:00:00.000" and chunk.pixels == 0


def test_frame_skip_below_zero_and_the_light_switch_settling_at_the_processed_rate(tmp_path):
    """The Analyzer gets the rate of the processed frames (source fps / step): the frames after a
    light switch that never count as motion are event_start_frames + half a second of them (2 + 7
    at 12.5 fps).  A negative frame_skip is 0.  Planted: `fps * step` for the Analyzer (27 frames
    suppressed: no event), `max(-1, frame_skip)` (step 0)."""
    frames = [frame() for _ in range(4)] + [frame((0, 0, W, H))] * 2 + [frame() for _ in range(18)]
    frames += [frame((8, 4, 6, 6))] * 8 + [frame() for _ in range(10)]
    src = folder(tmp_path / "cam", frames)
    rep = run(src, tmp_path / "o", Options(report=False, frame_skip=1))
    assert rep.lightswitches == 1 and rep.events == 1 and rep.frames == 21
    assert [r[0] for r in stats(tmp_path / "o") if r[-1]] == ["27", "29", "31", "33", "35"]   # motion from 25 on
    rep = run(src, tmp_path / "n", Options(report=False, frame_skip=-3))
    assert rep.status == "ok" and rep.frames == 42
