"""A plain, slow, obviously-correct NumPy reference of ``kl_motion.kernels``.

Written from the math in the kernel's docstring and comments, not from its loops,
so that tests can check the fast numba kernels against it.  Each piece of the
math is one small function below; when the kernel's math changes, change the
matching function here (and nothing else).

Precision: everything is computed in float64 and the state is stored back as
float32 (the kernel computes in float32 with fastmath), so results agree to about
1e-5 relative; a pixel that sits exactly on a decision boundary (match test,
background cut, threshold) may go the other way -- the tests allow a tiny fraction.

State layout (the same arrays as the kernel; see kernels.py):
  gmm[y, x, k, :] = (weight, variance, mean_0 .. mean_{C-1}), sorted by decreasing weight
  nmodes[y, x]    = live components;  cur[y, x, :] = (mean_0 .. mean_{C-1}, variance)
Only the first ``nmodes`` components of a pixel are meaningful.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np


@dataclass
class StepParams:
    """The scalar arguments of ``kernels.step`` in its argument order."""
    alpha: float = 0.05
    first: bool = False
    match_t2: float = 2.5 ** 2
    bg_ratio: float = 0.9
    var_init: float = 15.0
    var_min: float = 9.0
    var_max: float = 75.0
    c_prior: float = 0.05
    fg_factor: float = 0.1
    pool_r: int = 1
    beta: float = 0.7
    kl_thr: float = 6.0
    rest_gain: float = 0.0
    rest_rate: float = 0.0
    rest_learn: float = 0.0
    nb_r: int = 1
    shadows: bool = True
    sh_lo: float = 0.45
    sh_hi: float = 0.95
    sh_chroma: float = 0.04
    upd_n: int = 1          # the rows take turns learning: row y on the frames where y % upd_n == upd_r
    upd_r: int = 0

    def kernel_args(self, lvl: np.ndarray, fgd: np.ndarray, keep: np.ndarray | None = None) -> tuple:
        """The scalars as the model passes them to the kernel (float32 / int / bool), with the
        feedback state (restless level ``lvl``, dilated mask ``fgd``) in its place after kl_thr and
        the turns' state ``keep`` (ones when None) after upd_r."""
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "rest_gain":
                out += [lvl, fgd]
            if isinstance(v, bool):
                out.append(v)
            elif isinstance(v, int):
                out.append(v)
            else:
                out.append(np.float32(v))
        out.append(np.ones(lvl.shape, np.float32) if keep is None else keep)
        return tuple(out)

    def f32(self, name: str) -> float:
        """A parameter as the kernel sees it (rounded to float32), as a Python float."""
        return float(np.float32(getattr(self, name)))


# ----------------------------------------------------------------------------- pieces of the math
def update_current(frame: np.ndarray, cur: np.ndarray, p: StepParams) -> np.ndarray:
    """Current distribution: exponential moving average of the pixel (rate beta) and of its
    squared deviation per channel.  On the first frame: mean = pixel, variance = 0.

        d = x - mu;  mu <- mu + beta d;  s <- (1 - beta) (s + beta |d|^2 / C)
    Returns the new cur (float64, (H, W, C+1)).
    """
    x = frame.astype(np.float64)
    C = x.shape[2]
    new = cur.astype(np.float64).copy()
    if p.first:
        new[..., :C] = x
        new[..., C] = 0.0
        return new
    beta = p.f32("beta")
    d = x - new[..., :C]
    new[..., :C] += beta * d
    new[..., C] = (1.0 - beta) * (new[..., C] + beta * (d * d).sum(axis=2) / C)
    return new


def kl_isotropic(mu_c: np.ndarray, s_c: np.ndarray, mu_b: np.ndarray, s_b: np.ndarray) -> np.ndarray:
    """KL( N(mu_c, s_c I) || N(mu_b, s_b I) ) in C dimensions (last axis of the means):

        0.5 * ( C (r - 1 - ln r) + |mu_c - mu_b|^2 / s_b ),   r = s_c / s_b
    """
    C = mu_c.shape[-1]
    r = s_c / s_b
    return 0.5 * (C * (r - 1.0 - np.log(r)) + ((mu_c - mu_b) ** 2).sum(axis=-1) / s_b)


def background_components(gmm: np.ndarray, nmodes: np.ndarray, bg_ratio: float) -> np.ndarray:
    """(H, W, K) bool: the heaviest components, in order, up to and including the first at
    which the cumulative weight reaches bg_ratio (all live ones if it never does)."""
    H, W, K, _ = gmm.shape
    live = np.arange(K)[None, None, :] < nmodes[..., None]
    w = np.where(live, gmm[..., 0].astype(np.float64), 0.0)
    cum = np.cumsum(w, axis=2)
    reached = cum >= bg_ratio
    # component k is used when no earlier component made the sum reach bg_ratio
    before = np.concatenate([np.zeros((H, W, 1), bool), reached[..., :-1]], axis=2)
    before = np.logical_or.accumulate(before, axis=2)
    return live & ~before


def kl_to_background(cur: np.ndarray, gmm: np.ndarray, nmodes: np.ndarray, p: StepParams
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: min over its own background components of KL(current || component), and
    the argmin (the first on ties; -1 and KL 0 where there are no components).
    The current variance is floored at var_min (the one noise floor)."""
    C = cur.shape[2] - 1
    s_c = np.maximum(cur[..., C], p.f32("var_min"))
    g = gmm.astype(np.float64)
    use = background_components(gmm, nmodes, p.f32("bg_ratio"))
    s_b = np.where(use, g[..., 1], 1.0)            # unused slots: any positive variance
    kl = kl_isotropic(cur[:, :, None, :C], s_c[:, :, None], g[..., 2:2 + C], s_b)
    kl = np.where(use, kl, np.inf)
    best_k = np.argmin(kl, axis=2)
    best = np.take_along_axis(kl, best_k[..., None], axis=2)[..., 0]
    none = ~use.any(axis=2)
    best_k[none] = -1
    best[none] = 0.0
    return best, best_k


def thresholds(fb: np.ndarray, p: StepParams) -> np.ndarray:
    """Pixel-level feedback: each pixel's threshold is kl_thr (1 + rest_gain v), v its restless
    level (fb[..., 0])."""
    return p.f32("kl_thr") * (1.0 + p.f32("rest_gain") * fb[..., 0].astype(np.float64))


def update_feedback(fb: np.ndarray, fg: np.ndarray, p: StepParams) -> np.ndarray:
    """Restless level: moving average (rate rest_rate) of 'the label flipped since the last
    frame' (fg now vs fb[..., 1], the last frame's fg), updated only where the last cleaned mask,
    dilated (fb[..., 2] != 0), does not cover the pixel (elsewhere it is kept); then
    fb[..., 1] = fg now.  fb[..., 2] is the model's to set."""
    out = fb.astype(np.float64).copy()
    blink = (fg.astype(np.float64) != out[..., 1]).astype(np.float64)
    free = out[..., 2] == 0
    out[..., 0] = np.where(free, out[..., 0] + p.f32("rest_rate") * (blink - out[..., 0]), out[..., 0])
    out[..., 1] = fg
    return out


def neighbour_kl(cur: np.ndarray, gmm: np.ndarray, nmodes: np.ndarray, own: np.ndarray, own_k: np.ndarray,
                 p: StepParams, thr: np.ndarray) -> np.ndarray:
    """Neighbour test: where the pixel's own background does not explain it (own KL > thr, the
    pixel's threshold),
    the main (heaviest) component of every neighbour within nb_r (clipped at the border) is
    tried too; the smallest KL is kept.  Returns the per-pixel score kl_px."""
    H, W, _ = cur.shape
    C = cur.shape[2] - 1
    out = own.copy()
    r = p.nb_r
    if r <= 0:
        return out
    s_c = np.maximum(cur[..., C], p.f32("var_min"))
    g = gmm.astype(np.float64)
    todo = (own_k >= 0) & (own > thr)
    for y, x in zip(*np.nonzero(todo)):
        for qy in range(max(y - r, 0), min(y + r, H - 1) + 1):
            for qx in range(max(x - r, 0), min(x + r, W - 1) + 1):
                if (qy, qx) == (y, x) or nmodes[qy, qx] == 0:
                    continue
                d = float(kl_isotropic(cur[y, x, :C], s_c[y, x], g[qy, qx, 0, 2:2 + C], g[qy, qx, 0, 1]))
                out[y, x] = min(out[y, x], d)
    return out


def shadow_test(cur: np.ndarray, gmm: np.ndarray, best_k: np.ndarray, p: StepParams
                ) -> tuple[np.ndarray, np.ndarray]:
    """The current mean is a darker copy of the best background component's mean:
    brightness ratio br = <cur, mb> / |mb|^2 in [sh_lo, sh_hi] and colour distortion
    |cur - br mb|^2 <= sh_chroma^2 br^2 |mb|^2.

    Returns (shadow (H, W) bool, margin (H, W) float: the relative distance of the pixel
    to the nearest decision boundary of the test, for telling float32 ties apart)."""
    H, W, _ = cur.shape
    C = cur.shape[2] - 1
    if not p.shadows:
        return np.zeros((H, W), bool), np.full((H, W), np.inf)
    k = np.maximum(best_k, 0)
    mb = np.take_along_axis(gmm[..., 2:2 + C].astype(np.float64), k[:, :, None, None], axis=2)[:, :, 0, :]
    mc = cur[..., :C]
    nb = (mb * mb).sum(axis=2)
    nb1 = np.where(nb > 0, nb, 1.0)
    br = np.where(nb > 0, (mc * mb).sum(axis=2) / nb1, 0.0)
    dist = ((mc - br[..., None] * mb) ** 2).sum(axis=2)
    ch = p.f32("sh_chroma")
    lo, hi = p.f32("sh_lo"), p.f32("sh_hi")
    lim = ch * ch * br * br * nb
    ok = (best_k >= 0) & (nb > 0) & (br >= lo) & (br <= hi)
    shadow = ok & (dist <= lim)
    margin = np.minimum(np.abs(br - lo), np.abs(br - hi))
    margin = np.minimum(margin, np.abs(dist - lim) / np.maximum(nb1, 1.0))
    margin[(best_k < 0) | (nb <= 0)] = np.inf
    return shadow, margin


def update_mixture_pixel(comps: list[list[float]], x: list[float], a: float, p: StepParams, K: int,
                         stats: dict | None = None) -> list[list[float]]:
    """Zivkovic's online mixture update of one pixel's live components (a list of
    [weight, var, mean...], sorted by decreasing weight) with the value x at rate a.

    1. The first component (in weight order) within match_sigma standard deviations
       (|x - mu|^2 < match_t2 * var * C) matches:
         w <- (1-a) w + a - a*c_prior;  rho = min(a / w, 1);  mu <- mu + rho (x - mu);
         var <- clip(var + rho (|x - mu_old|^2 / C - var), var_min, var_max)
       every other component: w <- max((1-a) w - a*c_prior, 0).
    2. Prune: drop trailing components (lightest) with w < a*c_prior, never the matched one.
    3. No match: a new component (w = a, var = var_init, mean = x) is appended, or replaces
       the lightest one when there are already K.
    4. Sort: the matched / new component moves up past lighter ones (stable otherwise).
    5. Normalise the weights to sum to 1 (when their sum is positive).
    ``stats`` (optional) counts the paths taken: match, new, replace, prune, sort.
    """
    stats = stats if stats is not None else {}
    count = lambda key: stats.__setitem__(key, stats.get(key, 0) + 1)
    C = len(x)
    match_t2, var_min, var_max = p.f32("match_t2"), p.f32("var_min"), p.f32("var_max")
    prune = a * p.f32("c_prior")
    comps = [list(c) for c in comps]
    matched = -1
    for k, c in enumerate(comps):
        d2 = sum((x[i] - c[2 + i]) ** 2 for i in range(C))
        if matched < 0 and d2 < match_t2 * c[1] * C:
            matched = k
            w = (1.0 - a) * c[0] + a - prune
            rho = min(a / w, 1.0)
            c[2:] = [c[2 + i] + rho * (x[i] - c[2 + i]) for i in range(C)]
            c[1] = min(max(c[1] + rho * (d2 / C - c[1]), var_min), var_max)
            c[0] = w
        else:
            c[0] = max((1.0 - a) * c[0] - prune, 0.0)
    if matched >= 0:
        count("match")
    while comps and comps[-1][0] < prune and len(comps) - 1 != matched:
        comps.pop()
        count("prune")
    if matched < 0:
        new = [a, p.f32("var_init"), *x]
        if len(comps) >= K:
            comps[K - 1] = new
            del comps[K:]
            count("replace")
        else:
            comps.append(new)
            count("new")
        matched = len(comps) - 1
    k = matched
    while k > 0 and comps[k][0] > comps[k - 1][0]:
        comps[k], comps[k - 1] = comps[k - 1], comps[k]
        k -= 1
        count("sort")
    total = sum(c[0] for c in comps)
    if total > 0.0:
        for c in comps:
            c[0] /= total
    return comps


def slowed(label: int, misfit: bool, shadow: bool) -> bool:
    """Where the foreground slowdown applies: the label is 255, or the pixel's own background does not
    explain it and it is not shadow-like."""
    return label == 255 or (misfit and not shadow)


# the turns (upd_n > 1): the runs of pixels of a row, on the frames that are not its turn
RUN = 64


def learners(slow: np.ndarray, p: StepParams) -> np.ndarray:
    """(H, W) bool: the pixels whose mixture learns this frame.  upd_n 1: all.  Else row y on the frames
    where y % upd_n == upd_r (its turn), and on the other frames the runs of RUN pixels of the row
    (x from RUN * i to RUN * (i + 1)) where a pixel is slowed (``slow``: foreground or unexplained)."""
    H, W = slow.shape
    if p.upd_n == 1:
        return np.ones((H, W), bool)
    out = np.zeros((H, W), bool)
    for y in range(H):
        for x0 in range(0, W, RUN):
            out[y, x0:x0 + RUN] = (y % p.upd_n == p.upd_r) or bool(slow[y, x0:x0 + RUN].any())
    return out


def turn_rates(keep: np.ndarray, learns: np.ndarray, p: StepParams) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's rate before the slowdown, and the new ``keep``.  keep: prod(1 - alpha) over the frames
    since the pixel last learned.  upd_n 1: alpha, keep unchanged.  Else the rate of those frames and
    this one, 1 - keep (1 - alpha) (the mixture forgets as if it had learned every frame); keep becomes 1
    where the pixel learns, keep (1 - alpha) elsewhere."""
    a = p.f32("alpha")
    if p.upd_n == 1:
        return np.full(keep.shape, a), keep.copy()
    kp = keep.astype(np.float64) * (1.0 - a)
    return 1.0 - kp, np.where(learns, 1.0, kp).astype(np.float32)


def learning_rate(label: int, misfit: bool, shadow: bool, level: float, p: StepParams,
                  a: float | None = None) -> float:
    """a (default alpha), times f = fg_factor + (1 - fg_factor) min(1, rest_learn level) where the label is
    255 or the pixel's own background does not explain it (and it is not shadow-like): the
    foreground slowdown fades out as the pixel's restless level (before this frame's update) rises."""
    a = p.f32("alpha") if a is None else a
    if slowed(label, misfit, shadow):
        f = p.f32("fg_factor")
        a = a * (f + (1.0 - f) * min(1.0, p.f32("rest_learn") * level))
    return a


def pool_mean(kl_px: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window, clipped at the image border (fewer pixels there)."""
    H, W = kl_px.shape
    out = np.empty((H, W), np.float64)
    for y in range(H):
        y0, y1 = max(y - r, 0), min(y + r, H - 1)
        for x in range(W):
            x0, x1 = max(x - r, 0), min(x + r, W - 1)
            out[y, x] = kl_px[y0:y1 + 1, x0:x1 + 1].astype(np.float64).mean()
    return out


def labels(kl_out: np.ndarray, shadow: np.ndarray, kl_thr) -> np.ndarray:
    """255 where pooled KL > the pixel's threshold, 127 there if shadow-like (shadow is only
    tested where the pixel's own background does not explain it), else 0."""
    out = np.zeros(kl_out.shape, np.uint8)
    fg = kl_out > kl_thr
    out[fg] = 255
    out[fg & shadow] = 127
    return out


# ----------------------------------------------------------------------------- the step
@dataclass
class StepResult:
    gmm: np.ndarray      # float32 (H, W, K, 2+C) (entries past nmodes are zero)
    nmodes: np.ndarray   # uint8 (H, W)
    cur: np.ndarray      # float32 (H, W, C+1)
    kl_px: np.ndarray    # float64 (H, W): own KL, or the neighbour test's minimum
    kl_out: np.ndarray   # float64 (H, W)
    raw: np.ndarray      # uint8 (H, W) 0/127/255
    best_k: np.ndarray   # int (H, W): own best background component (-1: none)
    own_kl: np.ndarray   # float64 (H, W): KL to the own background alone
    misfit: np.ndarray   # bool (H, W): own KL > kl_thr
    shadow: np.ndarray   # bool (H, W): misfit and shadow-like
    tie: np.ndarray      # bool (H, W): a decision of this pixel sits on its boundary (float32 ties)
    fb: np.ndarray       # float32 (H, W, 3): restless level, last frame's fg (0/1), last mask dilated
    thr: np.ndarray      # float64 (H, W): each pixel's threshold this frame
    keep: np.ndarray     # float32 (H, W): the turns' state (turn_rates)
    learns: np.ndarray   # bool (H, W): the pixels whose mixture learned this frame


def step(frame: np.ndarray, gmm: np.ndarray, nmodes: np.ndarray, cur: np.ndarray, p: StepParams,
         stats: dict | None = None, fb: np.ndarray | None = None, keep: np.ndarray | None = None) -> StepResult:
    """One frame; the inputs are not modified.  frame: uint8 (H, W, C).
    ``stats`` (optional dict) counts the mixture-update paths taken (see update_mixture_pixel).
    ``fb``: feedback state (H, W, 3) (zeros when None).  ``keep``: the turns' state (ones when None).

    Everything of the score is computed from the mixture BEFORE this frame's update."""
    H, W, C = frame.shape
    K = gmm.shape[2]
    fb = np.zeros((H, W, 3), np.float32) if fb is None else fb
    thr = thresholds(fb, p)
    cur_new = update_current(frame, cur, p)
    own, best_k = kl_to_background(cur_new, gmm, nmodes, p)
    misfit = (best_k >= 0) & (own > thr)
    shadow, shadow_margin = shadow_test(cur_new, gmm, best_k, p)
    shadow &= misfit
    kl_px = neighbour_kl(cur_new, gmm, nmodes, own, best_k, p, thr)
    kl_out = pool_mean(kl_px.astype(np.float32), p.pool_r)
    raw = labels(kl_out, shadow, thr)
    fb_new = update_feedback(fb, kl_out > thr, p)
    tie = (np.abs(own - thr) <= 1e-4 * np.maximum(thr, 1.0)) | ((shadow_margin <= 1e-4) & misfit)
    gmm_new = np.zeros_like(gmm)
    nm_new = nmodes.copy()
    slow = np.array([[slowed(int(raw[y, x]), bool(misfit[y, x]), bool(shadow[y, x])) for x in range(W)]
                     for y in range(H)], bool).reshape(H, W)
    learns = learners(slow, p)
    base, keep_new = turn_rates(np.ones((H, W), np.float32) if keep is None else keep, learns, p)
    for y in range(H):
        for x in range(W):
            n = int(nmodes[y, x])
            a = learning_rate(int(raw[y, x]), bool(misfit[y, x]), bool(shadow[y, x]), float(fb[y, x, 0]), p,
                              float(base[y, x]))
            if a <= 0.0 or not learns[y, x]:
                gmm_new[y, x, :n] = gmm[y, x, :n]
                continue
            comps = update_mixture_pixel(gmm[y, x, :n].astype(np.float64).tolist(),
                                         frame[y, x].astype(np.float64).tolist(), a, p, K, stats)
            if comps:
                gmm_new[y, x, :len(comps)] = np.array(comps, np.float64)
            nm_new[y, x] = len(comps)
    return StepResult(gmm_new, nm_new, cur_new.astype(np.float32), kl_px, kl_out, raw, best_k, own, misfit,
                      shadow, tie, fb_new.astype(np.float32), thr, keep_new, learns)


def background_image(gmm: np.ndarray, nmodes: np.ndarray, C: int) -> np.ndarray:
    """The mean of each pixel's heaviest component rounded to uint8 (0 where no components)."""
    v = np.where(nmodes[..., None] > 0, gmm[:, :, 0, 2:2 + C].astype(np.float64), 0.0)
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the model's wiring
def params_for_frame(params, n: int, first: bool) -> StepParams:
    """The kernel scalars MotionModel.apply passes for its n-th frame (1-based), from a
    kl_motion.params.Params: alpha = max(1/history, 1/n), and the restless level's rate the same
    way, max(restless_rate, 1/n); the rows take turns (learn_every) from the second frame on, row y
    on the frames n where y % learn_every == n % learn_every."""
    return StepParams(
        alpha=max(1.0 / params.history, 1.0 / n), first=first, match_t2=params.match_sigma ** 2,
        bg_ratio=params.background_ratio, var_init=params.var_init, var_min=params.var_min,
        var_max=params.var_max, c_prior=params.complexity_prior, fg_factor=params.fg_learn_factor,
        pool_r=params.pool_radius, beta=params.current_rate, kl_thr=params.kl_threshold,
        rest_gain=params.restless_gain, rest_rate=max(params.restless_rate, 1.0 / n), rest_learn=params.restless_learn,
        nb_r=params.neighbour_radius, shadows=params.detect_shadows, sh_lo=params.shadow_low,
        sh_hi=params.shadow_high, sh_chroma=params.shadow_chroma,
        upd_n=1 if first else params.learn_every, upd_r=0 if first else n % params.learn_every)
