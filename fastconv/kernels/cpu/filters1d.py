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

* scipy's arithmetic (the ``_x_*`` helpers and the row workers built on them; launchers
  :func:`correlate1d`, :func:`uniform1d`, :func:`correlate2d_exact`, :func:`uniform2d`),
  used by fastconv.ndimage: scipy.ndimage's operations in scipy's order (its symmetric /
  antisymmetric tap pairing, its running-sum recurrence for the box filter) in float64
  whatever the data's dtype, no fast-math, one rounding to the output dtype: the same
  bits as scipy for float32 and float64 data alike. Inputs and outputs are float32 or
  float64 (they may differ); rows are widened as they are read. ``_sep2d_rows`` fuses two
  passes (axes a then a + 1) in one sweep over memory: it filters the input rows an
  output row needs along the first axis into a row buffer of the output dtype (scipy's
  intermediate), extends it, and filters it along the second axis; ``_sep2d_xy_rows``
  does the other order through a ring of filtered rows.
  ``_box2d_rows`` fuses two box filters (axis a, then the last axis): the running sums
  down a, row by row, feed eight lines at a time of running sums along the last axis.
  Each worker takes a range of output rows: small work runs on the calling thread,
  larger work through a ``*_par`` driver that deals row ranges to the threads.
* fast kernels (``_sep2d_correlate``; launcher :func:`correlate2d_separable`), used by the
  separable convolution method of fastconv.signal: one dtype throughout, any summation
  order (fast-math), up to four taps per sweep over an L1-sized block of the output, two
  passes fused as above.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import prange

from ..._jit import jit, num_threads, run_parallel, runs_serial
from ..._extend import index_map
from ..._separable import ndimage_symmetry

CONSTANT, WRAP, SYMMETRIC, REFLECT, EDGE = "constant", "wrap", "symmetric", "reflect", "edge"

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


symmetry = ndimage_symmetry      # scipy's test, one copy (_separable)


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


# -- scipy's arithmetic: float64 blocks ----------------------------------------------------
#
# scipy.ndimage (NI_Correlate1D) widens each line to double, forms each output with one of
# three formulas, and stores it in the output type:
#   symmetric      o = x[c]*w[c];      o += (x[j] + x[2c-j]) * w[j]   for j = 0 .. c-1
#   antisymmetric  o = x[c]*w[c];      o += (x[j] - x[2c-j]) * w[j]   for j = 0 .. c-1
#   otherwise      o = x[k-1]*w[k-1];  o += x[j] * w[j]               for j = 0 .. k-2
# The kernels below do the same operations in the same order (no fast-math, so no FMA
# contraction or reassociation) in a float64 accumulator block of BLOCK outputs, reading
# rows of any float dtype and widening them as they are read; a store rounds once to the
# output dtype. Four terms are added per sweep over the block (in order: the sum for each
# output is still the same sequence of roundings) so the block is loaded and stored once
# per four terms. The loops run over outputs innermost and vectorise.

@jit(fastmath=False)
def _x_set(acc, r, w):
    for t in range(acc.shape[0]):
        acc[t] = np.float64(r[t]) * w


@jit(fastmath=False)
def _x_pairs4(acc, a0, b0, a1, b1, a2, b2, a3, b3, w0, w1, w2, w3, sub):
    n = acc.shape[0]
    if sub:
        for t in range(n):
            v = acc[t]
            v += (np.float64(a0[t]) - np.float64(b0[t])) * w0
            v += (np.float64(a1[t]) - np.float64(b1[t])) * w1
            v += (np.float64(a2[t]) - np.float64(b2[t])) * w2
            v += (np.float64(a3[t]) - np.float64(b3[t])) * w3
            acc[t] = v
    else:
        for t in range(n):
            v = acc[t]
            v += (np.float64(a0[t]) + np.float64(b0[t])) * w0
            v += (np.float64(a1[t]) + np.float64(b1[t])) * w1
            v += (np.float64(a2[t]) + np.float64(b2[t])) * w2
            v += (np.float64(a3[t]) + np.float64(b3[t])) * w3
            acc[t] = v


@jit(fastmath=False)
def _x_pair1(acc, a0, b0, w0, sub):
    n = acc.shape[0]
    if sub:
        for t in range(n):
            acc[t] += (np.float64(a0[t]) - np.float64(b0[t])) * w0
    else:
        for t in range(n):
            acc[t] += (np.float64(a0[t]) + np.float64(b0[t])) * w0


@jit(fastmath=False)
def _x_taps4(acc, r0, r1, r2, r3, w0, w1, w2, w3):
    for t in range(acc.shape[0]):
        v = acc[t]
        v += np.float64(r0[t]) * w0
        v += np.float64(r1[t]) * w1
        v += np.float64(r2[t]) * w2
        v += np.float64(r3[t]) * w3
        acc[t] = v


@jit(fastmath=False)
def _x_tap1(acc, r0, w0):
    for t in range(acc.shape[0]):
        acc[t] += np.float64(r0[t]) * w0


F = np.float64


@jit(fastmath=False)
def _x_short(o, rc, a0, b0, a1, b1, a2, b2, a3, b3, wc, w0, w1, w2, w3, n, sub):
    # A (anti)symmetric kernel of at most 9 taps in one sweep, straight into the output
    # block: o = rc*wc, then n <= 4 pairs added in scipy's order (the float64 value
    # stays in a register; one rounding at the store).
    m = o.shape[0]
    if n == 0:
        for t in range(m):
            o[t] = F(rc[t]) * wc
    elif sub:
        if n == 1:
            for t in range(m):
                o[t] = F(rc[t]) * wc + (F(a0[t]) - F(b0[t])) * w0
        elif n == 2:
            for t in range(m):
                v = F(rc[t]) * wc + (F(a0[t]) - F(b0[t])) * w0
                o[t] = v + (F(a1[t]) - F(b1[t])) * w1
        elif n == 3:
            for t in range(m):
                v = F(rc[t]) * wc + (F(a0[t]) - F(b0[t])) * w0
                v += (F(a1[t]) - F(b1[t])) * w1
                o[t] = v + (F(a2[t]) - F(b2[t])) * w2
        else:
            for t in range(m):
                v = F(rc[t]) * wc + (F(a0[t]) - F(b0[t])) * w0
                v += (F(a1[t]) - F(b1[t])) * w1
                v += (F(a2[t]) - F(b2[t])) * w2
                o[t] = v + (F(a3[t]) - F(b3[t])) * w3
    else:
        if n == 1:
            for t in range(m):
                o[t] = F(rc[t]) * wc + (F(a0[t]) + F(b0[t])) * w0
        elif n == 2:
            for t in range(m):
                v = F(rc[t]) * wc + (F(a0[t]) + F(b0[t])) * w0
                o[t] = v + (F(a1[t]) + F(b1[t])) * w1
        elif n == 3:
            for t in range(m):
                v = F(rc[t]) * wc + (F(a0[t]) + F(b0[t])) * w0
                v += (F(a1[t]) + F(b1[t])) * w1
                o[t] = v + (F(a2[t]) + F(b2[t])) * w2
        else:
            for t in range(m):
                v = F(rc[t]) * wc + (F(a0[t]) + F(b0[t])) * w0
                v += (F(a1[t]) + F(b1[t])) * w1
                v += (F(a2[t]) + F(b2[t])) * w2
                o[t] = v + (F(a3[t]) + F(b3[t])) * w3


# (Anti)symmetric kernels up to this many taps run in one sweep (_x_short).
SHORT = 9


@jit(fastmath=False)
def _x_rows(o, acc, xa, crow, tab, i, w, sym, b0, b1):
    # o = output row i of a correlation down the rows of xa (columns b0:b1): term j
    # reads row tab[i + j], or the cval row crow where tab[i + j] < 0. Long kernels go
    # through the float64 block acc, short symmetric ones straight into o.
    k = w.shape[0]
    c = k // 2
    if sym != 0:
        s = tab[i + c]
        rc = crow[b0:b1] if s < 0 else xa[s, b0:b1]
        if k <= SHORT:
            a0 = a1 = a2 = a3 = q0 = q1 = q2 = q3 = rc
            w0 = w1 = w2 = w3 = 0.0
            if c > 0:
                s, t = tab[i], tab[i + 2 * c]
                a0 = crow[b0:b1] if s < 0 else xa[s, b0:b1]
                q0 = crow[b0:b1] if t < 0 else xa[t, b0:b1]
                w0 = w[0]
            if c > 1:
                s, t = tab[i + 1], tab[i + 2 * c - 1]
                a1 = crow[b0:b1] if s < 0 else xa[s, b0:b1]
                q1 = crow[b0:b1] if t < 0 else xa[t, b0:b1]
                w1 = w[1]
            if c > 2:
                s, t = tab[i + 2], tab[i + 2 * c - 2]
                a2 = crow[b0:b1] if s < 0 else xa[s, b0:b1]
                q2 = crow[b0:b1] if t < 0 else xa[t, b0:b1]
                w2 = w[2]
            if c > 3:
                s, t = tab[i + 3], tab[i + 2 * c - 3]
                a3 = crow[b0:b1] if s < 0 else xa[s, b0:b1]
                q3 = crow[b0:b1] if t < 0 else xa[t, b0:b1]
                w3 = w[3]
            _x_short(o, rc, a0, q0, a1, q1, a2, q2, a3, q3, w[c], w0, w1, w2, w3, c, sym < 0)
            return
        _x_set(acc, rc, w[c])
        j = 0
        while j + 4 <= c:
            p0 = tab[i + j]
            p1 = tab[i + j + 1]
            p2 = tab[i + j + 2]
            p3 = tab[i + j + 3]
            q0 = tab[i + 2 * c - j]
            q1 = tab[i + 2 * c - j - 1]
            q2 = tab[i + 2 * c - j - 2]
            q3 = tab[i + 2 * c - j - 3]
            _x_pairs4(acc, crow[b0:b1] if p0 < 0 else xa[p0, b0:b1],
                      crow[b0:b1] if q0 < 0 else xa[q0, b0:b1],
                      crow[b0:b1] if p1 < 0 else xa[p1, b0:b1],
                      crow[b0:b1] if q1 < 0 else xa[q1, b0:b1],
                      crow[b0:b1] if p2 < 0 else xa[p2, b0:b1],
                      crow[b0:b1] if q2 < 0 else xa[q2, b0:b1],
                      crow[b0:b1] if p3 < 0 else xa[p3, b0:b1],
                      crow[b0:b1] if q3 < 0 else xa[q3, b0:b1],
                      w[j], w[j + 1], w[j + 2], w[j + 3], sym < 0)
            j += 4
        while j < c:
            p0 = tab[i + j]
            q0 = tab[i + 2 * c - j]
            _x_pair1(acc, crow[b0:b1] if p0 < 0 else xa[p0, b0:b1],
                     crow[b0:b1] if q0 < 0 else xa[q0, b0:b1], w[j], sym < 0)
            j += 1
    else:
        s = tab[i + k - 1]
        _x_set(acc, crow[b0:b1] if s < 0 else xa[s, b0:b1], w[k - 1])
        j = 0
        while j + 4 <= k - 1:
            p0 = tab[i + j]
            p1 = tab[i + j + 1]
            p2 = tab[i + j + 2]
            p3 = tab[i + j + 3]
            _x_taps4(acc, crow[b0:b1] if p0 < 0 else xa[p0, b0:b1],
                     crow[b0:b1] if p1 < 0 else xa[p1, b0:b1],
                     crow[b0:b1] if p2 < 0 else xa[p2, b0:b1],
                     crow[b0:b1] if p3 < 0 else xa[p3, b0:b1],
                     w[j], w[j + 1], w[j + 2], w[j + 3])
            j += 4
        while j < k - 1:
            p0 = tab[i + j]
            _x_tap1(acc, crow[b0:b1] if p0 < 0 else xa[p0, b0:b1], w[j])
            j += 1
    _x_store(o, acc)


@jit(fastmath=False)
def _x_shifts(o, acc, buf, w, sym, C, b0):
    # o[t] = output b0 + t of a correlation along an extended line: term j reads
    # buf[b0 + t + j*C] (positions C apart: C interleaved channels). Long kernels go
    # through the float64 block acc, short symmetric ones straight into o.
    m = o.shape[0]
    k = w.shape[0]
    c = k // 2
    if sym != 0:
        p = b0 + c * C
        rc = buf[p:p + m]
        if k <= SHORT:
            a0 = a1 = a2 = a3 = q0 = q1 = q2 = q3 = rc
            w0 = w1 = w2 = w3 = 0.0
            if c > 0:
                a0, q0, w0 = buf[b0:b0 + m], buf[b0 + 2 * c * C:b0 + 2 * c * C + m], w[0]
            if c > 1:
                a = b0 + C
                b = b0 + (2 * c - 1) * C
                a1, q1, w1 = buf[a:a + m], buf[b:b + m], w[1]
            if c > 2:
                a = b0 + 2 * C
                b = b0 + (2 * c - 2) * C
                a2, q2, w2 = buf[a:a + m], buf[b:b + m], w[2]
            if c > 3:
                a = b0 + 3 * C
                b = b0 + (2 * c - 3) * C
                a3, q3, w3 = buf[a:a + m], buf[b:b + m], w[3]
            _x_short(o, rc, a0, q0, a1, q1, a2, q2, a3, q3, w[c], w0, w1, w2, w3, c, sym < 0)
            return
        _x_set(acc, rc, w[c])
        j = 0
        while j + 4 <= c:
            a = b0 + j * C
            b = b0 + (2 * c - j) * C
            _x_pairs4(acc, buf[a:a + m], buf[b:b + m], buf[a + C:a + C + m],
                      buf[b - C:b - C + m], buf[a + 2 * C:a + 2 * C + m],
                      buf[b - 2 * C:b - 2 * C + m], buf[a + 3 * C:a + 3 * C + m],
                      buf[b - 3 * C:b - 3 * C + m], w[j], w[j + 1], w[j + 2], w[j + 3],
                      sym < 0)
            j += 4
        while j < c:
            a = b0 + j * C
            b = b0 + (2 * c - j) * C
            _x_pair1(acc, buf[a:a + m], buf[b:b + m], w[j], sym < 0)
            j += 1
    else:
        p = b0 + (k - 1) * C
        _x_set(acc, buf[p:p + m], w[k - 1])
        j = 0
        while j + 4 <= k - 1:
            a = b0 + j * C
            _x_taps4(acc, buf[a:a + m], buf[a + C:a + C + m], buf[a + 2 * C:a + 2 * C + m],
                     buf[a + 3 * C:a + 3 * C + m], w[j], w[j + 1], w[j + 2], w[j + 3])
            j += 4
        while j < k - 1:
            a = b0 + j * C
            _x_tap1(acc, buf[a:a + m], w[j])
            j += 1
    _x_store(o, acc)


@jit(fastmath=False)
def _x_store(o, acc):
    # One rounding to the output dtype.
    for t in range(o.shape[0]):
        o[t] = acc[t]


# Outputs per float64 accumulator block (16 KiB): rows of up to 2048 in one block, fewer
# helper calls per row than 512-blocks (2048^2 float32, one thread: gaussian sigma=1
# 10.5 -> 8.4 ms, sobel 7.3-7.6 -> 5.2-5.4 ms); larger blocks gained nothing more.
XBLOCK = 2048

# Rows of running-sum terms are this many float64 longer than the line, so that rows a
# power of two of bytes long (2048 float64) do not all fall in the same L1 sets.
LINE_PAD = 8


# Each kernel below is a worker over a range of output rows [r0, r1) (plain jit: called
# directly for small work) and a parallel driver dealing the rows out in chunks (each
# chunk allocates its buffers once).

@jit(fastmath=False)
def _line_correlate_rows(x, w, tab, lo, cval, C, sym, out, r0, r1):
    # x (R, N*C), out (R, N*C): lines of N positions with C interleaved channels. Each
    # line is widened into a float64 buffer extended by the boundary (cval float64, as in
    # scipy), then filtered block by block.
    NC = out.shape[1]
    buf = np.empty(tab.shape[0] * C, np.float64)
    acc = np.empty(XBLOCK, np.float64)
    for r in range(r0, r1):
        _fill_line(buf, x[r], tab, lo, C, cval)
        o = out[r]
        for b0 in range(0, NC, XBLOCK):
            m = min(NC - b0, XBLOCK)
            _x_shifts(o[b0:b0 + m], acc[:m], buf, w, sym, C, b0)


@jit(parallel=True, fastmath=False)
def _line_correlate_par(x, w, tab, lo, cval, C, sym, out, nch):
    R = out.shape[0]
    n = min(R, nch)
    for chunk in prange(n):
        _line_correlate_rows(x, w, tab, lo, cval, C, sym, out, chunk * R // n,
                             (chunk + 1) * R // n)


@jit(fastmath=False)
def _mid_correlate_rows(x, w, tab, crow, sym, out, r0, r1):
    # x (A, N, B), out (A, N, B): output row (a, i) (r = a*N + i) from input rows
    # (a, tab[i + j]), or the cval row crow (x's dtype, exact: the launcher checks).
    A, N, B = out.shape
    acc = np.empty(XBLOCK, np.float64)
    for ai in range(r0, r1):
        a = ai // N
        i = ai - a * N
        o = out[a, i]
        for b0 in range(0, B, XBLOCK):
            b1 = min(B, b0 + XBLOCK)
            _x_rows(o[b0:b1], acc[:b1 - b0], x[a], crow, tab, i, w, sym, b0, b1)


@jit(parallel=True, fastmath=False)
def _mid_correlate_par(x, w, tab, crow, sym, out, nch):
    R = out.shape[0] * out.shape[1]
    n = min(R, nch)
    for chunk in prange(n):
        _mid_correlate_rows(x, w, tab, crow, sym, out, chunk * R // n, (chunk + 1) * R // n)


@jit(fastmath=False)
def _sep2d_rows(x, wy, ty, symy, wx, tx, symx, lox, C, crow, cval_out, out, r0, r1):
    # Two passes of scipy's arithmetic in one sweep: output row (a, y) (r = a*NY + y) =
    # the correlation along y (input rows ty[y .. y+ky-1], or crow) rounded to the output
    # dtype into the middle of a row buffer of that dtype (scipy's intermediate is its
    # output array), the buffer extended along x (cval_out), then the correlation along
    # x. crow and cval_out are exact (the launcher checks).
    A, NY, NC = out.shape
    NX = NC // C
    core = lox * C
    buf = np.empty(tx.shape[0] * C, out.dtype)
    acc = np.empty(XBLOCK, np.float64)
    for ay in range(r0, r1):
        a = ay // NY
        y = ay - a * NY
        for b0 in range(0, NC, XBLOCK):
            b1 = min(NC, b0 + XBLOCK)
            _x_rows(buf[core + b0:core + b1], acc[:b1 - b0], x[a], crow, ty, y, wy, symy,
                    b0, b1)
        _extend_in_place(buf, tx, lox, NX, C, cval_out)
        o = out[a, y]
        for b0 in range(0, NC, XBLOCK):
            m = min(NC - b0, XBLOCK)
            _x_shifts(o[b0:b0 + m], acc[:m], buf, wx, symx, C, b0)


@jit(parallel=True, fastmath=False)
def _sep2d_par(x, wy, ty, symy, wx, tx, symx, lox, C, crow, cval_out, out, nch):
    R = out.shape[0] * out.shape[1]
    n = min(R, nch)
    for chunk in prange(n):
        _sep2d_rows(x, wy, ty, symy, wx, tx, symx, lox, C, crow, cval_out, out,
                    chunk * R // n, (chunk + 1) * R // n)


@jit(fastmath=False)
def _sep2d_xy_rows(x, wx, tx, symx, lox, wy, ty, symy, C, cval, crow, out, r0, r1):
    # The other order, x then y, in one sweep: scipy's intermediate rows (the correlation
    # along x of input rows, rounded to out's dtype) go through a ring of ky rows, slot
    # t % ky holding extended position t along y; output row y reads positions
    # y .. y+ky-1 (or crow, out's dtype, exact), each computed once per range of
    # consecutive rows. cval (float64) extends the input rows along x.
    A, NY, NC = out.shape
    ky = wy.shape[0]
    line = np.empty(tx.shape[0] * C, np.float64)
    ring = np.empty((ky, NC), out.dtype)
    slots = np.empty(ky, np.int64)
    acc = np.empty(XBLOCK, np.float64)
    nxt = 0
    for ay in range(r0, r1):
        a = ay // NY
        y = ay - a * NY
        if ay == r0 or y == 0:
            nxt = y                        # a new range or plane: refill the ring
        while nxt < y + ky:
            s = ty[nxt]
            if s >= 0:
                _fill_line(line, x[a, s], tx, lox, C, cval)
                r = ring[nxt % ky]
                for b0 in range(0, NC, XBLOCK):
                    m = min(NC - b0, XBLOCK)
                    _x_shifts(r[b0:b0 + m], acc[:m], line, wx, symx, C, b0)
            nxt += 1
        for j in range(ky):
            slots[j] = (y + j) % ky if ty[y + j] >= 0 else -1
        o = out[a, y]
        for b0 in range(0, NC, XBLOCK):
            b1 = min(NC, b0 + XBLOCK)
            _x_rows(o[b0:b1], acc[:b1 - b0], ring, crow, slots, 0, wy, symy, b0, b1)


@jit(parallel=True, fastmath=False)
def _sep2d_xy_par(x, wx, tx, symx, lox, wy, ty, symy, C, cval, crow, out, nch):
    R = out.shape[0] * out.shape[1]
    n = min(R, nch)
    for chunk in prange(n):
        _sep2d_xy_rows(x, wx, tx, symx, lox, wy, ty, symy, C, cval, crow, out,
                       chunk * R // n, (chunk + 1) * R // n)


# -- 1-D box filter, scipy's running sum ---------------------------------------------------

@jit(fastmath=False)
def _uniform_chains(o, buf, sums, size, N, C, fsize):
    # scipy's recurrence for one line (C interleaved channels, one chain each): the first
    # window summed in order, then += entering - leaving; each output the sum / size. The
    # sums first (the chain), then the divisions in one vectorised sweep.
    NC = N * C
    for ch in range(C):
        t = 0.0
        for j in range(size):
            t += buf[j * C + ch]
        sums[ch] = t
    for i in range(C, NC):
        sums[i] = sums[i - C] + (buf[i - C + size * C] - buf[i - C])
    for i in range(NC):
        o[i] = sums[i] / fsize


@jit(fastmath=False)
def _uniform_terms(d, b, size, N):
    # The terms of scipy's recurrence for one extended line b, ahead of it in one
    # vectorised sweep: d[0] = the first window summed in order, d[p] = b[p-1+size] -
    # b[p-1] (the entering minus the leaving value, rounded as scipy rounds it).
    t = 0.0
    for j in range(size):
        t += b[j]
    d[0] = t
    hi = b[size:size + N - 1]
    lo = b[0:N - 1]
    dd = d[1:N]
    for p in range(N - 1):
        dd[p] = hi[p] - lo[p]


@jit(fastmath=False)
def _scan8(d0, d1, d2, d3, d4, d5, d6, d7, N):
    # Eight running sums in place (d[p] = d[p-1] + d[p], scipy's order along each line),
    # interleaved so that their additions overlap instead of each waiting for the last:
    # the chain is latency-bound, and the terms are already formed.
    t0 = d0[0]
    t1 = d1[0]
    t2 = d2[0]
    t3 = d3[0]
    t4 = d4[0]
    t5 = d5[0]
    t6 = d6[0]
    t7 = d7[0]
    for p in range(1, N):
        t0 += d0[p]
        d0[p] = t0
        t1 += d1[p]
        d1[p] = t1
        t2 += d2[p]
        d2[p] = t2
        t3 += d3[p]
        d3[p] = t3
        t4 += d4[p]
        d4[p] = t4
        t5 += d5[p]
        d5[p] = t5
        t6 += d6[p]
        d6[p] = t6
        t7 += d7[p]
        d7[p] = t7


@jit(fastmath=False)
def _scan1(d, N):
    t = d[0]
    for p in range(1, N):
        t += d[p]
        d[p] = t


@jit(fastmath=False)
def _divide(o, s, fsize):
    # Each output the running sum / size (a vectorised sweep; one rounding to o's dtype).
    for p in range(o.shape[0]):
        o[p] = s[p] / fsize


@jit(fastmath=False)
def _line_uniform_rows(x, size, tab, lo, cval, C, out, r0, r1):
    # scipy's running sum in float64 along lines of N positions with C channels; each
    # line widened into a float64 buffer extended by the boundary. Single-channel lines
    # go eight at a time: their recurrence terms formed first (vectorised), then eight
    # running sums interleaved (_scan8), then the divisions (vectorised). Term rows are
    # LINE_PAD longer than the line so that they do not alias in L1.
    NC = out.shape[1]
    N = NC // C
    L = tab.shape[0]
    fsize = np.float64(size)
    buf = np.empty(L * C, np.float64)
    if C == 1:
        d = np.empty((8, N + LINE_PAD), np.float64)
        r = r0
        while r + 8 <= r1:
            for q in range(8):
                _fill_line(buf, x[r + q], tab, lo, 1, cval)
                _uniform_terms(d[q], buf, size, N)
            _scan8(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], N)
            for q in range(8):
                _divide(out[r + q], d[q, :N], fsize)
            r += 8
        while r < r1:
            _fill_line(buf, x[r], tab, lo, 1, cval)
            _uniform_terms(d[0], buf, size, N)
            _scan1(d[0], N)
            _divide(out[r], d[0, :N], fsize)
            r += 1
        return
    sums = np.empty(NC, np.float64)
    for r in range(r0, r1):
        _fill_line(buf, x[r], tab, lo, C, cval)
        _uniform_chains(out[r], buf, sums, size, N, C, fsize)


@jit(parallel=True, fastmath=False)
def _line_uniform_par(x, size, tab, lo, cval, C, out, nch):
    R = out.shape[0]
    n = min(R, nch)
    for chunk in prange(n):
        _line_uniform_rows(x, size, tab, lo, cval, C, out, chunk * R // n,
                           (chunk + 1) * R // n)


# Columns per task of the box filter down the middle axis, at most: whole rows stream
# best (2048-wide float32 rows: 2.3 ms a pass against 3.8 ms in 512-column blocks, which
# revisit every row once per block); the float64 running sums of a task stay in L1/L2.
UWIDTH = 8192


@jit(fastmath=False)
def _mid_uniform_cols(x, size, tab, crow, out, width, t0, t1):
    # The same recurrence down the middle axis, vectorised across the last axis: task
    # t = a*nb + column block (``width`` columns); each runs its columns' chains from the
    # first row to the last (the recurrence is sequential down the axis).
    A, N, B = out.shape
    fsize = np.float64(size)
    nb = (B + width - 1) // width
    acc = np.empty(width, np.float64)
    for ab in range(t0, t1):
        a = ab // nb
        b0 = (ab - a * nb) * width
        b1 = min(B, b0 + width)
        nw = b1 - b0
        for b in range(nw):
            acc[b] = 0.0
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


@jit(parallel=True, fastmath=False)
def _mid_uniform_par(x, size, tab, crow, out, width):
    A, N, B = out.shape
    T = A * ((B + width - 1) // width)
    for t in prange(T):
        _mid_uniform_cols(x, size, tab, crow, out, width, t, t + 1)


# -- 2-D box filter, both running sums in one sweep -----------------------------------------

@jit(fastmath=False)
def _box_ystep(acc, xa, tab, p, size, cval):
    # Step p of scipy's running sum down the rows of xa, all columns at once: p == 0 sums
    # the first window in order, p > 0 adds the entering row minus the leaving one
    # (tab: extended position -> row, cval where < 0).
    n = acc.shape[0]
    if p == 0:
        for b in range(n):
            acc[b] = 0.0
        for j in range(size):
            s = tab[j]
            if s < 0:
                for b in range(n):
                    acc[b] += cval
            else:
                row = xa[s]
                for b in range(n):
                    acc[b] += np.float64(row[b])
        return
    s_in = tab[p + size - 1]
    s_out = tab[p - 1]
    if s_in >= 0 and s_out >= 0:
        rin = xa[s_in]
        rout = xa[s_out]
        for b in range(n):
            acc[b] += np.float64(rin[b]) - np.float64(rout[b])
    elif s_in >= 0:
        rin = xa[s_in]
        for b in range(n):
            acc[b] += np.float64(rin[b]) - cval
    elif s_out >= 0:
        rout = xa[s_out]
        for b in range(n):
            acc[b] += cval - np.float64(rout[b])
    else:
        for b in range(n):
            acc[b] += cval - cval


@jit(fastmath=False)
def _box2d_rows(x, sy, ty, sx, tx, lox, cval, out, r0, r1):
    # uniform1d down y then along x (the last axis) in one sweep; x, out: (A, NY, NX),
    # output rows r0 .. r1-1 (r = a*NY + y). The running sums down y (float64, all
    # columns) give row y's intermediate, rounded to out's dtype as scipy stores it,
    # widened into an extended float64 line; eight such lines at a time then run the
    # running sum along x as _line_uniform_rows does. The sums down y start at the
    # plane's first row: a range that starts inside a plane first runs them up to r0
    # (no outputs), so every range gives the bits of one sweep from the top.
    A, NY, NX = out.shape
    fy = np.float64(sy)
    fx = np.float64(sx)
    acc = np.empty(NX, np.float64)
    line = np.empty(tx.shape[0], np.float64)
    tmp = np.empty(NX, out.dtype)
    d = np.empty((8, NX + LINE_PAD), np.float64)
    rows = np.empty(8, np.int64)
    a0 = r0 // NY
    for p in range(r0 - a0 * NY):
        _box_ystep(acc, x[a0], ty, p, sy, cval)
    core = line[lox:lox + NX]
    r = r0
    while r < r1:
        q = 0
        while q < 8 and r < r1:
            a = r // NY
            _box_ystep(acc, x[a], ty, r - a * NY, sy, cval)
            for b in range(NX):
                tmp[b] = acc[b] / fy
            for b in range(NX):
                core[b] = tmp[b]
            _extend_in_place(line, tx, lox, NX, 1, cval)
            _uniform_terms(d[q], line, sx, NX)
            rows[q] = r
            q += 1
            r += 1
        if q == 8:
            _scan8(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], NX)
        else:
            for k in range(q):
                _scan1(d[k], NX)
        for k in range(q):
            a = rows[k] // NY
            _divide(out[a, rows[k] - a * NY], d[k, :NX], fx)


@jit(parallel=True, fastmath=False)
def _box2d_par(x, sy, ty, sx, tx, lox, cval, out, bounds):
    for t in prange(bounds.shape[0] - 1):
        _box2d_rows(x, sy, ty, sx, tx, lox, cval, out, bounds[t], bounds[t + 1])


# A row of the running sums alone (no outputs), in rows of the fused box sweep: what a
# range that starts inside a plane pays per row above it (2048^2, size 3, one thread:
# 1.72 of 6.87 ms for float32, 2.80 of 9.89 ms for float64).
BOX_WARM = 0.25


def _box_bounds(A, NY, T):
    """Row ranges of the fused box sweep for T threads: whole planes while there are at
    least T, else each plane cut in P = ceil(T / A) ranges of equal cost, a range that
    starts at row b paying BOX_WARM * b for the running sums above it: cut k at
    c * (1 - (1 - w)^k) / w, c = NY * w / (1 - (1 - w)^P)."""
    if A >= T:
        n = min(A, T * CHUNKS_PER_THREAD)
        return np.array([(k * A // n) * NY for k in range(n + 1)], np.int64)
    P = -(-T // A)
    w = BOX_WARM
    c = NY * w / (1 - (1 - w) ** P)
    cuts = sorted({min(NY, round(c * (1 - (1 - w) ** k) / w)) for k in range(P)})
    return np.array([a * NY + k for a in range(A) for k in cuts] + [A * NY], np.int64)


def uniform2d(x, size_y, size_x, out, axis_y, start_y, start_x, boundary_y, boundary_x,
              cval):
    """:func:`uniform1d` along ``axis_y`` then along ``axis_y + 1``, the last axis, in one
    sweep over memory, with the bits of the two calls (the intermediate rounded to out's
    dtype). Layout rules as :func:`correlate1d`."""
    if out.size == 0:
        return out
    shape = x.shape
    A = int(np.prod(shape[:axis_y], dtype=np.int64))
    NY, NX = shape[axis_y], shape[axis_y + 1]
    x3, o3 = x.reshape(A, NY, NX), out.reshape(A, NY, NX)
    ty = extension_table(NY, start_y, NY + size_y - 1, boundary_y)
    tx = extension_table(NX, start_x, NX + size_x - 1, boundary_x)
    args = (x3, size_y, ty, size_x, tx, -start_x, np.float64(cval), o3)
    work = out.size * 2 * UNIFORM_TAPS
    if runs_serial(work):
        _box2d_rows(*args, 0, A * NY)
    else:
        run_parallel(_box2d_par, *args, _box_bounds(A, NY, num_threads()), work=work)
    return out


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


# -- launchers ------------------------------------------------------------------------------

def _chunks():
    return CHUNKS_PER_THREAD * num_threads()


def _run(rows, par, nrows, work, *args):
    """``rows(*args, 0, nrows)`` on this thread where ``_jit.runs_serial`` says a parallel
    region does not pay (small work, one thread, a forked OpenMP child), else the parallel
    driver ``par(*args, chunks)``."""
    if runs_serial(work):
        rows(*args, 0, nrows)
    else:
        run_parallel(par, *args, _chunks(), work=work)


def _lines(a, axis):
    """(A, N, B) view of C-contiguous ``a`` with ``axis`` in the middle."""
    shape = a.shape
    A = int(np.prod(shape[:axis], dtype=np.int64))
    B = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return a.reshape(A, shape[axis], B)


def _exact_in(cval, dtype):
    """``cval`` is exactly a value of ``dtype`` (NaN included)."""
    c = np.float64(cval)
    with np.errstate(over="ignore"):
        return bool(np.isnan(c) or np.float64(np.dtype(dtype).type(c)) == c)


def correlate1d(x, w, out, axis, start, boundary, cval):
    """out = correlation of ``x`` with ``w`` along ``axis``:
    out[..., i, ...] = sum_j w[j] * X[..., start + i + j, ...], X extended by ``boundary``.

    scipy.ndimage's arithmetic: float64 operations in scipy's order, one rounding to
    out's dtype, so ``out`` equals scipy's correlate1d bit for bit. ``x`` and ``out``:
    same shape, C-contiguous, float32 or float64 (they may differ), not overlapping;
    ``w`` 1-D, used in float64 (the symmetry test is scipy's);
    ``-(len(w) - 1) <= start <= 0``.
    """
    if out.size == 0:
        return out
    n = x.shape[axis]
    k = w.shape[0]
    tab = extension_table(n, start, n + k - 1, boundary)
    sym = symmetry(w)
    w = np.ascontiguousarray(w, dtype=np.float64)
    x3, o3 = _lines(x, axis), _lines(out, axis)
    if x3.shape[2] >= MID_MIN_INNER:
        if boundary == CONSTANT and not _exact_in(cval, x.dtype):
            x3 = x3.astype(np.float64)        # the fill row must hold cval exactly
        with np.errstate(over="ignore"):      # (only used where it is exact)
            crow = np.full(x3.shape[2], cval, x3.dtype)
        _run(_mid_correlate_rows, _mid_correlate_par, o3.shape[0] * o3.shape[1],
             out.size * k, x3, w, tab, crow, sym, o3)
    else:
        B = x3.shape[2]
        x2, o2 = x3.reshape(x3.shape[0], -1), o3.reshape(o3.shape[0], -1)
        _run(_line_correlate_rows, _line_correlate_par, o2.shape[0], out.size * k,
             x2, w, tab, -start, np.float64(cval), B, sym, o2)
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
    if x3.shape[2] >= MID_MIN_INNER:
        crow = np.full(x3.shape[2], cval)
        work = out.size * UNIFORM_TAPS
        A, B = o3.shape[0], o3.shape[2]
        if runs_serial(work):
            width = min(B, UWIDTH)
            _mid_uniform_cols(x3, size, tab, crow, o3, width, 0, A * (-(-B // width)))
        else:
            # Tasks in a multiple of the threads while planes are few: each plane's
            # columns are split in T / gcd(A, T) blocks (a multiple of 16 columns).
            T = num_threads()
            per_plane = T // math.gcd(A, T) if A < 4 * T else 1
            width = min(B, UWIDTH, (-(-B // per_plane) + 15) // 16 * 16)
            run_parallel(_mid_uniform_par, x3, size, tab, crow, o3, width, work=work)
    else:
        B = x3.shape[2]
        o2 = o3.reshape(o3.shape[0], -1)
        _run(_line_uniform_rows, _line_uniform_par, o2.shape[0], out.size * UNIFORM_TAPS,
             x3.reshape(x3.shape[0], -1), size, tab, -start, cval, B, o2)
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


def correlate2d_exact(x, wy, wx, out, axis_y, start_y, start_x, boundary_y, boundary_x,
                      cval, x_first=False):
    """:func:`correlate1d` along ``axis_y`` then along ``axis_y + 1`` (``x_first``: the other
    order), fused in one sweep over memory, with the same bits as the two calls (the
    intermediate rounded to out's dtype, as scipy rounds it into its output array).
    Layout rules as :func:`correlate1d`."""
    if out.size == 0:
        return out
    second = boundary_y if x_first else boundary_x
    if second == CONSTANT and not _exact_in(cval, out.dtype):
        # The fused sweep keeps the intermediate rows in out's dtype, which cannot hold
        # this fill value: two passes (the second widens its input instead).
        tmp = np.empty(x.shape, out.dtype)
        if x_first:
            correlate1d(x, wx, tmp, axis_y + 1, start_x, boundary_x, cval)
            return correlate1d(tmp, wy, out, axis_y, start_y, boundary_y, cval)
        correlate1d(x, wy, tmp, axis_y, start_y, boundary_y, cval)
        return correlate1d(tmp, wx, out, axis_y + 1, start_x, boundary_x, cval)
    if not x_first and boundary_y == CONSTANT and not _exact_in(cval, x.dtype):
        x = x.astype(np.float64)
    ny, nx = x.shape[axis_y], x.shape[axis_y + 1]
    ty = extension_table(ny, start_y, ny + wy.shape[0] - 1, boundary_y)
    tx = extension_table(nx, start_x, nx + wx.shape[0] - 1, boundary_x)
    x3, C = _plane_view(x, axis_y)
    o3, _ = _plane_view(out, axis_y)
    wy64 = np.ascontiguousarray(wy, np.float64)
    wx64 = np.ascontiguousarray(wx, np.float64)
    work = out.size * (wy.shape[0] + wx.shape[0])
    nrows = o3.shape[0] * o3.shape[1]
    with np.errstate(over="ignore"):     # a fill value only used where it is exact
        cval_out = out.dtype.type(cval)
        if x_first:
            crow = np.full(o3.shape[2], cval, out.dtype)
        else:
            crow = np.full(x3.shape[2], cval, x3.dtype)
    if x_first:
        _run(_sep2d_xy_rows, _sep2d_xy_par, nrows, work, x3, wx64, tx, symmetry(wx),
             -start_x, wy64, ty, symmetry(wy), C, np.float64(cval), crow, o3)
    else:
        _run(_sep2d_rows, _sep2d_par, nrows, work, x3, wy64, ty, symmetry(wy), wx64, tx,
             symmetry(wx), -start_x, C, crow, cval_out, o3)
    return out


# -- launcher (the registry's "filter" kind) -----------------------------------------------

def run_passes(x, out, passes, cval):
    """One step of scipy.ndimage's separable filters, x -> out (float32/float64), scipy's
    float64 arithmetic: ``passes`` is one ``(axis, start, boundary, weights, size)`` pass
    (``weights`` None: a box of ``size``, scipy's running sum), two weighted passes on
    neighbouring axes, applied in the order given, or two boxes on axis a then a + 1, the
    last axis; a pair runs fused in one sweep (the same bits as two passes)."""
    if len(passes) == 1:
        axis, start, boundary, weights, size = passes[0]
        if weights is None:
            return uniform1d(x, size, out, axis, start, boundary, cval)
        return correlate1d(x, weights, out, axis, start, boundary, cval)
    if passes[0][3] is None:            # two boxes: axis a, then a + 1 (the last axis)
        (ay, sy, by, _, ky), (_, sx, bx, _, kx) = passes
        return uniform2d(x, ky, kx, out, ay, sy, sx, by, bx, cval)
    first = passes[0]
    (ay, sy, by, wy, _), (_, sx, bx, wx, _) = sorted(passes, key=lambda p: p[0])
    return correlate2d_exact(x, wy, wx, out, ay, sy, sx, by, bx, cval,
                             x_first=first[0] != ay)
