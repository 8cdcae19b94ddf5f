"""The fast cleanup against its plain definitions (random and real-ish masks).

postprocess.clean labels components by runs (blobs_nb) instead of cv2's label image and
fills holes by searching each blob's box; these tests hold it to the plain full-frame
definitions written with OpenCV: same mask, same blobs in the same order.
"""
import cv2
import numpy as np
import pytest

from kl_motion import blobs_nb, postprocess
from kl_motion.params import Params


def fill_holes_full_frame(fg: np.ndarray, max_area: float) -> None:
    """The definition: every 4-connected background region of the frame that does not touch
    the border and has at most max_area pixels becomes 255."""
    bg = (fg != 255).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=4, ltype=cv2.CV_32S)
    H, W = fg.shape
    x, y, w, h, area = (stats[:, i] for i in range(5))
    inner = (x > 0) & (y > 0) & (x + w < W) & (y + h < H) & (area <= max_area)
    inner[0] = False
    fg[inner[labels]] = 255


def clean_plain(raw, p, zone=None, area_scale=1.0):
    """postprocess.clean written plainly (32-bit labels, full-frame hole search)."""
    fg = foreground_plain(raw, p)
    if zone is not None:
        fg &= zone
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8, ltype=cv2.CV_32S)
    keep = np.zeros(n, np.uint8)
    blobs = []
    for i in range(1, n):
        if stats[i, 4] >= p.min_area * area_scale:
            keep[i] = 255
            blobs.append(tuple(int(v) for v in stats[i, :5]))
    out = keep[labels]
    if p.fill_holes > 0 and blobs:
        fill_holes_full_frame(out, p.fill_holes * area_scale)
        if zone is not None:
            out[zone == 0] = 0
    if p.detect_shadows:
        m = cv2.medianBlur(raw, p.median_size | 1) if p.median_size > 1 else raw
        shadow = m == 127
        if zone is not None:
            shadow &= zone.astype(bool)
        out[shadow & (out == 0)] = 127
    return out, blobs


@pytest.mark.parametrize("seed", range(8))
def test_clean_matches_plain_definition(seed):
    rng = np.random.default_rng(seed)
    for trial in range(120):
        h, w = (int(v) for v in rng.integers(4, 80, 2))
        if trial % 2:
            w = 8 * max(1, w // 8)          # the bit path (width a multiple of 8)
        raw = np.where(rng.random((h, w)) < rng.uniform(0.2, 0.8), 255, 0).astype(np.uint8)
        if trial % 2:
            raw[rng.random((h, w)) < 0.1] = 127
        if trial % 3 == 0:
            raw = cv2.resize(raw, (w * 2, h * 2), interpolation=cv2.INTER_NEAREST)
        p = Params(median_size=int(rng.choice([0, 3])), close_size=int(rng.choice([0, 3, 5])),
                   open_size=int(rng.choice([0, 3])), min_area=int(rng.choice([0, 3, 15])),
                   fill_holes=int(rng.choice([0, 1, 5, 30, 300, 100000])), detect_shadows=bool(trial % 2))
        zone = (rng.random(raw.shape) < 0.85).astype(np.uint8) if trial % 4 == 1 else None
        scale = float(rng.choice([1.0, 0.25]))
        out, blobs = postprocess.clean(raw.copy(), p, None if zone is None else zone.copy(), scale)
        ref, ref_blobs = clean_plain(raw.copy(), p, None if zone is None else zone.copy(), scale)
        assert np.array_equal(out, ref), (seed, trial)
        assert [b.box + (b.area,) for b in blobs] == ref_blobs


def test_hole_that_is_the_only_background_is_filled():
    m = np.full((20, 20), 255, np.uint8)
    m[8:11, 8:11] = 0
    out, blobs = postprocess.clean(m, Params(median_size=0, close_size=0, min_area=0, fill_holes=9))
    assert (out == 255).all() and len(blobs) == 1


def test_many_components_fall_back_to_32_bit_labels():
    m = np.zeros((600, 600), np.uint8)
    m[::2, ::2] = 255                     # 90000 isolated pixels: more than 16-bit labels hold
    out, blobs = postprocess.clean(m, Params(median_size=0, close_size=0, min_area=0, fill_holes=0))
    assert len(blobs) == 90000 and np.array_equal(out, m)


def _check(raw, p, zone=None, scale=1.0):
    out, blobs = postprocess.clean(raw.copy(), p, None if zone is None else zone.copy(), scale)
    ref, ref_blobs = clean_plain(raw.copy(), p, None if zone is None else zone.copy(), scale)
    assert out.dtype == np.uint8 and out.shape == raw.shape
    assert np.array_equal(out, ref)
    assert [b.box + (b.area,) for b in blobs] == ref_blobs
    assert all(type(v) is int for b in blobs for v in b.box + (b.area,))
    return blobs


def realish_mask(rng, h, w, shadows):
    """Labels like the kernel's: filled ellipses and boxes (some with holes, some touching
    the border or each other), shadow fringes, and salt noise."""
    raw = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 25))):
        cx, cy = int(rng.integers(-10, w + 10)), int(rng.integers(-10, h + 10))
        ax, ay = int(rng.integers(1, max(2, w // 6))), int(rng.integers(1, max(2, h // 6)))
        if shadows:
            cv2.ellipse(raw, (cx + ax // 2, cy + ay // 2), (ax, ay), 0, 0, 360, 127, -1)
        if rng.random() < 0.5:
            cv2.ellipse(raw, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, 255, -1)
        else:
            cv2.rectangle(raw, (cx - ax, cy - ay), (cx + ax, cy + ay), 255, -1)
        if rng.random() < 0.5:          # a hole, sometimes with a speck inside
            cv2.circle(raw, (cx, cy), int(rng.integers(1, max(2, min(ax, ay)))), 0, -1)
            if rng.random() < 0.5:
                raw[min(max(cy, 0), h - 1), min(max(cx, 0), w - 1)] = 255
    noise = rng.random((h, w))
    raw[noise < rng.uniform(0, 0.05)] = 255
    raw[noise > 1 - rng.uniform(0, 0.05)] = 0
    if shadows:
        raw[(noise > 0.5) & (noise < 0.5 + rng.uniform(0, 0.05))] = 127
    return raw


PARAMS = [
    dict(),                                                            # the defaults
    dict(detect_shadows=True),
    dict(open_size=3),
    dict(open_size=5, close_size=0, detect_shadows=True),
    dict(fill_holes=0),
    dict(fill_holes=0, min_area=0),
    dict(median_size=0, close_size=0, min_area=1, fill_holes=4),
    dict(median_size=5, close_size=7, min_area=100, fill_holes=100000),
    dict(median_size=4, close_size=4, open_size=4, min_area=40, fill_holes=50, detect_shadows=True),
]


@pytest.mark.parametrize("kw", PARAMS, ids=[str(k) for k in PARAMS])
@pytest.mark.parametrize("zones", [False, True])
def test_clean_matches_plain_definition_realish(kw, zones):
    rng = np.random.default_rng(len(str(kw)) + 7 * zones)
    p = Params(**kw)
    for trial, (w, h) in enumerate([(320, 240), (321, 241), (640, 480), (97, 13), (1, 50), (50, 1), (8, 8)] * 2):
        raw = realish_mask(rng, h, w, p.detect_shadows or trial % 2 == 1)
        zone = None
        if zones:
            zone = np.ones((h, w), np.uint8)
            cv2.fillPoly(zone, [rng.integers(0, max(w, h), (5, 2)).astype(np.int32)], 0)
            zone[rng.random((h, w)) < 0.01] = 0
        _check(raw, p, zone, float(rng.choice([1.0, 0.25, 1 / 3])))


def test_clean_many_small_components():
    rng = np.random.default_rng(5)
    raw = np.where(rng.random((480, 640)) < 0.3, 255, 0).astype(np.uint8)
    for kw in [dict(median_size=0, close_size=0, min_area=3, fill_holes=2),
               dict(median_size=0, close_size=0, min_area=0, fill_holes=0),
               dict(median_size=0, close_size=0, min_area=15, fill_holes=300, detect_shadows=True)]:
        blobs = _check(raw, Params(**kw))
        assert len(blobs) > 100


def test_clean_on_empty_and_full_masks():
    for v in (0, 127, 255):
        for shape in [(240, 320), (7, 9), (1, 1)]:
            raw = np.full(shape, v, np.uint8)
            for kw in [dict(), dict(detect_shadows=True, min_area=0), dict(median_size=0, close_size=0, min_area=0)]:
                _check(raw, Params(**kw))


def test_components_numbered_like_opencv():
    """blobs_nb.label_runs gives cv2.connectedComponentsWithStats' stats, in its order (the
    raster order of each component's first 2x2 block, not of its first pixel)."""
    m = np.zeros((4, 8), np.uint8)
    m[1, 0] = 1          # first pixel in raster order is (0, 5); first 2x2 block is (0, 0)
    m[0, 5] = 1
    _, _, _, _, stats = blobs_nb.label_runs(m)
    _, _, ref, _ = cv2.connectedComponentsWithStats(m, connectivity=8, ltype=cv2.CV_32S)
    assert stats[0].tolist() == [0, 1, 1, 1, 1] and np.array_equal(stats, ref[1:])
    rng = np.random.default_rng(3)
    for trial in range(300):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        m = (rng.random((h, w)) < rng.uniform(0, 0.7)).astype(np.uint8)
        if trial % 3 == 0:
            m = cv2.resize(m, (w * 3, h * 2), interpolation=cv2.INTER_NEAREST)
        ry, rs, re, comp, stats = blobs_nb.label_runs(m)
        n, labels, ref, _ = cv2.connectedComponentsWithStats(m, connectivity=8, ltype=cv2.CV_32S)
        assert np.array_equal(stats, ref[1:]), trial
        lab = np.zeros(m.shape, np.int32)
        for y, s, e, c in zip(ry, rs, re, comp):
            lab[y, s:e] = c + 1
        assert np.array_equal(lab, labels), trial


def foreground_plain(raw, p):
    m = cv2.medianBlur(raw, p.median_size | 1) if p.median_size > 1 else raw
    fg = (m == 255).astype(np.uint8)
    if p.close_size > 1:
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, postprocess._ellipse(p.close_size))
    if p.open_size > 1:
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, postprocess._ellipse(p.open_size))
    return fg


@pytest.mark.parametrize("size", range(0, 32))
def test_bit_foreground_matches_opencv(size):
    """median (3x3, edges replicated) and closing/opening with every element size, on bits,
    against OpenCV; widths that fill the last 64-bit word and widths that do not."""
    rng = np.random.default_rng(size)
    for trial, w in enumerate([8, 16, 56, 64, 72, 128, 136, 200, 320]):
        h = int(rng.integers(1, 70))
        raw = np.where(rng.random((h, w)) < rng.uniform(0.05, 0.9), 255, 0).astype(np.uint8)
        raw[rng.random((h, w)) < 0.2] = 127
        if trial % 2:
            raw = cv2.resize(cv2.resize(raw, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_NEAREST),
                             (w, h), interpolation=cv2.INTER_NEAREST)
        for med in (0, 2, 3):
            for kw in (dict(close_size=size), dict(open_size=size), dict(close_size=size, open_size=max(0, 31 - size))):
                p = Params(median_size=med, **kw)
                bits = postprocess._foreground_bits(raw, p)
                assert bits is not None
                fg = blobs_nb.unpack01(bits, w)
                assert np.array_equal(fg, foreground_plain(raw, p)), (w, h, med, kw)


def test_bit_foreground_is_used_for_the_defaults():
    raw = np.zeros((240, 320), np.uint8)
    assert postprocess._foreground_bits(raw, Params()) is not None
    assert postprocess._foreground_bits(raw[:, :317].copy(), Params()) is None      # width % 8
    assert postprocess._foreground_bits(raw, Params(median_size=5)) is None


def test_label_bits_matches_label_runs():
    """Runs read from the bits (words full of foreground, runs across words, runs to the
    row's end) are those read from the bytes."""
    rng = np.random.default_rng(11)
    for trial in range(300):
        w = 8 * int(rng.integers(1, 40))
        h = int(rng.integers(1, 40))
        m = (rng.random((h, w)) < rng.uniform(0, 1)).astype(np.uint8)
        if trial % 3 == 0:
            m = cv2.resize(cv2.resize(m, (max(1, w // 16), h), interpolation=cv2.INTER_NEAREST), (w, h),
                           interpolation=cv2.INTER_NEAREST)
        if trial % 5 == 0:
            m[:, -1] = 1
        bits = blobs_nb.pack255(m * np.uint8(255), (w + 63) // 64)
        assert np.array_equal(blobs_nb.unpack01(bits, w), m)
        got = blobs_nb.label_bits(bits, w)
        ref = blobs_nb.label_runs(m)
        for a, b in zip(got, ref):
            assert np.array_equal(a, b), trial


def test_cover7_is_opencvs_7x7_ellipse_dilation():
    """blobs_nb.cover7 (the restless feedback's cover) is cv2.dilate with the 7x7 ellipse, != 0:
    single pixels (the element's exact shape, the corners left out), the image's edges and
    corners, widths that fill the last 64-bit word and widths that do not, 0/127/255 masks.
    Planted: a row of the element dropped (dy = +-3), radius 2 for the middle rows, the carry
    from the next word left out: each fails."""
    ell = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    one = np.zeros((15, 16), np.uint8)
    one[7, 8] = 255
    out = np.full_like(one, 9)
    blobs_nb.cover7(one, out)
    want = np.zeros_like(one)
    want[4:11, 5:12] = ell
    assert np.array_equal(out, want)
    rng = np.random.default_rng(7)
    for trial in range(120):
        w = 8 * int(rng.integers(1, 30))
        h = int(rng.integers(1, 40))
        src = np.where(rng.random((h, w)) < rng.choice([0.0, 0.002, 0.03, 0.3]), 255, 0).astype(np.uint8)
        src[rng.random((h, w)) < 0.01] = 127
        out = np.full_like(src, 9)
        blobs_nb.cover7(src, out)
        assert np.array_equal(out, (cv2.dilate(src, ell) != 0).astype(np.uint8)), (w, h)
