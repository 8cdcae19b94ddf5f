"""All numba code of kl_motion.

Private kernels: they trust their inputs (the model validates and converts once)
and take every parameter as an argument, so a value changed between two frames
is used on the next one (numba freezes module globals at compile time).

State layout (float32, allocated once by the model):
  gmm[y, x, k, :]  = (weight, variance, mean_0 .. mean_{C-1}) for component k,
                     components sorted by decreasing weight
  nmodes[y, x]     = number of live components (uint8)
  cur[y, x, :]     = (mean_0 .. mean_{C-1}, variance) of the current distribution
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_JIT = dict(cache=True, nogil=True, fastmath=True)


@njit(parallel=True, **_JIT)
def step(frame, gmm, nmodes, cur, kl_px, kl_out, raw_out,
         alpha, first, match_t2, bg_ratio, var_init, var_min, var_max, c_prior, fg_factor,
         pool_r, beta, cvar_floor, kl_thr, shadows, sh_lo, sh_hi, sh_chroma):
    """One frame, two passes.

    Pass 1, per pixel: current distribution <- frame; KL(current || background) -> kl_px;
    shadow test -> raw_out (1 = shadow-like); mixture update (slower where kl_px > kl_thr).
    Pass 2: kl_out = mean of kl_px over the (2r+1)^2 neighbourhood (the KL of the joint
    distribution of the window, per pixel); label 255 / 127 (shadow) / 0 into raw_out.

    frame: (H, W, C) uint8.  kl_px, kl_out: (H, W) float32.  raw_out: (H, W) uint8.
    first: the model holds no components yet (this frame initialises it).
    """
    H, W, C = frame.shape
    K = gmm.shape[2]
    for y in prange(H):
        for x in range(W):
            # ---- current distribution: short-term moving average of the pixel -----
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
            if sc < cvar_floor:
                sc = cvar_floor
            # ---- KL(current || background part of the mixture) ------------
            nm = np.int64(nmodes[y, x])
            best = np.float32(0.0)
            bestk = -1
            cum = np.float32(0.0)
            for k in range(nm):
                sb = gmm[y, x, k, 1]
                dm = np.float32(0.0)
                for c in range(C):
                    d = cur[y, x, c] - gmm[y, x, k, 2 + c]
                    dm += d * d
                r = sc / sb
                dk = np.float32(0.5) * (C * (r - np.float32(1.0) - math.log(r)) + dm / sb)
                if bestk < 0 or dk < best:
                    best = dk
                    bestk = k
                cum += gmm[y, x, k, 0]
                if cum >= bg_ratio:
                    break
            kl_px[y, x] = best
            label = np.uint8(0)
            if shadows and bestk >= 0:
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
                            label = np.uint8(1)
            raw_out[y, x] = label
            # ---- background mixture update (Zivkovic) with this pixel --------
            a = alpha
            if bestk >= 0 and best > kl_thr:
                a = alpha * fg_factor
            if a <= 0.0:
                continue
            prune = a * c_prior
            matched = -1
            total = np.float32(0.0)
            for ku in range(nm):
                w = gmm[y, x, ku, 0]
                if matched < 0:
                    sb = gmm[y, x, ku, 1]
                    d2 = np.float32(0.0)
                    for c in range(C):
                        d = np.float32(frame[y, x, c]) - gmm[y, x, ku, 2 + c]
                        d2 += d * d
                    if d2 < match_t2 * sb * C:
                        matched = ku
                        w = (1.0 - a) * w + a - prune
                        rho = a / w
                        for c in range(C):
                            gmm[y, x, ku, 2 + c] += rho * (np.float32(frame[y, x, c]) - gmm[y, x, ku, 2 + c])
                        nv = sb + rho * (d2 / C - sb)
                        if nv < var_min:
                            nv = var_min
                        if nv > var_max:
                            nv = var_max
                        gmm[y, x, ku, 1] = nv
                        gmm[y, x, ku, 0] = w
                        total += w
                        continue
                w = (1.0 - a) * w - prune
                gmm[y, x, ku, 0] = w
                total += w
            # drop components whose weight fell to nothing (they sit at the end)
            while nm > 0 and gmm[y, x, nm - 1, 0] < prune and nm - 1 != matched:
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
    # ---- pass 2: pool the divergence over the neighbourhood and label -----------
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
            if v > kl_thr:
                raw_out[y, x] = np.uint8(127) if raw_out[y, x] == 1 else np.uint8(255)
            else:
                raw_out[y, x] = 0


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
