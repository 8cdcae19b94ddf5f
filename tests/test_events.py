"""Motion events and light-switch logic (pure, no video)."""
from kl_motion.events import EventDetector, LightSwitch, boxes_union, settle_frames_for
from kl_motion.params import Params

AREA = 100 * 100


def run(areas, fps=10.0, boxes=None, **kw):
    p = Params(**kw)
    d = EventDetector(p, AREA)
    outs = []
    for i, a in enumerate(areas, start=1):
        b = boxes[i - 1] if boxes else ([(i, i, 10, 10)] if a else [])
        outs.append(d.update(i, (i - 1) / fps, a, b))
    ended = d.finish()
    return d, outs, ended


def test_event_starts_after_n_consecutive_frames_and_ends_after_gap():
    areas = [0] * 5 + [500] * 6 + [0] * 30
    d, outs, ended = run(areas, motion_area=0.01, event_start_frames=3, event_gap=1.0)
    assert [i for i, o in enumerate(outs, 1) if o.started] == [8]     # 3rd motion frame
    ev = d.events[0]
    assert (ev.start_frame, ev.end_frame) == (6, 11)                 # first and last motion frame
    assert abs(ev.start_time - 0.5) < 1e-9 and abs(ev.end_time - 1.0) < 1e-9
    ends = [i for i, o in enumerate(outs, 1) if o.ended]
    assert ends == [21]                                               # 1.0 s after the last motion frame
    assert ev.motion_frames == 6 and not ended


def test_short_runs_and_small_areas_do_not_start_events():
    areas = [500, 500, 0, 500, 0, 50, 50, 50, 50]   # runs of 2 and 1; 50 px < 1 %
    d, outs, ended = run(areas, motion_area=0.01, event_start_frames=3)
    assert not d.events and not ended
    assert [o.in_motion for o in outs] == [True, True, False, True, False, False, False, False, False]


def test_gap_merges_close_motion_and_peak_and_box_are_tracked():
    areas = [200, 300, 900, 0, 0, 400, 0]
    boxes = [[(0, 0, 10, 10)], [(5, 5, 10, 10)], [(50, 60, 20, 10)], [], [], [(90, 90, 5, 5)], []]
    d, outs, ended = run(areas, fps=10, boxes=boxes, motion_area=0.01, event_start_frames=2, event_gap=0.5)
    assert len(ended) == 1 and not d.active
    ev = ended[0]
    assert ev.start_frame == 1 and ev.end_frame == 6
    assert ev.peak_frame == 3 and ev.peak_pixels == 900 and abs(ev.peak_area - 0.09) < 1e-9
    assert ev.box == [0, 0, 95, 95]
    assert [o.is_peak for o in outs] == [True, True, True, False, False, False, False]
    d2 = ev.to_dict()
    assert d2["duration"] == 0.5 and d2["id"] == 1


def test_suppressed_frames_are_not_motion():
    p = Params(motion_area=0.01, event_start_frames=2)
    d = EventDetector(p, AREA)
    for i in range(1, 10):
        o = d.update(i, i / 10, 5000, [(0, 0, 100, 50)], suppressed=True)
        assert not o.in_motion and not o.started
    assert not d.finish() and not d.events


def test_zero_gap_ends_on_first_still_frame_and_ids_increase():
    areas = [500, 500, 0, 500, 500, 0]
    d, outs, ended = run(areas, motion_area=0.01, event_start_frames=2, event_gap=0.0)
    assert [e.id for e in d.events] == [1, 2]
    assert [(e.start_frame, e.end_frame) for e in d.events] == [(1, 2), (4, 5)]


def test_lightswitch_fires_once_then_settles():
    ls = LightSwitch(0.5, settle_frames=3)
    seq = [0.01, 0.9, 0.8, 0.7, 0.1, 0.02, 0.95]
    got = [ls.check(f) for f in seq]
    assert got == [(False, False), (True, True), (False, True), (False, True), (False, True),
                   (False, False), (True, True)]
    assert ls.count == 2
    assert settle_frames_for(Params(event_start_frames=3), 20) == 13


def test_boxes_union():
    assert boxes_union([]) is None
    assert boxes_union([(0, 0, 2, 2), (5, 5, 1, 1)]) == (0, 0, 6, 6)
