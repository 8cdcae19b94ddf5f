"""Behaviour of the model: properties a broken implementation gets wrong."""
from __future__ import annotations

import numpy as np
import pytest

from kl_motion import FrameError, MotionModel, ParameterError, Params, StateError

H, W = 60, 80


def noisy_scene(rng, n, grey=False, sigma=3.0, obj=None):
    """n frames of a textured static scene with Gaussian noise; obj(i) -> (y, x, h, w) or None."""
    base = rng.integers(40, 200, (H, W) if grey else (H, W, 3)).astype(np.float32)
    frames, boxes = [], []
    for i in range(n):
        f = base + rng.normal(0, sigma, base.shape)
        b = obj(i) if obj else None
        if b is not None:
            y, x, h, w = b
            f[y:y + h, x:x + w] = 250.0 if grey else (30.0, 240.0, 250.0)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
        boxes.append(b)
    return frames, boxes


@pytest.mark.parametrize("grey", [False, True])
def test_static_noisy_scene_is_empty_after_warmup(grey):
    rng = np.random.default_rng(1)
    frames, _ = noisy_scene(rng, 80, grey=grey)
    m = MotionModel()
    results = [m.apply(f) for f in frames]
    for r in results[20:]:
        assert np.count_nonzero(r.mask == 255) == 0
        assert r.mask.shape == (H, W) and r.mask.dtype == np.uint8
        assert r.kl.shape == (H, W) and r.kl.dtype == np.float32
    assert all((r.kl >= 0).all() for r in results)


@pytest.mark.parametrize("grey", [False, True])
def test_moving_object_is_found(grey):
    rng = np.random.default_rng(2)
    obj = lambda i: (20, 5 + 2 * (i - 40), 14, 12) if i >= 40 else None  # noqa: E731
    frames, boxes = noisy_scene(rng, 60, grey=grey, obj=obj)
    m = MotionModel()
    for f, b in zip(frames, boxes):
        r = m.apply(f)
    y, x, h, w = boxes[-1]
    truth = np.zeros((H, W), bool)
    truth[y:y + h, x:x + w] = True
    fg = r.mask == 255
    iou = np.count_nonzero(fg & truth) / np.count_nonzero(fg | truth)
    assert iou > 0.5, iou
    assert len(r.blobs) >= 1
    bx = max(r.blobs, key=lambda b: b.area)
    # leading edge and top (the trailing edge may lag: the current distribution is a moving average)
    assert abs((bx.x + bx.w) - (x + w)) <= 3 and abs(bx.y - y) <= 3
    # the background image shows the scene, not the object
    bg = r.background
    assert bg.shape == frames[0].shape
    assert np.abs(bg[y:y + h, x:x + w].astype(int) - frames[0][y:y + h, x:x + w].astype(int)).mean() < 12


def test_threshold_change_between_frames_acts_on_the_very_next_frame():
    rng = np.random.default_rng(3)
    obj = lambda i: (20, 10 + i - 30, 12, 12) if i >= 30 else None  # noqa: E731
    frames, _ = noisy_scene(rng, 36, obj=obj)
    # without the neighbour search (which only runs above the threshold) the scores do not
    # depend on the threshold, so both models must give the same KL map and differ only in labels
    # (and without cleanup, so the mask is exactly the thresholded map; and without the
    # pixel-level feedback, so every pixel's threshold is kl_threshold itself)
    raw = dict(neighbour_radius=0, median_size=0, close_size=0, min_area=0, restless_gain=0.0)
    a, b = MotionModel(**raw), MotionModel(**raw)
    for f in frames[:-1]:
        ra, rb = a.apply(f), b.apply(f)
    b.set_params(kl_threshold=500.0)        # between frames
    assert a.params.kl_threshold != 500.0 and b.params.kl_threshold == 500.0
    ra, rb = a.apply(frames[-1]), b.apply(frames[-1])
    np.testing.assert_array_equal(ra.kl, rb.kl)   # same scores: only the decision changed
    assert np.count_nonzero(ra.mask == 255) > 50
    assert np.count_nonzero(rb.mask == 255) < np.count_nonzero(ra.mask == 255)
    np.testing.assert_array_equal(rb.mask == 255, (rb.kl > 500.0) & (rb.mask != 127))
    np.testing.assert_array_equal(ra.mask == 255, (ra.kl > a.params.kl_threshold) & (ra.mask != 127))
    b.set_params(kl_threshold=a.params.kl_threshold)
    np.testing.assert_array_equal(a.apply(frames[-1]).mask, b.apply(frames[-1]).mask)


def test_threshold_change_with_default_params_changes_the_next_mask():
    rng = np.random.default_rng(3)
    base = rng.integers(40, 200, (H, W, 3)).astype(np.float32)
    frames = []
    for i in range(36):
        f = base + rng.normal(0, 3.0, base.shape)
        if i >= 30:                      # a low-contrast object: +60 grey levels
            f[20:32, 10 + i - 30:22 + i - 30] += 60.0
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    m, twin = MotionModel(), MotionModel()
    for f in frames[:-1]:
        m.apply(f)
        twin.apply(f)
    m.set_params(kl_threshold=m.params.kl_threshold * 20)
    r, rt = m.apply(frames[-1]), twin.apply(frames[-1])
    assert np.count_nonzero(rt.mask == 255) > 50
    assert np.count_nonzero(r.mask == 255) < 0.5 * np.count_nonzero(rt.mask == 255)


def test_kl_is_zero_on_an_unchanging_scene():
    f = np.random.default_rng(4).integers(0, 255, (H, W, 3)).astype(np.uint8)
    m = MotionModel()
    for _ in range(30):
        r = m.apply(f)
    assert r.kl.max() < 1e-4
    assert (r.mask == 0).all()


@pytest.mark.parametrize("bad, exc", [
    (np.zeros((H, W, 3), np.float32), TypeError),
    (np.zeros((H, W, 3), np.uint16), TypeError),
    ([[0, 1], [2, 3]], TypeError),
    (np.zeros((2, H, W, 3), np.uint8), ValueError),
    (np.zeros((H, W, 4), np.uint8), ValueError),
    (np.zeros((H, W, 2), np.uint8), ValueError),
    (np.zeros((0, W, 3), np.uint8), ValueError),
])
def test_bad_frames_raise_with_a_message(bad, exc):
    m = MotionModel()
    with pytest.raises(exc) as e:
        m.apply(bad)
    assert isinstance(e.value, FrameError)
    assert str(e.value)


def test_size_change_needs_reset():
    m = MotionModel()
    m.apply(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="size changed"):
        m.apply(np.zeros((H + 2, W, 3), np.uint8))
    with pytest.raises(ValueError, match="size changed"):
        m.apply(np.zeros((H, W), np.uint8))
    m.reset()
    assert m.apply(np.zeros((H + 2, W), np.uint8)).mask.shape == (H + 2, W)


@pytest.mark.parametrize("changes, msg", [
    (dict(kl_threshold=-1.0), "below its minimum"),
    (dict(history=0), "below its minimum"),
    (dict(n_components=99), "above its maximum"),
    (dict(history=1.5), "integer"),
    (dict(detect_shadows="yes"), "true or false"),
    (dict(kl_threshold=float("nan")), "finite"),
    (dict(var_min=50.0, var_max=10.0), "must not exceed"),
    (dict(no_such_param=1), "unknown parameter"),
    (dict(ignore_zones=[[[0, 0], [1, 0]]]), "at least 3"),
    (dict(ignore_zones=[[[0, 0], [2, 0], [0, 1]]]), "outside 0..1"),
])
def test_bad_parameters_raise(changes, msg):
    with pytest.raises(ParameterError, match=msg):
        Params().replace(**changes)
    with pytest.raises(ValueError):
        MotionModel(Params(), **changes)


def test_params_toml_round_trip(tmp_path):
    p = Params().replace(kl_threshold=12.5, history=321, detect_shadows=False,
                         ignore_zones=[[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]])
    path = tmp_path / "preset.toml"
    p.save(path)
    assert Params.load(path) == p
    (tmp_path / "bad.toml").write_text("kl_threshold = [")
    with pytest.raises(ParameterError, match="not valid TOML"):
        Params.load(tmp_path / "bad.toml")
    (tmp_path / "range.toml").write_text("kl_threshold = -3\n")
    with pytest.raises(ParameterError, match="minimum"):
        Params.load(tmp_path / "range.toml")
    with pytest.raises(ParameterError, match="not found"):
        Params.load(tmp_path / "missing.toml")


def test_state_save_and_restore_continues_identically(tmp_path):
    rng = np.random.default_rng(5)
    obj = lambda i: (10, 2 * i, 10, 10) if 20 <= i else None  # noqa: E731
    frames, _ = noisy_scene(rng, 30, obj=obj)
    a = MotionModel()
    for f in frames[:20]:
        a.apply(f)
    a.save(tmp_path / "bg.npz")
    b = MotionModel.load(tmp_path / "bg.npz")
    assert b.params == a.params and b.frames_seen == a.frames_seen
    for f in frames[20:]:
        ra, rb = a.apply(f), b.apply(f)
        np.testing.assert_array_equal(ra.mask, rb.mask)
        np.testing.assert_array_equal(ra.kl, rb.kl)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(StateError):
        MotionModel.load(tmp_path / "junk.npz")
    with pytest.raises(StateError):
        MotionModel.load(tmp_path / "missing.npz")


def test_zones_remove_motion_inside_them():
    rng = np.random.default_rng(6)
    obj = lambda i: (20, 10, 15, 15) if i >= 30 else None  # noqa: E731
    frames, _ = noisy_scene(rng, 33, obj=obj)
    free, zoned = MotionModel(), MotionModel(ignore_zones=[[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]])
    for f in frames:
        rf, rz = free.apply(f), zoned.apply(f)
    assert np.count_nonzero(rf.mask == 255) > 100
    assert np.count_nonzero(rz.mask[:, : W // 2 - 1] == 255) == 0


def test_zones_changed_between_frames_act_on_the_next_frame():
    rng = np.random.default_rng(6)
    obj = lambda i: (20, 10, 15, 15) if i >= 30 else None  # noqa: E731
    frames, _ = noisy_scene(rng, 34, obj=obj)
    m = MotionModel()
    for f in frames[:-1]:
        r = m.apply(f)
    assert np.count_nonzero(r.mask[:, : W // 2 - 1] == 255) > 100
    m.set_params(ignore_zones=[[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]])
    r = m.apply(frames[-1])
    assert np.count_nonzero(r.mask[:, : W // 2 - 1] == 255) == 0
    m.set_params(ignore_zones=[])
    assert np.count_nonzero(m.apply(frames[-1]).mask[:, : W // 2 - 1] == 255) > 100


def test_scale_gives_full_size_outputs():
    rng = np.random.default_rng(7)
    obj = lambda i: (20, 20, 20, 20) if i >= 30 else None  # noqa: E731
    frames, _ = noisy_scene(rng, 33, obj=obj)
    m = MotionModel(scale=0.5)
    for f in frames:
        r = m.apply(f)
    assert r.mask.shape == (H, W) and r.kl.shape == (H, W)
    assert np.count_nonzero(r.mask[20:40, 20:40] == 255) > 200
    assert r.background.shape == (H, W, 3)


def test_results_kept_by_the_caller_are_not_overwritten():
    """The KL map of a result is handed over without a copy from a small pool of buffers: a
    result the caller still holds must keep its values while later frames are processed."""
    rng = np.random.default_rng(21)
    m = MotionModel()
    frames = [rng.integers(0, 256, (40, 56, 3)).astype(np.uint8) for _ in range(12)]
    kept = [m.apply(f) for f in frames[:6]]
    saved = [r.kl.copy() for r in kept]
    assert len({id(r.kl) for r in kept}) == len(kept)
    for f in frames[6:]:
        m.apply(f)
    for r, kl in zip(kept, saved):
        assert np.array_equal(r.kl, kl)
