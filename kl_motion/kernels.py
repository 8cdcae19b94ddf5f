"""All numba code of kl_motion.

Private kernels: they trust their inputs (the model validates and converts once)
and take every parameter as an argument, so a value changed between two frames
is used on the next one (numba freezes module globals at compile time).

State layout (float32, allocated once by the model):
  gmm[y, x, k, :]  = (weight, variance, mean_0 .. mean_{C-1}) for component k,
                     components sorted by decreasing weight
  nmodes[y, x]     = number of live components (uint8)
  cur[y, x, :]     = (mean_0 .. mean_{C-1}, variance) of the current distribution

The math is in docs/algorithm.md; tests/kernel_reference.py is a plain NumPy version of it
that tests/test_kernels.py checks these kernels against.  Speed (docs/speed.md): float32
arithmetic throughout, C = 3 and C = 1 compiled separately (the channel loops unroll), the
log of the KL skipped where it cannot change the minimum (its term is >= 0) or is 0 (r == 1),
and the two passes fused per band of rows so the state is read from memory once per frame.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_JIT = dict(cache=True, nogil=True, fastmath=True)
F0 = np.float32(0.0)
F1 = np.float32(1.0)
FH = np.float32(0.5)


@njit(inline="always", **_JIT)
def _pass1(frame, gmm, nmodes, cur, kl_px, raw_out, y, C, first, bg_ratio, var_min, beta, kl_thr, nb_r,
           shadows, sh_lo, sh_hi, sh_chroma):
    """Pass 1 on row y: current distribution, KL to the own background, misfit/shadow flag,
    neighbour test -> kl_px[y], raw_out[y] (flags)."""
    H = frame.shape[0]
    W = frame.shape[1]
    fC = np.float32(C)
    invC = F1 / fC
    hC = FH * fC
    omb = F1 - beta
    for x in range(W):
        if first:
            for c in range(C):
                cur[y, x, c] = np.float32(frame[y, x, c])
            sc = F0
            cur[y, x, C] = sc
        else:
            d2c = F0
            for c in range(C):
                d = np.float32(frame[y, x, c]) - cur[y, x, c]
                d2c += d * d
                cur[y, x, c] += beta * d
            sc = omb * (cur[y, x, C] + beta * d2c * invC)
            cur[y, x, C] = sc
        if sc < var_min:
            sc = var_min
        # own background: min over the first components up to bg_ratio of the weight
        nm = np.int64(nmodes[y, x])
        best = F0
        bestk = -1
        cum = F0
        for k in range(nm):
            sb = gmm[y, x, k, 1]
            dm = F0
            for c in range(C):
                d = cur[y, x, c] - gmm[y, x, k, 2 + c]
                dm += d * d
            isb = F1 / sb
            maha = FH * dm * isb
            if bestk < 0 or maha < best:          # the variance term is >= 0
                r = sc * isb
                dk = maha
                if r != F1:
                    dk += hC * (r - F1 - math.log(r))
                if bestk < 0 or dk < best:
                    best = dk
                    bestk = k
            cum += gmm[y, x, k, 0]
            if cum >= bg_ratio:
                break
        flag = np.uint8(0)
        if bestk >= 0 and best > kl_thr:
            flag = np.uint8(2)
            if shadows:
                dot = F0
                nb = F0
                for c in range(C):
                    mb = gmm[y, x, bestk, 2 + c]
                    dot += cur[y, x, c] * mb
                    nb += mb * mb
                if nb > F0:
                    br = dot / nb
                    if br >= sh_lo and br <= sh_hi:
                        dist = F0
                        for c in range(C):
                            d = cur[y, x, c] - br * gmm[y, x, bestk, 2 + c]
                            dist += d * d
                        if dist <= sh_chroma * sh_chroma * br * br * nb:
                            flag = np.uint8(3)
            if nb_r > 0:
                for qy in range(max(y - nb_r, 0), min(y + nb_r, H - 1) + 1):
                    for qx in range(max(x - nb_r, 0), min(x + nb_r, W - 1) + 1):
                        if (qy == y and qx == x) or nmodes[qy, qx] == 0:
                            continue
                        sb = gmm[qy, qx, 0, 1]
                        dm = F0
                        for c in range(C):
                            d = cur[y, x, c] - gmm[qy, qx, 0, 2 + c]
                            dm += d * d
                        isb = F1 / sb
                        maha = FH * dm * isb
                        if maha < best:
                            r = sc * isb
                            dq = maha
                            if r != F1:
                                dq += hC * (r - F1 - math.log(r))
                            if dq < best:
                                best = dq
        kl_px[y, x] = best
        raw_out[y, x] = flag


@njit(inline="always", **_JIT)
def _pass2(frame, gmm, nmodes, kl_px, kl_out, raw_out, colsum, y, C, pool_r, kl_thr, alpha, match_t2,
           var_init, var_min, var_max, c_prior, fg_factor):
    """Pass 2 on row y: pooled KL -> kl_out[y], label -> raw_out[y], Zivkovic update of the mixture.
    Needs pass 1 done on rows y - pool_r .. y + pool_r; colsum is a scratch row."""
    H = frame.shape[0]
    W = frame.shape[1]
    K = gmm.shape[2]
    fC = np.float32(C)
    invC = F1 / fC
    y0 = max(y - pool_r, 0)
    y1 = min(y + pool_r, H - 1)
    for x in range(W):
        s = F0
        for yy in range(y0, y1 + 1):
            s += kl_px[yy, x]
        colsum[x] = s
    ny = np.float32(y1 - y0 + 1)
    # pooled KL: border columns (clipped window), then the interior (fixed window)
    xe = W - pool_r if W > 2 * pool_r else 0
    for x in range(W):
        if x < pool_r or x >= xe:
            x0 = max(x - pool_r, 0)
            x1 = min(x + pool_r, W - 1)
            acc = F0
            for xx in range(x0, x1 + 1):
                acc += colsum[xx]
            kl_out[y, x] = acc / (ny * np.float32(x1 - x0 + 1))
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
    for x in range(W):
        v = kl_out[y, x]
        flag = raw_out[y, x]
        label = np.uint8(0)
        if v > kl_thr:
            label = np.uint8(127) if flag & 1 else np.uint8(255)
        raw_out[y, x] = label
        # ---- Zivkovic update
        a = alpha
        if label == 255 or flag == 2:
            a = alpha * fg_factor
        if a <= F0:
            continue
        oma = F1 - a
        nm = np.int64(nmodes[y, x])
        prune = a * c_prior
        matched = -1
        total = F0
        for k in range(nm):
            w = gmm[y, x, k, 0]
            if matched < 0:
                sb = gmm[y, x, k, 1]
                d2 = F0
                for c in range(C):
                    d = np.float32(frame[y, x, c]) - gmm[y, x, k, 2 + c]
                    d2 += d * d
                if d2 < match_t2 * sb * fC:
                    matched = k
                    w = oma * w + a - prune
                    rho = a / w
                    if rho > F1:
                        rho = F1
                    for c in range(C):
                        gmm[y, x, k, 2 + c] += rho * (np.float32(frame[y, x, c]) - gmm[y, x, k, 2 + c])
                    nv = sb + rho * (d2 * invC - sb)
                    if nv < var_min:
                        nv = var_min
                    if nv > var_max:
                        nv = var_max
                    gmm[y, x, k, 1] = nv
                    gmm[y, x, k, 0] = w
                    total += w
                    continue
            w = oma * w - prune
            gmm[y, x, k, 0] = w
            total += w
        while nm > 0 and nm - 1 != matched and gmm[y, x, nm - 1, 0] < prune:
            total -= gmm[y, x, nm - 1, 0]
            nm -= 1
        if matched < 0:
            kn = nm if nm < K else K - 1
            if kn < nm:
                total -= gmm[y, x, kn, 0]
            else:
                nm += 1
            gmm[y, x, kn, 0] = a
            gmm[y, x, kn, 1] = var_init
            for c in range(C):
                gmm[y, x, kn, 2 + c] = np.float32(frame[y, x, c])
            total += a
            matched = kn
        km = matched
        while km > 0 and gmm[y, x, km, 0] > gmm[y, x, km - 1, 0]:
            for j in range(2 + C):
                t = gmm[y, x, km, j]
                gmm[y, x, km, j] = gmm[y, x, km - 1, j]
                gmm[y, x, km - 1, j] = t
            km -= 1
        if total > F0:
            inv = F1 / total
            for kk in range(nm):
                gmm[y, x, kk, 0] *= inv
        nmodes[y, x] = np.uint8(nm)


@njit(inline="always", **_JIT)
def _inband(yp, ys, ye, lag, H):
    return max(yp - lag, 0) >= ys and min(yp + lag, H - 1) < ye


@njit(inline="always", **_JIT)
def _band(frame, gmm, nmodes, cur, kl_px, kl_out, raw_out, cs, ys, ye, lag, CC,
          alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
          pool_r, beta, kl_thr, nb_r, shadows, sh_lo, sh_hi, sh_chroma):
    """Rows ys..ye-1: pass 1 of row y, then pass 2 of row y - lag where it needs no other band.
    Inlined into _band3 / _band1 with CC a literal, so the channel loops unroll."""
    H = frame.shape[0]
    for y in range(ys, ye):
        _pass1(frame, gmm, nmodes, cur, kl_px, raw_out, y, CC, first, bg_ratio, var_min, beta, kl_thr, nb_r,
               shadows, sh_lo, sh_hi, sh_chroma)
        yp = y - lag
        if yp >= ys and _inband(yp, ys, ye, lag, H):
            _pass2(frame, gmm, nmodes, kl_px, kl_out, raw_out, cs, yp, CC, pool_r, kl_thr, alpha, match_t2,
                   var_init, var_min, var_max, c_prior, fg_factor)
    for yp in range(max(ye - lag, ys), ye):
        if _inband(yp, ys, ye, lag, H):
            _pass2(frame, gmm, nmodes, kl_px, kl_out, raw_out, cs, yp, CC, pool_r, kl_thr, alpha, match_t2,
                   var_init, var_min, var_max, c_prior, fg_factor)


@njit(**_JIT)
def _band3(frame, gmm, nmodes, cur, kl_px, kl_out, raw_out, cs, ys, ye, lag,
           alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
           pool_r, beta, kl_thr, nb_r, shadows, sh_lo, sh_hi, sh_chroma):
    _band(frame, gmm, nmodes, cur, kl_px, kl_out, raw_out, cs, ys, ye, lag, 3,
          alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
          pool_r, beta, kl_thr, nb_r, shadows, sh_lo, sh_hi, sh_chroma)


@njit(**_JIT)
def _band1(frame, gmm, nmodes, cur, kl_px, kl_out, raw_out, cs, ys, ye, lag,
           alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
           pool_r, beta, kl_thr, nb_r, shadows, sh_lo, sh_hi, sh_chroma):
    _band(frame, gmm, nmodes, cur, kl_px, kl_out, raw_out, cs, ys, ye, lag, 1,
          alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
          pool_r, beta, kl_thr, nb_r, shadows, sh_lo, sh_hi, sh_chroma)


@njit(**_JIT)
def _pass2_any(frame, gmm, nmodes, kl_px, kl_out, raw_out, colsum, y, C, pool_r, kl_thr, alpha, match_t2,
               var_init, var_min, var_max, c_prior, fg_factor):
    _pass2(frame, gmm, nmodes, kl_px, kl_out, raw_out, colsum, y, C, pool_r, kl_thr, alpha, match_t2,
           var_init, var_min, var_max, c_prior, fg_factor)


@njit(parallel=True, **_JIT)
def step(frame, gmm, nmodes, cur, kl_px, kl_out, raw_out,
         alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
         pool_r, beta, kl_thr, nb_r, shadows, sh_lo, sh_hi, sh_chroma, nthreads=0):
    """One frame: per pixel, the score (pass 1) then the label and the update (pass 2).

    Pass 1, per pixel (reads the mixture, writes nothing of it):
      current distribution <- this frame (moving average, rate beta; variance floored at var_min);
      kl_px = min over background components of KL(current || component); where that exceeds
      kl_thr and nb_r > 0, the main background component of the neighbours within nb_r also
      counts; raw_out = 2 where the pixel's own background does not explain it (+1 if shadow-like).
    Pass 2, per pixel:
      kl_out = mean of kl_px over the (2*pool_r+1)^2 window (the KL between the joint
      distributions of the window under independence, per pixel);
      label 255 (kl_out > kl_thr), 127 (and shadow-like), 0 -> raw_out;
      Zivkovic update of the mixture with this frame's pixel, learning rate alpha
      (times fg_factor where the label is 255 or the pixel's own background does not explain it).

    Schedule (same results as pass 1 everywhere, a barrier, then pass 2 everywhere): the rows are
    cut into bands, one prange iteration per band.  Within a band, pass 2 of row y - lag runs
    right after pass 1 of row y (lag = max(pool_r, nb_r): every row pass 2 reads, and every
    row whose mixture pass 1 of a later row reads, is then done), so the band's state is still
    in cache.  Rows within lag of a band edge need the other band's pass 1: they are done
    after the barrier, in a second prange.

    frame: (H, W, C) uint8 with C = 1 or 3.  kl_px, kl_out: (H, W) float32.  raw_out: (H, W) uint8.
    first: the model holds no components yet (this frame initialises it).
    nthreads: numba threads (bands = 4 per thread); 0 = choose from the frame height.
    """
    H, W, C = frame.shape
    lag = max(pool_r, nb_r)
    nb = 4 * nthreads if nthreads > 0 else H // 16
    nb = max(1, min(H, nb))
    rows = (H + nb - 1) // nb
    nb = (H + rows - 1) // rows
    colsum = np.empty((nb, W), np.float32)
    for b in prange(nb):
        ys = b * rows
        ye = min(H, ys + rows)
        if C == 3:
            _band3(frame, gmm, nmodes, cur, kl_px, kl_out, raw_out, colsum[b], ys, ye, lag,
                   alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
                   pool_r, beta, kl_thr, nb_r, shadows, sh_lo, sh_hi, sh_chroma)
        else:                                   # C == 1 (the model allows 1 or 3)
            _band1(frame, gmm, nmodes, cur, kl_px, kl_out, raw_out, colsum[b], ys, ye, lag,
                   alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
                   pool_r, beta, kl_thr, nb_r, shadows, sh_lo, sh_hi, sh_chroma)

    # rows next to a band edge: after every band's pass 1 (they need the other band's kl_px,
    # and the other band's pass 1 reads their mixture)
    for b in prange(nb):
        ys = b * rows
        ye = min(H, ys + rows)
        cs = colsum[b]
        for yp in range(ys, ye):
            if not _inband(yp, ys, ye, lag, H):
                _pass2_any(frame, gmm, nmodes, kl_px, kl_out, raw_out, cs, yp, C, pool_r, kl_thr, alpha, match_t2,
                       var_init, var_min, var_max, c_prior, fg_factor)


@njit(parallel=True, **_JIT)
def background_image(gmm, nmodes, out):
    """The mean of each pixel's heaviest component, as uint8 (H, W, C)."""
    H, W, C = out.shape
    for y in prange(H):
        for x in range(W):
            for c in range(C):
                v = gmm[y, x, 0, 2 + c] if nmodes[y, x] > 0 else F0
                v = v + FH
                if v < F0:
                    v = F0
                if v > np.float32(255.0):
                    v = np.float32(255.0)
                out[y, x, c] = np.uint8(v)
