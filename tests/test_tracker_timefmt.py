"""Box tracker (ids across frames) and timecodes / --start --end positions."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from kl_motion.errors import ParameterError
from kl_motion.timefmt import Position, parse_position, timecode
from kl_motion.tracker import BoxTracker, EventTracks, box_rows, iou

sys.path.insert(0, str(Path(__file__).parent))
from conftest_process import make_video  # noqa: E402


def test_timecode():
    assert timecode(0) == "00:00:00.000"
    assert timecode(1.2) == "00:00:01.200"
    assert timecode(3725.5) == "01:02:05.500"
    assert timecode(59.9996) == "00:01:00.000"
    assert timecode(100 * 3600 + 0.001) == "100:00:00.001"


def test_parse_position():
    assert parse_position("150f") == Position(frame=149)
    assert parse_position("90") == Position(seconds=90)
    assert parse_position("12.5s") == Position(seconds=12.5)
    assert parse_position("1:30") == Position(seconds=90)
    assert parse_position("01:02:03.5") == Position(seconds=3723.5)
    assert parse_position("2.0").to_frame(25) == 50
    assert parse_position("0.03").to_frame(25) == 1       # the first frame at or after 30 ms
    assert parse_position("10f").to_frame(25) == 9
    for bad in ("", "abc", "-3", "0f", "1:75", "f10", "nan"):
        with pytest.raises(ParameterError, match="--start"):
            parse_position(bad)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_two_objects_keep_their_ids_and_a_new_one_gets_a_new_id():
    t = BoxTracker()
    seq = []
    for i in range(30):
        boxes = [(10 + 3 * i, 10, 20, 20), (200 - 4 * i, 100, 25, 15)]
        if i >= 20:
            boxes.insert(0, (150, 150, 10, 10))
        seq.append(t.update(boxes))
    assert all(ids[-2:] == [1, 2] for ids in seq)
    assert all(ids[0] == 3 for ids in seq[20:])


def test_fast_object_is_followed_by_its_predicted_box():
    """A box that speeds up to 1.8 of its width per frame: its last box is too far away to match
    (25 px > the 21 px gate), the box predicted from its speed is not."""
    t = BoxTracker()
    xs = [5, 10, 15, 20] + [20 + 25 * k for k in range(1, 12)]
    ids = [t.update([(x, 50, 14, 14)])[0] for x in xs]
    assert set(ids) == {ids[0]}, ids


def test_a_missed_frame_keeps_the_id_and_a_long_gap_does_not():
    t = BoxTracker(max_missed=3)
    a = t.update([(10, 10, 20, 20)])[0]
    t.update([])
    t.update([])
    assert t.update([(12, 10, 20, 20)]) == [a]
    for _ in range(5):
        t.update([])
    assert t.update([(12, 10, 20, 20)]) != [a]


def test_moving_square_through_the_model_keeps_one_id(tmp_path):
    """Real detector output: the square of the synthetic clip is one track from its first to last box."""
    from kl_motion import MotionModel
    v = make_video(tmp_path / "v.avi", n=60, moving=(20, 45))
    cap = cv2.VideoCapture(str(v))
    model, tr = MotionModel(), BoxTracker()
    ids_per_frame, rows = [], []
    n = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        n += 1
        r = model.apply(f)
        ids = tr.update(r.blobs)
        if n > 20:
            ids_per_frame.append(ids)
            rows += box_rows(n, n / 25, timecode(n / 25), r.blobs, ids, r.kl)
    seen = [i for ids in ids_per_frame for i in ids]
    assert len(ids_per_frame) > 0 and len(seen) >= 15
    assert len(set(seen)) == 1, ids_per_frame
    f, t, tc, tid, x, y, w, h, area, klx = rows[0].split(",")
    assert int(tid) == seen[0] and int(area) > 0 and float(klx) > 0 and tc.startswith("00:00:0")


def test_event_tracks_summary():
    et = EventTracks()
    et.add(5, [(0, 0, 10, 10), (50, 50, 5, 5)], [1, 2])
    et.add(6, [(4, 0, 10, 10)], [1])
    et.add(7, [(8, 2, 10, 10)], [1])
    assert [d["id"] for d in et.to_list()] == [1]          # a track seen in one frame is flicker
    lst = et.to_list(min_frames=1)
    assert [d["id"] for d in lst] == [1, 2]
    one = lst[0]
    assert (one["first_frame"], one["last_frame"], one["frames"]) == (5, 7, 3)
    assert one["first_box"] == [0, 0, 10, 10] and one["last_box"] == [8, 2, 10, 10]
    assert one["box"] == [0, 0, 18, 12]
    assert [d["id"] for d in et.to_list(limit=1, min_frames=1)] == [1]
