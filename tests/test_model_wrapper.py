"""MotionModel's Python wrapper around the kernels (frame checks, sizes, the state file, the KL
buffer pool, blobs at reduced scale): what the mutation run on model.py found untested.  The
kernels keep their reference-twin tests (test_kernels.py).  Each test names the bug it was
checked against."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from kl_motion import FrameError, MotionModel, Params, StateError
from kl_motion.model import _detect_size

from test_model import H, W, noisy_scene


def saved(m: MotionModel, tmp_path, name="s.npz") -> dict:
    m.save(tmp_path / name)
    with np.load(tmp_path / name) as z:
        return {k: z[k] for k in z.files}


def test_the_smallest_frames_are_accepted_and_empty_ones_are_not():
    """A 1x1 frame and a one-row frame work; a frame with no columns is refused.  Planted:
    `frame.shape[0] < 1` -> `<= 1` (one row refused), the width check dropped (`or` -> `and`)."""
    for shape in ((1, 1, 3), (1, 40, 3), (7, 1), (1, 1)):
        m = MotionModel()
        for _ in range(3):
            r = m.apply(np.full(shape, 77, np.uint8))
        assert r.mask.shape == shape[:2] and not r.mask.any() and r.kl.shape == shape[:2]
    with pytest.raises(FrameError, match=r"frame is empty \(shape \(5, 0, 3\)\)"):
        MotionModel().apply(np.zeros((5, 0, 3), np.uint8))
    with pytest.raises(FrameError, match=r"frame must have 1 or 3 channels, got 2"):
        MotionModel().apply(np.zeros((5, 4, 2), np.uint8))
    m = MotionModel()
    m.apply(np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(FrameError, match=r"frame size changed from 8x6x3 to 8x6x1; call reset\(\) first"):
        m.apply(np.zeros((6, 8), np.uint8))


def test_detection_size_at_reduced_scale():
    """The detection size is round(H x scale) x round(W x scale), at least 1 x 1; scale 1 is the
    frame itself.  Planted: `max(1, ...)` -> `max(2, ...)` / `max(0, ...)`, `scale >= 1.0` -> `< 1.0`."""
    assert _detect_size(60, 80, 1.0) == (60, 80)
    assert _detect_size(60, 80, 0.5) == (30, 40)
    assert _detect_size(5, 3, 0.1) == (1, 1)                  # round(0.5) = 0, round(0.3) = 0 -> 1
    assert _detect_size(61, 81, 0.25) == (15, 20)
    m = MotionModel(scale=0.1)
    for _ in range(2):
        r = m.apply(np.full((5, 3, 3), 40, np.uint8))
    assert r.mask.shape == (5, 3) and m.frame_shape == (5, 3, 3)
    assert m._kl.shape == (1, 1) and r.background.shape == (5, 3, 3)


def test_state_size_per_pixel():
    """bench/speed.py reports it: the mixture (2 + C) x K float32, the KL maps, labels and the
    restless level, plus the current distribution only when current_rate < 1.  Planted:
    `p.current_rate < 1.0` -> `<=` (the current distribution allocated at rate 1 as well: 92, not
    76 bytes), `+` -> `-` in the sum, nan -> a number before the first frame."""
    m = MotionModel()
    assert math.isnan(m.state_bytes_per_pixel)
    f = np.full((24, 32, 3), 90, np.uint8)
    m.apply(f)
    m.apply(f)
    assert m.state_bytes_per_pixel == (2 + 3) * 3 * 4 + 1 + 4 + 4 + 1 + 4 + 1 + 1 == 76
    slow = MotionModel(current_rate=0.5)
    slow.apply(f)
    assert slow.state_bytes_per_pixel == 76 + 4 * 4
    grey = MotionModel()
    grey.apply(f[:, :, 0])
    assert grey.state_bytes_per_pixel == (2 + 1) * 3 * 4 + 16 == 52


def test_the_kl_buffer_of_a_dropped_result_is_reused():
    """A result that nobody holds gives its KL buffer back: two buffers serve every frame (an
    8 MB array per 1080p frame otherwise).  Planted: `getrefcount(a) <= 3` -> `< 3` (never reused:
    a new array each frame, the pool full of dead ones)."""
    m = MotionModel()
    f = np.full((24, 32, 3), 90, np.uint8)
    ids = set()
    for _ in range(8):
        ids.add(id(m.apply(f).kl))          # the result is dropped at once
    # two buffers: the newest frame's map stays the model's own (self._kl) while the next is written
    assert len(m._kl_pool) == 2 and ids == {id(a) for a in m._kl_pool}
    kept = [m.apply(f) for _ in range(6)]   # held results keep theirs; the pool stops at 4
    assert len({id(r.kl) for r in kept}) == 6 and len(m._kl_pool) == 4


def test_fg_fraction_of_a_frame_result():
    """FrameResult.fg_fraction counts the 255 pixels (not shadows) over all pixels.  Planted:
    `== 255` -> `!= 255`, `/` -> `*`."""
    frames, _ = noisy_scene(np.random.default_rng(31), 31, obj=lambda i: (20, 30, 10, 16) if i >= 30 else None)
    m = MotionModel(min_area=0, close_size=0, median_size=0, fill_holes=0)
    for f in frames:
        r = m.apply(f)
    fg = np.count_nonzero(r.mask == 255)
    assert 150 <= fg <= 260
    assert r.fg_fraction == pytest.approx(fg / (H * W))
    assert r.area == sum(b.area for b in r.blobs) == fg


def test_blobs_at_reduced_scale_are_in_full_size_pixels():
    """At scale 0.5 each blob is the box of its pixels in the full-size mask (the small mask doubled)
    and its area counts full-size pixels.  Planted: `b.x * sx` -> `b.x / sx`, `b.area /
    area_scale` -> `* area_scale`, `round(b.w * sx)` -> `b.w - sx`."""
    frames, _ = noisy_scene(np.random.default_rng(32), 31, obj=lambda i: (20, 30, 16, 24) if i >= 30 else None)
    m = MotionModel(scale=0.5)
    for f in frames:
        r = m.apply(f)
    (b,) = r.blobs
    fg = (r.mask == 255).astype(np.uint8)
    assert (b.x, b.y, b.w, b.h) == cv2.boundingRect(fg)
    assert b.area == np.count_nonzero(fg) and b.area == r.area
    assert abs(b.x - 30) <= 2 and abs(b.y - 20) <= 2 and abs(b.w - 24) <= 4 and abs(b.h - 16) <= 4


def test_save_needs_a_frame_and_writes_the_documented_arrays(tmp_path):
    """save() before any frame is a StateError; the file holds the mixture, the current
    distribution (at current_rate 1: the last frame, variance 0), the feedback arrays, the frame
    count and the parameters.  Planted: the `_n > 0` check -> `>= 0`/`> 1` (cur left zero or
    stale), `_cur_valid = False` after a frame dropped (`>=` -> `>` on current_rate: a stale cur
    in the second save), `version` or `frames_seen` off by one."""
    m = MotionModel(kl_threshold=11.0)
    with pytest.raises(StateError, match="nothing to save"):
        m.save(tmp_path / "none.npz")
    assert not (tmp_path / "none.npz").exists()
    frames, _ = noisy_scene(np.random.default_rng(33), 12)
    for f in frames[:10]:
        m.apply(f)
    a = saved(m, tmp_path, "a.npz")
    assert set(a) == {"version", "shape", "frames_seen", "gmm", "nmodes", "cur", "level", "labels", "covered",
                      "keep", "params"}
    assert int(a["version"]) == 3 and int(a["frames_seen"]) == 10 and a["shape"].tolist() == [H, W, 3]
    assert np.array_equal(a["cur"][..., :3], frames[9].astype(np.float32)) and not a["cur"][..., 3].any()
    assert Params.from_dict(__import__("tomllib").loads(str(a["params"]))) == m.params
    m.apply(frames[10])
    b = saved(m, tmp_path, "b.npz")
    assert np.array_equal(b["cur"][..., :3], frames[10].astype(np.float32))      # not the first save's
    assert int(b["frames_seen"]) == 11
    one = MotionModel()
    one.apply(frames[0])
    c = saved(one, tmp_path, "c.npz")
    assert np.array_equal(c["cur"][..., :3], frames[0].astype(np.float32))       # after one frame too


def test_relearn_restarts_the_learning_rate_but_keeps_the_mixture(tmp_path):
    """relearn() (after a light switch) sets the frame count back so the next frame is learned at
    rate 1/1, without forgetting the mixture (the frame is not a first frame).  Planted: `_n = 0`
    -> `_n = 1` in the relearn branch (the next frame learned at 1/2), `first = ... and not
    nmodes.any()` -> `or` (the mixture re-initialised), `self._relearn = False` -> True in that branch
    (a re-learn on every later frame)."""
    frames, _ = noisy_scene(np.random.default_rng(34), 40)
    bright = [np.clip(f.astype(np.int16) + 70, 0, 255).astype(np.uint8) for f in frames[30:]]
    m = MotionModel()
    for f in frames[:30]:
        m.apply(f)
    before = saved(m, tmp_path, "before.npz")
    m.relearn()
    assert m.frames_seen == 30                     # only on the next frame
    r = m.apply(bright[0])
    assert m.frames_seen == 1 and r.index == 1
    after = saved(m, tmp_path, "after.npz")
    assert after["nmodes"].max() >= 2              # the old background is still a component: no first frame
    assert (after["nmodes"] >= before["nmodes"]).all()
    r = m.apply(bright[1])
    assert np.count_nonzero(r.mask == 255) == 0    # learned at rate 1: the new light is background at once
    assert m.frames_seen == 2                       # and counting again: one re-learn, not one per frame


def test_relearn_keeps_the_current_distribution_at_a_slow_current_rate(tmp_path):
    """With current_rate < 1 the current distribution is a moving average; relearn() does not make
    the next frame a first frame, so it is averaged in, not copied.  Planted: `first = self._n == 0
    and not self._nmodes.any()` -> `or` (the frame after a relearn taken as the first: cur = frame)."""
    frames, _ = noisy_scene(np.random.default_rng(35), 32)
    bright = np.clip(frames[31].astype(np.int16) + 70, 0, 255).astype(np.uint8)
    m = MotionModel(current_rate=0.5)
    for f in frames[:30]:
        m.apply(f)
    m.relearn()
    m.apply(bright)
    cur = saved(m, tmp_path)["cur"][..., :3]
    gap = np.abs(cur - bright.astype(np.float32))
    assert 20 < float(gap.mean()) < 50                      # about half of the +70 step: averaged in


def test_counts_and_background_before_any_frame_and_after_reset():
    """A new or reset model has seen 0 frames and has no background (None, not an image).
    Planted: `self._n = 0` -> 1 in __init__ or reset(), `self._shape is None` -> `is not None` in
    background()."""
    m = MotionModel()
    assert m.frames_seen == 0 and m.frame_shape is None and m.background() is None
    f = np.full((24, 32, 3), 90, np.uint8)
    m.apply(f)
    m.apply(f)
    assert m.frames_seen == 2 and m.background().shape == (24, 32, 3)
    m.reset()
    assert m.frames_seen == 0 and m.frame_shape is None and m.background() is None
    assert m.apply(f[:, :, 0]).index == 1 and m.frame_shape == (24, 32, 1)


def test_grey_frames_at_half_scale():
    """Grey input at scale 0.5: OpenCV's resize drops the channel axis of an (h, w, 1) image, the
    model puts it back; mask, KL map and background come back at full size, the background grey.
    Planted: `if small.ndim == 2` -> `!= 2`, the background's `reshape(H, W, C)` dropped (`C == 1`
    -> `C != 1`)."""
    frames, _ = noisy_scene(np.random.default_rng(36), 31, grey=True, obj=lambda i: (20, 20, 20, 20) if i >= 30 else None)
    m = MotionModel(scale=0.5)
    for f in frames:
        r = m.apply(f)
    assert r.mask.shape == (H, W) and r.kl.shape == (H, W) and r.background.shape == (H, W)
    assert np.count_nonzero(r.mask[20:40, 20:40] == 255) > 200
    blurred = cv2.resize(cv2.resize(frames[0], (W // 2, H // 2), interpolation=cv2.INTER_AREA), (W, H),
                         interpolation=cv2.INTER_LINEAR)          # what the model can see of the scene
    assert np.abs(r.background.astype(int) - blurred.astype(int))[:, :18].mean() < 6


def test_components_and_scale_changed_together_restart_at_the_new_size(tmp_path):
    """n_components and scale changed in one set_params: a new background at the new size with the
    new number of components (the components alone would be resized in place).  Planted: `old.
    n_components != p.n_components and old.scale == p.scale` -> `or`."""
    frames, _ = noisy_scene(np.random.default_rng(37), 34)
    m = MotionModel()
    for f in frames[:30]:
        m.apply(f)
    m.set_params(n_components=5, scale=0.5)
    m.apply(frames[30])
    st = saved(m, tmp_path)
    assert m.frames_seen == 1 and st["gmm"].shape[:3] == (H // 2, W // 2, 5)


def test_the_first_frame_initialises_a_slow_current_distribution(tmp_path):
    """At current_rate 0.5 the first frame is the current distribution itself (not averaged with
    zeros).  Planted: `first = self._n == 0 and ...` -> `self._n != 0` (cur = half the frame)."""
    f = noisy_scene(np.random.default_rng(38), 1)[0][0]
    m = MotionModel(current_rate=0.5)
    m.apply(f)
    cur = saved(m, tmp_path)["cur"]
    assert np.array_equal(cur[..., :3], f.astype(np.float32))


def test_a_darker_copy_of_the_background_is_shadow_in_colour_only():
    """A region at 0.8 of the background's brightness, same colour: shadow (127) in a colour frame,
    not in a grey one.  Planted: `p.detect_shadows and C == 3` -> `C == 4` (no shadows at all)."""
    rng = np.random.default_rng(39)
    frames, _ = noisy_scene(rng, 31)
    f = frames[30].astype(np.float32)
    f[20:40, 20:50] *= 0.8
    frames[30] = np.clip(f, 0, 255).astype(np.uint8)
    m = MotionModel()
    for x in frames:
        r = m.apply(x)
    assert np.count_nonzero(r.mask[20:40, 20:50] == 127) > 300
    assert np.count_nonzero(r.mask == 255) < 50
    g = MotionModel()
    for x in frames:
        rg = g.apply(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY))
    assert np.count_nonzero(rg.mask == 127) == 0


def test_a_one_pixel_wide_blob_at_scale_0_7_stays_one_pixel_wide():
    """At scale 0.7 a blob one detection pixel wide is round(1 x 80/56) = 1 pixel wide at full size.
    So is one a pixel high.  Planted: `max(1, int(round(b.w * sx)))` -> `max(2, ...)`, the same for b.h."""
    rng = np.random.default_rng(40)
    frames, _ = noisy_scene(rng, 31)
    frames[30] = frames[30].copy()
    frames[30][10:41, 10] = 255                      # a thin bright line: column 7 of the 56-wide detection
    m = MotionModel(scale=0.7, median_size=0, close_size=0, fill_holes=0, min_area=0, pool_radius=0)
    for x in frames:
        r = m.apply(x)
    (b,) = [b for b in r.blobs if b.x <= 12 <= b.x + 4]
    assert b.w == 1 and b.h > 20
    frames[30] = frames[29].copy()
    frames[30][50, 10:61] = 255                      # and a thin row: row 35 of the 42-high detection
    m = MotionModel(scale=0.7, median_size=0, close_size=0, fill_holes=0, min_area=0, pool_radius=0)
    for x in frames:
        r = m.apply(x)
    (b,) = [b for b in r.blobs if b.y <= 52 <= b.y + 4]
    assert b.h == 1 and b.w > 40



def test_a_loaded_model_has_the_saved_feedback(tmp_path):
    """save() then load() gives back the restless feedback (levels, last labels, covered pixels), not
    zeros: a region of flickering pixels stays calm after a restart from the file; and the turns' state
    (keep).  Planted: `if "level" in a` -> `if not "level" in a` (a version-2 file loaded without its
    feedback), `if "keep" in a` -> `if not "keep" in a`."""
    rng = np.random.default_rng(42)
    frames, _ = noisy_scene(rng, 60)
    for i, f in enumerate(frames):                  # a flickering patch: water, leaves
        f[5:25, 5:35] = np.where(rng.random((20, 30, 1)) < 0.5, 40, 200).astype(np.uint8)
    m = MotionModel()
    for f in frames:
        m.apply(f)
    a = saved(m, tmp_path, "a.npz")
    assert a["level"].max() > 0.01
    assert (a["keep"] < 1).any() and (a["keep"] == 1).any()     # turns: pixels that learned, others not
    b = saved(MotionModel.load(tmp_path / "a.npz"), tmp_path, "b.npz")
    for k in ("level", "labels", "covered", "gmm", "nmodes", "cur", "keep"):
        assert np.array_equal(a[k], b[k]), k


def test_components_added_while_running_start_empty(tmp_path):
    """n_components 3 -> 5 on a still scene: the new slots hold no weight, the live ones still add up to 1.
    Planted: `wts[~live] = 0.0` -> `1.0`."""
    frames, _ = noisy_scene(np.random.default_rng(43), 32)
    m = MotionModel()
    for f in frames[:30]:
        m.apply(f)
    m.set_params(n_components=5)
    m.apply(frames[30])
    st = saved(m, tmp_path)
    w, nm = st["gmm"][..., 0], st["nmodes"]
    live = np.arange(5)[None, None, :] < nm[..., None]
    assert not w[~live].any()
    np.testing.assert_allclose(np.where(live, w, 0).sum(axis=2), 1.0, atol=1e-4)


def test_a_result_prints_without_the_model():
    """repr(result) shows the mask, KL map, blobs and index, not the model, its background or the
    step counter.  Planted: `repr=False` -> True on _step."""
    r = MotionModel().apply(np.full((4, 6, 3), 9, np.uint8))
    text = repr(r)
    assert text.startswith("FrameResult(mask=") and "index=1" in text
    assert "_model" not in text and "_bg" not in text and "_step" not in text


def test_the_learning_rate_stops_at_one_over_history():
    """After `history` frames the rate stays 1/history: with history 5 a background that brightens by
    one grey level a frame lags by about (1 - 0.2) / 0.2 = 4 levels; a rate that kept falling as 1/n
    lags more and more.  Planted: `max(1.0 / p.history, 1.0 / self._n)` -> `max(0.0 / ..., ...)`."""
    base = np.random.default_rng(44).integers(60, 120, (H, W, 3)).astype(np.float32)
    m = MotionModel(history=5)
    for i in range(70):
        f = np.clip(base + max(0, i - 20), 0, 255).astype(np.uint8)
        m.apply(f)
    lag = float(f.astype(np.float32).mean() - m.background().astype(np.float32).mean())
    assert 2.0 < lag < 6.0, lag
