"""The Analyzer and the OpenCV detectors to the pixel and the frame (in-process, synthetic frames of
test_model.noisy_scene and real OpenCV subtractors run by hand): what the mutation run on
analyzer.py found untested.  Each test names the bug it was checked against."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from kl_motion import MotionModel, Params
from kl_motion.analyzer import DETECTORS, Analyzer, OpenCVDetector, describe, gives_kl, make_detector
from kl_motion.errors import ParameterError
from kl_motion.events import settle_frames_for
from kl_motion.postprocess import clean, zone_mask

from test_model import H, W, noisy_scene


def _still_then_square(n=30, at=20, size=(H, W)):
    """Grey frames of a flat scene; from frame ``at`` a bright 10x20 block (rows 10..19, cols 30..49)."""
    h, w = size
    out = []
    for i in range(n):
        f = np.full((h, w, 3), 60, np.uint8)
        if i >= at:
            f[10:20, 30:50] = 240
        out.append(f)
    return out


def test_fg_fraction_counts_the_255_pixels_of_a_wide_frame():
    """SimpleResult.fg_fraction = foreground (255) pixels / pixels, Analysis.fg_fraction = area /
    (H x W), on a frame that is not square.  Planted: `mask.shape[0] * mask.shape[0]` for the
    pixel count (fg_fraction 200/3600 instead of 200/4800), `/` -> `*` and `== 255` -> `!= 255`."""
    a = Analyzer(make_detector("mog2-raw", Params(warmup_frames=0)), fps=25.0)
    for i, f in enumerate(_still_then_square(21, at=20)):     # the block's first frame last
        r = a.analyze(f, i / 25.0)
    fg = int(np.count_nonzero(r.mask == 255))
    assert fg == 200 and r.area == 200                          # the block, nothing else
    assert r.result.fg_fraction == pytest.approx(200 / (H * W))
    assert r.fg_fraction == pytest.approx(200 / (H * W))
    r2 = make_detector("mog2").apply(np.full((H, W, 3), 60, np.uint8))
    assert r2.fg_fraction == 0.0 and r2.area == 0


def test_a_detector_that_has_learned_is_not_restarted_by_a_new_analyzer(tmp_path):
    """An Analyzer given a model that has learned (a loaded state) goes on from there: the first
    frame is not a restart.  Planted: `self._reset = True` in __init__ (frames_seen 1, not 31)."""
    frames, _ = noisy_scene(np.random.default_rng(21), 32)
    m = MotionModel()
    for f in frames[:30]:
        m.apply(f)
    m.save(tmp_path / "bg.npz")
    loaded = MotionModel.load(tmp_path / "bg.npz")
    a = Analyzer(loaded, fps=25.0)
    r = a.analyze(frames[30], 1.2)
    assert loaded.frames_seen == 31 and not r.reset and r.ended_before == []
    assert np.array_equal(r.mask, m.apply(frames[30]).mask)


def test_frame_rate_defaults_to_25_and_refuses_nonsense():
    """fps defaults to 25 (the viewer builds its Analyzer before it knows the source's rate) and a
    rate of 0 or below is 25.  Planted: the default 25.0 -> 26.0 / 24.0, `fps > 0` -> `fps > -1` (-0.5 frames a second taken) or `fps > 1` (0.5 refused)."""
    p = Params()
    assert Analyzer(make_detector("mog2-raw", p), fps=0.5).fps == 0.5      # a time-lapse: valid
    for a in (Analyzer(make_detector("mog2-raw", p)), Analyzer(make_detector("mog2-raw", p), fps=0),
              Analyzer(make_detector("mog2-raw", p), fps=-0.5)):
        assert a.fps == 25.0 and a.light.settle_frames == settle_frames_for(p, 25.0)
    a.set_fps(12.5)
    assert a.fps == 12.5 and a.light.settle_frames == settle_frames_for(p, 12.5) == 3 + 7
    a.set_fps(0)
    assert a.fps == 25.0
    a.set_fps(-0.5)
    assert a.fps == 25.0
    a.set_fps(0.5)
    assert a.fps == 0.5 and a.light.settle_frames == 3 + 1


def test_light_switch_relearns_and_suppresses_the_settling_frames():
    """A lamp turned on (the whole frame 70 grey levels brighter at frame 35): one switch on that
    frame, the model re-learns (the frame after next is background again), the switch frame and the
    next settle_frames_for(p, fps) frames are not motion, no event.  Planted: relearn() not called
    (the frame stays foreground for many frames), the settle length off by one (fps 10 -> 8 frames)."""
    rng = np.random.default_rng(22)
    frames, _ = noisy_scene(rng, 60)
    for i in range(35, 60):
        frames[i] = np.clip(frames[i].astype(np.int16) + 70, 0, 255).astype(np.uint8)
    p = Params()
    a = Analyzer(make_detector("kl_motion", p), fps=10.0)
    rs = [a.analyze(f, i / 10.0) for i, f in enumerate(frames)]
    assert [i for i, r in enumerate(rs) if r.lightswitch] == [35] and a.lightswitches == 1
    settle = settle_frames_for(p, 10.0)
    assert settle == 8
    sup = [i for i, r in enumerate(rs) if r.suppressed and i >= p.warmup_frames]
    assert sup == list(range(35, 35 + settle + 1))
    assert rs[35].fg_fraction > 0.9
    assert max(r.fg_fraction for r in rs[37:]) < 0.01, [round(r.fg_fraction, 3) for r in rs[35:45]]
    assert a.finish() == [] and a.events == []


def test_opencv_detector_takes_a_new_history_on_the_next_frame():
    """mog2's set_params(history=...) reaches OpenCV's subtractor (setHistory) between frames, as an
    OpenCV MOG2 run by hand with the same change.  Planted: `self._tune is not None` -> `is None`
    (the subtractor keeps history 200: a block that stopped stays foreground)."""
    frames = _still_then_square(80, at=20)
    p = Params()
    det = make_detector("mog2", p)
    ref = cv2.createBackgroundSubtractorMOG2(history=p.history, detectShadows=p.detect_shadows)
    plain = cv2.createBackgroundSubtractorMOG2(history=p.history, detectShadows=p.detect_shadows)
    zone = zone_mask(p, W, H)
    differ = False
    for i, f in enumerate(frames):
        if i == 21:
            det.set_params(history=5)
            assert det._sub.getHistory() == 200                # not in the middle of a frame
            ref.setHistory(5)
        got = det.apply(f).mask
        want, _ = clean(ref.apply(f), p.replace(history=5) if i >= 21 else p, zone)
        assert np.array_equal(got, want), i
        differ |= not np.array_equal(got, clean(plain.apply(f), p, zone)[0])
    assert differ                                                 # the new history changed the mask
    assert not det.apply(frames[-1]).mask.any()                   # the stopped block was learned


def test_opencv_detector_takes_new_zones_on_the_next_frame_at_the_same_size():
    """Zones changed while running apply from the next frame although the frame size is the same
    (the cached zone mask is dropped).  Planted: the zone comparison in PendingParams._take_pending
    `!=` -> `==` (the old, empty zone mask stays)."""
    frames = _still_then_square(30, at=20)
    det = make_detector("mog2", Params(warmup_frames=0))
    for f in frames[:22]:
        r = det.apply(f)
    assert np.count_nonzero(r.mask[10:20, 30:50] == 255) > 0
    det.set_params(ignore_zones=[[[0.3, 0.0], [1.0, 0.0], [1.0, 1.0], [0.3, 1.0]]])   # the right 70 %
    r = det.apply(frames[22])
    assert not r.mask.any() and r.blobs == []


def test_registry_describes_and_marks_the_kl_detector():
    """describe() and gives_kl() by any spelling; a cv2.bgsegm name says what it needs.  Planted:
    kl=True/False swapped in DetectorSpec, `n[:-4]` -> `n[:+4]` ("cnt-raw" unknown), DetectorSpec not
    frozen."""
    assert gives_kl("KL") and not gives_kl("mog2") and not gives_kl("knn-raw")
    with pytest.raises(dataclasses.FrozenInstanceError):        # the registry is shared: read-only
        DETECTORS["mog2"].kl = True
    assert describe("kl-motion").startswith("kl_motion:")
    assert describe("mog2") == "OpenCV MOG2 + kl_motion's cleanup and zones"
    assert describe("knn-raw") == "OpenCV KNN alone (OpenCV's defaults, no cleanup, no zones)"
    raw = make_detector("knn-raw", Params(history=7))
    assert isinstance(raw, OpenCVDetector) and raw._sub.getHistory() == 500     # OpenCV's default
    assert make_detector("knn", Params(history=7))._sub.getHistory() == 7
    if not hasattr(cv2, "bgsegm"):                  # a three-letter name too (base = name less "-raw")
        for name in ("cnt-raw", "gmg-raw", "lsbp"):
            with pytest.raises(ParameterError, match=f"detector {name} needs cv2.bgsegm"):
                make_detector(name)


def _block_frames(n, at, h, w, box):
    """A flat scene, from frame ``at`` on a bright block ``box`` = (y, x, bh, bw)."""
    y, x, bh, bw = box
    out = []
    for i in range(n):
        f = np.full((h, w, 3), 60, np.uint8)
        if i >= at:
            f[y:y + bh, x:x + bw] = 240
        out.append(f)
    return out


@pytest.mark.parametrize("block, motion", [((10, 30, 4, 6), False), ((10, 30, 6, 8), True)])
def test_motion_area_is_a_fraction_of_height_times_width(block, motion):
    """On a 40x80 frame (3200 pixels) with motion_area 0.01, a 24-pixel block is not motion and a
    48-pixel one is.  Planted: the frame area `shape[0] * shape[1]` -> `shape[0] * shape[0]` (1600:
    24 pixels would be motion) and -> `shape[1] * shape[1]` (6400: 48 would not)."""
    p = Params(warmup_frames=0, event_start_frames=1, motion_area=0.01, event_gap=10.0)
    a = Analyzer(make_detector("mog2-raw", p), fps=25.0)
    rs = [a.analyze(f, i / 25.0) for i, f in enumerate(_block_frames(21, 20, 40, 80, block))]
    assert rs[-1].area == block[2] * block[3]
    assert rs[-1].events.in_motion is motion and (rs[-1].event_id == 1) is motion


def test_motion_area_follows_a_change_of_frame_size():
    """After the frames shrink from 40x80 to 20x40 (800 pixels), a 24-pixel block is 3 % of the frame:
    motion at motion_area 0.01.  Planted: `if resized or self._shape is None` -> `if self._shape is
    None` (the frame area stays 3200: 0.75 %, no motion)."""
    p = Params(warmup_frames=0, event_start_frames=1, motion_area=0.01, event_gap=10.0)
    a = Analyzer(make_detector("mog2-raw", p), fps=25.0)
    for i, f in enumerate(_block_frames(5, 99, 40, 80, (0, 0, 1, 1))):
        a.analyze(f, i / 25.0)
    rs = [a.analyze(f, 1 + i / 25.0) for i, f in enumerate(_block_frames(21, 20, 20, 40, (5, 10, 4, 6)))]
    assert rs[0].reset and rs[-1].area == 24 and rs[-1].events.in_motion


def test_the_first_frame_after_a_start_is_never_motion():
    """With warmup_frames 0, the first frame (which is the background itself) is still not motion,
    the second can be.  Planted: WARMUP_FRAMES 1 -> 2 or 0 (test_model_runtime's warm-up test reads
    the constant, so it moves with it)."""
    p = Params(warmup_frames=0, event_start_frames=1)
    a = Analyzer(make_detector("mog2-raw", p), fps=25.0)
    frames = _block_frames(3, 1, 40, 80, (10, 10, 10, 10))
    assert [a.analyze(f, i / 25.0).suppressed for i, f in enumerate(frames)] == [True, False, False]


def test_reset_restarts_on_the_next_frame_and_ends_the_open_event():
    """Analyzer.reset() (the viewer's reset button): the next frame starts a new background, warm-up
    included, and the open event ends.  Planted: `self._reset = True` -> False in reset(), the
    warm-up count after a restart starting at 1 or -1 instead of 0."""
    p = Params(warmup_frames=2, event_start_frames=1, event_gap=100.0)
    a = Analyzer(make_detector("kl_motion", p), fps=25.0)
    frames, _ = noisy_scene(np.random.default_rng(23), 30, obj=lambda i: (20, 5 + 2 * i, 12, 12) if i >= 20 else None)
    for i, f in enumerate(frames[:25]):
        r = a.analyze(f, i / 25.0)
    assert r.event_id == 1 and a.detector.frames_seen == 25
    a.reset()
    assert a.detector.frames_seen == 25                       # only on the next frame
    r = a.analyze(frames[25], 1.0)
    assert a.detector.frames_seen == 1 and [e.id for e in r.ended_before] == [1]
    assert r.suppressed and r.event_id == 0 and not r.reset   # not a size change
    assert [e.id for e in a.events] == [1]
    more = [a.analyze(f, 1.0 + i / 25.0) for i, f in enumerate(frames[26:29], 1)]
    assert [x.suppressed for x in more] == [True, False, False]   # the warm-up of 2 frames, again


def test_set_detector_swaps_on_the_next_frame_with_the_same_parameters():
    """set_detector (the viewer's detector choice): the new detector takes the old one's parameters
    and starts on the next frame; the open event ends.  Planted: `swap is not None` -> `is None`."""
    p = Params(warmup_frames=0, event_start_frames=1, event_gap=100.0, min_area=7)
    a = Analyzer(make_detector("mog2", p), fps=25.0)
    for i, f in enumerate(_still_then_square(25, at=20)):
        r = a.analyze(f, i / 25.0)
    assert r.event_id == 1
    new = make_detector("mog2-raw", Params())   # (not knn: a KNN run in this process changes the masks of
    #   test_process_options' in-process KNN reference afterwards: seen 2026-12-07, cause not found)
    a.set_detector(new)
    assert a.detector is not new
    r = a.analyze(_still_then_square(1, at=0)[0], 1.0)
    assert a.detector is new and new.params.min_area == 7
    assert [e.id for e in r.ended_before] == [1] and r.event_id == 0


def test_the_slow_start_notice_is_armed_once():
    """on_slow_start is for the first frame only: it is dropped after it (and not said for a fast
    frame).  Planted: `self.on_slow_start is not None` -> `is None` (kept for ever)."""
    said = []
    a = Analyzer(make_detector("mog2-raw", Params()), fps=25.0, on_slow_start=lambda: said.append(1))
    a.analyze(np.zeros((20, 30, 3), np.uint8), 0.0)
    assert a.on_slow_start is None and said == []
    a.analyze(np.zeros((20, 30, 3), np.uint8), 0.04)
    assert said == []


def test_an_opencv_detector_cleans_up_by_default():
    """OpenCVDetector(name, params, create) runs kl_motion's cleanup and zones unless told not to,
    and takes new parameters without a tune function.  Planted: the default `cleanup=True` -> False,
    `self._tune is not None and self.cleanup` -> `or` (None called)."""
    p = Params(ignore_zones=[[[0, 0], [1, 0], [1, 1], [0, 1]]])      # everything ignored
    det = OpenCVDetector("mine", p, lambda q: cv2.createBackgroundSubtractorMOG2(history=q.history))
    for f in _still_then_square(21, at=20):
        r = det.apply(f)
    assert not r.mask.any() and r.area == 0
    det.set_params(min_area=5)                 # no tune function given: nothing to call
    det.apply(_still_then_square(1, at=0)[0])
    assert det.params.min_area == 5


def test_an_opencv_object_without_a_background_image_has_none():
    """background() is None for a subtractor that has no getBackgroundImage (an OpenCV CLAHE,
    which has apply() and nothing else).  Planted: AttributeError left out of the except."""
    det = OpenCVDetector("clahe", Params(), lambda p: cv2.createCLAHE(), cleanup=False)
    r = det.apply(np.full((20, 30), 255, np.uint8))
    assert r.mask.shape == (20, 30) and det.background() is None
