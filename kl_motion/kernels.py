"""All numba code of kl_motion.

Private kernels: they trust their inputs (the model validates and converts once)
and take every parameter as an argument, so a value changed between two frames
is used on the next one (numba freezes module globals at compile time).

State layout (float32, allocated once by the model):
  gmm[y, x, k, :]  = (weight, variance, mean_0 .. mean_{C-1}) for component k,
                     components sorted by decreasing weight
  nmodes[y, x]     = number of live components (uint8)
  cur[y, x, :]     = (mean_0 .. mean_{C-1}, variance) of the current distribution

The math is in docs/algorithm.md.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_JIT = dict(cache=True, nogil=True, fastmath=True)


@njit(inline="always", **_JIT)
def _kl_bg(cur, y, x, sc, gmm, nmodes, qy, qx, bg_ratio, kmax):
    """min over the background components b of pixel (qy, qx) (at most kmax of them)
    of KL(N(cur[y,x], sc) || b).

    Returns (kl, k) with k = -1 when that pixel has no component yet."""
    C = cur.shape[2] - 1
    nm = min(np.int64(nmodes[qy, qx]), kmax)
    best = np.float32(0.0)
    bestk = -1
    cum = np.float32(0.0)
    for k in range(nm):
        sb = gmm[qy, qx, k, 1]
        dm = np.float32(0.0)
        for c in range(C):
            d = cur[y, x, c] - gmm[qy, qx, k, 2 + c]
            dm += d * d
        r = sc / sb
        dk = np.float32(0.5) * (C * (r - np.float32(1.0) - math.log(r)) + dm / sb)
        if bestk < 0 or dk < best:
            best = dk
            bestk = k
        cum += gmm[qy, qx, k, 0]
        if cum >= bg_ratio:
            break
    return best, bestk


@njit(parallel=True, **_JIT)
def step(frame, gmm, nmodes, cur, kl_px, kl_out, raw_out,
         alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
         pool_r, beta, kl_thr, nb_r, shadows, sh_lo, sh_hi, sh_chroma):
    """One frame in two passes (a barrier between them: pass 2 writes what pass 1 reads).

    Pass 1, per pixel (reads the mixture, writes nothing of it):
      current distribution <- this frame (moving average, rate beta; variance floored at var_min);
      kl_px = min over background components of KL(current || component); where that exceeds
      kl_thr and nb_r > 0, the background components of the neighbours within nb_r also count;
      raw_out = 2 where the pixel's own background does not explain it (+1 if shadow-like).
    Pass 2, per pixel:
      kl_out = mean of kl_px over the (2*pool_r+1)^2 window (the KL between the joint
      distributions of the window under independence, per pixel);
      label 255 (kl_out > kl_thr), 127 (and shadow-like), 0 -> raw_out;
      Zivkovic update of the mixture with this frame's pixel, learning rate alpha
      (times fg_factor where the label is 255 or the pixel's own background does not explain it).

    frame: (H, W, C) uint8.  kl_px, kl_out: (H, W) float32.  raw_out: (H, W) uint8.
    first: the model holds no components yet (this frame initialises it).
    """
    H, W, C = frame.shape
    K = gmm.shape[2]
    # ---------------------------------------------------------------- pass 1
    for y in prange(H):
        for x in range(W):
            if first:
                for c in range(C):
                    cur[y, x, c] = np.float32(frame[y, x, c])
                cur[y, x, C] = 0.0
            else:
                d2c = np.float32(0.0)
                for c in range(C):
                    d = np.float32(frame[y, x, c]) - cur[y, x, c]
                    d2c += d * d
                    cur[y, x, c] += beta * d
                cur[y, x, C] = (1.0 - beta) * (cur[y, x, C] + beta * d2c / C)
            sc = cur[y, x, C]
            if sc < var_min:
                sc = var_min
            best, bestk = _kl_bg(cur, y, x, sc, gmm, nmodes, y, x, bg_ratio, K)
            flag = np.uint8(0)
            if bestk >= 0 and best > kl_thr:
                flag = np.uint8(2)
                if shadows:
                    # a darker copy of the background colour: brightness ratio in range,
                    # little colour distortion relative to brightness
                    dot = np.float32(0.0)
                    nb = np.float32(0.0)
                    for c in range(C):
                        mb = gmm[y, x, bestk, 2 + c]
                        dot += cur[y, x, c] * mb
                        nb += mb * mb
                    if nb > 0.0:
                        br = dot / nb
                        if br >= sh_lo and br <= sh_hi:
                            dist = np.float32(0.0)
                            for c in range(C):
                                d = cur[y, x, c] - br * gmm[y, x, bestk, 2 + c]
                                dist += d * d
                            if dist <= sh_chroma * sh_chroma * br * br * nb:
                                flag = np.uint8(3)
                if nb_r > 0:
                    # the main background component of a neighbour explains this pixel:
                    # swaying branches, water, camera jitter
                    for qy in range(max(y - nb_r, 0), min(y + nb_r, H - 1) + 1):
                        for qx in range(max(x - nb_r, 0), min(x + nb_r, W - 1) + 1):
                            if qy == y and qx == x:
                                continue
                            dq, kq = _kl_bg(cur, y, x, sc, gmm, nmodes, qy, qx, bg_ratio, 1)
                            if kq >= 0 and dq < best:
                                best = dq
            kl_px[y, x] = best
            raw_out[y, x] = flag
    # ---------------------------------------------------------------- pass 2
    for y in prange(H):
        y0 = max(y - pool_r, 0)
        y1 = min(y + pool_r, H - 1)
        for x in range(W):
            x0 = max(x - pool_r, 0)
            x1 = min(x + pool_r, W - 1)
            acc = np.float32(0.0)
            for yy in range(y0, y1 + 1):
                for xx in range(x0, x1 + 1):
                    acc += kl_px[yy, xx]
            v = acc / np.float32((y1 - y0 + 1) * (x1 - x0 + 1))
            kl_out[y, x] = v
            flag = raw_out[y, x]
            label = np.uint8(0)
            if v > kl_thr:
                label = np.uint8(127) if flag & 1 else np.uint8(255)
            raw_out[y, x] = label
            # ---- Zivkovic update of the mixture with this pixel -------------------
            a = alpha
            if label == 255 or flag == 2:
                a = alpha * fg_factor
            if a <= 0.0:
                continue
            nm = np.int64(nmodes[y, x])
            prune = a * c_prior
            matched = -1
            total = np.float32(0.0)
            for k in range(nm):
                w = gmm[y, x, k, 0]
                if matched < 0:
                    sb = gmm[y, x, k, 1]
                    d2 = np.float32(0.0)
                    for c in range(C):
                        d = np.float32(frame[y, x, c]) - gmm[y, x, k, 2 + c]
                        d2 += d * d
                    if d2 < match_t2 * sb * C:
                        matched = k
                        w = (1.0 - a) * w + a - prune
                        rho = a / w
                        if rho > 1.0:
                            rho = np.float32(1.0)
                        for c in range(C):
                            gmm[y, x, k, 2 + c] += rho * (np.float32(frame[y, x, c]) - gmm[y, x, k, 2 + c])
                        nv = sb + rho * (d2 / C - sb)
                        if nv < var_min:
                            nv = var_min
                        if nv > var_max:
                            nv = var_max
                        gmm[y, x, k, 1] = nv
                        gmm[y, x, k, 0] = w
                        total += w
                        continue
                w = (1.0 - a) * w - prune
                gmm[y, x, k, 0] = w
                total += w
            # drop components whose weight fell to nothing (they sit at the end)
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
            # keep the components sorted: only the matched / new one can move up
            km = matched
            while km > 0 and gmm[y, x, km, 0] > gmm[y, x, km - 1, 0]:
                for j in range(2 + C):
                    t = gmm[y, x, km, j]
                    gmm[y, x, km, j] = gmm[y, x, km - 1, j]
                    gmm[y, x, km - 1, j] = t
                km -= 1
            if total > 0.0:
                inv = np.float32(1.0) / total
                for kk in range(nm):
                    gmm[y, x, kk, 0] *= inv
            nmodes[y, x] = np.uint8(nm)


@njit(parallel=True, **_JIT)
def background_image(gmm, nmodes, out):
    """The mean of each pixel's heaviest component, as uint8 (H, W, C)."""
    H, W, C = out.shape
    for y in prange(H):
        for x in range(W):
            for c in range(C):
                v = gmm[y, x, 0, 2 + c] if nmodes[y, x] > 0 else 0.0
                v = v + 0.5
                if v < 0.0:
                    v = 0.0
                if v > 255.0:
                    v = 255.0
                out[y, x, c] = np.uint8(v)
