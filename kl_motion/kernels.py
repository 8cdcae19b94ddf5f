"""All numba code of kl_motion.

Private kernels: they trust their inputs (the model validates and converts once)
and take every parameter as an argument, so a value changed between two frames
is used on the next one (numba freezes module globals at compile time).

State layout (float32 structure of arrays, allocated once by the model):
  st[y, j, k, x]   = field j of component k at pixel (y, x): j = 0 weight, 1 variance,
                     2 + c mean of channel c; components sorted by decreasing weight
  nmodes[y, x]     = number of live components (uint8)
  cur[j, y, x]     = current distribution: j = c mean of channel c, j = C variance
                     (used only when current_rate < 1)
So row y of every field of every component is a contiguous run of W floats: each step of
the algorithm is a loop over x with no branches (selects instead, and conditions combined
with & and |: Python's short-circuit `and`/`or` become branches that LLVM turns into masked
scatters), which LLVM vectorises (8 or 16 pixels per instruction); error_model="numpy"
drops the division-by-zero checks that would stop it.  ``aos_view`` gives the (H, W, K, 2 + C) view of it.

The math is in docs/algorithm.md; tests/kernel_reference.py is a plain NumPy version of it
that tests/test_kernels.py checks these kernels against.  Speed (docs/speed.md): float32
arithmetic throughout, C = 3 and C = 1 compiled separately (the channel loops unroll), a
polynomial log (Cephes logf) made of bit operations so that the KL loop vectorises (int32 steps
through numpy's ufuncs: numba's operators widen small ints to int64 lanes, as they would uint8
flags), the rare per-pixel work (neighbour test, shadow test, new components) in a scalar loop
over the few pixels that need it, and the two passes fused per band of rows so the state is read
from memory once per frame.

Compile time: numba's own inlining (``inline="always"``) re-types the caller for every call it
inlines, and was most of a cold first frame.  _step (the parallel loop over bands) calls the band
function through its address (``_call_band``), not as a numba call: a numba call links the callee's
code into the caller, and numba then optimises all of it again with the parallel loop (~18 s of a
cold first frame); so one _step serves both channel counts.  The small helpers (_logf, _kl_iso,
_moves_up, _pool_clipped, _inband) are plain functions: LLVM inlines them (the same machine code,
the same bits; 9 s less of a cold compile).  The passes stay numba-inlined: compiled as functions of
their own they ran 22-25 % slower (measured with numba.literally(C) too, so not the channel count;
again with pass 2 called by address, docs/speed.md "Eighth session").
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.core import errors as _nb_errors
from numba.core.extending import intrinsic

from . import numba_inline

numba_inline.apply()      # before any compile: numba's inliner without its quadratic copy

_JIT = dict(cache=True, nogil=True, fastmath=True, error_model="numpy")
F0 = np.float32(0.0)
F1 = np.float32(1.0)
FH = np.float32(0.5)
# Cephes logf
_L0 = np.float32(7.0376836292e-2)
_L1 = np.float32(-1.1514610310e-1)
_L2 = np.float32(1.1676998740e-1)
_L3 = np.float32(-1.2420140846e-1)
_L4 = np.float32(1.4249322787e-1)
_L5 = np.float32(-1.6668057665e-1)
_L6 = np.float32(2.0000714765e-1)
_L7 = np.float32(-2.4999993993e-1)
_L8 = np.float32(3.3333331174e-1)
_LN2_LO = np.float32(-2.12194440e-4)
_LN2_HI = np.float32(0.693359375)
_SQRTH = np.int32(0x3F3504F3)
_I23 = np.int32(23)

# scratch rows per band (float32): pass 1's, then pass 2's; _CM and _FR are C rows each
_SC, _BEST, _CUM, _BK, _CM = 0, 1, 2, 3, 4
_A, _TOT, _COLSUM, _M, _NM, _FR = 7, 8, 9, 10, 11, 12
# the neighbour test's per-neighbour terms (1 / variance and the variance term of the KL, of the main
# component), a ring of up to _NBR rows (neighbour_radius <= 3), and the row each slot holds (_TAG)
_NBR = 7
_RI = 15
_RV = _RI + _NBR
_TAG = _RV + _NBR
_ACT = _TAG + 1         # pass 1: a component's active flags, as bytes
_RUNF = _ACT + 1        # pass 2: which runs of _RUN pixels learn (1) on a row's off frames
_NSF = _RUNF + 1
# the neighbour test runs as a vector loop over a row when more than 1 / _NB_VEC of its pixels need it
_NB_VEC = 8
# pass 2 creates components in a vector loop over the row when more than 1 / _NEW_VEC of its pixels need one
_NEW_VEC = 8
# the update's runs (pixels) on a row's off frames (learn_every > 1): a run learns when one of its pixels needs to
_RUN = 64


def aos_view(st: np.ndarray) -> np.ndarray:
    """(H, 2 + C, K, W) state -> the (H, W, K, 2 + C) view: gmm[y, x, k] = (w, var, means)."""
    return st.transpose(0, 3, 2, 1)


def cur_view(cur: np.ndarray) -> np.ndarray:
    """(C + 1, H, W) current distribution -> the (H, W, C + 1) view."""
    return cur.transpose(1, 2, 0)


@njit(**_JIT)
def _logf(x):
    """Natural log of a finite float32 x > 0 (Cephes logf, within 1-2 ulp of libm), written
    with bit operations and a polynomial so that a loop calling it vectorises."""
    i = np.float32(x).view(np.int32)
    # numpy's ufuncs keep the integer steps in int32 (numba's operators widen to int64, which
    # takes twice the vector registers and a shuffle to come back); the values fit in int32
    e = np.right_shift(np.subtract(i, _SQRTH), _I23)      # mantissa brought into [sqrt(1/2), sqrt(2))
    mi = np.int32(np.subtract(i, np.left_shift(e, _I23)))
    m = mi.view(np.float32)
    t = m - F1
    z = t * t
    y = (((((((( _L0 * t + _L1) * t + _L2) * t + _L3) * t + _L4) * t + _L5) * t + _L6) * t + _L7) * t
         + _L8) * t * z
    fe = np.float32(e)
    y += fe * _LN2_LO
    y -= FH * z
    return (t + y) + fe * _LN2_HI


@njit(**_JIT)
def _kl_iso(dm, isb, sc, hC):
    """KL(N(m, sc I) || N(mu, sb I)) in C dims from dm = |m - mu|^2, isb = 1 / sb, hC = C / 2:
    dm / (2 sb) + C/2 (r - 1 - ln r), r = sc / sb (docs/algorithm.md).  The second term is >= 0;
    it is clamped so that rounding near r = 1 cannot make it negative."""
    r = sc * isb
    v = r - F1 - _logf(r)
    return FH * dm * isb + hC * (v if v > F0 else F0)


@njit(inline="always", **_JIT)
def _pass1(frame, st, nmodes, cur, kl_px, raw_out, fs, y, C, first, bg_ratio, var_min, beta, kl_thr,
           fb, rest_gain, nb_r, shadows, sh_lo, sh_hi, sh_chroma):
    """Pass 1 on row y: current distribution, KL to the own background, misfit/shadow flag,
    neighbour test -> kl_px[y], raw_out[y] (flags).  fs: this band's scratch rows."""
    W = frame.shape[2]
    fC = np.float32(C)
    invC = F1 / fC
    omb = F1 - beta
    sc_ = fs[_SC]
    cm = fs[_CM:_CM + C]
    if beta >= F1:
        # current_rate 1: the current distribution is this frame with the floor variance; cur is
        # neither read nor written (the model fills it in if the rate changes)
        for x in range(W):
            for c in range(C):
                cm[c, x] = np.float32(frame[c, y, x])
            sc_[x] = var_min
    elif first:
        for x in range(W):
            for c in range(C):
                v = np.float32(frame[c, y, x])
                cur[c, y, x] = v
                cm[c, x] = v
            cur[C, y, x] = F0
            sc_[x] = max(F0, var_min)
    else:
        for x in range(W):
            d2c = F0
            for c in range(C):
                d = np.float32(frame[c, y, x]) - cur[c, y, x]
                d2c += d * d
                v = cur[c, y, x] + beta * d
                cur[c, y, x] = v
                cm[c, x] = v
            s = omb * (cur[C, y, x] + beta * d2c * invC)
            cur[C, y, x] = s
            sc_[x] = s if s >= var_min else var_min
    _score(st, nmodes, kl_px, raw_out, fs, y, C, bg_ratio, kl_thr, fb, rest_gain, nb_r, shadows, sh_lo, sh_hi,
           sh_chroma, beta >= F1)


@njit(**_JIT)
def _kl_take(sty, cm, sc_, best, bk, x, k, fk, act, C, hC):
    """KL(current || component k) at pixel x of row sty = st[y]; where act and it is the smallest
    so far, it becomes best[x] and k becomes bk[x]."""
    sb = sty[1, k, x]                   # read at every pixel (a plain vector load, not a masked one)
    sb = sb if act else F1
    dm = F0
    for c in range(C):
        d = cm[c, x] - sty[2 + c, k, x]
        dm += d * d
    dk = _kl_iso(dm, F1 / sb, sc_[x], hC)
    b = best[x]
    take = act & ((bk[x] < F0) | (dk < b))
    best[x] = dk if take else b
    bk[x] = fk if take else bk[x]


@njit(inline="always", **_JIT)
def _score(st, nmodes, kl_px, raw_out, fs, y, C, bg_ratio, kl_thr, fb, rest_gain, nb_r, shadows, sh_lo, sh_hi,
           sh_chroma, same_sc):
    """Row y of pass 1 after the current distribution (means fs[_CM + c], variance fs[_SC]; same_sc:
    every pixel's current variance is the same, var_min, as with current_rate 1).
    Integer quantities (component indices, counts) are kept as float32 so that every lane of
    the vector loops is 32 bits wide."""
    H = st.shape[0]
    W = st.shape[3]
    K = st.shape[2]
    lvl = fb[0]
    hC = FH * np.float32(C)
    sc_ = fs[_SC]
    best = fs[_BEST]
    cum = fs[_CUM]
    bk = fs[_BK]
    cm = fs[_CM:_CM + C]
    # own background: min of KL(current || component) over the first components up to
    # bg_ratio of the weight (component 0 always)
    # component 0 at every pixel; a later component only in the runs of 16 pixels where it is
    # active at one pixel at least, found from its byte flags 8 at a time.  Most runs have none: a
    # calm pixel's component 0 holds more than bg_ratio of the weight (highway: component 1 active
    # at 4 % of the pixels, in 30 % of the runs; component 2 in 0.2 %).  Runs of 8 were slower with
    # AVX-512 code (half its vector width); the same values where a run is scored.
    actb = fs[_ACT].view(np.uint8)
    W16 = W - W % 16
    sty = st[y]
    for k in range(K):
        fk = np.float32(k)
        if k == 0:
            # _kl_take's first call with best = 0, bk = -1 and cum = 0 before it: each pixel's
            # component 0 is taken where active (the same values, without reading the three rows)
            for x in range(W):
                act = F0 < np.float32(nmodes[y, x])
                sb = sty[1, 0, x]
                sb = sb if act else F1
                dm = F0
                for c in range(C):
                    d = cm[c, x] - sty[2 + c, 0, x]
                    dm += d * d
                dk = _kl_iso(dm, F1 / sb, sc_[x], hC)
                best[x] = dk if act else F0
                bk[x] = F0 if act else -F1
                cum[x] = sty[0, 0, x]
            continue
        for x in range(W):
            act = (fk < np.float32(nmodes[y, x])) & (cum[x] < bg_ratio)
            actb[x] = np.uint8(1) if act else np.uint8(0)
        if k < K - 1:       # the last component's weight is not needed (pass 2 is the first to read that row)
            for x in range(W):
                cum[x] += st[y, 0, k, x]
        words = actb[:W16].view(np.uint64)
        for i in range(W16 // 16):
            if (words[2 * i] | words[2 * i + 1]) != 0:
                for x in range(16 * i, 16 * i + 16):
                    _kl_take(sty, cm, sc_, best, bk, x, k, fk, actb[x] != 0, C, hC)
        for x in range(W16, W):
            _kl_take(sty, cm, sc_, best, bk, x, k, fk, actb[x] != 0, C, hC)
    nfl = F0
    for x in range(W):
        b = best[x]
        kl_px[y, x] = b
        thr = kl_thr * (F1 + rest_gain * lvl[y, x])            # this pixel's threshold
        last = np.uint8(8) if raw_out[y, x] != 0 else np.uint8(0)   # the last frame's label was fg
        fl = (bk[x] >= F0) & (b > thr)
        raw_out[y, x] = (np.uint8(2) if fl else np.uint8(0)) | last
        nfl += F1 if fl else F0
    # neighbours' background: as a vector loop over the row where enough of its pixels need it
    # (the same comparisons in the same order as the scalar loop below; the same bits, or with
    # current_rate 1 within a bit of them: _neighbours_row3)
    vec = (nb_r > 0) & (nfl * np.float32(_NB_VEC) > np.float32(W))
    if vec:
        pre = same_sc & (W >= _NBR)
        if C == 3:
            _neighbours_row3(st, nmodes, raw_out, fs, y, nb_r, hC, pre)
        else:
            _neighbours_row1(st, nmodes, raw_out, fs, y, nb_r, hC, pre)
        for x in range(W):
            kl_px[y, x] = best[x]
    if not shadows and (nb_r <= 0 or vec):
        return
    # the few pixels their own background does not explain: shadow test, neighbours' background.
    # The flags are read 8 at a time (most words are 0) and the neighbours' state through flat
    # unsigned indices (no negative-index wrap, no 4-d index arithmetic): 1.8 of 30 ms per
    # 1080p frame, one thread
    rw = raw_out[y]
    stf = st.reshape(st.size)
    nmf = nmodes.reshape(nmodes.size)
    fs1 = np.uint64(K * W)                  # stride of one field in st
    rs = (2 + C) * K * W                    # stride of one row
    W8 = W - W % 8
    words = rw[:W8].view(np.uint64)
    for i in range((W + 7) // 8):
        if i < W8 // 8:
            if (words[i] & np.uint64(0x0202020202020202)) == 0:
                continue
        for x in range(8 * i, min(8 * i + 8, W)):
            if (rw[x] & 2) == 0:
                continue
            sc = sc_[x]
            b = best[x]
            if shadows:
                kb = np.int64(bk[x])
                dot = F0
                nb = F0
                for c in range(C):
                    mb = st[y, 2 + c, kb, x]
                    dot += cm[c, x] * mb
                    nb += mb * mb
                if nb > F0:
                    br = dot / nb
                    if br >= sh_lo and br <= sh_hi:
                        dist = F0
                        for c in range(C):
                            d = cm[c, x] - br * st[y, 2 + c, kb, x]
                            dist += d * d
                        if dist <= sh_chroma * sh_chroma * br * br * nb:
                            raw_out[y, x] = rw[x] | np.uint8(1)
            if nb_r > 0 and not vec:
                for qy in range(max(y - nb_r, 0), min(y + nb_r, H - 1) + 1):
                    for qx in range(max(x - nb_r, 0), min(x + nb_r, W - 1) + 1):
                        if (qy == y and qx == x) or nmf[np.uint64(qy * W + qx)] == 0:
                            continue
                        q = np.uint64(qy * rs + qx)
                        sb = stf[q + fs1]
                        dm = F0
                        for c in range(C):
                            d = cm[c, x] - stf[q + np.uint64(2 + c) * fs1]
                            dm += d * d
                        if FH * dm < b * sb:                 # its first term < b, without the division
                            dq = _kl_iso(dm, F1 / sb, sc, hC)
                            if dq < b:
                                b = dq
                kl_px[y, x] = b


# the neighbour test's vector loop: every fast-math flag but "arcp", so that 1 / sb is a true
# division (with arcp, LLVM vectorises it as a reciprocal estimate, 1 ulp away from the scalar loop's
# division), and the vector loop gives the scalar loop's bits
_JIT_NB = dict(_JIT, fastmath={"nnan", "ninf", "nsz", "contract", "afn", "reassoc"})


@njit(**_JIT_NB)
def _neighbour_terms(st, fs, y, nb_r):
    """The ring rows the neighbour test of row y reads, for rows not in it yet: per pixel q of row qy,
    1 / sb and max(0, r - 1 - ln r) with r = sc / sb, sb the variance of q's main component and sc the
    current variance, the same at every pixel (fs[_SC, 0]).  Those are the parts of
    KL(current || q's main component) (_kl_iso) that do not depend on the pixel tested, with the same
    operations: each is computed once per frame instead of once per pixel that has q as a neighbour
    (2 nb_r + 1)^2 - 1 times.  The mixture of rows y - nb_r .. y + nb_r does not change while the
    rows whose test reads it are scored (pass 2 of a row runs lag >= nb_r rows behind pass 1)."""
    H = st.shape[0]
    W = st.shape[3]
    R = 2 * nb_r + 1
    sc = fs[_SC, 0]
    for qy in range(max(y - nb_r, 0), min(y + nb_r, H - 1) + 1):
        s = qy % R
        if fs[_TAG, s] == np.float32(qy):
            continue
        fs[_TAG, s] = np.float32(qy)
        sbr = st[qy, 1, 0]
        ir = fs[_RI + s]
        vr = fs[_RV + s]
        for x in range(W):
            isb = F1 / sbr[x]
            r = sc * isb
            v = r - F1 - _logf(r)
            ir[x] = isb
            vr[x] = v if v > F0 else F0


@njit(**_JIT_NB)
def _neighbours_row3(st, nmodes, raw_out, fs, y, nb_r, hC, pre):
    """Row y of a colour frame: fs[_BEST, x] <- min(fs[_BEST, x], KL(current || main component of
    neighbour q)) over the neighbours q within nb_r, in row-major order, at the pixels flagged 2
    (their own background does not explain them), each neighbour tried only where its first term
    is below the running minimum: the scalar loop of _score, as a vector loop over the row (the
    same bits).  The offset rows are slices, so the loop indexes every array from 0.  pre: every
    pixel's current variance is the same (current_rate 1, the default), and the neighbours' terms
    come from _neighbour_terms: no division and no log in this loop (AVX2 code: model time -6 to -9 %).
    The same operations, but LLVM's fast-math contracts them differently in the two loops: the KL
    can differ from the scalar loop's in its last bit (3e-5 at 40; on the 7 shared sequences not one
    mask pixel changed: kl-motion eval's counts are identical; docs/speed.md)."""
    H = st.shape[0]
    W = st.shape[3]
    R = 2 * nb_r + 1
    if pre:
        _neighbour_terms(st, fs, y, nb_r)
    for qy in range(max(y - nb_r, 0), min(y + nb_r, H - 1) + 1):
        for dx in range(-nb_r, nb_r + 1):
            if qy == y and dx == 0:
                continue
            x0 = max(0, -dx)
            n = min(W, W - dx) - x0
            qa = x0 + dx
            sbq = st[qy, 1, 0, qa:]
            m0 = st[qy, 2, 0, qa:]
            m1 = st[qy, 3, 0, qa:]
            m2 = st[qy, 4, 0, qa:]
            nmq = nmodes[qy, qa:]
            bv = fs[_BEST, x0:]
            sv = fs[_SC, x0:]
            c0 = fs[_CM, x0:]
            c1 = fs[_CM + 1, x0:]
            c2 = fs[_CM + 2, x0:]
            fv = raw_out[y, x0:]
            if pre:
                iq = fs[_RI + qy % R, qa:]
                vq = fs[_RV + qy % R, qa:]
                for i in range(n):
                    sb = sbq[i]
                    d = c0[i] - m0[i]
                    dm = d * d
                    d = c1[i] - m1[i]
                    dm += d * d
                    d = c2[i] - m2[i]
                    dm += d * d
                    b = bv[i]
                    dq = FH * dm * iq[i] + hC * vq[i]            # _kl_iso's expression
                    take = ((fv[i] & np.uint8(2)) != 0) & (nmq[i] != 0) & (FH * dm < b * sb) & (dq < b)
                    bv[i] = dq if take else b
                continue
            for i in range(n):
                sb = sbq[i]
                d = c0[i] - m0[i]
                dm = d * d
                d = c1[i] - m1[i]
                dm += d * d
                d = c2[i] - m2[i]
                dm += d * d
                b = bv[i]
                dq = _kl_iso(dm, F1 / sb, sv[i], hC)
                take = ((fv[i] & np.uint8(2)) != 0) & (nmq[i] != 0) & (FH * dm < b * sb) & (dq < b)
                bv[i] = dq if take else b


@njit(**_JIT_NB)
def _neighbours_row1(st, nmodes, raw_out, fs, y, nb_r, hC, pre):
    """_neighbours_row3 for one channel."""
    H = st.shape[0]
    W = st.shape[3]
    R = 2 * nb_r + 1
    if pre:
        _neighbour_terms(st, fs, y, nb_r)
    for qy in range(max(y - nb_r, 0), min(y + nb_r, H - 1) + 1):
        for dx in range(-nb_r, nb_r + 1):
            if qy == y and dx == 0:
                continue
            x0 = max(0, -dx)
            n = min(W, W - dx) - x0
            qa = x0 + dx
            sbq = st[qy, 1, 0, qa:]
            m0 = st[qy, 2, 0, qa:]
            nmq = nmodes[qy, qa:]
            bv = fs[_BEST, x0:]
            sv = fs[_SC, x0:]
            c0 = fs[_CM, x0:]
            fv = raw_out[y, x0:]
            if pre:
                iq = fs[_RI + qy % R, qa:]
                vq = fs[_RV + qy % R, qa:]
                for i in range(n):
                    sb = sbq[i]
                    d = c0[i] - m0[i]
                    dm = d * d
                    b = bv[i]
                    dq = FH * dm * iq[i] + hC * vq[i]
                    take = ((fv[i] & np.uint8(2)) != 0) & (nmq[i] != 0) & (FH * dm < b * sb) & (dq < b)
                    bv[i] = dq if take else b
                continue
            for i in range(n):
                sb = sbq[i]
                d = c0[i] - m0[i]
                dm = d * d
                b = bv[i]
                dq = _kl_iso(dm, F1 / sb, sv[i], hC)
                take = ((fv[i] & np.uint8(2)) != 0) & (nmq[i] != 0) & (FH * dm < b * sb) & (dq < b)
                bv[i] = dq if take else b


@njit(**_JIT)
def _pool_clipped(colsum, kl_out, y, x, pool_r, W, ny):
    """Pooled KL at a border column x: the mean over the window clipped to the frame."""
    x0 = max(x - pool_r, 0)
    x1 = min(x + pool_r, W - 1)
    acc = F0
    for xx in range(x0, x1 + 1):
        acc += colsum[xx]
    kl_out[y, x] = acc / (ny * np.float32(x1 - x0 + 1))


@njit(**_JIT)
def _moves_up(st, M, y, j, fj, x):
    """Sort step j of pass 2: pixel x's component j learned and is now heavier than j - 1."""
    return (M[x] == fj) & (st[y, 0, j, x] > st[y, 0, j - 1, x])


@njit(**_JIT)
def _learning_runs(slb, rf, kr, turn, turns, om_alpha):
    """Which runs of _RUN pixels of a row learn this frame (rf[i] = 1): all on the row's turn, else those
    where a pixel is foreground or unexplained (its byte in slb, read 8 at a time).  With turns, the
    row's keep kr becomes 1 where it learns and kr (1 - alpha) elsewhere.  Returns the number of runs.
    A plain function, compiled once (by the precompile helper on a cold cache): numba-inlined, it was
    compiled again at each of pass 2's two call sites (docs/speed.md, eleventh session)."""
    W = slb.shape[0] // 4                   # slb: a scratch row of W float32 as bytes
    nch = (W + _RUN - 1) // _RUN
    if turn:
        for i in range(nch):
            rf[i] = F1
    else:
        W8 = W - W % 8
        words = slb[:W8].view(np.uint64)
        nw = _RUN // 8
        for i in range(nch):
            x0 = i * _RUN
            busy = False
            for q in range(i * nw, min((i + 1) * nw, W8 // 8)):
                busy |= words[q] != 0
            for x in range(max(x0, W8), min(W, x0 + _RUN)):
                busy |= slb[x] != 0
            rf[i] = F1 if busy else F0
    if turns:
        for i in range(nch):
            sk = om_alpha if rf[i] == F0 else F0
            for x in range(i * _RUN, min(W, i * _RUN + _RUN)):
                kr[x] = F1 if sk == F0 else kr[x] * sk
    return nch


@njit(inline="always", **_JIT)
def _pass2(frame, st, nmodes, kl_px, kl_out, raw_out, fs, y, C, pool_r, kl_thr, fb, rest_gain, rest_rate, alpha,
           match_t2, var_init, var_min, var_max, c_prior, fg_factor, upd):
    """Pass 2 on row y: pooled KL -> kl_out[y], label -> raw_out[y], Zivkovic update of the mixture.
    Needs pass 1 done on rows y - pool_r .. y + pool_r.  fs: this band's scratch rows."""
    H = frame.shape[1]
    W = frame.shape[2]
    K = st.shape[2]
    lvl, fgd, rest_learn = fb
    colsum = fs[_COLSUM]
    fC = np.float32(C)
    invC = F1 / fC
    fK1 = np.float32(K - 1)
    y0 = max(y - pool_r, 0)
    y1 = min(y + pool_r, H - 1)
    for x in range(W):
        colsum[x] = kl_px[y0, x]
    for yy in range(y0 + 1, y1 + 1):
        for x in range(W):
            colsum[x] += kl_px[yy, x]
    ny = np.float32(y1 - y0 + 1)
    # pooled KL: border columns (clipped window), then the interior (fixed window)
    xe = W - pool_r if W > 2 * pool_r else 0
    # (two loops over the border columns only: one loop over x testing for them cost 2.3 of 23 ms
    # per 1080p frame)
    for x in range(min(pool_r, W)):
        _pool_clipped(colsum, kl_out, y, x, pool_r, W, ny)
    for x in range(max(xe, pool_r), W):
        _pool_clipped(colsum, kl_out, y, x, pool_r, W, ny)
    inv_full = F1 / (ny * np.float32(2 * pool_r + 1))
    if pool_r == 1:
        for x in range(1, xe):
            kl_out[y, x] = (colsum[x - 1] + colsum[x] + colsum[x + 1]) * inv_full
    else:
        for x in range(pool_r, xe):
            acc = F0
            for xx in range(x - pool_r, x + pool_r + 1):
                acc += colsum[xx]
            kl_out[y, x] = acc * inv_full
    # the rows take turns (upd_n > 1): row y learns on the frames where y % upd_n == upd_r; on the other
    # frames only its runs of _RUN pixels where one pixel is foreground or unexplained learn.  A pixel's
    # rate is that of the frames since it last learned, 1 - prod(1 - alpha) (keep[y, x]: the product so far)
    upd_n, upd_r, keep = upd
    turn = (upd_n == 1) | (y % upd_n == upd_r)
    om_alpha = F1 - alpha
    slb = fs[_ACT].view(np.uint8)
    A = fs[_A]
    T = fs[_TOT]
    M = fs[_M]
    NM = fs[_NM]
    fr = fs[_FR:_FR + C]
    # labels; learning rate per pixel (0: no update)
    for x in range(W):
        flag = raw_out[y, x]
        rv = lvl[y, x]
        fg = kl_out[y, x] > kl_thr * (F1 + rest_gain * rv)
        # the flag bits through numpy's ufunc, in uint8 (numba's & widens to 64-bit lanes)
        shadow = np.bitwise_and(flag, np.uint8(1)) != np.uint8(0)
        lab = np.uint8(0)
        if fg:
            lab = np.uint8(127) if shadow else np.uint8(255)
        raw_out[y, x] = lab
        # restless level: moving average of label flips, away from the last cleaned mask (dilated);
        # under it the level is kept (an object's edges are no restless background, and a restless
        # patch that fires as a whole keeps its threshold)
        blink = F1 if fg != (np.bitwise_and(flag, np.uint8(8)) != np.uint8(0)) else F0
        lvl[y, x] = rv + rest_rate * (blink - rv) if fgd[y, x] == 0 else rv
        # slowed learning where the pixel is foreground; the slowdown fades out at restless pixels
        # (water, leaves labelled foreground are still learned; an object at a calm pixel stays)
        unexplained = np.bitwise_and(flag, np.uint8(3)) == np.uint8(2)
        slow = (fg & (np.bitwise_and(flag, np.uint8(1)) == np.uint8(0))) | unexplained
        ff = fg_factor + (F1 - fg_factor) * min(F1, rest_learn * rv)
        kp = keep[y, x] * om_alpha
        ar = alpha if upd_n == 1 else F1 - kp
        a = ar * ff if slow else ar
        A[x] = a if a > F0 else F0
        slb[x] = np.uint8(1) if slow else np.uint8(0)
    rf = fs[_RUNF]
    nch = _learning_runs(slb, rf, keep[y], turn, upd_n > 1, om_alpha)
    run = 0
    while run < nch:
        if rf[run] == F0:
            run += 1
            continue
        end = run + 1
        while end < nch and rf[end] != F0:
            end += 1
        x0 = run * _RUN
        x1 = min(W, end * _RUN)
        run = end                           # (the loops below use i, j, k, x of their own)
        ux0 = np.uint64(x0)
        ux1 = np.uint64(x1)
        # the frame as floats; no match yet, no weight yet
        for x in range(ux0, ux1):
            for c in range(C):
                fr[c, x] = np.float32(frame[c, y, x])
            M[x] = -F1
            T[x] = F0
            NM[x] = np.float32(nmodes[y, x])
        # ---- Zivkovic update: the first component (in weight order) within match_t2 sigmas learns
        for k in range(K):
            fk = np.float32(k)
            for x in range(ux0, ux1):
                a = A[x]
                inm = (a > F0) & (fk < NM[x])
                w = st[y, 0, k, x]
                sb = st[y, 1, k, x]
                d2 = F0
                for c in range(C):
                    d = fr[c, x] - st[y, 2 + c, k, x]
                    d2 += d * d
                ism = inm & (M[x] < F0) & (d2 < match_t2 * sb * fC)
                prune = a * c_prior
                oma = F1 - a
                wm = oma * w + a - prune
                # an unmatched weight stops at 0 (it can fall below when the rate grew since the pixel last
                # learned: turns, the foreground slowdown; the prune below drops it where it is the lightest)
                wu = oma * w - prune
                w2 = wm if ism else (wu if wu > F0 else F0)
                rho = a / (wm if ism else F1)
                rho = rho if rho < F1 else F1
                rm = rho if ism else F0             # the means move where the component matched only
                for c in range(C):
                    mu = st[y, 2 + c, k, x]
                    st[y, 2 + c, k, x] = mu + rm * (fr[c, x] - mu)
                nv = sb + rho * (d2 * invC - sb)
                nv = nv if nv >= var_min else var_min
                nv = nv if nv <= var_max else var_max
                st[y, 1, k, x] = nv if ism else sb
                st[y, 0, k, x] = w2 if inm else w
                T[x] += w2 if inm else F0
                M[x] = fk if ism else M[x]
        # prune light components from the end (never the matched one)
        for k in range(K - 1, -1, -1):
            fk = np.float32(k)
            for x in range(ux0, ux1):
                a = A[x]
                nm = NM[x]
                w = st[y, 0, k, x]
                cut = (a > F0) & (fk == nm - F1) & (fk != M[x]) & (w < a * c_prior)
                T[x] -= w if cut else F0
                NM[x] = nm - F1 if cut else nm
        # no match: a new component (replacing the lightest one when all K are live); skipped in
        # rows where every learning pixel matched
        nnew = F0
        for x in range(ux0, ux1):
            nnew += F1 if ((A[x] > F0) & (M[x] < F0)) else F0
        if (nnew > F0) & (nnew * np.float32(_NEW_VEC) <= np.float32(x1 - x0)):
            # few of them (most rows): the vector loop's work at those pixels only, found 8 flags at a time
            nwb = fs[_ACT].view(np.uint8)           # pixels without a match, as bytes
            for x in range(ux0, ux1):
                nwb[x] = np.uint8(1) if ((A[x] > F0) & (M[x] < F0)) else np.uint8(0)
            W8 = x1 - x1 % 8                    # x0 is a multiple of 8
            words = nwb[:W8].view(np.uint64)
            for i in range(x0 // 8, (x1 + 7) // 8):
                if i < W8 // 8:
                    if words[i] == 0:
                        continue
                for x in range(8 * i, min(8 * i + 8, x1)):
                    if nwb[x] == 0:
                        continue
                    nm = NM[x]
                    kn = nm if nm < fK1 else fK1
                    k = np.int64(kn)
                    if kn < nm:
                        T[x] -= st[y, 0, k, x]
                    st[y, 0, k, x] = A[x]
                    st[y, 1, k, x] = var_init
                    for c in range(C):
                        st[y, 2 + c, k, x] = fr[c, x]
            nnew = F0
        for k in range(K if nnew > F0 else 0):
            fk = np.float32(k)
            for x in range(ux0, ux1):
                a = A[x]
                nm = NM[x]
                kn = nm if nm < fK1 else fK1
                isn = (a > F0) & (M[x] < F0) & (fk == kn)
                w = st[y, 0, k, x]
                T[x] -= w if (isn & (kn < nm)) else F0
                st[y, 0, k, x] = a if isn else w
                st[y, 1, k, x] = var_init if isn else st[y, 1, k, x]
                for c in range(C):
                    st[y, 2 + c, k, x] = fr[c, x] if isn else st[y, 2 + c, k, x]
        for x in range(ux0, ux1):
            a = A[x]
            nm = NM[x]
            nomatch = (a > F0) & (M[x] < F0)
            kn = nm if nm < fK1 else fK1
            NM[x] = nm + F1 if (nomatch & (kn == nm)) else nm
            T[x] += a if nomatch else F0
            M[x] = kn if nomatch else M[x]
        # keep the components sorted: the one that learned moves up past lighter ones (the swaps at j
        # are counted first: rows without one skip moving the fields)
        for j in range(K - 1, 0, -1):
            fj = np.float32(j)
            nsw = F0
            for x in range(ux0, ux1):
                nsw += F1 if _moves_up(st, M, y, j, fj, x) else F0
            if nsw == F0:
                continue
            for x in range(ux0, ux1):
                sw = _moves_up(st, M, y, j, fj, x)
                for f in range(2 + C):
                    u = st[y, f, j, x]
                    v = st[y, f, j - 1, x]
                    st[y, f, j, x] = v if sw else u
                    st[y, f, j - 1, x] = u if sw else v
                M[x] = fj - F1 if sw else M[x]
        # weights sum to 1
        for x in range(ux0, ux1):
            t = T[x]
            T[x] = F1 / t if ((A[x] > F0) & (t > F0)) else F1
        for k in range(K):
            fk = np.float32(k)
            for x in range(ux0, ux1):
                w = st[y, 0, k, x]
                st[y, 0, k, x] = w * T[x] if fk < NM[x] else w
        for x in range(ux0, ux1):
            nmodes[y, x] = np.uint8(NM[x])


@njit(**_JIT)
def _inband(yp, ys, ye, lag, H):
    return max(yp - lag, 0) >= ys and min(yp + lag, H - 1) < ye


@njit(inline="always", **_JIT)
def _band(frame, st, nmodes, cur, kl_px, kl_out, raw_out, fs, ys, ye, CC,
          alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
          pool_r, beta, kl_thr, fb, rest, nb_r, shadows, sh, upd, edges):
    """Rows ys..ye-1.  edges False: pass 1 of row y, then pass 2 of row y - lag where it needs
    no other band.  edges True (after every band's pass 1): pass 2 of the other rows.
    Inlined into _band3 / _band1 with CC a literal, so the channel loops unroll.  Pass 2 has
    two call sites (each is a lot of code to compile); folding the first into one loop with
    pass 1 under a condition measured 25% slower.  rest = (rest_gain, rest_rate) and
    sh = (sh_lo, sh_hi, sh_chroma) are tuples: numba inlines functions of at most 30 arguments."""
    rest_gain, rest_rate = rest
    sh_lo, sh_hi, sh_chroma = sh
    H = frame.shape[1]
    lag = max(pool_r, nb_r)
    if not edges:
        for s in range(min(_NBR, frame.shape[2])):
            fs[_TAG, s] = -F1                   # the neighbour terms' ring holds no row yet
        for y in range(ys, ye):
            _pass1(frame, st, nmodes, cur, kl_px, raw_out, fs, y, CC, first, bg_ratio, var_min, beta,
                   kl_thr, fb, rest_gain, nb_r, shadows, sh_lo, sh_hi, sh_chroma)
            yp = y - lag
            if yp >= ys and _inband(yp, ys, ye, lag, H):
                _pass2(frame, st, nmodes, kl_px, kl_out, raw_out, fs, yp, CC, pool_r, kl_thr, fb, rest_gain,
                       rest_rate, alpha,
                       match_t2, var_init, var_min, var_max, c_prior, fg_factor, upd)
    # the band's last rows (edges False) or the rows next to band edges (edges True)
    for yp in range(ys if edges else max(ye - lag, ys), ye):
        if _inband(yp, ys, ye, lag, H) != edges:
            _pass2(frame, st, nmodes, kl_px, kl_out, raw_out, fs, yp, CC, pool_r, kl_thr, fb, rest_gain,
                       rest_rate, alpha,
                   match_t2, var_init, var_min, var_max, c_prior, fg_factor, upd)


@njit(**_JIT)
def _band3(frame, st, nmodes, cur, kl_px, kl_out, raw_out, fs, ys, ye,
           alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
           pool_r, beta, kl_thr, fb, rest_gain, rest_rate, nb_r, shadows, sh_lo, sh_hi, sh_chroma, upd_n, upd_r,
           keep, edges):
    _band(frame, st, nmodes, cur, kl_px, kl_out, raw_out, fs, ys, ye, 3,
          alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
          pool_r, beta, kl_thr, fb, (rest_gain, rest_rate), nb_r, shadows, (sh_lo, sh_hi, sh_chroma),
          (upd_n, upd_r, keep), edges)


@njit(**_JIT)
def _band1(frame, st, nmodes, cur, kl_px, kl_out, raw_out, fs, ys, ye,
           alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
           pool_r, beta, kl_thr, fb, rest_gain, rest_rate, nb_r, shadows, sh_lo, sh_hi, sh_chroma, upd_n, upd_r,
           keep, edges):
    _band(frame, st, nmodes, cur, kl_px, kl_out, raw_out, fs, ys, ye, 1,
          alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
          pool_r, beta, kl_thr, fb, (rest_gain, rest_rate), nb_r, shadows, (sh_lo, sh_hi, sh_chroma),
          (upd_n, upd_r, keep), edges)


def _band_types():
    """The argument types _step gives _band3 / _band1 (those the model passes: float32
    scalars, int radii, bool flags, C-contiguous arrays; the channel count is only a shape)."""
    A, f4, u1, i8, b = types.Array, types.float32, types.uint8, types.int64, types.boolean
    return (A(u1, 3, "C"), A(f4, 4, "C"), A(u1, 2, "C"), A(f4, 3, "C"), A(f4, 2, "C"), A(f4, 2, "C"),
            A(u1, 2, "C"), A(f4, 2, "C"), i8, i8,
            f4, b, f4, f4, f4, f4, f4, f4, f4, i8, f4, f4,
            types.Tuple((A(f4, 2, "C"), A(u1, 2, "C"), f4)), f4, f4, i8, b, f4, f4, f4, i8, i8,
            A(f4, 2, "C"), b)


@intrinsic
def _call_band(typingctx, addr, args):
    """Call the compiled band function at address ``addr`` (int64) with the tuple ``args``.

    A numba call would link the band's code into _step, where numba optimises it again with the
    parallel loop (~18 s of a cold first frame, for the same speed).  The address is an argument,
    not a constant, so the cached _step holds in any process.  The arguments must have
    the types the band was compiled for (_band_types): anything else is a typing error here, at
    compile time, never a call with the wrong layout.  The band cannot raise (no status to check)."""
    if tuple(args.types) != _band_types():
        raise _nb_errors.TypingError(f"kernel arguments of unexpected types: {args}")

    def codegen(context, builder, sig, llargs):
        argtys = list(sig.args[1].types)
        vals = [builder.extract_value(llargs[1], i) for i in range(len(argtys))]
        fnty = context.call_conv.get_function_type(types.none, argtys)
        fn = builder.inttoptr(llargs[0], fnty.as_pointer())
        context.call_conv.call_function(builder, fn, types.none, argtys, vals)
        return context.get_dummy_value()
    return types.none(addr, args), codegen


@intrinsic
def _take_next(typingctx, counter, i):
    """counter[i] += 1 as one atomic operation; returns the value before: each thread that calls it
    gets a different number (the bands' work queue in _step)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64 and isinstance(i, types.Integer)):
        raise _nb_errors.TypingError("_take_next takes an int64 array and an index")

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", ptr, one, "monotonic")
    return types.int64(counter, i), codegen


_band_address: dict = {}


def _band_addr(band) -> int:
    """The address of ``band`` (_band3 or _band1) compiled for _band_types (compiled, or loaded from
    numba's cache, on first use)."""
    a = _band_address.get(band)
    if a is None:
        sig = _band_types()
        band.compile(sig)
        cres = band.overloads[sig]
        a = _band_address[band] = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
    return a


def _step_types():
    """The argument types the model gives _step (step's own, in _step's order): the band's arrays and
    scalars without the band's own (fs, ys, ye, edges), then nthreads and the band's address."""
    t = _band_types()
    return t[:7] + t[10:33] + (types.int64, types.int64)


def compile_band_callees(colour: bool) -> None:
    """Compile (or load) the numba functions the band calls, with the types the band calls them with
    (a cold compile of _band3 lists them): the helper process of kl_motion.precompile does it first, so
    that the model's band compile finds them in the on-disk cache (~2 s of its 14-19 s).  Types that
    do not match would only cost the helper its time: the band then compiles its own."""
    A, f4, u1, i8, b = types.Array, types.float32, types.uint8, types.int64, types.boolean
    st, u2, f2, f1 = A(f4, 4, "C"), A(u1, 2, "C"), A(f4, 2, "C"), A(f4, 1, "C")
    (_neighbours_row3 if colour else _neighbours_row1).compile((st, u2, u2, f2, i8, i8, f4, b))
    _neighbour_terms.compile((st, f2, i8, i8))
    _kl_take.compile((A(f4, 3, "C"), f2, f1, f1, f1, i8, i8, f4, b, types.literal(3 if colour else 1), f4))
    _moves_up.compile((st, f1, i8, i8, f4, types.uint64))
    _pool_clipped.compile((f1, f2, i8, i8, i8, i8, f4))
    _inband.compile((i8,) * 5)
    _learning_runs.compile((A(u1, 1, "C"), f1, f1, b, b, f4))


def compile_step():
    """Compile (or load) _step with the model's argument types: the helper process of kl_motion.precompile
    does it on a cold cache while the model compiles the band (no band needed: _step calls it by address)."""
    _step.compile(_step_types())


def step(frame, st, nmodes, cur, kl_px, kl_out, raw_out,
         alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
         pool_r, beta, kl_thr, lvl, fgd, rest_gain, rest_rate, rest_learn, nb_r, shadows, sh_lo, sh_hi, sh_chroma,
         upd_n, upd_r, keep, nthreads=0):
    """One frame: per pixel, the score (pass 1) then the label and the update (pass 2).

    Pass 1, per pixel (reads the mixture, writes nothing of it):
      current distribution <- this frame (moving average, rate beta; variance floored at var_min);
      kl_px = min over background components of KL(current || component); where that exceeds
      kl_thr and nb_r > 0, the main background component of the neighbours within nb_r also
      counts; raw_out = 2 where the pixel's own background does not explain it (+1 if shadow-like,
      +8 if the last frame's label, which raw_out holds on entry, was not 0).
      Every threshold is the pixel's own: kl_thr * (1 + rest_gain * lvl[y, x]).
    Pass 2, per pixel:
      kl_out = mean of kl_px over the (2*pool_r+1)^2 window (the KL between the joint
      distributions of the window under independence, per pixel);
      label 255 (kl_out > threshold), 127 (and shadow-like), 0 -> raw_out;
      restless level lvl <- lvl + rest_rate (flipped - lvl), where flipped = the label's fg-ness
      changed since the last frame; only where fgd (the model's last cleaned mask, dilated) is 0;
      Zivkovic update of the mixture with this frame's pixel, learning rate alpha
      (times fg_factor + (1 - fg_factor) min(1, rest_learn * lvl) where the label is 255 or the
      pixel's own background does not explain it: the slowdown fades out at restless pixels).
      Turns (upd_n > 1): row y learns on the frames where y % upd_n == upd_r, and otherwise only in its
      runs of _RUN pixels where a pixel is foreground or unexplained; where a pixel learns, its rate is
      1 - keep[y, x] (1 - alpha) (keep: (H, W) float32, the product of (1 - alpha) over the frames since it
      last learned; 1 there afterwards, times (1 - alpha) where it did not learn).  upd_n 1: every pixel at
      alpha, keep untouched (the update before turns existed, bit for bit).

    Schedule (same results as pass 1 everywhere, a barrier, then pass 2 everywhere): the rows are
    cut into bands, which the threads take from a queue (the next band to whichever thread is free:
    bands differ in cost; the result does not depend on which thread does which band).  Within a band,
    pass 2 of row y - lag runs right after pass 1 of row y (lag = max(pool_r, nb_r): every row pass 2
    reads, and every row whose mixture pass 1 of a later row reads, is then done), so the band's
    state is still in cache.  Rows within lag of a band edge need the other band's pass 1: they are done
    after the barrier, in a second prange.

    frame: (C, H, W) uint8 planes (cv2.split) with C = 1 or 3.  st: (H, 2 + C, K, W) float32, cur: (C + 1, H, W)
    float32 (module docstring).  kl_px, kl_out: (H, W) float32.  raw_out: (H, W) uint8: the last
    frame's labels on entry, this frame's on return.  lvl: (H, W) float32 restless level; fgd:
    (H, W) uint8, nonzero under the last cleaned mask dilated.  rest_learn: how fast the
    foreground slowdown fades out with the restless level.
    first: the model holds no components yet (this frame initialises it).
    nthreads: numba threads (bands = 4 per thread); 0 = choose from the frame height.
    Types as the model passes them: np.float32 scalars, int radii and nthreads, bool flags, C-contiguous
    arrays.  Others are a numba typing error (the band is called by its address: _call_band).
    """
    band = _band3 if frame.shape[0] == 3 else _band1      # compiled separately, when first needed
    _step(frame, st, nmodes, cur, kl_px, kl_out, raw_out, alpha, first, match_t2, bg_ratio, var_init, var_min,
          var_max, c_prior, fg_factor, pool_r, beta, kl_thr, (lvl, fgd, np.float32(rest_learn)), rest_gain,
          rest_rate, nb_r, shadows, sh_lo, sh_hi, sh_chroma, upd_n, upd_r, keep, nthreads, _band_addr(band))


@njit(inline="always", **_JIT)
def _schedule(H, nthreads):
    """Bands of rows: (number of bands, rows per band); 4 bands per thread."""
    nb = 4 * nthreads if nthreads > 0 else H // 16
    nb = max(1, min(H, nb))
    rows = (H + nb - 1) // nb
    return (H + rows - 1) // rows, rows


@njit(parallel=True, **_JIT)
def _step(frame, st, nmodes, cur, kl_px, kl_out, raw_out,
          alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
          pool_r, beta, kl_thr, fb, rest_gain, rest_rate, nb_r, shadows, sh_lo, sh_hi, sh_chroma, upd_n, upd_r, keep,
          nthreads, band):
    """The parallel loop over bands for any channel count: ``band`` is the address of _band3 or _band1."""
    C, H, W = frame.shape
    nb, rows = _schedule(H, nthreads)
    fs = np.empty((nb, _NSF, W), np.float32)
    nxt = np.zeros(2, np.int64)
    for rnd in range(2):
        # round 0: every band; round 1 (after the barrier): the rows next to band edges, which
        # need the other band's pass 1 (and whose mixture the other band's pass 1 reads).
        # Each prange iteration takes the next band until none is left (a thread's first iteration
        # does its share, the others find the queue empty): the bands differ in cost (moving
        # objects), and numba's static split of 8 bands over 2 threads left one thread waiting
        # 9 % of the frame (highway 720p; docs/speed.md)
        for _w in prange(nb):
            b = _take_next(nxt, rnd)
            while b < nb:
                ys = b * rows
                ye = min(H, ys + rows)
                _call_band(band, (frame, st, nmodes, cur, kl_px, kl_out, raw_out, fs[b], ys, ye,
                                  alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
                                  pool_r, beta, kl_thr, fb, rest_gain, rest_rate, nb_r, shadows, sh_lo, sh_hi,
                                  sh_chroma, upd_n, upd_r, keep, rnd == 1))
                b = _take_next(nxt, rnd)


@njit(parallel=True, **_JIT)
def background_image(st, nmodes, out):
    """The mean of each pixel's heaviest component, as uint8 (H, W, C)."""
    H, W, C = out.shape
    for y in prange(H):
        for x in range(W):
            for c in range(C):
                v = st[y, 2 + c, 0, x] if nmodes[y, x] > 0 else F0
                v = v + FH
                if v < F0:
                    v = F0
                if v > np.float32(255.0):
                    v = np.float32(255.0)
                out[y, x, c] = np.uint8(v)
