"""Mask cleanup: median, closing, minimum area, hole filling, zones."""
import numpy as np

from kl_motion.params import Params
from kl_motion.postprocess import clean, zone_mask


def ring(h=40, w=40):
    m = np.zeros((h, w), np.uint8)
    m[10:30, 10:30] = 255
    m[15:25, 15:25] = 0            # a 100-pixel hole
    return m


def test_min_area_removes_small_blobs_and_keeps_large_ones():
    m = np.zeros((40, 40), np.uint8)
    m[2:4, 2:4] = 255                 # 4 px
    m[20:30, 20:30] = 255             # 100 px
    out, blobs = clean(m, Params(median_size=0, close_size=0, min_area=10))
    assert out[2:4, 2:4].max() == 0 and (out[20:30, 20:30] == 255).all()
    assert [(b.x, b.y, b.w, b.h, b.area) for b in blobs] == [(20, 20, 10, 10, 100)]


def test_holes_up_to_the_limit_are_filled():
    p = Params(median_size=0, close_size=0, min_area=0)
    out, _ = clean(ring(), p.replace(fill_holes=100))
    assert (out[10:30, 10:30] == 255).all()
    out, _ = clean(ring(), p.replace(fill_holes=99))
    assert (out[15:25, 15:25] == 0).all()
    out, _ = clean(ring(), p.replace(fill_holes=0))
    assert (out[15:25, 15:25] == 0).all()


def test_shadow_pixels_stay_127_and_do_not_count_as_blobs():
    m = np.zeros((40, 40), np.uint8)
    m[5:15, 5:15] = 127
    out, blobs = clean(m, Params(detect_shadows=True, median_size=0, close_size=0, min_area=0))
    assert (out[5:15, 5:15] == 127).all() and blobs == []


def test_zones_ignore_and_include():
    p = Params(ignore_zones=[[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]])
    z = zone_mask(p, 40, 20)
    assert z[:, :19].max() == 0 and z[:, 21:].min() == 1
    p = Params(include_zones=[[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]])
    z = zone_mask(p, 40, 20)
    assert z[:, :19].min() == 1 and z[:, 21:].max() == 0
    m = np.full((20, 40), 255, np.uint8)
    out, _ = clean(m, p.replace(median_size=0, close_size=0, min_area=0, fill_holes=1000), z)
    assert out[:, 21:].max() == 0 and out[:, :19].min() == 255
    assert zone_mask(Params(), 40, 20) is None
