"""Parameters changed while the model runs or when it is loaded, and the Analyzer's warm-up
boundary: what a broken version gets wrong (each test names the bug it was checked against)."""
from __future__ import annotations

import numpy as np
import pytest

from kl_motion import MotionModel, Params, StateError
from kl_motion.analyzer import WARMUP_FRAMES, Analyzer, make_detector

from test_model import H, W, noisy_scene


def state(m: MotionModel, tmp_path, name="s.npz"):
    """The model's learned state as save() writes it (the public file format)."""
    p = tmp_path / name
    m.save(p)
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def check_state(st, K):
    """Invariants of a mixture: K slots, at most K live modes, live weights summing to 1."""
    gmm, nm = st["gmm"], st["nmodes"]
    assert gmm.shape[2] == K and nm.max() <= K and nm.min() >= 1
    w = gmm[..., 0]
    live = np.arange(K)[None, None, :] < nm[..., None]
    np.testing.assert_allclose(np.where(live, w, 0).sum(axis=2), 1.0, atol=1e-3)


@pytest.mark.parametrize("delta", [+1, -1])
def test_n_components_changed_while_running_keeps_what_was_learned(tmp_path, delta):
    rng = np.random.default_rng(11)
    obj = lambda i: (20, 30, 15, 15) if i >= 45 else None  # noqa: E731
    frames, _ = noisy_scene(rng, 48, obj=obj)
    K0 = Params().n_components
    a, b = MotionModel(), MotionModel()
    for f in frames[:40]:
        a.apply(f)
        b.apply(f)
    b.set_params(n_components=K0 + delta)
    assert state(b, tmp_path)["gmm"].shape[2] == K0          # only on the next frame
    for i, f in enumerate(frames[40:45]):
        ra, rb = a.apply(f), b.apply(f)
        assert b.frames_seen == a.frames_seen == 41 + i      # not a restart: the background is kept
        assert np.count_nonzero(rb.mask) == 0                 # the static scene stays background
        assert float(rb.kl.mean()) < 2 * float(ra.kl.mean()) + 0.5
    check_state(state(b, tmp_path), K0 + delta)
    rb = b.apply(frames[45])                                  # and an object is still found at once
    assert np.count_nonzero(rb.mask[20:35, 30:45] == 255) > 150


def test_scale_changed_while_running_restarts_at_the_new_size(tmp_path):
    rng = np.random.default_rng(12)
    obj = lambda i: (20, 20, 20, 20) if i >= 60 else None  # noqa: E731
    frames, _ = noisy_scene(rng, 62, obj=obj)
    m = MotionModel()
    for f in frames[:30]:
        m.apply(f)
    assert state(m, tmp_path)["gmm"].shape[:2] == (H, W)
    m.set_params(scale=0.5)
    r = m.apply(frames[30])
    assert m.frames_seen == 1                                 # a new background at the new size
    assert r.mask.shape == (H, W) and r.kl.shape == (H, W)
    st = state(m, tmp_path)
    assert st["gmm"].shape[:2] == (H // 2, W // 2)
    check_state(st, m.params.n_components)
    for f in frames[31:60]:
        r = m.apply(f)
    assert np.count_nonzero(r.mask) == 0
    r = m.apply(frames[60])
    assert np.count_nonzero(r.mask[20:40, 20:40] == 255) > 300 and np.count_nonzero(r.mask) < 600
    m.set_params(scale=1.0)
    m.apply(frames[61])
    assert m.frames_seen == 1 and state(m, tmp_path)["gmm"].shape[:2] == (H, W)


def test_load_with_other_parameters_uses_them_on_the_saved_state(tmp_path):
    rng = np.random.default_rng(13)
    obj = lambda i: (10, 2 * i - 40, 12, 12) if i >= 30 else None  # noqa: E731
    frames, _ = noisy_scene(rng, 36, obj=obj)
    a = MotionModel()
    for f in frames[:30]:
        a.apply(f)
    a.save(tmp_path / "bg.npz")
    changed = a.params.replace(kl_threshold=a.params.kl_threshold * 8, min_area=5)
    b = MotionModel.load(tmp_path / "bg.npz", changed)
    assert b.params == changed and b.frames_seen == 30
    a.set_params(kl_threshold=changed.kl_threshold, min_area=5)  # the same change made while running
    plain = MotionModel.load(tmp_path / "bg.npz")
    differ = False
    for f in frames[30:]:
        ra, rb, rp = a.apply(f), b.apply(f), plain.apply(f)
        np.testing.assert_array_equal(ra.mask, rb.mask)
        np.testing.assert_array_equal(ra.kl, rb.kl)
        differ |= not np.array_equal(rb.mask, rp.mask)
    assert differ                                             # the parameters made a difference
    # parameters that shape the state cannot change on load: one clear error
    for bad in (dict(n_components=a.params.n_components + 1), dict(scale=0.5)):
        with pytest.raises(StateError, match="cannot change on load"):
            MotionModel.load(tmp_path / "bg.npz", Params(**bad))


@pytest.mark.parametrize("warmup", [0, 1, 2, 5])
def test_warmup_boundary_is_exact(warmup):
    """The first max(WARMUP_FRAMES, warmup_frames) frames after a start are never motion; the
    next one is, and an event of an object there from the start begins on it."""
    rng = np.random.default_rng(14)
    obj = lambda i: (20, 5 + 4 * i, 12, 12)  # noqa: E731  (moving from the first frame on)
    frames, _ = noisy_scene(rng, 12, obj=obj)
    n = max(WARMUP_FRAMES, warmup)
    p = Params(warmup_frames=warmup, event_start_frames=1, event_gap=10.0)
    a = Analyzer(make_detector("kl_motion", p), fps=25.0)
    rs = [a.analyze(f, i / 25.0) for i, f in enumerate(frames)]
    assert [r.suppressed for r in rs] == [True] * n + [False] * (len(frames) - n)
    assert all(r.area > 0 for r in rs[1:])                   # the object is foreground from frame 2 on
    (ev,) = a.finish()
    assert ev.start_frame == max(n + 1, 2)
    assert not any(r.events.in_motion for r in rs[:n])
