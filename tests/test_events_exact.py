"""Events to the pixel and the frame: boxes away from the origin, thin boxes, ties for the peak,
the motion threshold's edges, rounding of events.jsonl (mutation testing found these unchecked)."""
from __future__ import annotations

from kl_motion.events import Event, EventDetector, FrameEvents, LightSwitch, boxes_union
from kl_motion.params import Params

AREA = 100 * 100


def feed(areas, boxes=None, fps=10.0, **kw):
    d = EventDetector(Params(**kw), AREA)
    outs = [d.update(i, (i - 1) / fps, a, boxes[i - 1] if boxes else ()) for i, a in enumerate(areas, start=1)]
    return d, outs, d.finish()


def test_boxes_union_exact_away_from_the_origin():
    assert boxes_union([(7, 9, 3, 4)]) == (7, 9, 3, 4)
    # x from the first box, y from the second, right edge from the second, bottom from the first
    assert boxes_union([(10, 20, 5, 6), (30, 5, 4, 4)]) == (10, 5, 24, 21)
    assert boxes_union([(30, 5, 4, 4), (10, 20, 5, 6)]) == (10, 5, 24, 21)
    # one-pixel-wide and one-pixel-high boxes are boxes, united like the others
    assert boxes_union([(10, 10, 1, 5), (20, 20, 3, 3)]) == (10, 10, 13, 13)
    assert boxes_union([(10, 10, 5, 1), (20, 20, 3, 3)]) == (10, 10, 13, 13)
    # an empty box (no width or height) is no box: the next one replaces it
    assert boxes_union([(5, 5, 0, 0), (10, 10, 2, 2)]) == (10, 10, 2, 2)
    assert boxes_union([(5, 5, 3, 0), (10, 10, 2, 2)]) == (10, 10, 2, 2)


def test_event_box_is_its_motion_only():
    boxes = [[(40, 50, 10, 10)], [(42, 52, 10, 10)], [(44, 55, 10, 12)], [], [], [], []]
    d, outs, ended = feed([500, 500, 500, 0, 0, 0, 0], boxes, motion_area=0.01, event_start_frames=2, event_gap=0.2)
    (ev,) = d.events
    assert ev.box == [40, 50, 14, 17]                     # not stretched to (0, 0)
    assert outs[1].started.box == [40, 50, 12, 12]        # the box as it was when the event started
    # motion without boxes (a raw detector's foreground): the box stays empty
    d, _, _ = feed([500, 500, 500, 0, 0, 0, 0], motion_area=0.01, event_start_frames=2, event_gap=0.2)
    assert d.events[0].box == [0, 0, 0, 0]
    assert Event(1, 1, 0.0, 1, 0.0, 0.0, 0, 1, 0.0).box == [0, 0, 0, 0]


def test_event_defaults_and_started_flag():
    e = Event(3, 5, 0.2, 9, 0.6, 0.1, 1000, 7, 0.4)
    assert e.motion_frames == 0 and e.box == [0, 0, 0, 0]
    assert FrameEvents(True, False, started=e).active and not FrameEvents(True, False).active


def test_peak_is_the_first_of_equal_areas():
    # ties inside the starting run
    d, _, _ = feed([500, 500, 500, 0, 0, 0, 0, 0], motion_area=0.01, event_start_frames=3, event_gap=0.2)
    assert d.events[0].peak_frame == 1
    # ties once the event is open
    d, outs, _ = feed([500, 900, 900, 0, 0, 0, 0, 0], motion_area=0.01, event_start_frames=1, event_gap=0.2)
    assert d.events[0].peak_frame == 2 and abs(d.events[0].peak_time - 0.1) < 1e-12
    assert [o.is_peak for o in outs[:3]] == [True, True, False]


def test_motion_threshold_edges():
    d = EventDetector(Params(motion_area=0.01), AREA)
    assert d.is_motion(100) and not d.is_motion(99)       # exactly motion_area is motion
    d0 = EventDetector(Params(motion_area=0.0), AREA)
    assert d0.is_motion(1) and not d0.is_motion(0)        # one pixel is motion, none is not
    z = EventDetector(Params(), 0)
    assert z.frame_area == 1
    z.set_frame_area(-5)
    assert z.frame_area == 1


def test_events_jsonl_rounding():
    e = Event(1, 1, 1 / 3, 4, 2 / 3, 1 / 7, 1428, 2, 0.123456789)
    d = e.to_dict()
    assert d["start_time"] == 0.3333 and d["end_time"] == 0.6667 and d["peak_time"] == 0.1235
    assert d["duration"] == 0.3333
    assert d["peak_area"] == 0.142857


def test_lightswitch_negative_settle_is_none():
    ls = LightSwitch(0.5, settle_frames=-3)
    assert ls.settle_frames == 0
    assert [ls.check(f) for f in (0.9, 0.9, 0.1)] == [(True, True), (True, True), (False, False)]


def test_peak_flags_in_the_starting_run():
    # a frame is the run's peak only when larger than every earlier frame of the run
    _, outs, _ = feed([500, 500, 900, 400, 0], motion_area=0.01, event_start_frames=5, event_gap=0.2)
    assert [o.is_peak for o in outs] == [True, False, True, False, False]


def test_lightswitch_edges_and_default_settling():
    assert LightSwitch(0.5).settle_frames == 10
    ls = LightSwitch(0.5, settle_frames=0)
    assert ls.check(0.5) == (False, False)                # exactly the fraction is not a switch
    assert ls.check(0.5001) == (True, True)


def test_defaults_reset_and_settling_for_a_rate_of_zero():
    from kl_motion.events import settle_frames_for
    d = EventDetector(Params(motion_area=0.6))          # the frame's area defaults to one pixel
    assert d.frame_area == 1 and d.is_motion(1)
    ls = LightSwitch(0.5, settle_frames=5)
    assert ls.check(0.9) == (True, True) and ls.check(0.9) == (False, True)
    ls.reset()                                          # a restart: the next change is a switch at once
    assert ls.check(0.9) == (True, True)
    assert settle_frames_for(Params(event_start_frames=3), 0) == 4      # an unknown rate counts as 1 fps
    assert settle_frames_for(Params(event_start_frames=3), 25) == 3 + 13


def test_boxes_union_edges_that_only_one_side_shows():
    assert boxes_union([(5, 5, 0, 3), (10, 10, 2, 2)]) == (10, 10, 2, 2)     # no width, some height: no box
    assert boxes_union([(30, 5, 6, 2), (10, 20, 5, 6)]) == (10, 5, 26, 21)   # right edge from the first box


def test_peak_inside_the_starting_run_and_a_one_pixel_event():
    d, _, _ = feed([500, 900, 600, 0, 0, 0, 0], motion_area=0.01, event_start_frames=3, event_gap=0.2)
    ev = d.events[0]
    assert (ev.peak_frame, ev.peak_pixels) == (2, 900) and abs(ev.peak_area - 0.09) < 1e-12
    d, _, _ = feed([1, 0, 0, 0, 0], motion_area=0.0, event_start_frames=1, event_gap=0.2)
    ev = d.events[0]
    assert (ev.peak_frame, ev.peak_pixels) == (1, 1) and ev.peak_area == 1 / AREA
