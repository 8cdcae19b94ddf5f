"""The detector registry and the Analyzer that process, view and eval share (real frames of the demo clip)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from kl_motion import MotionModel, Params, StateError
from kl_motion.analyzer import Analyzer, canonical, detector_names, make_detector
from kl_motion.errors import ParameterError
from kl_motion.events import EventDetector
from kl_motion.postprocess import clean, zone_mask
from kl_motion.sources import FolderSource, demo_path

DEMO = demo_path() / "input"


@pytest.fixture(scope="module")
def demo_frames():
    with FolderSource(DEMO) as s:
        return list(s)


def test_registry_names_mean_one_thing():
    names = detector_names()
    assert names[:5] == ["kl_motion", "mog2", "mog2-raw", "knn", "knn-raw"]
    assert canonical("KL") == canonical("kl-motion") == "kl_motion"
    assert isinstance(make_detector("kl", Params()), MotionModel)
    with pytest.raises(ParameterError, match="unknown detector 'nosuch'"):
        make_detector("nosuch")
    if not hasattr(cv2, "bgsegm"):
        with pytest.raises(ParameterError, match="needs cv2.bgsegm"):
            make_detector("gsoc-raw")


def test_mog2_is_opencv_plus_our_cleanup_and_zones_and_raw_is_opencv_alone(demo_frames):
    """mog2 = OpenCV MOG2 (history, detect_shadows from the table) then clean() with the zones;
    mog2-raw = OpenCV MOG2 with its defaults, untouched.  Checked against OpenCV run by hand."""
    p = Params(ignore_zones=[[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]])     # the left half is ignored
    ours, raw = make_detector("mog2", p), make_detector("mog2-raw", p)
    ref_ours = cv2.createBackgroundSubtractorMOG2(history=p.history, detectShadows=p.detect_shadows)
    ref_raw = cv2.createBackgroundSubtractorMOG2()
    h, w = demo_frames[0].shape[:2]
    zone = zone_mask(p, w, h)
    left_raw = 0
    for f in demo_frames[:80]:
        a, b = ours.apply(f), raw.apply(f)
        want, _ = clean(ref_ours.apply(f), p, zone)
        assert np.array_equal(a.mask, want)
        assert np.array_equal(b.mask, ref_raw.apply(f))
        assert not a.mask[:, : w // 2 - 1].any()          # the zone holds for mog2 ...
        left_raw += int(np.count_nonzero(b.mask[:, : w // 2 - 1] == 255))
        assert b.area == np.count_nonzero(b.mask == 255) and b.blobs == []
    assert left_raw > 0                                   # ... not for OpenCV alone


def test_analyzer_events_match_the_event_detector_fed_by_hand(demo_frames):
    """The Analyzer is the model + warm-up + light switch + EventDetector; with no light switch on
    the demo, its events are those of an EventDetector fed the same areas after the warm-up."""
    p = Params()
    a = Analyzer(make_detector("kl_motion", p), fps=25.0)
    m = MotionModel(p)
    ev = EventDetector(p, demo_frames[0].shape[0] * demo_frames[0].shape[1])
    for i, f in enumerate(demo_frames, 1):
        got = a.analyze(f, (i - 1) / 25.0)
        r = m.apply(f)
        assert np.array_equal(got.mask, r.mask)
        ev.update(i, (i - 1) / 25.0, r.area, r.blobs, suppressed=i <= p.warmup_frames)
        assert not got.lightswitch
    a.finish()
    ev.finish()
    assert a.events and [e.to_dict() for e in a.events] == [e.to_dict() for e in ev.events]


def test_event_parameters_change_live(demo_frames):
    """set_params on the Analyzer reaches the events on the next frame (the viewer's sliders)."""
    def run(change_at=None, **changes):
        a = Analyzer(make_detector("mog2", Params()), fps=25.0)
        for i, f in enumerate(demo_frames, 1):
            if i == change_at:
                a.set_params(**changes)
            a.analyze(f, (i - 1) / 25.0)
        a.finish()
        return [(e.start_frame, e.end_frame) for e in a.events]

    base = run()
    assert base
    assert run(1, motion_area=0.9) == []                  # nothing covers 90% of the frame
    late = run(1, warmup_frames=base[0][0] + 5)
    assert late and late[0][0] > base[0][0]
    k = base[-1][0] + 10             # the last event is open: from here on no frame is motion
    assert base[-1][1] > k
    cut = run(k, motion_area=0.9)
    assert [e[0] for e in cut] == [e[0] for e in base]        # same starts ...
    assert cut[-1][1] == k - 1                                # ... and the open one ends at the change


def test_frame_size_change_resets_and_ends_the_open_event():
    a = Analyzer(make_detector("mog2-raw", Params(warmup_frames=0, event_start_frames=1, event_gap=100.0)), fps=25.0)
    for i in range(1, 16):
        f = np.full((40, 60, 3), 50, np.uint8)
        if i > 10:
            f[10:30, 5 + i:25 + i] = 250           # a bright square moves in
        r = a.analyze(f, i / 25.0)
    assert r.event_id == 1 and not r.reset
    r = a.analyze(np.zeros((30, 20, 3), np.uint8), 16 / 25.0)
    assert r.reset and [e.id for e in r.ended_before] == [1] and r.event_id == 0


def test_result_background_is_that_of_its_own_frame(demo_frames):
    """FrameResult.background is the background when that frame was processed, not a later one."""
    m = MotionModel()
    for f in demo_frames[:40]:
        m.apply(f)
    kept = m.apply(demo_frames[40], background=True)        # taken at apply time
    lazy = m.apply(demo_frames[41])
    bg41 = m.background().copy()
    assert np.array_equal(lazy.background, bg41)             # newest result: computed on demand, right
    before = kept.background.copy()
    for f in demo_frames[42:90]:
        m.apply(f)
    assert not np.array_equal(m.background(), bg41)          # the model moved on ...
    assert np.array_equal(kept.background, before)           # ... a kept snapshot did not
    assert np.array_equal(lazy.background, bg41)             # nor one read while it was newest
    stale = MotionModel()
    r = stale.apply(demo_frames[0])
    stale.apply(demo_frames[1])
    with pytest.raises(StateError, match="gone"):             # never a later frame's background
        r.background
