"""kl_motion.frames / kl_motion.detect on the bundled demo: the same events as `kl-motion process`, and
masks equal to MotionModel.apply on the same frames."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import kl_motion
from kl_motion import EventDetector, MotionModel, Params, demo_path, detect, frames, open_source
from kl_motion.errors import ParameterError, SourceError

DEMO = demo_path() / "input"


def process_events(source, out, *flags):
    """events.jsonl of `kl-motion process SOURCE FLAGS...`."""
    p = subprocess.run([sys.executable, "-m", "kl_motion", "process", str(source), "--out", str(out), "--no-mask",
                        "--no-stats", "-q", *flags], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (d,) = [d for d in out.iterdir() if d.is_dir()]
    recs = [json.loads(line) for line in (d / "events.jsonl").read_text().splitlines()]
    return [r for r in recs if r.get("type", "end") == "end"]     # one end record per event


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    """The demo played twice: 36 frames (1.4 s) without a moving object between its two passes."""
    d = tmp_path_factory.mktemp("twice") / "input"
    d.mkdir()
    order = list(range(1, 151)) + list(range(1, 151))
    for i, k in enumerate(order, 1):
        (d / f"in{i:06d}.jpg").symlink_to(DEMO / f"in{k:06d}.jpg")
    return d


@pytest.fixture(scope="module")
def demo_frames():
    return list(frames(DEMO))


KEYS = ("id", "start_frame", "end_frame", "start_time", "end_time", "peak_frame", "peak_pixels", "box",
        "motion_frames")


def same_events(events, want):
    assert len(events) == len(want)
    for e, w in zip(events, want):
        got = e.to_dict()
        assert {k: got[k] for k in KEYS} == {k: w[k] for k in KEYS}


def test_detect_gives_the_events_of_process_on_the_demo(tmp_path):
    events = detect(DEMO)
    assert len(events) == 1 and 36 <= events[0].start_frame <= 40     # the car, then the others without a gap
    same_events(events, process_events(DEMO, tmp_path))


def test_detect_gives_the_events_of_process_with_parameters(tmp_path, twice):
    assert len(detect(twice)) == 1                      # the default event_gap (2 s) bridges the 1.4 s
    events = detect(twice, event_gap=0.5)
    assert len(events) == 2, [e.to_dict() for e in events]
    assert 36 <= events[0].start_frame <= 40 and 150 + 36 <= events[1].start_frame <= 150 + 40
    same_events(events, process_events(twice, tmp_path, "--event-gap", "0.5"))


def test_frames_masks_are_motion_model_apply_on_the_same_frames(demo_frames):
    assert [f.index for f in demo_frames] == list(range(1, 151))
    assert [f.time for f in demo_frames] == pytest.approx([i / 25.0 for i in range(150)])
    model = MotionModel(Params())
    with open_source(DEMO) as src:
        for f, image in zip(demo_frames, src, strict=True):
            r = model.apply(image)
            assert np.array_equal(f.image, image)
            assert np.array_equal(f.mask, r.mask), f.index
            assert f.kl is not None and np.array_equal(f.kl, r.kl), f.index
            assert f.boxes == [b.box for b in r.blobs], f.index


def test_frames_motion_flags_and_events_agree_with_detect(demo_frames):
    events = detect(DEMO)
    started = [f.started.id for f in demo_frames if f.started is not None]
    assert started == [e.id for e in events]
    for e in events:
        flags = {f.index: f.motion for f in demo_frames}
        assert flags[e.start_frame] and flags[e.end_frame] and flags[e.peak_frame]
        assert sum(flags[i] for i in range(e.start_frame, e.end_frame + 1)) == e.motion_frames
    assert not any(f.motion for f in demo_frames[:30]), "the learning period is never motion"
    # an EventDetector fed the frames' areas and boxes gives the same events (the exported building block)
    ed = EventDetector(Params(), 320 * 240)
    ended = []
    for f in demo_frames:
        area = int(round(f.fg_fraction * 320 * 240))
        ended += ed.update(f.index, f.time, area, f.boxes, suppressed=f.index <= Params().warmup_frames).ended
    ended += ed.finish()
    assert [(e.start_frame, e.end_frame) for e in ended] == [(e.start_frame, e.end_frame) for e in events]


def test_parameters_reach_the_detector(twice):
    assert detect(DEMO, motion_area=1.0) == []                    # no frame is all motion
    assert len(detect(twice, Params(event_gap=0.5))) == 2         # Params and keywords alike
    assert len(detect(twice, Params(event_gap=0.5), event_gap=2.0)) == 1    # keywords override params
    with pytest.raises(ParameterError):
        frames(DEMO, nosuch=1)                                    # checked at the call
    with pytest.raises(ParameterError):
        detect(DEMO, kl_threshold=-1)


def test_max_frames_and_an_open_source_left_open():
    with open_source(DEMO) as src:
        got = [f.index for f in frames(src, max_frames=5)]
        assert got == [1, 2, 3, 4, 5]
        assert src.read() is not None, "a Source given by the caller stays open"


def test_abandoned_iteration_stops_reading():
    """Breaking out of frames() stops its reader thread and closes the source it opened."""
    import threading
    import time

    def readers():
        return [t for t in threading.enumerate() if t.name == "kl-reader" and t.is_alive()]

    before = len(readers())
    it = frames(DEMO)
    next(it)
    assert len(readers()) == before + 1
    it.close()
    end = time.monotonic() + 5
    while len(readers()) > before and time.monotonic() < end:
        time.sleep(0.05)
    assert len(readers()) == before


def test_bad_source_is_a_source_error(tmp_path):
    with pytest.raises(SourceError):
        detect(tmp_path / "nosuch.mp4")


def test_public_names():
    for name in ("frames", "detect", "MotionFrame", "EventDetector", "Event", "open_source", "Source", "demo_path",
                 "MotionModel", "Params"):
        assert name in kl_motion.__all__ and getattr(kl_motion, name) is not None
