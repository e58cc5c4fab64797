"""Separable filtering on the CPU: 1-D correlation and box (running-sum) filters along one
axis, and fused two-axis passes, with every boundary.

Each array is seen as a stack of lines: the launchers reshape the data (C-contiguous) to
``(A, N, B)`` with the filtered axis in the middle. Two loop shapes cover every axis:

* ``B`` small (the last axis, or a few trailing channels such as RGB): each line is copied
  into a buffer extended by the boundary, and the taps, ``B`` elements apart, are applied
  in a unit-stride loop over the buffer (``_line_*``).
* ``B`` large (any other axis): an output row ``(a, i, :)`` is a weighted sum of whole input
  rows ``(a, s, :)``, a unit-stride axpy per tap, rows shared among threads (``_mid_*``).

The boundary is resolved once per call into a table (``extension_table``): position ``t``
of an extended line (extended index ``start + t``) reads line element ``tab[t]``, or the
fill value ``cval`` where ``tab[t] < 0``. Boundary names are numpy.pad's (constant, wrap,
symmetric, reflect, edge); ``start <= 0`` and ``start + len(tab) >= N`` always (the line
itself lies inside its extension).

Two families of kernels:

* ``*_exact`` kernels reproduce scipy.ndimage's arithmetic operation for operation (its
  symmetric/antisymmetric tap pairing, its running-sum recurrence for the box filter, no
  fast-math): in float64 they give scipy's bits, so integer outputs truncate exactly as
  scipy's do. The loops run over pixels innermost, so they still vectorise.
* fast kernels (``*_fast``, ``_sep2d_*``) sum in any order (fast-math), up to four taps per
  sweep over an L1-sized block of the output. The ``_sep2d_*`` ones fuse two passes
  (axes a and a + 1) in one sweep over memory: each thread filters the rows it needs
  along the first axis into a row buffer, extends it, and filters it along the second
  axis. Boxes: direct sums up to ``SMALL_BOX``, else float64 running sums (O(1) per
  element whatever the size; the scan split into four independent chains).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import prange

from ..._jit import jit, num_threads, run_parallel
from ..._extend import index_map

CONSTANT, WRAP, SYMMETRIC, REFLECT, EDGE = "constant", "wrap", "symmetric", "reflect", "edge"

# Boxes up to this size on both axes are summed directly (in the data's dtype), larger
# ones with float64 running sums.
SMALL_BOX = 4

# Rows are dealt to threads in this many chunks per thread (each chunk allocates its row
# buffer once): enough to even out a thread that was held up, few enough to stay cheap.
CHUNKS_PER_THREAD = 16

# Below this many trailing elements per line position, lines are buffered (``_line_*``);
# from it on, whole rows are combined (``_mid_*``).
MID_MIN_INNER = 32

# A running-sum box filter's cost per output in taps of a weighted filter (one value in,
# one out, the division), for the serial-or-parallel choice of _jit.runs_serial.
UNIFORM_TAPS = 3


# -- boundary tables ----------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def extension_table(n, start, length, boundary):
    """Line element read at extended positions ``start .. start+length-1`` (-1: cval).
    Cached (the same image shapes come back call after call); read-only."""
    tab = index_map(int(n), int(start), int(length), boundary)
    tab.flags.writeable = False
    return tab


def symmetry(w):
    """scipy.ndimage's test: +1 symmetric, -1 antisymmetric, 0 neither (odd lengths only,
    within DBL_EPSILON, on the float64 weights)."""
    w = np.asarray(w, dtype=np.float64)
    k = w.shape[0]
    if k % 2 == 0:
        return 0
    c = k // 2
    left, right = w[:c][::-1], w[c + 1:]
    eps = np.finfo(np.float64).eps
    if np.all(np.abs(right - left) <= eps):
        return 1
    if np.all(np.abs(right + left) <= eps):
        return -1
    return 0


# Loops index array *views* from 0 (``buf[a:a + n]`` then ``v[i]``): with an offset index
# (``buf[a + i]``) numba's negative-index wraparound check stops LLVM from vectorising.

# -- 1-D correlation, scipy's arithmetic ---------------------------------------------------

@jit(fastmath=False)
def _fill_line(buf, src, tab, lo, C, cval):
    # buf[t*C + ch] = src[tab[t]*C + ch], or cval where tab[t] < 0. Positions lo .. lo+N-1
    # are the line itself (one vectorised copy); only the extension goes through tab.
    NC = src.shape[0]
    core = buf[lo * C:lo * C + NC]
    for i in range(NC):
        core[i] = src[i]
    N = NC // C
    for t in range(lo):
        s = tab[t]
        for ch in range(C):
            buf[t * C + ch] = src[s * C + ch] if s >= 0 else cval
    for t in range(lo + N, tab.shape[0]):
        s = tab[t]
        for ch in range(C):
            buf[t * C + ch] = src[s * C + ch] if s >= 0 else cval


@jit(fastmath=False)
def _correlate_line_exact(o, buf, w, C, sym):
    # scipy.ndimage's three formulas (NI_Correlate1D), applied tap by tap across the line
    # so that each output sees scipy's operations in scipy's order.
    NC = o.shape[0]
    k = w.shape[0]
    c = k // 2
    if sym != 0:
        bc = buf[c * C:c * C + NC]
        wc = w[c]
        for i in range(NC):
            o[i] = bc[i] * wc
        for j in range(c):
            wj = w[j]
            b1 = buf[j * C:j * C + NC]
            b2 = buf[(2 * c - j) * C:(2 * c - j) * C + NC]
            if sym > 0:
                for i in range(NC):
                    o[i] += (b1[i] + b2[i]) * wj
            else:
                for i in range(NC):
                    o[i] += (b1[i] - b2[i]) * wj
    else:
        bl = buf[(k - 1) * C:(k - 1) * C + NC]
        wl = w[k - 1]
        for i in range(NC):
            o[i] = bl[i] * wl
        for j in range(k - 1):
            wj = w[j]
            b1 = buf[j * C:j * C + NC]
            for i in range(NC):
                o[i] += b1[i] * wj


@jit(parallel=True, fastmath=False)
def _line_correlate_exact(x, w, tab, lo, cval, C, sym, out, nch):
    # x, out: (R, N*C) lines of N positions with C interleaved channels; taps C apart.
    R = x.shape[0]
    L = tab.shape[0]
    nchunks = min(R, nch)
    for chunk in prange(nchunks):
        buf = np.empty(L * C, x.dtype)
        for r in range(chunk * R // nchunks, (chunk + 1) * R // nchunks):
            _fill_line(buf, x[r], tab, lo, C, cval)
            _correlate_line_exact(out[r], buf, w, C, sym)


@jit(parallel=True, fastmath=False)
def _mid_correlate_exact(x, w, tab, cval, sym, out):
    # x, out: (A, N, B); output row (a, i) = sum_j w[j] * input row (a, tab[i + j]),
    # with scipy's formulas, vectorised across the row.
    A, N, B = out.shape
    k = w.shape[0]
    c = k // 2
    crow = np.full(B, cval, x.dtype)
    for ai in prange(A * N):
        a = ai // N
        i = ai - a * N
        o = out[a, i]
        if sym != 0:
            s = tab[i + c]
            rc = crow if s < 0 else x[a, s]
            wc = w[c]
            for b in range(B):
                o[b] = rc[b] * wc
            for j in range(c):
                s1 = tab[i + j]
                s2 = tab[i + 2 * c - j]
                r1 = crow if s1 < 0 else x[a, s1]
                r2 = crow if s2 < 0 else x[a, s2]
                wj = w[j]
                if sym > 0:
                    for b in range(B):
                        o[b] += (r1[b] + r2[b]) * wj
                else:
                    for b in range(B):
                        o[b] += (r1[b] - r2[b]) * wj
        else:
            s = tab[i + k - 1]
            rl = crow if s < 0 else x[a, s]
            wl = w[k - 1]
            for b in range(B):
                o[b] = rl[b] * wl
            for j in range(k - 1):
                s1 = tab[i + j]
                r1 = crow if s1 < 0 else x[a, s1]
                wj = w[j]
                for b in range(B):
                    o[b] += r1[b] * wj


# -- 1-D box filter, scipy's running sum ---------------------------------------------------

@jit(parallel=True, fastmath=False)
def _line_uniform_exact(x, size, tab, lo, cval, C, out, nch):
    # scipy's recurrence in float64: a running sum (first window summed in order, then
    # += entering - leaving), each output the sum / size; one chain per channel.
    R = x.shape[0]
    NC = out.shape[1]
    N = NC // C
    L = tab.shape[0]
    fsize = np.float64(size)
    nchunks = min(R, nch)
    for chunk in prange(nchunks):
        buf = np.empty(L * C, np.float64)
        acc = np.empty(C, np.float64)
        for r in range(chunk * R // nchunks, (chunk + 1) * R // nchunks):
            _fill_line(buf, x[r], tab, lo, C, cval)
            o = out[r]
            for ch in range(C):
                acc[ch] = 0.0
            for j in range(size):
                for ch in range(C):
                    acc[ch] += buf[j * C + ch]
            for ch in range(C):
                o[ch] = acc[ch] / fsize
            for p in range(1, N):
                enter = (p + size - 1) * C
                leave = (p - 1) * C
                for ch in range(C):
                    acc[ch] += buf[enter + ch] - buf[leave + ch]
                    o[p * C + ch] = acc[ch] / fsize


@jit(parallel=True, fastmath=False)
def _mid_uniform_exact(x, size, tab, cval, out):
    # The same recurrence down the middle axis, vectorised across the last axis in chunks
    # (the chunks are the parallel work: the recurrence itself is sequential).
    A, N, B = out.shape
    fsize = np.float64(size)
    width = 512
    nb = (B + width - 1) // width
    crow = np.full(B, cval, np.float64)
    for ab in prange(A * nb):
        a = ab // nb
        b0 = (ab - a * nb) * width
        b1 = min(B, b0 + width)
        nw = b1 - b0
        acc = np.zeros(nw, np.float64)
        for j in range(size):
            s = tab[j]
            if s < 0:
                rc = crow[b0:b1]
                for b in range(nw):
                    acc[b] += rc[b]
            else:
                row = x[a, s, b0:b1]
                for b in range(nw):
                    acc[b] += row[b]
        o = out[a, 0, b0:b1]
        for b in range(nw):
            o[b] = acc[b] / fsize
        for p in range(1, N):
            s_in = tab[p + size - 1]
            s_out = tab[p - 1]
            o = out[a, p, b0:b1]
            if s_in >= 0 and s_out >= 0:
                rin = x[a, s_in, b0:b1]
                rout = x[a, s_out, b0:b1]
                for b in range(nw):
                    acc[b] += np.float64(rin[b]) - np.float64(rout[b])
                    o[b] = acc[b] / fsize
            else:
                fin = crow[b0:b1]
                fout = crow[b0:b1]
                for b in range(nw):
                    vin = fin[b] if s_in < 0 else np.float64(x[a, s_in, b0 + b])
                    vout = fout[b] if s_out < 0 else np.float64(x[a, s_out, b0 + b])
                    acc[b] += vin - vout
                    o[b] = acc[b] / fsize


# -- fused two-axis passes (fast path for floating outputs) --------------------------------

@jit()
def _acc4(o, r0, r1, r2, r3, w0, w1, w2, w3, first):
    # o (=|+=) w0*r0 + w1*r1 + w2*r2 + w3*r3: four taps per sweep over o.
    n = o.shape[0]
    if first:
        for i in range(n):
            o[i] = w0 * r0[i] + w1 * r1[i] + w2 * r2[i] + w3 * r3[i]
    else:
        for i in range(n):
            o[i] += w0 * r0[i] + w1 * r1[i] + w2 * r2[i] + w3 * r3[i]


@jit()
def _acc3(o, r0, r1, r2, w0, w1, w2, first):
    n = o.shape[0]
    if first:
        for i in range(n):
            o[i] = w0 * r0[i] + w1 * r1[i] + w2 * r2[i]
    else:
        for i in range(n):
            o[i] += w0 * r0[i] + w1 * r1[i] + w2 * r2[i]


@jit()
def _acc2(o, r0, r1, w0, w1, first):
    n = o.shape[0]
    if first:
        for i in range(n):
            o[i] = w0 * r0[i] + w1 * r1[i]
    else:
        for i in range(n):
            o[i] += w0 * r0[i] + w1 * r1[i]


@jit()
def _acc1(o, r0, w0, first):
    n = o.shape[0]
    if first:
        for i in range(n):
            o[i] = w0 * r0[i]
    else:
        for i in range(n):
            o[i] += w0 * r0[i]


# Long rows are combined in blocks of this many elements, so that the output block stays
# in L1 while every tap group sweeps over it.
BLOCK = 1024


@jit()
def _combine_rows(o, xa, tab, i, w, crow):
    # o = sum_j w[j] * R(tab[i + j]), R(s) = xa[s] (a row) or crow where s < 0; the taps
    # in groups of four (then three, two, one), one sweep over an o block per group.
    k = w.shape[0]
    n = o.shape[0]
    for b0 in range(0, n, BLOCK):
        b1 = min(n, b0 + BLOCK)
        ob = o[b0:b1]
        j = 0
        while j + 4 <= k:
            s0 = tab[i + j]
            s1 = tab[i + j + 1]
            s2 = tab[i + j + 2]
            s3 = tab[i + j + 3]
            _acc4(ob, crow[b0:b1] if s0 < 0 else xa[s0, b0:b1],
                  crow[b0:b1] if s1 < 0 else xa[s1, b0:b1],
                  crow[b0:b1] if s2 < 0 else xa[s2, b0:b1],
                  crow[b0:b1] if s3 < 0 else xa[s3, b0:b1],
                  w[j], w[j + 1], w[j + 2], w[j + 3], j == 0)
            j += 4
        rem = k - j
        s0 = tab[i + j]
        r0 = crow[b0:b1] if s0 < 0 else xa[s0, b0:b1]
        if rem == 3:
            s1 = tab[i + j + 1]
            s2 = tab[i + j + 2]
            _acc3(ob, r0, crow[b0:b1] if s1 < 0 else xa[s1, b0:b1],
                  crow[b0:b1] if s2 < 0 else xa[s2, b0:b1], w[j], w[j + 1], w[j + 2], j == 0)
        elif rem == 2:
            s1 = tab[i + j + 1]
            _acc2(ob, r0, crow[b0:b1] if s1 < 0 else xa[s1, b0:b1], w[j], w[j + 1], j == 0)
        elif rem == 1:
            _acc1(ob, r0, w[j], j == 0)


@jit()
def _combine_shifts(o, buf, w, C):
    # o[i] = sum_j w[j] * buf[i + j*C], blocks and tap groups as in _combine_rows.
    n = o.shape[0]
    k = w.shape[0]
    for b0 in range(0, n, BLOCK):
        m = min(n, b0 + BLOCK) - b0
        ob = o[b0:b0 + m]
        j = 0
        while j + 4 <= k:
            a = b0 + j * C
            _acc4(ob, buf[a:a + m], buf[a + C:a + C + m], buf[a + 2 * C:a + 2 * C + m],
                  buf[a + 3 * C:a + 3 * C + m], w[j], w[j + 1], w[j + 2], w[j + 3], j == 0)
            j += 4
        rem = k - j
        a = b0 + j * C
        if rem == 3:
            _acc3(ob, buf[a:a + m], buf[a + C:a + C + m], buf[a + 2 * C:a + 2 * C + m],
                  w[j], w[j + 1], w[j + 2], j == 0)
        elif rem == 2:
            _acc2(ob, buf[a:a + m], buf[a + C:a + C + m], w[j], w[j + 1], j == 0)
        elif rem == 1:
            _acc1(ob, buf[a:a + m], w[j], j == 0)


@jit(parallel=True)
def _line_correlate_fast(x, w, tab, lo, cval, C, out, nch):
    # As _line_correlate_exact, in any summation order (fast-math, taps grouped).
    R = x.shape[0]
    L = tab.shape[0]
    nchunks = min(R, nch)
    for chunk in prange(nchunks):
        buf = np.empty(L * C, x.dtype)
        for r in range(chunk * R // nchunks, (chunk + 1) * R // nchunks):
            _fill_line(buf, x[r], tab, lo, C, cval)
            _combine_shifts(out[r], buf, w, C)


@jit(parallel=True)
def _mid_correlate_fast(x, w, tab, cval, out):
    # As _mid_correlate_exact, in any summation order (fast-math, taps grouped).
    A, N, B = out.shape
    crow = np.full(B, cval, x.dtype)
    for ai in prange(A * N):
        a = ai // N
        i = ai - a * N
        _combine_rows(out[a, i], x[a], tab, i, w, crow)


@jit(parallel=True)
def _sep2d_correlate(x, wy, ty, wx, tx, lox, C, cval, out, nch):
    # x, out: (A, NY, NX*C). Output row (a, y): filter input rows ty[y:y+ky] along y into
    # the middle of an extended row buffer, extend it along x with tx, filter along x.
    A, NY, NC = out.shape
    LX = tx.shape[0]
    NX = NC // C
    core = lox * C
    crow = np.full(NC, cval, x.dtype)
    nchunks = min(A * NY, nch)
    for chunk in prange(nchunks):
        buf = np.empty(LX * C, x.dtype)
        mid = buf[core:core + NC]
        for ay in range(chunk * (A * NY) // nchunks, (chunk + 1) * (A * NY) // nchunks):
            a = ay // NY
            y = ay - a * NY
            _combine_rows(mid, x[a], ty, y, wy, crow)          # pass 1, along y
            _extend_in_place(buf, tx, lox, NX, C, cval)        # the row's x extension
            _combine_shifts(out[a, y], buf, wx, C)             # pass 2, along x


@jit()
def _extend_in_place(buf, tab, lo, n, C, cval):
    # buf holds a line of n positions (C channels each) from position lo on; fill the
    # positions before and after it from the table (reads only the line itself).
    core = lo * C
    for t in range(lo):
        s = tab[t]
        for ch in range(C):
            buf[t * C + ch] = buf[core + s * C + ch] if s >= 0 else cval
    for t in range(lo + n, tab.shape[0]):
        s = tab[t]
        for ch in range(C):
            buf[t * C + ch] = buf[core + s * C + ch] if s >= 0 else cval


@jit()
def _running_sum(o, buf, k, C, scale, diff, sums):
    # o[p*C + ch] = scale * sum_{j<k} buf[(p+j)*C + ch]. The differences (entering -
    # leaving) are formed in one vectorised sweep; the scan that remains is split into
    # four independent chains (segments of the line) so they overlap in the pipeline.
    NC = o.shape[0]
    NX = NC // C
    if NX == 0:
        return
    m = NC - C
    bin_ = buf[k * C:k * C + m]
    bout = buf[0:m]
    d = diff[0:m]
    for i in range(m):
        d[i] = bin_[i] - bout[i]
    if C == 1 and NX >= 8:
        seg = NX // 4
        q1 = seg
        q2 = 2 * seg
        q3 = 3 * seg
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for j in range(k):
            a0 += buf[j]
            a1 += buf[q1 + j]
            a2 += buf[q2 + j]
            a3 += buf[q3 + j]
        for p in range(seg):
            o[p] = a0 * scale
            o[q1 + p] = a1 * scale
            o[q2 + p] = a2 * scale
            o[q3 + p] = a3 * scale
            a0 += d[p]
            a1 += d[q1 + p]
            a2 += d[q2 + p]
            if q3 + p < m:
                a3 += d[q3 + p]
        for p in range(4 * seg, NX):    # the last chain runs on over the remainder
            o[p] = a3 * scale
            if p < m:
                a3 += d[p]
        return
    # C interleaved channels: C independent chains, a recurrence C elements apart.
    for ch in range(C):
        t = 0.0
        for j in range(k):
            t += buf[j * C + ch]
        sums[ch] = t
    for i in range(C, NC):
        sums[i] = sums[i - C] + d[i - C]
    for i in range(NC):
        o[i] = sums[i] * scale


@jit()
def _sum_rows(o, xa, tab, i, k, crow):
    # o = sum_{j<k} R(tab[i + j]) for k <= 4 rows, one sweep (R as in _combine_rows).
    s0 = tab[i]
    r0 = crow if s0 < 0 else xa[s0]
    n = o.shape[0]
    if k == 1:
        for t in range(n):
            o[t] = r0[t]
        return
    s1 = tab[i + 1]
    r1 = crow if s1 < 0 else xa[s1]
    if k == 2:
        for t in range(n):
            o[t] = r0[t] + r1[t]
        return
    s2 = tab[i + 2]
    r2 = crow if s2 < 0 else xa[s2]
    if k == 3:
        for t in range(n):
            o[t] = r0[t] + r1[t] + r2[t]
        return
    s3 = tab[i + 3]
    r3 = crow if s3 < 0 else xa[s3]
    for t in range(n):
        o[t] = (r0[t] + r1[t]) + (r2[t] + r3[t])


@jit()
def _sum_shifts(o, buf, k, C, scale):
    # o[i] = scale * sum_{j<k} buf[i + j*C] for k <= 4, one sweep.
    n = o.shape[0]
    b0 = buf[0:n]
    if k == 1:
        for t in range(n):
            o[t] = b0[t] * scale
        return
    b1 = buf[C:C + n]
    if k == 2:
        for t in range(n):
            o[t] = (b0[t] + b1[t]) * scale
        return
    b2 = buf[2 * C:2 * C + n]
    if k == 3:
        for t in range(n):
            o[t] = (b0[t] + b1[t] + b2[t]) * scale
        return
    b3 = buf[3 * C:3 * C + n]
    for t in range(n):
        o[t] = ((b0[t] + b1[t]) + (b2[t] + b3[t])) * scale


@jit(parallel=True)
def _sep2d_box_small(x, ky, ty, kx, tx, lox, C, cval, scale, out, nch):
    # Box filter of at most 4 x 4: plain sums in one sweep per axis (cheaper than running
    # sums, and than weighted taps), the product of the two 1/size factors at the end.
    A, NY, NC = out.shape
    LX = tx.shape[0]
    NX = NC // C
    core = lox * C
    crow = np.full(NC, cval, x.dtype)
    nchunks = min(A * NY, nch)
    for chunk in prange(nchunks):
        buf = np.empty(LX * C, x.dtype)
        mid = buf[core:core + NC]
        for ay in range(chunk * (A * NY) // nchunks, (chunk + 1) * (A * NY) // nchunks):
            a = ay // NY
            y = ay - a * NY
            _sum_rows(mid, x[a], ty, y, ky, crow)
            _extend_in_place(buf, tx, lox, NX, C, cval * ky)
            _sum_shifts(out[a, y], buf, kx, C, scale)


@jit(parallel=True)
def _sep2d_uniform(x, ky, ty, kx, tx, lox, C, cval, out):
    # Box filter over (y, x) in one sweep: per block of output rows, float64 column sums
    # slide down y (one row in, one row out per output row); along x a running sum per
    # channel. O(1) work per pixel whatever the size.
    A, NY, NC = out.shape
    LX = tx.shape[0]
    NX = NC // C
    core = lox * C
    scale = 1.0 / (np.float64(ky) * np.float64(kx))
    crow = np.full(NC, cval, x.dtype)
    nblk_y = max(1, min(NY, (64 + A - 1) // A))
    for blk in prange(A * nblk_y):
        a = blk // nblk_y
        yb = blk - a * nblk_y
        y0 = yb * NY // nblk_y
        y1 = (yb + 1) * NY // nblk_y
        buf = np.empty(LX * C, np.float64)
        col = buf[core:core + NC]      # the column sums live in the middle of buf
        diff = np.empty(NC, np.float64)
        sums = np.empty(NC, np.float64)
        for i in range(NC):
            col[i] = 0.0
        for j in range(ky):
            s = ty[y0 + j]
            r = crow if s < 0 else x[a, s]
            for i in range(NC):
                col[i] += r[i]
        for y in range(y0, y1):
            if y > y0:
                s_in = ty[y + ky - 1]
                s_out = ty[y - 1]
                rin = crow if s_in < 0 else x[a, s_in]
                rout = crow if s_out < 0 else x[a, s_out]
                for i in range(NC):
                    col[i] += np.float64(rin[i]) - np.float64(rout[i])
            # The column sums are the y-filtered row times ky; extend it along x (the
            # constant fill is then ky * cval).
            _extend_in_place(buf, tx, lox, NX, C, cval * ky)
            _running_sum(out[a, y], buf, kx, C, scale, diff, sums)


# -- launchers ------------------------------------------------------------------------------

def _chunks():
    return CHUNKS_PER_THREAD * num_threads()


def _lines(a, axis):
    """(A, N, B) view of C-contiguous ``a`` with ``axis`` in the middle."""
    shape = a.shape
    A = int(np.prod(shape[:axis], dtype=np.int64))
    B = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return a.reshape(A, shape[axis], B)


def correlate1d(x, w, out, axis, start, boundary, cval, exact=True):
    """out = correlation of ``x`` with ``w`` along ``axis``:
    out[..., i, ...] = sum_j w[j] * X[..., start + i + j, ...], X extended by ``boundary``.

    ``x`` and ``out``: same shape, C-contiguous, one float dtype, not overlapping; ``w``
    1-D (float64: the symmetry test is scipy's, on float64 weights);
    ``-(len(w) - 1) <= start <= 0``. ``exact``: scipy.ndimage's operations in scipy's
    order (bit-identical in float64); otherwise any order (faster on inner axes).
    """
    if out.size == 0:
        return out
    n = x.shape[axis]
    k = w.shape[0]
    tab = extension_table(n, start, n + k - 1, boundary)
    sym = symmetry(w)
    x3, o3 = _lines(x, axis), _lines(out, axis)
    cval = x.dtype.type(cval)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    work = out.size * k
    if x3.shape[2] >= MID_MIN_INNER:
        if exact:
            run_parallel(_mid_correlate_exact, x3, w, tab, cval, sym, o3, work=work)
        else:
            run_parallel(_mid_correlate_fast, x3, w, tab, cval, o3, work=work)
    else:
        B = x3.shape[2]
        x2, o2 = x3.reshape(x3.shape[0], -1), o3.reshape(o3.shape[0], -1)
        if exact:
            run_parallel(_line_correlate_exact, x2, w, tab, -start, cval, B, sym, o2, _chunks(),
                         work=work)
        else:
            run_parallel(_line_correlate_fast, x2, w, tab, -start, cval, B, o2, _chunks(),
                         work=work)
    return out


def uniform1d(x, size, out, axis, start, boundary, cval):
    """Box filter of ``size`` along ``axis`` with scipy.ndimage's running-sum arithmetic
    (float64 accumulation whatever the dtypes); layout rules as :func:`correlate1d`."""
    if out.size == 0:
        return out
    n = x.shape[axis]
    tab = extension_table(n, start, n + size - 1, boundary)
    x3, o3 = _lines(x, axis), _lines(out, axis)
    cval = np.float64(cval)
    work = out.size * UNIFORM_TAPS
    if x3.shape[2] >= MID_MIN_INNER:
        run_parallel(_mid_uniform_exact, x3, size, tab, cval, o3, work=work)
    else:
        B = x3.shape[2]
        run_parallel(_line_uniform_exact, x3.reshape(x3.shape[0], -1), size, tab, -start,
                     cval, B, o3.reshape(o3.shape[0], -1), _chunks(), work=work)
    return out


def _plane_view(a, axis_y):
    """(A, NY, NX*C) view of C-contiguous ``a`` filtered along axes ``axis_y`` and
    ``axis_y + 1``, plus C (the trailing elements per x position)."""
    shape = a.shape
    A = int(np.prod(shape[:axis_y], dtype=np.int64))
    C = int(np.prod(shape[axis_y + 2:], dtype=np.int64))
    return a.reshape(A, shape[axis_y], shape[axis_y + 1] * C), C


def correlate2d_separable(x, wy, wx, out, axis_y, start_y, start_x, boundary_y, boundary_x,
                          cval):
    """One fused sweep: correlate along ``axis_y`` with ``wy`` (the rows extended by
    ``boundary_y``), then along ``axis_y + 1`` with ``wx`` (extended by ``boundary_x``),
    both padding with ``cval`` where constant. Layout rules as :func:`correlate1d`."""
    if out.size == 0:
        return out
    ny, nx = x.shape[axis_y], x.shape[axis_y + 1]
    ty = extension_table(ny, start_y, ny + wy.shape[0] - 1, boundary_y)
    tx = extension_table(nx, start_x, nx + wx.shape[0] - 1, boundary_x)
    x3, C = _plane_view(x, axis_y)
    o3, _ = _plane_view(out, axis_y)
    dt = x.dtype
    run_parallel(_sep2d_correlate, x3, np.ascontiguousarray(wy, dt), ty,
                 np.ascontiguousarray(wx, dt), tx, -start_x, C, dt.type(cval), o3, _chunks(),
                 work=out.size * (wy.shape[0] + wx.shape[0]))
    return out


def uniform2d(x, size_y, size_x, out, axis_y, start_y, start_x, boundary_y, boundary_x,
              cval):
    """Box filter over axes ``axis_y`` and ``axis_y + 1`` in one sweep: the mean over the
    ``size_y x size_x`` window (direct sums up to SMALL_BOX, else float64 running sums)."""
    if out.size == 0:
        return out
    ny, nx = x.shape[axis_y], x.shape[axis_y + 1]
    ty = extension_table(ny, start_y, ny + size_y - 1, boundary_y)
    tx = extension_table(nx, start_x, nx + size_x - 1, boundary_x)
    x3, C = _plane_view(x, axis_y)
    o3, _ = _plane_view(out, axis_y)
    if size_y <= SMALL_BOX and size_x <= SMALL_BOX:
        dt = x.dtype.type
        run_parallel(_sep2d_box_small, x3, size_y, ty, size_x, tx, -start_x, C, dt(cval),
                     dt(1.0 / (size_y * size_x)), o3, _chunks(),
                     work=out.size * (size_y + size_x))
    else:
        run_parallel(_sep2d_uniform, x3, size_y, ty, size_x, tx, -start_x, C,
                     np.float64(cval), o3, work=out.size * 2 * UNIFORM_TAPS)
    return out


# -- launcher (the registry's "filter" kind) -----------------------------------------------

def run_passes(x, out, passes, cval, exact=True):
    """One step of scipy.ndimage's separable filters, x -> out (one float dtype):
    ``passes`` is one ``(axis, start, boundary, weights, size)`` pass, or two on axes a and
    a + 1 (both boxes or both weighted) fused in one sweep. ``weights`` None: a box of
    ``size`` (scipy's running sum). ``exact``: scipy's arithmetic for a lone pass."""
    if len(passes) == 1:
        axis, start, boundary, weights, size = passes[0]
        if weights is None:
            return uniform1d(x, size, out, axis, start, boundary, cval)
        return correlate1d(x, weights, out, axis, start, boundary, cval, exact)
    (ay, sy, by, wy, ky), (_, sx, bx, wx, kx) = passes
    if wy is None:
        return uniform2d(x, ky, kx, out, ay, sy, sx, by, bx, cval)
    return correlate2d_separable(x, wy, wx, out, ay, sy, sx, by, bx, cval)
