"""postprocess.clean's mask work in numba: median, closing/opening on bits, components by runs.

cv2.connectedComponentsWithStats writes a full-frame label image and visits every pixel
twice (it also accumulates the statistics of the background, label 0); on a mask that is a
few percent foreground that was most of the cleanup's time. Here the mask is read once as
horizontal runs of foreground, the runs are joined with union-find, and everything afterwards
(statistics, small components removed, holes filled) touches the runs only. The runs come
from a 0/1 byte image (label_runs: 8 zero bytes skipped with one 64-bit load) or, when no zone
applies, straight from the bit image that the median and closing produced (label_bits: 64
pixels per word, see "median 3x3 and closing/opening" below).

Same results as OpenCV, bit for bit (tests/test_postprocess_fast.py holds them to it):
 * components are numbered like cv2.connectedComponentsWithStats (8-connectivity, default
   algorithm, Spaghetti): it labels 2x2 blocks in raster order of blocks and keeps the smallest
   provisional label of a component, so components come in the raster order of their first
   2x2 block (at most one component has foreground in a 2x2 block under 8-connectivity);
 * statistics are left, top, width, height, area of each component;
 * holes are the 4-connected background regions that do not touch the box of their blob
   (as postprocess._fill_holes did with cv2 on each box);
 * median, closing and opening are OpenCV's (see their section).
Integer arithmetic only (no fastmath): the cached and fresh compilations agree.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import numba_inline

numba_inline.apply()      # before any compile: numba's inliner without its quadratic copy

_JIT = dict(cache=True, nogil=True)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_B7F = np.uint64(0x7F7F7F7F7F7F7F7F)
_GATHER = np.uint64(0x0102040810204080)
_S7 = np.uint64(7)
_S56 = np.uint64(56)
_S63 = np.uint64(63)
_U64 = np.uint64(64)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_CTZ = np.array([0, 1, 48, 2, 57, 49, 28, 3, 61, 58, 50, 42, 38, 29, 17, 4, 62, 55, 59, 36, 53, 51,
                 43, 22, 45, 39, 33, 30, 24, 18, 12, 5, 63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52,
                 21, 44, 32, 23, 11, 46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9, 13, 8, 7, 6],
                np.int64)
_S58 = np.uint64(58)


@njit(inline="always", **_JIT)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(inline="always", **_JIT)
def _union(parent, a, b):
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@njit(inline="always", **_JIT)
def _add_run(y, s, e, n, j, prev_hi, ry, rs, re, parent):
    """Record run [s, e) of row y as run n and join it to the runs of the row above (from j
    to prev_hi, in order) that touch it 8-connected: [c, d) touches [s, e) when c <= e and
    s <= d.  Returns the new j (the first run above that can touch a later run of this row)."""
    ry[n] = y
    rs[n] = s
    re[n] = e
    parent[n] = n
    while j < prev_hi and re[j] < s:
        j += 1
    q = j
    while q < prev_hi and rs[q] <= e:
        _union(parent, n, q)
        q += 1
    return j


@njit(**_JIT)
def _grow(a, n):
    """a copied into a new array of max(2 len(a), n) items.  A loop, not ``b[:len(a)] = a``: numba
    compiles a slice assignment with its shape-mismatch error, whose message formatting was 2.7 s
    of a cold first frame."""
    b = np.empty(max(2 * a.shape[0], n), a.dtype)
    for i in range(a.shape[0]):
        b[i] = a[i]
    return b


@njit(**_JIT)
def _grow4(ry, rs, re, parent):
    """The four run arrays, each twice as long (_grow)."""
    return _grow(ry, 0), _grow(rs, 0), _grow(re, 0), _grow(parent, 0)


@njit(**_JIT)
def _argsort_unique(key):
    """np.argsort of distinct non-negative int64 keys, as an LSD radix sort (8 bits a pass, as many passes
    as the largest key needs): numba's np.argsort compiles its quicksort, ~3 s of a cold first frame."""
    n = key.shape[0]
    idx = np.arange(n)
    tmp = np.empty(n, np.int64)
    top = np.int64(0)
    for i in range(n):
        top = max(top, key[i])
    count = np.empty(257, np.int64)
    shift = np.int64(0)
    while shift == 0 or (top >> shift) > 0:
        for d in range(257):
            count[d] = 0
        for i in range(n):
            count[((key[idx[i]] >> shift) & 255) + 1] += 1
        for d in range(256):
            count[d + 1] += count[d]
        for i in range(n):
            d = (key[idx[i]] >> shift) & 255
            tmp[count[d]] = idx[i]
            count[d] += 1
        idx, tmp = tmp, idx
        shift += 8
    return idx


@njit(**_JIT)
def _scan(fg, y, n, prev_lo, prev_hi, ry, rs, re, parent):
    """Runs of fg's rows from y on, appended at n and joined to the row above (8-connected),
    while a whole row's runs fit in the arrays. Returns (y, n, prev_lo, prev_hi) to resume
    from (y == H: done). Growing the arrays in this loop would make it several times slower:
    the caller does it."""
    H, W = fg.shape
    N = H * W
    flat = fg.reshape(N)
    words = flat[:(N // 8) * 8].view(np.uint64)
    cap = ry.shape[0]
    row_max = (W + 1) // 2
    while y < H:
        if n + row_max > cap:
            break
        base = y * W
        lo = n
        j = prev_lo
        x = 0
        while x < W:
            i = base + x
            if (i & 7) == 0 and x + 8 <= W:
                if words[i >> 3] == 0:
                    x += 8
                    continue
            if flat[i] == 0:
                x += 1
                continue
            s = x
            x += 1
            while x < W and flat[base + x] != 0:
                x += 1
            j = _add_run(y, s, x, n, j, prev_hi, ry, rs, re, parent)
            n += 1
        prev_lo = lo
        prev_hi = n
        y += 1
    return y, n, prev_lo, prev_hi


@njit(**_JIT)
def label_runs(fg):
    """Foreground runs of fg (uint8, C-contiguous, nonzero = foreground), 8-connected.

    Returns (ry, rs, re, comp, stats): run r is row ry[r], columns rs[r] .. re[r] - 1, and
    belongs to component comp[r] (0-based, in OpenCV's order); stats[c] = left, top, width,
    height, area of component c (int32, like cv2's stats without the background row)."""
    H, W = fg.shape
    cap = max(4096, 2 * ((W + 1) // 2))
    ry = np.empty(cap, np.int32)
    rs = np.empty(cap, np.int32)
    re = np.empty(cap, np.int32)
    parent = np.empty(cap, np.int32)
    y = n = prev_lo = prev_hi = np.int64(0)      # not a literal 0: numba would compile a version for it
    while True:     # one call site: one compiled signature (literal arguments made numba compile two)
        y, n, prev_lo, prev_hi = _scan(fg, y, n, prev_lo, prev_hi, ry, rs, re, parent)
        if y >= H:
            break
        ry, rs, re, parent = _grow4(ry, rs, re, parent)
    return _components(ry, rs, re, parent, n, H, W)


@njit(**_JIT)
def _components(ry, rs, re, parent, n, H, W):
    """label_runs' result from its n joined runs."""
    # components in order of their first run; key = raster index of the first 2x2 block
    comp = np.empty(n, np.int32)
    ncomp = 0
    for r in range(n):
        root = _find(parent, r)
        if root == r:
            comp[r] = ncomp
            ncomp += 1
        else:
            comp[r] = comp[root]     # root < r: the root is the component's first run
    Wb = (W + 1) // 2
    key = np.full(ncomp, np.iinfo(np.int64).max, np.int64)
    x0 = np.full(ncomp, W, np.int32)
    x1 = np.zeros(ncomp, np.int32)
    y0 = np.full(ncomp, H, np.int32)
    y1 = np.zeros(ncomp, np.int32)
    area = np.zeros(ncomp, np.int32)
    for r in range(n):
        c = comp[r]
        k = np.int64(ry[r] // 2) * Wb + rs[r] // 2
        if k < key[c]:
            key[c] = k
        if rs[r] < x0[c]:
            x0[c] = rs[r]
        if re[r] > x1[c]:
            x1[c] = re[r]
        if ry[r] < y0[c]:
            y0[c] = ry[r]
        if ry[r] > y1[c]:
            y1[c] = ry[r]
        area[c] += re[r] - rs[r]
    order = _argsort_unique(key)
    rank = np.empty(ncomp, np.int32)
    stats = np.empty((ncomp, 5), np.int32)
    for i in range(ncomp):
        c = order[i]
        rank[c] = i
        stats[i, 0] = x0[c]
        stats[i, 1] = y0[c]
        stats[i, 2] = x1[c] - x0[c]
        stats[i, 3] = y1[c] - y0[c] + 1
        stats[i, 4] = area[c]
    for r in range(n):
        comp[r] = rank[comp[r]]
    return ry[:n], rs[:n], re[:n], comp, stats


@njit(inline="always", **_JIT)
def _ctz(w):
    """Index of the lowest set bit of w (w != 0)."""
    return _CTZ[((w & (~w + _U1)) * _DEBRUIJN) >> _S58]


@njit(**_JIT)
def _scan_bits(B, W, y, n, prev_lo, prev_hi, ry, rs, re, parent):
    """_scan on a bit image (bit i of word k of row y = pixel (y, 64 k + i), padding 0)."""
    H, nw = B.shape
    cap = ry.shape[0]
    row_max = (W + 1) // 2
    while y < H:
        if n + row_max > cap:
            break
        lo = n
        j = prev_lo
        inrun = False
        s = 0
        for k in range(nw + 1):
            if k == nw:
                if not inrun:
                    break
                e = W                                 # a run that reaches the row's end
                w = _U0
            else:
                w = B[y, k]
                if w == 0 and not inrun:
                    continue
                if inrun:
                    t = ~w
                else:
                    b = _ctz(w)
                    s = k * 64 + b
                    inrun = True
                    t = ~w & (_ONES << np.uint64(b))      # the zeros from the run's start on
                if t == 0:
                    continue                          # the run goes on into the next word
                e = k * 64 + _ctz(t)
            while True:
                j = _add_run(y, s, e, n, j, prev_hi, ry, rs, re, parent)
                n += 1
                inrun = False
                if k == nw:
                    break
                eb = e - k * 64
                w &= ~((_U1 << np.uint64(eb)) - _U1)      # clear the bits up to the run's end
                if w == 0:
                    break
                b = _ctz(w)
                s = k * 64 + b
                inrun = True
                t = ~w & (_ONES << np.uint64(b))
                if t == 0:
                    break                             # goes on into the next word
                e = k * 64 + _ctz(t)
        prev_lo = lo
        prev_hi = n
        y += 1
    return y, n, prev_lo, prev_hi


@njit(**_JIT)
def label_bits(B, W):
    """label_runs of a bit image of width W (see pack255)."""
    H = B.shape[0]
    cap = max(4096, 2 * ((W + 1) // 2))
    ry = np.empty(cap, np.int32)
    rs = np.empty(cap, np.int32)
    re = np.empty(cap, np.int32)
    parent = np.empty(cap, np.int32)
    y = n = prev_lo = prev_hi = np.int64(0)      # not a literal 0: numba would compile a version for it
    while True:     # one call site: one compiled signature (literal arguments made numba compile two)
        y, n, prev_lo, prev_hi = _scan_bits(B, W, y, n, prev_lo, prev_hi, ry, rs, re, parent)
        if y >= H:
            break
        ry, rs, re, parent = _grow4(ry, rs, re, parent)
    return _components(ry, rs, re, parent, n, H, W)


@njit(**_JIT)
def paint_runs(out, ry, rs, re, comp, keep):
    """out (2-D uint8): runs of components with keep[c] set to 255, the other runs to 0."""
    for r in range(ry.shape[0]):
        v = np.uint8(255) if keep[comp[r]] else np.uint8(0)
        y = ry[r]
        for x in range(rs[r], re[r]):
            out[y, x] = v


@njit(**_JIT)
def _fill_box(out, bx, by, bw, bh, max_area, ry, rs, re, parent):
    """fill_holes for one box; the arrays hold at least bh * ((bw + 1) // 2) runs."""
    ex = bx + bw
    n = 0
    prev_lo = 0
    prev_hi = 0
    for y in range(by, by + bh):
        lo = n
        j = prev_lo
        x = bx
        while x < ex:
            if out[y, x] == 255:
                x += 1
                continue
            s = x
            x += 1
            while x < ex and out[y, x] != 255:
                x += 1
            ry[n] = y
            rs[n] = s
            re[n] = x
            parent[n] = n
            # runs [c, d) of the row above touch [s, x) (4-connected) when c < x and s < d
            while j < prev_hi and re[j] <= s:
                j += 1
            k = j
            while k < prev_hi and rs[k] < x:
                _union(parent, n, k)
                k += 1
            n += 1
        prev_lo = lo
        prev_hi = n
    if n == 0:
        return
    # per root: area, and whether the region touches the box's edge
    size = np.zeros(n, np.int64)
    edge = np.zeros(n, np.bool_)
    for r in range(n):
        root = _find(parent, r)
        parent[r] = root
        size[root] += re[r] - rs[r]
        if rs[r] == bx or re[r] == ex or ry[r] == by or ry[r] == by + bh - 1:
            edge[root] = True
    for r in range(n):
        root = parent[r]
        if not edge[root] and size[root] <= max_area:
            y = ry[r]
            for x in range(rs[r], re[r]):
                out[y, x] = 255


@njit(**_JIT)
def fill_holes(out, boxes, max_area):
    """Fill with 255, in place, the holes of out (0/127/255 uint8) inside each box.

    boxes[b] = x, y, w, h of a blob of out's 255 pixels. A hole is a 4-connected region of
    pixels != 255 in the box that touches none of the box's edges and has at most max_area
    pixels; boxes narrower or lower than 3 pixels have none."""
    cap = 0
    for b in range(boxes.shape[0]):
        cap = max(cap, boxes[b, 3] * ((boxes[b, 2] + 1) // 2))
    ry = np.empty(cap, np.int32)
    rs = np.empty(cap, np.int32)
    re = np.empty(cap, np.int32)
    parent = np.empty(cap, np.int32)
    for b in range(boxes.shape[0]):
        if boxes[b, 2] >= 3 and boxes[b, 3] >= 3:
            _fill_box(out, boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3], max_area, ry, rs, re, parent)


# --- median 3x3 and closing/opening on a bit-packed mask -------------------------------
# Bit i of word k of row y is pixel (y, 64 k + i); bits past the row's end are 0. On the
# cleanup's mostly empty 0/1 masks cv2.medianBlur, == 255, and morphologyEx read and write a
# byte per pixel several times (on a loaded 2-core machine cv2's 2-thread closing measured
# slower than its 1-thread one); 64 pixels per word cost a few integer operations instead. Same definitions as OpenCV: the median of 0/127/255 labels is
# 255 exactly where at least 5 of the 9 are 255 (rows and columns past the edge repeat the edge
# one); closing is dilation then erosion with the structuring element, opening the reverse;
# pixels outside the image do not count (dilation sees 0 there, erosion 1).

@njit(inline="always", **_JIT)
def _pack8(words, q0, nq):
    """Bits of the bytes == 255 of words[q0:q0 + nq] (8 pixels each)."""
    acc = _U0
    for q in range(nq):
        x = ~words[q0 + q]                         # bytes that were 255 are now 0
        z = ~(((x & _B7F) + _B7F) | x | _B7F)      # 0x80 in each zero byte, else 0
        acc |= ((z >> _S7) * _GATHER) >> _S56 << np.uint64(q * 8)   # byte i -> bit i
    return acc


@njit(**_JIT)
def pack255(raw, nw):
    """Bits of raw == 255 (raw: uint8, C-contiguous, width a multiple of 8): (H, nw) uint64."""
    H, W = raw.shape
    per_row = W // 8
    words = raw.reshape(H * W).view(np.uint64)
    B = np.empty((H, nw), np.uint64)
    full = per_row // 8                               # words with 64 pixels
    if full == nw:                                    # rows of whole words: one flat loop
        flat = B.reshape(H * nw)
        for k in range(H * nw):
            acc = _U0
            for q in range(8):
                x = ~words[k * 8 + q]
                z = ~(((x & _B7F) + _B7F) | x | _B7F)
                acc |= ((z >> _S7) * _GATHER) >> _S56 << np.uint64(q * 8)
            flat[k] = acc
        return B
    for y in range(H):
        base = y * per_row
        for k in range(full):
            B[y, k] = _pack8(words, base + k * 8, 8)
        if full < nw:
            B[y, full] = _pack8(words, base + full * 8, per_row - full * 8)
    return B


@njit(**_JIT)
def pack_nonzero(raw, nw):
    """Bits of raw != 0 (raw: uint8, C-contiguous, width a multiple of 8): (H, nw) uint64."""
    H, W = raw.shape
    per_row = W // 8
    words = raw.reshape(H * W).view(np.uint64)
    B = np.zeros((H, nw), np.uint64)
    for y in range(H):
        base = y * per_row
        for q in range(per_row):
            x = words[base + q]
            if x == _U0:
                continue
            z = ((x & _B7F) + _B7F) | x                # 0x80 in each nonzero byte
            k = q >> 3
            B[y, k] |= (((z & ~_B7F) >> _S7) * _GATHER) >> _S56 << np.uint64((q & 7) * 8)
    return B


@njit(**_JIT)
def paint_bits_where_zero(out, S, value):
    """out[y, x] = value where bit x of row y of S is set and out[y, x] is 0."""
    H, nw = S.shape
    for y in range(H):
        for k in range(nw):
            w = S[y, k]
            while w != _U0:
                x = 64 * k + _ctz(w)
                if out[y, x] == 0:
                    out[y, x] = value
                w &= w - _U1
    return out


@njit(**_JIT)
def median3(B, W):
    """3x3 median of a 0/255 image given as bits (at least 5 of 9 set), edges replicated."""
    H, nw = B.shape
    out = np.empty_like(B)
    last = (W - 1) & 63
    lastmask = _ONES >> np.uint64(63 - last)           # the valid bits of the last word
    for y in range(H):
        for k in range(nw):
            s1 = _U0
            s2 = _U0
            s3 = _U0
            c1 = _U0
            c2 = _U0
            c3 = _U0
            for i in range(3):
                r = min(max(y + i - 1, 0), H - 1)
                a = B[r, k]
                lft = (a << _U1) | ((B[r, k - 1] >> _S63) if k > 0 else (a & _U1))
                rgt = a >> _U1
                if k + 1 < nw:
                    rgt |= B[r, k + 1] << _S63
                else:
                    rgt |= (a >> np.uint64(last) & _U1) << np.uint64(last)
                s = a ^ lft ^ rgt
                c = (a & lft) | (a & rgt) | (lft & rgt)
                if i == 0:
                    s1 = s
                    c1 = c
                elif i == 1:
                    s2 = s
                    c2 = c
                else:
                    s3 = s
                    c3 = c
            # count = s1 + s2 + s3 + 2 (c1 + c2 + c3) = S0 + 2 T, T = C0 + c1 + c2 + c3
            S0 = s1 ^ s2 ^ s3
            C0 = (s1 & s2) | (s1 & s3) | (s2 & s3)
            ab = C0 & c1
            cd = c2 & c3
            aob = C0 | c1
            cod = c2 | c3
            ge2 = ab | cd | (aob & cod)
            ge3 = (ab & cod) | (cd & aob)
            v = ge3 | (ge2 & S0)
            if k == nw - 1:
                v &= lastmask
            out[y, k] = v
    return out


@njit(**_JIT)
def _dilate(B, W, spans, rows, invert):
    """Dilation of B (or of ~B when invert) with the element; pixels outside count as 0."""
    H, nw = B.shape
    lastmask = _ONES >> np.uint64(63 - ((W - 1) & 63))   # the valid bits of the last word
    flip = _ONES if invert else _U0
    ns = spans.shape[0]
    maxr = 0
    for s in range(ns):
        maxr = max(maxr, abs(spans[s, 0]), abs(spans[s, 1]))
    cr = np.zeros(maxr + 1, np.uint64)                # pixels i+1..i+d of a word, OR-ed (cr[d])
    cl = np.zeros(maxr + 1, np.uint64)                # pixels i-1..i-d
    Hs = np.empty((ns * H, nw), np.uint64)            # horizontal pass: span s of row y at s * H + y
    ext = np.zeros(nw + 2, np.uint64)                 # a row with a 0 word at each end
    for y in range(H):
        for k in range(nw):
            ext[k + 1] = B[y, k] ^ flip
        ext[nw] &= lastmask
        for k in range(nw):
            p = ext[k]
            c = ext[k + 1]
            n = ext[k + 2]
            accr = _U0
            accl = _U0
            for d in range(1, maxr + 1):
                ud = np.uint64(d)
                accr |= (c >> ud) | (n << (_U64 - ud))    # bit i <- pixel i + d
                accl |= (c << ud) | (p >> (_U64 - ud))    # bit i <- pixel i - d
                cr[d] = accr
                cl[d] = accl
            for s in range(ns):
                Hs[s * H + y, k] = c | cr[spans[s, 1]] | cl[-spans[s, 0]]
    out = np.empty_like(B)
    nr = rows.shape[0]
    for y in range(H):
        for k in range(nw):
            out[y, k] = _U0
        for t in range(nr):
            r = y + rows[t, 0]
            if 0 <= r < H:                            # rows outside the image: 0
                i = rows[t, 1] * H + r
                for k in range(nw):
                    out[y, k] |= Hs[i, k]
        for k in range(nw):
            out[y, k] ^= flip
        out[y, nw - 1] &= lastmask
    return out


def morph(B, W, spans, rows, dilate):
    """Dilation (dilate=True) or erosion of a bit image with a structuring element given as
    rows (dy, index into spans) and spans (dx_lo, dx_hi): element row dy covers dx_lo..dx_hi
    (offsets from the anchor, dx_lo <= 0 <= dx_hi, |dx| < 64). Outside the image dilation sees 0, erosion 1:
    erosion is the complement of the dilation of the complement."""
    return _dilate(B, W, spans, rows, not dilate)


_SPREAD = np.zeros(256, np.uint64)                    # byte -> its 8 bits as 8 bytes of 0/1
for _b in range(256):
    for _i in range(8):
        if (_b >> _i) & 1:
            _SPREAD[_b] |= np.uint64(1) << np.uint64(8 * _i)


@njit(inline="always", **_JIT)
def _unpack_row(w, words, q0, nq):
    """The low 8 * nq bits of w as nq words of 8 bytes 0/1 from words[q0]."""
    if w == _U0:
        for q in range(nq):
            words[q0 + q] = _U0
    else:
        for q in range(nq):
            words[q0 + q] = _SPREAD[(w >> np.uint64(q * 8)) & np.uint64(255)]


@njit(**_JIT)
def unpack01(B, W):
    """The bits as a 0/1 uint8 image (H, W); W a multiple of 8."""
    H, nw = B.shape
    per_row = W // 8
    out = np.empty((H, W), np.uint8)
    words = out.reshape(H * W).view(np.uint64)
    full = per_row // 8                               # words with 64 pixels
    for y in range(H):
        base = y * per_row
        for k in range(full):
            _unpack_row(B[y, k], words, base + k * 8, 8)
        if full < nw:
            _unpack_row(B[y, full], words, base + full * 8, per_row - full * 8)
    return out


@njit(**_JIT)
def cover7(src, dst):
    """dst = 1 where OpenCV's 7x7 ellipse around the pixel holds a nonzero pixel of src, else 0:
    (cv2.dilate(src, ellipse 7x7) != 0), the restless feedback's cover (model.py).  src, dst:
    uint8 (H, W), C-contiguous, W a multiple of 8.  The ellipse's rows are spans of radius 0, 2,
    3, 3, 3, 2, 0 (dy = -3..3): one horizontal pass per radius on bits (64 pixels a word), then
    the seven rows OR-ed and unpacked straight into dst."""
    H, W = src.shape
    nw = (W + 63) // 64
    B = pack_nonzero(src, nw)                         # bits beyond W are 0
    H2 = np.empty((H, nw), np.uint64)
    H3 = np.empty((H, nw), np.uint64)
    for y in range(H):
        for k in range(nw):
            c = B[y, k]
            p = B[y, k - 1] if k > 0 else _U0
            n = B[y, k + 1] if k + 1 < nw else _U0
            a = c | (c >> _U1) | (n << _S63) | (c << _U1) | (p >> _S63)
            a |= (c >> np.uint64(2)) | (n << np.uint64(62)) | (c << np.uint64(2)) | (p >> np.uint64(62))
            H2[y, k] = a
            H3[y, k] = a | (c >> np.uint64(3)) | (n << np.uint64(61)) | (c << np.uint64(3)) | (p >> np.uint64(61))
    per_row = W // 8
    words = dst.reshape(H * W).view(np.uint64)
    full = per_row // 8
    for y in range(H):
        base = y * per_row
        for k in range(nw):
            acc = H3[y, k]
            if y >= 1:
                acc |= H3[y - 1, k]
            if y + 1 < H:
                acc |= H3[y + 1, k]
            if y >= 2:
                acc |= H2[y - 2, k]
            if y + 2 < H:
                acc |= H2[y + 2, k]
            if y >= 3:
                acc |= B[y - 3, k]
            if y + 3 < H:
                acc |= B[y + 3, k]
            _unpack_row(acc, words, base + k * 8, 8 if k < full else per_row - full * 8)
    return dst
