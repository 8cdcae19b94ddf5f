"""The fast cleanup paths against their plain definitions (random masks).

postprocess.clean fills holes by searching each blob's box and labels with 16-bit
components; these tests hold it to the plain full-frame definitions.
"""
import cv2
import numpy as np
import pytest

from kl_motion import postprocess
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
    m = cv2.medianBlur(raw, p.median_size | 1) if p.median_size > 1 else raw
    fg = (m == 255).astype(np.uint8)
    if p.close_size > 1:
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, postprocess._ellipse(p.close_size))
    if p.open_size > 1:
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, postprocess._ellipse(p.open_size))
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
        shadow = m == 127
        if zone is not None:
            shadow &= zone.astype(bool)
        out[shadow & (out == 0)] = 127
    return out, blobs


@pytest.mark.parametrize("few_removed", [0, 3, 64, 10 ** 9])
@pytest.mark.parametrize("seed", range(4))
def test_clean_matches_plain_definition(seed, few_removed, monkeypatch):
    # few_removed: how many components below min_area clean() clears box by box before it
    # falls back to a full-frame lookup (both ways must give the plain definition)
    monkeypatch.setattr(postprocess, "_FEW_REMOVED", few_removed)
    rng = np.random.default_rng(seed)
    for trial in range(120):
        h, w = (int(v) for v in rng.integers(4, 80, 2))
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
