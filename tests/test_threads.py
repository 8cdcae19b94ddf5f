"""--threads for process / eval / view, and --jobs never oversubscribing the cores unless asked.

The process tests run the real `kl-motion process` on the bundled demo clip in subprocesses and
read, from its -v log, the thread counts in force in the thread (or worker process) that runs
the model: numba's count is per calling thread, so that is where it is read.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numba
import pytest

from conftest_process import no_traceback, run_process
from kl_motion.errors import KLMotionError
from kl_motion.sources import demo_path
from kl_motion.threads import cores, plan

pytestmark = pytest.mark.timeout(240)

DEMO = demo_path() / "input"
# not anchored to line ends: two workers writing to one stderr can interleave their lines
THREADS = re.compile(r"kl-motion: debug: (?:worker (\d+): )?(\d+) numba thread\(s\), (\d+) OpenCV thread\(s\)")


def _threads(stderr: str) -> list[tuple[str, int, int]]:
    """(worker pid or '', numba threads, OpenCV threads) for each place the model ran."""
    return [(m.group(1) or "", int(m.group(2)), int(m.group(3))) for m in THREADS.finditer(stderr)]


def _demo_run(tmp_path, *args, inputs=(DEMO,)):
    r = run_process(*inputs, "--out", tmp_path / "o", "--max-frames", "12", "-v", *args, method=False)
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("n", [1, 2])
def test_process_threads_option_sets_the_model_threads(tmp_path, n):
    if n > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"numba's pool has {numba.config.NUMBA_NUM_THREADS} thread(s) here")
    r = _demo_run(tmp_path, "--threads", str(n))
    assert _threads(r.stderr) == [("", n, n)], r.stderr
    assert (tmp_path / "o" / "demo" / "mask.mkv").stat().st_size > 0


def test_process_default_uses_every_core(tmp_path):
    r = _demo_run(tmp_path)
    assert _threads(r.stderr) == [("", min(cores(), numba.config.NUMBA_NUM_THREADS), cores())], r.stderr


def _two_inputs(tmp_path):
    second = tmp_path / "copy" / "input"
    second.mkdir(parents=True)
    for p in sorted(DEMO.iterdir())[:12]:
        (second / p.name).write_bytes(p.read_bytes())
    return DEMO, second


def test_jobs_do_not_oversubscribe(tmp_path):
    n = cores()
    r = _demo_run(tmp_path, "--jobs", "2", inputs=_two_inputs(tmp_path))
    workers = _threads(r.stderr)
    assert len(workers) == 2 and all(pid for pid, _, _ in workers), r.stderr
    per_job = max(1, n // 2)
    assert [t for _, t, _ in workers] == [per_job, per_job], r.stderr
    if n >= 2:
        assert 2 * per_job <= n
        assert "oversubscribed" not in r.stderr
    for name in ("demo", "copy"):
        assert (tmp_path / "o" / name / "mask.mkv").is_file()


def test_jobs_times_threads_above_the_cores_only_when_asked(tmp_path):
    n = min(cores(), numba.config.NUMBA_NUM_THREADS)
    if n < 2:
        pytest.skip("needs 2 cores")
    r = _demo_run(tmp_path, "--jobs", "2", "--threads", str(n), inputs=_two_inputs(tmp_path))
    assert [t for _, t, _ in _threads(r.stderr)] == [n, n], r.stderr
    assert re.search(rf"warning: 2 job\(s\) x {n} thread\(s\) = {2 * n} threads on {cores()} cores: "
                     r"oversubscribed as asked", r.stderr), r.stderr


def test_plan():
    assert plan(1, None, 1, ncores=8) == (1, 8, "")
    assert plan(4, None, 10, ncores=8) == (4, 2, "")
    assert plan(3, None, 10, ncores=8) == (3, 2, "")
    assert plan(4, None, 2, ncores=8) == (2, 4, "")          # no more jobs than inputs
    assert plan(2, 3, 5, ncores=8) == (2, 3, "")
    j, t, w = plan(4, 3, 5, ncores=8)
    assert (j, t) == (4, 3) and "12 threads on 8 cores" in w
    j, t, w = plan(4, None, 5, ncores=2)
    assert (j, t) == (4, 1) and "--jobs 4 on 2 cores" in w
    for jobs in range(1, 9):
        for c in range(1, 9):
            j, t, w = plan(jobs, None, 100, ncores=c)
            assert j * t <= c or (t == 1 and w)
    with pytest.raises(KLMotionError):
        plan(1, 0, 1)
    with pytest.raises(KLMotionError):
        plan(0, None, 1)


@pytest.mark.parametrize("cmd", [
    ["process", str(DEMO), "--out", "{tmp}/o", "--threads", "0"],
    ["eval", str(DEMO.parent), "--threads", "0"],
    ["view", str(DEMO), "--threads", "-1"],
])
def test_bad_threads_is_one_line(tmp_path, cmd):
    cmd = [c.replace("{tmp}", str(tmp_path)) for c in cmd]
    r = subprocess.run([sys.executable, "-m", "kl_motion", *cmd], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "kl-motion: error: --threads must be at least 1", r.stderr
    assert not (tmp_path / "o").exists()


def test_eval_threads(tmp_path):
    r = subprocess.run([sys.executable, "-m", "kl_motion", "eval", str(DEMO.parent), "-q", "--threads", "1"],
                       capture_output=True, text=True, timeout=200)
    assert r.returncode == 0, r.stderr
    assert "(ms/frame with 1 numba thread(s), 1 OpenCV thread(s))" in r.stdout


@pytest.mark.parametrize("env, policy, spin", [
    ({}, "PASSIVE", "0"),                         # nothing chosen: kl_motion sets passive waiting
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE", None),   # the user's choice stays
    ({"GOMP_SPINCOUNT": "300000"}, "None", "300000"),  # a spin count is a choice too
])
def test_wait_policy_reaches_libgomp(env, policy, spin):
    """libgomp reads its environment once, when numba loads it (first parallel call): the policy must
    be in place by then.  OMP_DISPLAY_ENV=VERBOSE makes libgomp print what it read."""
    code = ("import os, numba\nimport kl_motion\nfrom kl_motion.model import MotionModel\nimport numpy as np\n"
            "MotionModel().apply(np.zeros((8, 8, 3), np.uint8))\n"
            "print(os.environ.get('OMP_WAIT_POLICY'), numba.threading_layer())")
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "NUMBA_THREADING_LAYER")}
    r = subprocess.run([sys.executable, "-c", code], env=dict(base, OMP_DISPLAY_ENV="VERBOSE", **env),
                       capture_output=True, text=True, timeout=200)
    assert r.returncode == 0, r.stderr
    got, layer = r.stdout.split()
    assert got == policy
    if layer != "omp":
        pytest.skip(f"numba's threading layer here is {layer}, not OpenMP")
    if spin is not None:
        assert f"GOMP_SPINCOUNT = '{spin}'" in r.stderr, r.stderr
    else:
        assert "GOMP_SPINCOUNT = '0'" not in r.stderr, r.stderr
