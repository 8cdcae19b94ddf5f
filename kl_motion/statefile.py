"""Reading a saved model state (``MotionModel.save``'s .npz) without trusting it.

A state file may come from anywhere: every array's shape and dtype is read from its .npy header
(inside the zip, without decompressing the data) and checked against the shape the file declares
and against ``max_pixels`` before any array is read, so a small file cannot make the loader
allocate gigabytes; then the values are checked (finite, weights 0..1, variances >= 0, means in
the grey-level range, component counts within n_components, a frame counter >= 0, restless
levels in 0..1, labels 0/127/255, the turns' products in 0..1).  Every problem is a StateError naming
the file.  Version 1 files (before the restless feedback was saved) still load, with the feedback
starting from zero; version 2 files (before the turns' state) with every pixel as if it had just learned.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import StateError
from .fsnames import shown
from .params import tomllib        # tomllib, or tomli on Python 3.10

STATE_VERSION = 3             # the layout MotionModel.save writes (model.py imports it from here)
READABLE_VERSIONS = (1, 2, 3)  # 1: before the restless feedback was saved (it starts from zero); 2: before "keep"
MAX_PIXELS = 1 << 24          # 16.8 million detection pixels (4096 x 4096; 8K UHD at scale 0.7)
MAX_FRAMES_SEEN = 1 << 53
MAX_PARAMS_CHARS = 1 << 16
_SCALARS = {"version": np.int64, "frames_seen": np.int64}
_MEMBERS = ("version", "shape", "frames_seen", "gmm", "nmodes", "cur", "params")
_FEEDBACK = {"level": np.float32, "labels": np.uint8, "covered": np.uint8}   # version 2: the restless feedback
_TURNS = {"keep": np.float32}     # version 3: per pixel, prod(1 - alpha) since it last learned (learn_every)


class _Bad(ValueError):
    """A check of ours failed (its message says which)."""


def _header(zf: zipfile.ZipFile, name: str):
    """(shape, dtype) from the .npy header of member ``name`` (no data read)."""
    try:
        f = zf.open(name + ".npy")
    except KeyError:
        raise _Bad(f"no '{name}' array") from None
    with f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    if dtype.hasobject:
        raise _Bad(f"'{name}' holds Python objects")
    return tuple(int(v) for v in shape), dtype


def read_state(path: str | Path, layout: Callable, max_pixels: int = MAX_PIXELS
               ) -> tuple[dict, tuple[int, int, int], int, dict[str, np.ndarray]]:
    """Check and read a state file.  ``layout(saved_params_dict, (H, W, C))`` gives the expected
    {name: shape} of the gmm, nmodes and cur arrays and the number of mixture components K.
    Returns (saved parameters as a TOML dict, (H, W, C), frames_seen, {gmm, nmodes, cur} and, from
    version 2 on, the restless feedback {level, labels, covered}, and from version 3 the turns' state
    {keep}, each of nmodes' shape)."""
    path = Path(path)
    name = shown(path)
    try:
        with zipfile.ZipFile(path) as zf:
            heads = {k: _header(zf, k) for k in _MEMBERS}
            for k, t in _SCALARS.items():
                if heads[k] != ((), np.dtype(t)):
                    raise _Bad(f"'{k}' must be one {np.dtype(t)}, got shape {heads[k][0]} {heads[k][1]}")
            if heads["shape"] != ((3,), np.dtype(np.int64)):
                raise _Bad(f"'shape' must be 3 int64 values, got shape {heads['shape'][0]} {heads['shape'][1]}")
            ps, pt = heads["params"]
            if ps != () or pt.kind != "U" or pt.itemsize // 4 > MAX_PARAMS_CHARS:
                raise _Bad(f"'params' must be one string of at most {MAX_PARAMS_CHARS} characters")
            with np.load(path, allow_pickle=False) as z:
                small = {k: z[k] for k in ("version", "shape", "frames_seen", "params")}
                version = int(small["version"])
                if version not in READABLE_VERSIONS:
                    raise StateError(f"{name}: state version {version}, this kl_motion reads "
                                     f"{', '.join(map(str, READABLE_VERSIONS))}")
                H, W, C = (int(v) for v in small["shape"])
                if not (1 <= H <= max_pixels and 1 <= W <= max_pixels and C in (1, 3)):
                    raise _Bad(f"declared frame shape {H}x{W}x{C} is not a frame (H, W >= 1; 1 or 3 channels)")
                saved = tomllib.loads(str(small["params"]))
                want, K = layout(saved, (H, W, C))
                h, w = want["nmodes"]
                if h * w > max_pixels:
                    raise _Bad(f"declared frame {W}x{H} ({h * w} detection pixels) is over the limit of "
                                     f"{max_pixels} pixels")
                dtypes = {"gmm": np.float32, "nmodes": np.uint8, "cur": np.float32}
                for first, extra in ((2, _FEEDBACK), (3, _TURNS)):
                    if version >= first:
                        for k, dt in extra.items():
                            heads[k] = _header(zf, k)
                            want[k] = want["nmodes"]
                            dtypes[k] = dt
                for k, dt in dtypes.items():
                    if heads[k] != (tuple(want[k]), np.dtype(dt)):
                        raise _Bad(f"'{k}' is {heads[k][0]} {heads[k][1]}, expected {tuple(want[k])} "
                                         f"{np.dtype(dt)} for a {W}x{H}x{C} frame")
                arrays = {k: z[k] for k in dtypes}
                n = int(small["frames_seen"])
    except FileNotFoundError:
        raise StateError(f"state file not found: {name}") from None
    except StateError:
        raise
    except _Bad as e:
        raise StateError(f"{name} is not a usable kl_motion state file: {e}") from None
    except Exception as e:  # zip/npz/header/TOML errors all mean the same to a user
        raise StateError(f"{name} is not a kl_motion state file ({type(e).__name__}: {e})") from None
    _check_values(name, arrays, n, K, C)
    return saved, (H, W, C), n, arrays


def _check_values(name: str, a: dict[str, np.ndarray], n: int, K: int, C: int) -> None:
    def bad(what: str):
        raise StateError(f"{name}: {what}; the state file is damaged or not from kl_motion")

    if not 0 <= n <= MAX_FRAMES_SEEN:
        bad(f"frames_seen={n} is outside 0..{MAX_FRAMES_SEEN}")
    g, cur, nm = a["gmm"], a["cur"], a["nmodes"]
    if not np.isfinite(g).all():
        bad("the mixture holds NaN or infinite values")
    if not np.isfinite(cur).all():
        bad("the current distribution holds NaN or infinite values")
    if int(nm.max(initial=0)) > K:
        bad(f"a pixel has {int(nm.max())} mixture components; n_components is {K}")
    wts, var, means = g[..., 0], g[..., 1], g[..., 2:]
    if wts.size and (wts.min() < 0 or wts.max() > 1.001):
        bad(f"mixture weights range {wts.min():g}..{wts.max():g}, not 0..1")
    if var.size and var.min() < 0:
        bad(f"a mixture variance is negative ({var.min():g})")
    for what, m in (("mixture", means), ("current distribution", cur[..., :C])):
        if m.size and (m.min() < -0.5 or m.max() > 255.5):
            bad(f"{what} means range {m.min():g}..{m.max():g}, not 0..255")
    if cur.size and cur[..., C].min() < 0:
        bad(f"a current-distribution variance is negative ({cur[..., C].min():g})")
    if "level" in a:
        lv, lab = a["level"], a["labels"]
        if lv.size and not (np.isfinite(lv).all() and lv.min() >= 0 and lv.max() <= 1):
            bad("a restless level is not a number in 0..1")
        if lab.size and not np.isin(lab, (0, 127, 255)).all():
            bad("a label is not 0, 127 or 255")
    if "keep" in a:
        kp = a["keep"]
        if kp.size and not (np.isfinite(kp).all() and kp.min() >= 0 and kp.max() <= 1):
            bad("a turns' product (keep) is not a number in 0..1")
