"""The kernel's thread count follows its measured frame times (kl_motion.threads.ThreadTuner) unless
--threads / use_threads() pinned it.  The policy is fed frame times of a machine where one count
is faster than the other; the model test runs the real kernels with trials every few frames."""
from __future__ import annotations

import threading

import numba
import numpy as np
import pytest

from kl_motion.model import MotionModel
from kl_motion.threads import ThreadTuner, pinned, use_threads


def drive(tuner: ThreadTuner, ms_at: dict, frames: int, n_max: int = 2) -> list[int]:
    """Run the tuner over ``frames`` frames on a machine where a frame at n threads takes ms_at[n]."""
    used = []
    for _ in range(frames):
        n = tuner.count(n_max)
        used.append(n)
        tuner.record(ms_at[n] / 1000.0)
    return used


def test_one_thread_is_chosen_when_it_is_faster():
    # a busy core: 2 threads take 10 ms, 1 thread 7 ms
    used = drive(ThreadTuner(), {1: 7.0, 2: 10.0}, 2000)
    assert used[0] == 2                                  # starts with every thread
    assert used[-1] == 1
    # once settled, 2 threads are only tried, ever more rarely: under 2 % of the last 1500 frames
    assert used[500:].count(2) < 0.02 * 1500, used[500:].count(2)


def test_every_thread_is_kept_when_it_is_faster():
    used = drive(ThreadTuner(), {1: 9.0, 2: 5.0}, 2000)
    assert used[-1] == 2
    assert used.count(1) < 0.03 * len(used), used.count(1)      # the trials, backing off


def test_a_small_difference_does_not_flip_the_choice():
    # 1 thread 1 % faster: within the margin, every thread stays
    used = drive(ThreadTuner(), {1: 9.9, 2: 10.0}, 600)
    assert used[-1] == 2 and used[-100:].count(1) <= 8


def test_the_choice_follows_the_machine_when_it_changes():
    t = ThreadTuner()
    assert drive(t, {1: 7.0, 2: 10.0}, 1500)[-1] == 1        # a core busy: one thread
    # the other program ends: both counts get faster, 2 threads much more so; the frame time at
    # one thread moves (7 -> 5 ms), which starts trials again at once
    used = drive(t, {1: 5.0, 2: 3.0}, 200)
    assert used[-1] == 2
    assert used.index(2) < 100, used.index(2)


def test_three_cores_step_down_one_at_a_time():
    used = drive(ThreadTuner(), {1: 12.0, 2: 6.0, 3: 9.0}, 1500, n_max=3)
    assert used[-1] == 2
    assert used[-500:].count(2) > 0.95 * 500


def test_single_thread_is_left_alone():
    t = ThreadTuner()
    assert set(drive(t, {1: 5.0}, 100, n_max=1)) == {1}


def _frames(n=40, seed=0):
    rng = np.random.default_rng(seed)
    bg = rng.integers(40, 200, (48, 64, 3)).astype(np.int16)
    out = []
    for i in range(n):
        f = bg + rng.integers(-3, 4, bg.shape)
        x = 2 + i
        f[10:30, x:x + 12] = 240
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return out


def test_model_with_the_tuner_gives_the_same_results_and_restores_the_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one numba thread on this machine: nothing to tune")
    frames = _frames()
    res: dict = {}

    def run(key, pin):
        if pin is not None:
            use_threads(pin)
        m = MotionModel()
        m.thread_tuner = ThreadTuner(block=2, period=3, warmup=1)      # a trial every few frames
        counts, masks = [], []
        for f in frames:
            before = numba.get_num_threads()
            r = m.apply(f)
            counts.append(numba.get_num_threads())
            assert counts[-1] == before                 # the caller's count is back after the frame
            masks.append(r.mask.copy())
        res[key] = (masks, m.thread_tuner._seen, pinned(), counts, m._st.copy())

    # threads of their own: use_threads() pins the calling thread only
    errors: list = []

    def guarded(key, pin):
        try:
            run(key, pin)
        except BaseException as e:          # re-raised in the test's thread
            errors.append(e)

    for key, pin in (("tuned", None), ("pinned", 1)):
        th = threading.Thread(target=guarded, args=(key, pin))
        th.start()
        th.join()
        if errors:
            raise errors[0]
    tuned, pin1 = res["tuned"], res["pinned"]
    assert tuned[1] == len(frames) and tuned[2] is None      # the tuner saw every frame
    assert pin1[1] == 0 and pin1[2] == 1                      # pinned: the tuner is not asked
    assert all(np.array_equal(a, b) for a, b in zip(tuned[0], pin1[0]))
    assert np.array_equal(tuned[4], pin1[4])                  # the thread count never changes results
