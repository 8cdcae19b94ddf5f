"""Connected components of the cleanup mask by runs (numba): postprocess.clean's labelling.

cv2.connectedComponentsWithStats writes a full-frame label image and visits every pixel
twice (it also accumulates the statistics of the background, label 0); on a mask that is a
few percent foreground that is most of the cleanup's time. Here the mask is read once as
horizontal runs of foreground (8 zero bytes at a time are skipped with one 64-bit load), the
runs are joined with union-find, and everything afterwards (statistics, small components
removed, holes filled) touches the runs only.

Same results as OpenCV, bit for bit (tests/test_postprocess_fast.py holds them to it):
 * components are numbered like cv2.connectedComponentsWithStats (8-connectivity, default
   algorithm, Spaghetti): it labels 2x2 blocks in raster order of blocks and keeps the smallest
   provisional label of a component, so components come in the raster order of their first
   2x2 block (at most one component has foreground in a 2x2 block under 8-connectivity);
 * statistics are left, top, width, height, area of each component;
 * holes are the 4-connected background regions that do not touch the box of their blob
   (as postprocess._fill_holes did with cv2 on each box).
Integer arithmetic only (no fastmath): the cached and fresh compilations agree.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True)


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


@njit(**_JIT)
def _grow(a, n):
    b = np.empty(max(2 * a.shape[0], n), a.dtype)
    b[:a.shape[0]] = a
    return b


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
            ry[n] = y
            rs[n] = s
            re[n] = x
            parent[n] = n
            # runs [c, d) of the row above touch [s, x) (8-connected) when c <= x and s <= d
            while j < prev_hi and re[j] < s:
                j += 1
            k = j
            while k < prev_hi and rs[k] <= x:
                _union(parent, n, k)
                k += 1
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
    y, n, prev_lo, prev_hi = _scan(fg, 0, 0, 0, 0, ry, rs, re, parent)
    while y < H:
        ry = _grow(ry, 0)
        rs = _grow(rs, 0)
        re = _grow(re, 0)
        parent = _grow(parent, 0)
        y, n, prev_lo, prev_hi = _scan(fg, y, n, prev_lo, prev_hi, ry, rs, re, parent)
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
    order = np.argsort(key)
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
