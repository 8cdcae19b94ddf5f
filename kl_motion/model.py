"""The stateful background model: validates frames, owns the state, calls the kernels."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numba
import numpy as np

from . import kernels, precompile
from .atomic import atomic_path
from .errors import FrameError, FrameTypeError, StateError
from .params import Params, PendingParams, needs_reset
from .postprocess import Blob, clean, feedback_cover, zone_mask
from .statefile import STATE_VERSION
from .threads import ThreadTuner, pinned


@dataclass
class FrameResult:
    """What the model gives for one frame."""
    mask: np.ndarray          # uint8 (H, W): 0 background, 255 foreground, 127 shadow
    kl: np.ndarray            # float32 (H, W): KL(current || background)
    blobs: list[Blob] = field(default_factory=list)
    index: int = 0            # frames seen by the model, this one included
    _model: "MotionModel | None" = field(default=None, repr=False)
    _bg: np.ndarray | None = field(default=None, repr=False)
    _step: int = field(default=0, repr=False)   # the model's apply() count when this frame was done

    @property
    def fg_fraction(self) -> float:
        return float(np.count_nonzero(self.mask == 255)) / self.mask.size

    @property
    def area(self) -> int:
        """Foreground pixels that count toward motion: the blobs' total area (after min_area)."""
        return sum(b.area for b in self.blobs)

    @property
    def background(self) -> np.ndarray | None:
        """The background image as it was when this frame was processed: taken at apply time with
        ``apply(frame, background=True)``, else computed on first access while the model has not
        processed a later frame (after that it is gone: StateError, never a later frame's)."""
        if self._bg is None and self._model is not None:
            if self._model._steps != self._step:
                raise StateError(f"the background of frame {self.index} is gone: the model has processed later "
                                 "frames (use apply(frame, background=True) to keep it)")
            self._bg = self._model.background()
        return self._bg


class MotionModel(PendingParams):
    """Per-pixel Gaussian-mixture background with a KL-divergence motion score.

    >>> m = MotionModel(Params(kl_threshold=8))
    >>> r = m.apply(frame)          # r.mask, r.kl, r.background
    >>> m.set_params(kl_threshold=5)  # applied before the next frame
    """

    def __init__(self, params: Params | None = None, **overrides):
        p = params if params is not None else Params()
        if overrides:
            p = p.replace(**overrides)
        self._init_params(p)
        self._shape: tuple[int, int, int] | None = None   # full-size (H, W, C)
        self._n = 0
        self._n_fb = 0             # frames the restless feedback has seen (a relearn keeps it)
        self._steps = 0            # apply() calls, never reset: tells a FrameResult whether it is the newest
        self._zone_key: tuple[int, int] | None = None
        self._zone: np.ndarray | None = None
        self._relearn = False
        # the kernel's thread count follows its measured frame times unless use_threads() pinned one
        self.thread_tuner = ThreadTuner()

    # ------------------------------------------------------------------ params
    def _params_changed(self, old: Params, p: Params) -> None:
        """A change that needs new state: fewer/more components keep what was learned, a new
        scale starts over (PendingParams._take_pending calls this between frames)."""
        if self._shape is not None and needs_reset(old, p):
            if old.n_components != p.n_components and old.scale == p.scale:
                self._resize_components(p.n_components)
            else:
                self.reset()

    # ------------------------------------------------------------------ state
    @property
    def frames_seen(self) -> int:
        return self._n

    @property
    def frame_shape(self) -> tuple[int, int, int] | None:
        return self._shape

    def reset(self) -> None:
        """Forget the background; the next frame starts a new model (of any size)."""
        self._shape = None
        self._n = 0

    def relearn(self) -> None:
        """Re-learn quickly (after a light switch): the learning rate restarts at 1/n."""
        self._relearn = True

    def _allocate(self, shape: tuple[int, int, int]) -> None:
        H, W, C = shape
        h, w = self._detect_size(H, W)
        K = self._params.n_components
        self._st = np.zeros((h, 2 + C, K, w), np.float32)       # layout: kernels module docstring
        self._nmodes = np.zeros((h, w), np.uint8)
        # current distribution (C + 1, h, w): only allocated when current_rate < 1 needs it; with
        # rate 1 it is the frame itself and the kernel gets a 1x1 stand-in
        self._curs: np.ndarray | None = None
        self._cur_valid = False
        self._cur_dummy = np.zeros((C + 1, 1, 1), np.float32)
        self._kl = np.zeros((h, w), np.float32)
        self._kl_pool: list[np.ndarray] = []
        self._kl_px = np.zeros((h, w), np.float32)
        self._fb = np.zeros((h, w), np.float32)        # restless level (kernels.step; last label: _raw)
        self._raw = np.zeros((h, w), np.uint8)
        self._keep = np.ones((h, w), np.float32)      # prod(1 - alpha) since the pixel last learned (kernels.step)
        self._fgd = np.zeros((h, w), np.uint8)
        self._fbm = np.zeros((h, w), np.uint8)         # clean()'s mask for the feedback (scratch)
        self._planes = np.empty((C, h, w), np.uint8)          # the frame as planes, for the kernel
        self._plane_list = list(self._planes)
        self._shape = shape
        self._n = 0
        self._n_fb = 0

    def _detect_size(self, H: int, W: int) -> tuple[int, int]:
        return _detect_size(H, W, self._params.scale)

    @property
    def _gmm(self) -> np.ndarray:
        """The mixture as an (h, w, K, 2 + C) view: gmm[y, x, k] = (weight, variance, means)."""
        return kernels.aos_view(self._st)

    @property
    def _cur(self) -> np.ndarray:
        """The current distribution as an (h, w, C + 1) view: (means, variance)."""
        return kernels.cur_view(self._fill_cur())

    def _fill_cur(self) -> np.ndarray:
        """With current_rate 1 the kernel neither reads nor writes cur: the current distribution
        is the last frame with variance 0 (floored by the kernel).  Allocate cur and write that."""
        C, h, w = self._planes.shape
        curs = self._curs
        if curs is None:
            curs = self._curs = np.zeros((C + 1, h, w), np.float32)
            self._cur_valid = False
        if not self._cur_valid:
            if self._n > 0:
                curs[:C] = self._planes
                curs[C] = 0.0
            self._cur_valid = True
        return curs

    def _kl_buffer(self) -> np.ndarray:
        """An (h, w) float32 array for this frame's KL map that no FrameResult still holds: the
        kernel writes it and the result takes it without a copy (a fresh 8 MB array per 1080p frame
        costs a copy and page faults)."""
        for a in self._kl_pool:
            if sys.getrefcount(a) <= 3:          # the pool's reference, `a`, getrefcount's argument
                return a
        a = np.empty(self._kl.shape, np.float32)
        if len(self._kl_pool) < 4:
            self._kl_pool.append(a)
        return a

    def _resize_components(self, K: int) -> None:
        old = self._st
        h, S, K0, w = old.shape
        st = np.zeros((h, S, K, w), np.float32)
        k = min(K, K0)
        st[:, :, :k] = old[:, :, :k]
        self._st = st
        self._nmodes = np.minimum(self._nmodes, K).astype(np.uint8)
        live = np.arange(K)[None, :, None] < self._nmodes[:, None, :]
        wts = st[:, 0]
        wts[~live] = 0.0
        tot = wts.sum(axis=1)
        wts /= np.where(tot > 0, tot, 1.0)[:, None, :]

    # ------------------------------------------------------------------ frames
    def _check(self, frame) -> np.ndarray:
        if not isinstance(frame, np.ndarray):
            raise FrameTypeError(f"frame must be a numpy array, got {type(frame).__name__}")
        if frame.dtype != np.uint8:
            raise FrameTypeError(f"frame must be uint8 (BGR or grey), got dtype {frame.dtype}")
        if frame.ndim == 2:
            frame = frame[:, :, None]
        elif frame.ndim != 3:
            raise FrameError(f"frame must have 2 (grey) or 3 (BGR) dimensions, got shape {frame.shape}")
        if frame.shape[2] not in (1, 3):
            raise FrameError(f"frame must have 1 or 3 channels, got {frame.shape[2]} (shape {frame.shape})")
        if frame.shape[0] < 1 or frame.shape[1] < 1:
            raise FrameError(f"frame is empty (shape {frame.shape})")
        if self._shape is not None and frame.shape != self._shape:
            H, W, C = self._shape
            raise FrameError(f"frame size changed from {W}x{H}x{C} to {frame.shape[1]}x{frame.shape[0]}x"
                             f"{frame.shape[2]}; call reset() first")
        return frame

    def apply(self, frame: np.ndarray, background: bool = False) -> FrameResult:
        """Score, label and learn one frame. Returns a FrameResult (with its background image
        taken now when ``background``; see FrameResult.background)."""
        self._take_pending()
        self._steps += 1
        frame = self._check(frame)
        if self._shape is None:
            self._allocate(frame.shape)
            if precompile.cold(frame.shape[2] == 3):        # a new machine: part compiles on the other core
                precompile.start(*self._kl.shape, self._params, colour=frame.shape[2] == 3)
        assert self._shape is not None
        p = self._params
        H, W, C = self._shape
        h, w = self._kl.shape
        small = frame
        if (h, w) != (H, W):
            small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
            if small.ndim == 2:
                small = small[:, :, None]
        if p.current_rate < 1.0:
            self._fill_cur()                                # from the previous frame's planes
        if C == 1:
            self._planes[0] = small[:, :, 0]
        else:
            cv2.split(small, self._plane_list)              # writes into self._planes
        if self._relearn:
            self._relearn = False
            self._n = 0
        first = self._n == 0 and not self._nmodes.any()
        self._n += 1
        self._n_fb += 1
        alpha = max(1.0 / p.history, 1.0 / self._n)
        N = 1 if first else p.learn_every               # the first frame initialises every row
        # the restless level has a fast start like the mixture's: over the first 1 / restless_rate
        # frames it is the mean of the label flips seen so far, so a short clip's water and leaves
        # are restless after a few frames, where a moving average from zero would take ~1 / rate
        # frames.  A relearn (light switch) keeps the levels: the water is still water
        rest_rate = max(p.restless_rate, 1.0 / self._n_fb)
        kl = self._kl_buffer()
        cur = self._curs if p.current_rate < 1.0 else self._cur_dummy
        n_max = numba.get_num_threads()
        tune = pinned() is None
        nthreads = self.thread_tuner.count(n_max) if tune else n_max
        if nthreads != n_max:
            numba.set_num_threads(nthreads)
        t0 = time.perf_counter()
        try:
            kernels.step(self._planes, self._st, self._nmodes, cur, self._kl_px, kl, self._raw,
                         np.float32(alpha), first, np.float32(p.match_sigma ** 2), np.float32(p.background_ratio),
                         np.float32(p.var_init), np.float32(p.var_min), np.float32(p.var_max),
                         np.float32(p.complexity_prior), np.float32(p.fg_learn_factor),
                         p.pool_radius, np.float32(p.current_rate),
                         np.float32(p.kl_threshold), self._fb, self._fgd, np.float32(p.restless_gain), np.float32(rest_rate),
                         np.float32(p.restless_learn),
                         p.neighbour_radius, p.detect_shadows and C == 3, np.float32(p.shadow_low),
                         np.float32(p.shadow_high), np.float32(p.shadow_chroma), N, self._n % N, self._keep, nthreads)
        finally:
            if nthreads != n_max:
                numba.set_num_threads(n_max)
        if tune:
            self.thread_tuner.record(time.perf_counter() - t0)
        if p.current_rate >= 1.0:
            self._cur_valid = False
        self._kl = kl
        zone = self._zone_for(w, h)
        area_scale = (h * w) / float(H * W)
        mask, blobs = clean(self._raw, p, zone, area_scale, feedback=self._fbm)
        # label flips inside or next to the cleaned foreground are objects' edges, not a restless
        # background: the kernel does not count them on the next frame.  The objects are the
        # blobs of feedback_min_area (self._fbm), so min_area changes the output, not the model
        feedback_cover(self._fbm, self._fgd)
        if (h, w) != (H, W):
            mask = cv2.resize(mask, (W, H), interpolation=cv2.INTER_NEAREST)
            kl = cv2.resize(kl, (W, H), interpolation=cv2.INTER_LINEAR)
            sx, sy = W / w, H / h
            blobs = [Blob(int(b.x * sx), int(b.y * sy), max(1, int(round(b.w * sx))), max(1, int(round(b.h * sy))),
                          int(round(b.area / area_scale))) for b in blobs]
        return FrameResult(mask=mask, kl=kl, blobs=blobs, index=self._n, _model=self, _step=self._steps,
                           _bg=self.background() if background else None)

    __call__ = apply

    def _zone_for(self, w: int, h: int):
        if (w, h) != self._zone_key:
            self._zone = zone_mask(self._params, w, h)
            self._zone_key = (w, h)
        return self._zone

    def background(self) -> np.ndarray | None:
        """The current background image (uint8, full size, BGR or grey like the input)."""
        if self._shape is None:
            return None
        H, W, C = self._shape
        h, w = self._kl.shape
        out: np.ndarray = np.empty((h, w, C), np.uint8)
        kernels.background_image(self._st, self._nmodes, out)
        if (h, w) != (H, W):
            out = cv2.resize(out, (W, H), interpolation=cv2.INTER_LINEAR)
            out = out.reshape(H, W, C)
        return out[:, :, 0] if C == 1 else out

    @property
    def state_bytes_per_pixel(self) -> float:
        if self._shape is None:
            return float("nan")
        arrs: list[np.ndarray] = [self._st, self._nmodes, self._kl_px, self._kl, self._raw, self._fb, self._fgd, self._fbm]
        if self._curs is not None:
            arrs.append(self._curs)
        return sum(a.nbytes for a in arrs) / float(self._kl.size)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Save the learned state and parameters to an .npz file (no pickle): the mixture, the
        current distribution, the restless feedback (levels, last labels, covered pixels) and the
        turns' state (learn_every)."""
        if self._shape is None:
            raise StateError("nothing to save: the model has not seen a frame")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:    # a file object: numpy adds no .npz
            np.savez_compressed(f, version=np.int64(STATE_VERSION), shape=np.array(self._shape, np.int64),
                                frames_seen=np.int64(self._n), gmm=self._gmm, nmodes=self._nmodes, cur=self._cur,
                                level=self._fb, labels=self._raw, covered=self._fgd, keep=self._keep,
                                params=np.array(self._params.to_toml(comments=False)))

    @classmethod
    def load(cls, path: str | Path, params: Params | None = None, max_pixels: int | None = None) -> "MotionModel":
        """Restore a model saved by save(). ``params`` overrides the saved parameters
        (those that change the state's shape must match).  The file is checked (statefile.py:
        array shapes and types against the declared frame and ``max_pixels`` before anything
        large is read, then finite, in-range values); any problem is a StateError."""
        from .statefile import MAX_PIXELS, read_state

        def layout(saved: dict, shape):
            p = Params.from_dict(saved)
            h, w = _detect_size(shape[0], shape[1], p.scale)
            K, C = p.n_components, shape[2]
            return {"gmm": (h, w, K, 2 + C), "nmodes": (h, w), "cur": (h, w, C + 1)}, K

        saved_dict, shape, n, a = read_state(path, layout, MAX_PIXELS if max_pixels is None else max_pixels)
        saved = Params.from_dict(saved_dict)
        p = params or saved
        if needs_reset(saved, p):
            raise StateError(f"{path}: saved with n_components={saved.n_components}, scale={saved.scale}; "
                             "these cannot change on load")
        m = cls(p)
        m._allocate(shape)
        m._gmm[...] = a["gmm"]
        m._nmodes[...] = a["nmodes"]
        m._cur[...] = a["cur"]
        if "level" in a:                            # version 1 files: the feedback starts from zero
            m._fb[...] = a["level"]
            m._raw[...] = a["labels"]
            m._fgd[...] = a["covered"]
            m._n_fb = n
        if "keep" in a:                             # before version 3: as if every pixel had just learned
            m._keep[...] = a["keep"]
        m._n = n
        return m


def _detect_size(H: int, W: int, scale: float) -> tuple[int, int]:
    """The size the model detects at for an H x W frame at ``scale``."""
    if scale >= 1.0:
        return H, W
    return max(1, int(round(H * scale))), max(1, int(round(W * scale)))
