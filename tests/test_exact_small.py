"""Small exact checks that mutation testing showed missing (bench/mutation.py, docs/testing.md):
zone polygons to the pixel, zone-mask images, ROI.bmp's zero pixels, scores of empty counts,
eval's ms/frame, Record defaults."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from kl_motion.errors import ParameterError
from kl_motion.evaluate import Counts, Record, evaluate_sequence, load_sequence
from kl_motion.params import Params
from kl_motion.postprocess import zone_mask


# ----------------------------------------------------------------------------- zones
def test_zone_polygon_corners_land_on_the_last_row_and_column():
    # a zone from x = 0.5 to 1 and y = 0.5 to 1 of an 11 x 21 frame: corners at (10, 5) .. (20, 10)
    z = zone_mask(Params(include_zones=[[[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]]), 21, 11)
    ys, xs = np.nonzero(z)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (10, 20, 5, 10)
    z = zone_mask(Params(ignore_zones=[[[0, 0], [0.2, 0], [0.2, 0.2], [0, 0.2]]]), 51, 11)
    ys, xs = np.nonzero(z == 0)
    assert (xs.max(), ys.max()) == (10, 2)                  # 0.2 * 50 and 0.2 * 10
    z = zone_mask(Params(ignore_zones=[[[0, 0], [0.9, 0], [0.9, 0.9], [0, 0.9]]]), 101, 51)
    ys, xs = np.nonzero(z == 0)
    assert (xs.max(), ys.max()) == (90, 45)                 # 0.9 * 100 and 0.9 * 50 (not * 101 or * 51)


def test_zone_mask_image_is_read_and_scaled(tmp_path):
    img = np.zeros((10, 20), np.uint8)
    img[:, 10:] = 255                                       # motion counts in the right half only
    path = tmp_path / "zone.png"
    cv2.imwrite(str(path), img)
    z = zone_mask(Params(zone_mask=str(path)), 40, 20)
    assert z.shape == (20, 40) and z[:, :20].max() == 0 and z[:, 20:].min() == 1
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ParameterError, match="zone_mask: cannot read image"):
        zone_mask(Params(zone_mask=str(tmp_path / "bad.png")), 40, 20)


# ----------------------------------------------------------------------------- evaluation
def _seq(tmp_path, roi=None, n=6):
    seq = tmp_path / "seq"
    (seq / "input").mkdir(parents=True)
    (seq / "groundtruth").mkdir()
    for i in range(1, n + 1):
        cv2.imwrite(str(seq / "input" / f"in{i:06d}.png"), np.full((8, 10, 3), 100, np.uint8))
        cv2.imwrite(str(seq / "groundtruth" / f"gt{i:06d}.png"), np.zeros((8, 10), np.uint8))
    if roi is not None:
        cv2.imwrite(str(seq / "ROI.bmp"), roi)
    return seq


def test_roi_bmp_zero_pixels_are_outside(tmp_path):
    roi = np.zeros((8, 10), np.uint8)
    roi[:, 5:] = 255
    seq = _seq(tmp_path, roi)
    r = load_sequence(seq).roi
    assert r.dtype == bool and not r[:, :5].any() and r[:, 5:].all()
    (rec,) = evaluate_sequence(seq, ["kl_motion"])
    assert rec.tn == 6 * 8 * 5 and rec.fp == rec.tp == rec.fn == 0      # only the ROI's half is scored


def test_scores_of_empty_counts_are_zero():
    assert Counts().metrics() == dict(recall=0.0, specificity=0.0, fpr=0.0, fnr=0.0, pwc=0.0, precision=0.0,
                                      f_measure=0.0)
    c = Counts(tp=0, fp=0, fn=3, tn=0)          # positives only, all missed
    m = c.metrics()
    assert m["recall"] == 0.0 and m["fnr"] == 1.0 and m["fpr"] == 0.0 and m["specificity"] == 0.0
    assert m["precision"] == 0.0 and m["f_measure"] == 0.0 and m["pwc"] == 100.0
    rec = Record("s", "m", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0)
    assert rec.frames_scored == 0 and rec.extra == {}


def test_ms_per_frame_is_the_median_without_the_first_frame(tmp_path, monkeypatch):
    """Each frame's detector time, in ms; the first frame (which may compile) is left out."""
    import kl_motion.evaluate as ev

    class Clock:                     # frame k (1-based) takes k ms: t0 at each call pair
        def __init__(self):
            self.t, self.calls = 0.0, 0

        def perf_counter(self):
            self.calls += 1
            if self.calls % 2 == 0:                      # the "after" reading
                self.t += (self.calls // 2) / 1000.0
            return self.t

    monkeypatch.setattr(ev, "time", Clock())
    (rec,) = evaluate_sequence(_seq(tmp_path, n=6), ["kl_motion"])
    assert rec.ms_per_frame == pytest.approx(4.0)        # median of 2, 3, 4, 5, 6 ms


def test_bit_foreground_of_a_456_pixel_wide_mask():
    """456 = 7 words of 64 bits and 8 more pixels: the one width class below 640 where a wrong word
    count ((W + 63) // 65) drops the last word."""
    from kl_motion import blobs_nb, postprocess
    from test_postprocess_fast import foreground_plain
    rng = np.random.default_rng(456)
    raw = np.where(rng.random((30, 456)) < 0.5, 255, 0).astype(np.uint8)
    p = Params()
    bits = postprocess._foreground_bits(raw, p)
    assert bits is not None
    assert np.array_equal(blobs_nb.unpack01(bits, 456), foreground_plain(raw, p))


def test_eval_table_aligns_names_left_and_numbers_right():
    from kl_motion.evaluate import format_table
    recs = [Record("a/seq", "kl_motion", 5, 123456, 7, 8, 0.5, 0.9, 0.1, 0.5, 1.0, 0.25, 0.3333, 1.5),
            Record("a/seq", "mog2-raw", 123456, 5, 7, 8, 0.5, 0.9, 0.1, 0.5, 1.0, 0.25, 0.3333, 12.25)]
    lines = format_table(recs).splitlines()
    head, rows = lines[0], lines[2:]
    end_tp = head.index("TP") + 2                      # numbers end under the end of their heading
    assert rows[0][:end_tp].endswith(" 5") and rows[1][:end_tp].endswith("123456")
    assert rows[0].startswith("a/seq     kl_motion ") and rows[1].startswith("a/seq     mog2-raw  ")
    assert head.startswith("sequence  method   ")
    assert rows[0].endswith("0.333      1.50") and rows[1].endswith("12.25")


def test_sequence_without_temporal_roi_scores_every_frame(tmp_path):
    seq = _seq(tmp_path, n=5)
    s = load_sequence(seq)
    assert (s.first, s.last, s.roi) == (1, 5, None)
    (rec,) = evaluate_sequence(seq, ["kl_motion"])
    assert rec.frames_scored == 5 and rec.tn == 5 * 8 * 10


def test_opening_of_two_pixels_on_opencvs_path():
    """open_size 2 removes one-pixel lines, on the bit path (width 48) and on OpenCV's (width 46,
    not a multiple of 8)."""
    from kl_motion.postprocess import clean
    p = Params(median_size=0, close_size=0, open_size=2, min_area=0, fill_holes=0)
    for w in (48, 46):
        raw = np.zeros((40, w), np.uint8)
        raw[5:25, 5:25] = 255                  # a square: stays
        raw[30, :] = 255                       # a one-pixel line: opened away
        out, blobs = clean(raw, p)
        assert out[30].max() == 0 and out[10:20, 10:20].min() == 255, w
        assert len(blobs) == 1


def test_f_measure_when_precision_equals_recall():
    m = Counts(tp=2, fp=1, fn=1, tn=5).metrics()
    assert m["precision"] == m["recall"] == pytest.approx(2 / 3)
    assert m["f_measure"] == pytest.approx(2 / 3)


def test_eval_table_separates_sequences_by_a_blank_line():
    from kl_motion.evaluate import format_table
    mk = lambda s, m: Record(s, m, 1, 2, 3, 4, 0.5, 0.9, 0.1, 0.5, 1.0, 0.25, 0.3, 1.5)  # noqa: E731
    lines = format_table([mk("a", "kl_motion"), mk("a", "mog2"), mk("b", "kl_motion"), mk("b", "mog2")]).splitlines()
    assert [l == "" for l in lines] == [False, False, False, False, True, False, False]


def test_rates_when_the_two_counts_of_a_ratio_are_equal():
    m = Counts(tp=2, fp=2, fn=2, tn=2).metrics()
    assert (m["recall"], m["specificity"], m["fpr"], m["fnr"], m["precision"]) == (0.5, 0.5, 0.5, 0.5, 0.5)
    assert m["pwc"] == 50.0 and m["f_measure"] == 0.5


def test_sequence_files_read_as_cdnet_writes_them(tmp_path):
    roi = np.zeros((8, 10), np.uint8)
    roi[:, 5:] = 1                                          # any value above 0 is inside
    seq = _seq(tmp_path, roi, n=6)
    (seq / "temporalROI.txt").write_text("2 5 \n")
    s = load_sequence(seq)
    assert s.roi[:, 5:].all() and not s.roi[:, :5].any()
    assert (s.first, s.last) == (2, 5) and s.name == f"{tmp_path.name}/seq"
    (seq / "temporalROI.txt").write_text("3 5 extra words\n")      # only the first two numbers count
    assert (load_sequence(seq).first, load_sequence(seq).last) == (3, 5)


def test_ground_truth_by_number_and_by_order(tmp_path):
    from kl_motion.evaluate import gt_for
    seq = _seq(tmp_path, n=4)
    for i in range(1, 5):
        cv2.imwrite(str(seq / "groundtruth" / f"gt{i:06d}.png"), np.full((8, 10), 10 * i, np.uint8))
    cv2.imwrite(str(seq / "groundtruth" / "gt000000.png"), np.full((8, 10), 1, np.uint8))   # a stray extra
    s = load_sequence(seq)
    assert [int(gt_for(s, i)[0, 0]) for i in range(1, 5)] == [10, 20, 30, 40]     # by its number
    other = tmp_path / "other"
    (other / "input").mkdir(parents=True)
    (other / "groundtruth").mkdir()
    for i in range(1, 5):                                  # other names: taken in natural order
        cv2.imwrite(str(other / "input" / f"{i}.png"), np.zeros((8, 10, 3), np.uint8))
        cv2.imwrite(str(other / "groundtruth" / f"label-{i}.png"), np.full((8, 10), 10 * i, np.uint8))
    s = load_sequence(other)
    assert [int(gt_for(s, i)[0, 0]) for i in range(1, 5)] == [10, 20, 30, 40]


def test_eval_json_is_indented_by_two(tmp_path):
    from kl_motion.evaluate import write_json
    write_json([Record("s", "m", 1, 2, 3, 4, 0.5, 0.9, 0.1, 0.5, 1.0, 0.25, 0.3, 1.5)], tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text()
    assert text.startswith('[\n  {\n    "sequence": "s",\n') and text.endswith("}\n]\n") and '"extra"' not in text


def test_feedback_mask_holds_the_blobs_of_feedback_min_area_only():
    """clean(feedback=buf) writes the whole buffer: 255 on blobs of at least feedback_min_area,
    0 everywhere else (whatever the buffer held), while the output keeps min_area."""
    from kl_motion.postprocess import clean
    raw = np.zeros((40, 64), np.uint8)
    raw[5:25, 5:25] = 255                      # 400 pixels: in both
    raw[30:35, 40:44] = 255                    # 20 pixels: a feedback object, not an output blob
    p = Params(median_size=0, close_size=0, open_size=0, fill_holes=0, min_area=100, feedback_min_area=10,
               detect_shadows=False)
    buf = np.full(raw.shape, 77, np.uint8)
    out, blobs = clean(raw, p, feedback=buf)
    assert len(blobs) == 1 and out[30:35, 40:44].max() == 0
    want = np.zeros_like(raw)
    want[5:25, 5:25] = 255
    want[30:35, 40:44] = 255
    assert np.array_equal(buf, want)


def test_median_corners_feedback_edges_and_zone_mask_value_one(tmp_path):
    """The survivors of the postprocess mutation run: a median of 1 is none (bit path), a median of 2
    is 3x3 (OpenCV's path, with shadows), a feedback object of exactly feedback_min_area pixels counts
    and the area scales with the detection size, a zone-mask pixel of value 1 counts as inside."""
    from kl_motion.postprocess import clean
    base = dict(close_size=0, open_size=0, min_area=0, fill_holes=0)
    raw = np.zeros((24, 64), np.uint8)
    raw[5:15, 5:15] = 255
    raw[20, 40] = 255                                       # an isolated pixel
    out, _ = clean(raw, Params(median_size=1, detect_shadows=False, **base))
    assert out[20, 40] == 255                               # no median
    sh = raw.copy()
    sh[2, 50] = 127                                         # an isolated shadow pixel
    out, _ = clean(sh, Params(median_size=2, detect_shadows=True, **base))
    assert out[2, 50] == 0 and out[20, 40] == 0             # a 3x3 median removed both
    fb = np.zeros((24, 64), np.uint8)
    fb[5:15, 5:15] = 255                                    # 100 pixels
    fb[18:20, 30:35] = 255                                  # 10 pixels
    buf = np.zeros_like(fb)
    clean(fb, Params(median_size=0, detect_shadows=False, feedback_min_area=10, **dict(base, min_area=50)),
          feedback=buf)
    assert buf[18:20, 30:35].min() == 255                   # exactly feedback_min_area: an object
    buf[:] = 0
    clean(fb, Params(median_size=0, detect_shadows=False, feedback_min_area=20, **dict(base, min_area=50)),
          area_scale=0.5, feedback=buf)
    assert buf[18:20, 30:35].min() == 255                   # 20 full-size pixels = 10 at half size
    img = np.zeros((10, 20), np.uint8)
    img[:, 10:] = 1
    cv2.imwrite(str(tmp_path / "z.png"), img)
    z = zone_mask(Params(zone_mask=str(tmp_path / "z.png")), 20, 10)
    assert z[:, 10:].min() == 1 and z[:, :10].max() == 0
