"""kl_motion.precompile: on a cold numba cache the cleanup kernels are compiled by a helper process.

Real processes and a real, empty numba cache folder: the helper (``python -m kl_motion.precompile``)
runs alone; then a new process with the same cache runs the real cleanup with the same parameters
and compiles nothing (every blobs_nb kernel it calls comes from the cache).  Planted and seen
failing: the helper ignoring the zones (the zone path's kernels are then compiled by the real
cleanup), ``cold()`` answering True with a warm cache, the model not starting the helper on a cold
cache, the helper compiling one of the band's callees for other types than the band's (a float32
argument as int64: the band's cold compile then compiles it again).  (A helper image without shadow
pixels compiles the same kernels: numba compiles what is called, not what is taken.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kl_motion import precompile
from kl_motion.model import MotionModel
from kl_motion.params import Params

CHECK = r"""
import json, sys
import numpy as np
from kl_motion import blobs_nb, precompile
from kl_motion.params import Params
from kl_motion.postprocess import clean, feedback_cover, zone_mask
h, w, p = int(sys.argv[1]), int(sys.argv[2]), Params.from_dict(json.loads(sys.argv[3]))
before = precompile.cold(True), precompile._cached(blobs_nb.paint_runs)
from kl_motion import kernels
step_cached = precompile._cached(kernels._step)
rng = np.random.default_rng(1)
raw = np.where(rng.random((h, w)) < 0.02, 255, 0).astype(np.uint8)   # a real label image: blobs, noise
raw[h // 3: h // 2, w // 3: w // 2] = 255
raw[h // 2: h // 2 + 6, w // 3: w // 2] = 127
fb = np.zeros_like(raw)
mask, blobs = clean(raw, p, zone_mask(p, w, h), 1.0, feedback=fb)
feedback_cover(fb, np.zeros_like(raw))
misses = {n: sum(d.stats.cache_misses.values()) for n, d in vars(blobs_nb).items()
          if hasattr(d, "stats") and sum(d.stats.cache_misses.values())}
hits = sum(sum(d.stats.cache_hits.values()) for d in vars(blobs_nb).values() if hasattr(d, "stats"))
print(json.dumps(dict(before=before, misses=misses, hits=hits, blobs=len(blobs), step_cached=step_cached)))
"""


def _env(cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), KL_MOTION_PRECOMPILE="0")
    env.pop("NUMBA_DISABLE_JIT", None)
    return env


@pytest.mark.parametrize("zones", [False, True], ids=["defaults", "ignore-zone"])
def test_the_helper_compiles_every_cleanup_kernel_the_real_cleanup_uses(tmp_path, zones):
    p = Params(ignore_zones=[[[0, 0], [0.3, 0], [0.3, 0.3]]] if zones else [])
    h, w = 120, 160
    args = [str(h), str(w), json.dumps(p.to_dict())]
    cache = tmp_path / "numba"
    # a cold cache: nothing there yet
    r0 = subprocess.run([sys.executable, "-c", "from kl_motion import precompile, blobs_nb; "
                         "print(precompile.cold(True), precompile._cached(blobs_nb.paint_runs))"],
                        capture_output=True, text=True, timeout=120, env=_env(cache))
    assert r0.returncode == 0 and r0.stdout.split() == ["True", "False"], r0.stderr[-800:]
    helper = subprocess.run([sys.executable, "-m", "kl_motion.precompile", *args], capture_output=True, text=True,
                            timeout=600, env=_env(cache))
    assert helper.returncode == 0, helper.stderr[-800:]
    r = subprocess.run([sys.executable, "-c", CHECK, *args], capture_output=True, text=True, timeout=600,
                       env=_env(cache))
    assert r.returncode == 0, r.stderr[-800:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # the cleanup is cached now, so cold() (both missing) is False; the real cleanup compiled nothing
    assert out["before"] == [False, True]
    assert out["misses"] == {}, out
    assert out["hits"] >= 5 and out["blobs"] >= 1
    assert out["step_cached"] is True               # and the model's parallel loop over bands


def test_the_model_starts_the_helper_only_on_a_cold_cache(monkeypatch):
    started = []
    monkeypatch.setattr(precompile, "start", lambda h, w, p, colour: started.append((h, w, colour)))
    frame = np.zeros((48, 64, 3), np.uint8)
    monkeypatch.setattr(precompile, "cold", lambda colour: False)
    MotionModel(Params()).apply(frame)
    assert started == []
    monkeypatch.setattr(precompile, "cold", lambda colour: colour)
    m = MotionModel(Params(scale=0.5))
    m.apply(frame)
    m.apply(frame)                       # once per model, at its first frame, with the model's working size
    assert started == [(24, 32, True)]


def test_cold_is_false_where_the_kernels_are_cached():
    """This test process has run the kernels before (the suite's cache is warm by now)."""
    MotionModel(Params()).apply(np.zeros((48, 64, 3), np.uint8))
    assert precompile.cold(True) is False


@pytest.mark.parametrize("shape", [(48, 64, 3), (48, 64)], ids=["colour", "grey"])
def test_the_helper_compiles_the_parallel_loop_for_the_types_the_model_calls_it_with(shape):
    """The helper compiles _step for kernels._step_types(); that is a cache hit for the model only if the
    model calls it with exactly those types, colour and grey (checked here on the model's real calls)."""
    from kl_motion import kernels
    m = MotionModel(Params())
    m.apply(np.zeros(shape, np.uint8))
    assert kernels._step_types() in kernels._step.signatures     # nothing else here compiles it with those types
    assert len(kernels._step.signatures) == 1          # colour and grey frames: one signature


BAND = r"""
import json, sys
from kl_motion import kernels
colour = sys.argv[1] == "3"
band = kernels._band3 if colour else kernels._band1
kernels._band_addr(band)            # a cold compile of the band: its callees come from the cache or are compiled
callees = ["_neighbours_row3" if colour else "_neighbours_row1", "_neighbour_terms", "_kl_take", "_kl_iso", "_logf",
           "_moves_up", "_pool_clipped", "_inband"]
stats = {n: (sum(getattr(kernels, n).stats.cache_hits.values()), sum(getattr(kernels, n).stats.cache_misses.values()))
         for n in callees}
print(json.dumps(dict(band_misses=sum(band.stats.cache_misses.values()), stats=stats)))
"""


@pytest.mark.parametrize("channels", ["3", "1"], ids=["colour", "grey"])
def test_the_helper_compiles_the_band_callees_for_the_types_the_band_calls_them_with(tmp_path, channels):
    """The helper's first step (kernels.compile_band_callees) saves the model's band compile its callees only if
    their types are the ones the band's own compile asks for: after the helper's step in one process, a cold
    compile of the band in another finds every callee in the cache (no miss), colour and grey."""
    cache = tmp_path / "numba"
    helper = subprocess.run([sys.executable, "-c", "import sys; from kl_motion import kernels; "
                             "kernels.compile_band_callees(sys.argv[1] == '3')", channels],
                            capture_output=True, text=True, timeout=600, env=_env(cache))
    assert helper.returncode == 0, helper.stderr[-800:]
    r = subprocess.run([sys.executable, "-c", BAND, channels], capture_output=True, text=True, timeout=900,
                       env=_env(cache))
    assert r.returncode == 0, r.stderr[-800:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["band_misses"] == 1                  # the band itself was compiled (a cold cache for it)
    used = {n: hm for n, hm in out["stats"].items() if hm != [0, 0]}
    assert all(miss == 0 for _, miss in used.values()), out
    assert sum(hit for hit, _ in used.values()) >= 5, out
