"""Direct (sliding-window) correlation on the CPU.

Launcher contract, shared by every method's launcher::

    correlate(x, w, out, start, boundary="constant", cval=0)

computes, over every axis,  out[i] = sum_j w[j] * X[start + i + j],  where X is ``x``
extended past its edges by ``boundary`` (numpy.pad names: constant with ``cval``, wrap,
symmetric, reflect, edge). ``x``, ``w`` and ``out`` have the same ndim and one dtype from
``KERNEL_DTYPES``; ``out`` is C-contiguous; ``start`` holds one int per axis (negative
reaches into the boundary). Convolution is correlation with the flipped kernel; modes are
choices of ``start`` and ``out.shape`` made by the caller.

How it runs (one compiled kernel set per dtype; ranks 1 and 2 are folded into 3-D, higher
ranks loop over 3-D slabs):

* No padded copy of ``x``. Each axis gets an index map from extended index to ``x`` index
  (-1 for the constant fill), built by the launcher in O(out + kernel) ints once per
  signature (layout, shapes, start, boundary; a bounded memo). Planes and
  rows are picked through the maps, so every boundary costs nothing there; along the
  contiguous axis each output row splits into an interior, where every tap reads ``x``
  directly at unit stride (the vectorised loops), and at most ``kx - 1`` edge columns
  on each side that go through the map.
* ``x`` is read in place through a flat 1-D view of its memory (any strides on the outer
  axes, negative ones included; a copy only when the last axis is not unit-stride).
* Work items are (plane, pair of output rows, column tile), shared among threads by
  ``prange``; a long 1-D signal is cut into column tiles so it runs in parallel too.
* Inner loops: one pass over the output row per input row and group of up to 5 taps
  (taps in registers; LLVM emits ymm vfmadd loops for float32 and float64, checked with
  ``inspect_asm``; the groups are written out as plain loops, one per group size). A
  pass updates both rows of the pair that read that input row, so each input vector
  loaded feeds two FMAs. The first pass into an output row writes
  instead of accumulating: no zeroing pass (measured: the zeroing pass alone cost ~25 %
  at 3x3 on 2048x2048, where the kernel is memory-bound).
* Edge columns gather their extended inputs into a scratch row and run the same row
  passes over it, so every output is rounded the same way wherever it lies.
* Small work (``small_work``: below ``SMALL_FACTOR * LAUNCH_WORK`` outputs x taps, up
  to twice that with two threads) runs ``_corr3d_small`` on one thread: images first copy the rows the window
  reads, extended, into a padded scratch and then make full-width row passes (the edge
  handling per row and side cost as much as the interior on 64^2); its arguments come
  in four arrays, called through the compiled entry point by ``bind``. Its bits are
  the parallel kernel's (tests/test_latency.py).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ... import _jit
from ..._jit import jit, num_threads, run_parallel, runs_serial, serial_twin
from ..._extend import index_map, window
from ..._memo import LRU

U = np.uint64   # unsigned indices: no negative-index wraparound code in the inner loops

# Output columns per work item. Rows up to ROW_MAX long are one tile (the passes over a
# row are long, the per-pass overhead small); longer rows (1-D signals) are cut into
# TILE-sized pieces so that threads share them and the pieces stay in L1/L2.
ROW_MAX = 8192
TILE = 4096
# Work items are handed out in chunks, about this many per thread, instead of one static
# block per thread, so a thread slowed by another process does not hold up the call
# (0: static). On the shared 2-core dev machine the two were within its noise.
CHUNKS_PER_THREAD = 8


@jit()
def _row_pass(of, ob, xf, xb, wf, wb, k, n, init):
    """of[ob + i] (+)= sum_c wf[wb + c] * xf[xb + i + c] for i < n, c < k; the first
    group of taps writes instead of accumulating when ``init``. One pass over the
    output row per group of up to 5 taps held in registers; the first group takes
    the remainder (k - 1) % 5 + 1 so every later group is full. Indices are unsigned
    so numba emits no negative-index wraparound and LLVM vectorises the loops."""
    o = U(ob)
    n = U(n)
    c = 0
    g = (k - 1) % 5 + 1
    if g == 1:
        u0 = wf[wb + c]
        b = U(xb + c)
        if init:
            for i in range(U(0), n):
                s0 = xf[b + i]
                of[o + i] = u0 * s0
        else:
            for i in range(U(0), n):
                s0 = xf[b + i]
                of[o + i] += u0 * s0
    elif g == 2:
        u0 = wf[wb + c]
        u1 = wf[wb + c + 1]
        b = U(xb + c)
        if init:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                of[o + i] = u0 * s0 + u1 * s1
        else:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                of[o + i] += u0 * s0 + u1 * s1
    elif g == 3:
        u0 = wf[wb + c]
        u1 = wf[wb + c + 1]
        u2 = wf[wb + c + 2]
        b = U(xb + c)
        if init:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                of[o + i] = u0 * s0 + u1 * s1 + u2 * s2
        else:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                of[o + i] += u0 * s0 + u1 * s1 + u2 * s2
    elif g == 4:
        u0 = wf[wb + c]
        u1 = wf[wb + c + 1]
        u2 = wf[wb + c + 2]
        u3 = wf[wb + c + 3]
        b = U(xb + c)
        if init:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                s3 = xf[b + i + U(3)]
                of[o + i] = u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3
        else:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                s3 = xf[b + i + U(3)]
                of[o + i] += u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3
    elif g == 5:
        u0 = wf[wb + c]
        u1 = wf[wb + c + 1]
        u2 = wf[wb + c + 2]
        u3 = wf[wb + c + 3]
        u4 = wf[wb + c + 4]
        b = U(xb + c)
        if init:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                s3 = xf[b + i + U(3)]
                s4 = xf[b + i + U(4)]
                of[o + i] = u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3 + u4 * s4
        else:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                s3 = xf[b + i + U(3)]
                s4 = xf[b + i + U(4)]
                of[o + i] += u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3 + u4 * s4
    c = g
    while c < k:
        u0 = wf[wb + c]
        u1 = wf[wb + c + 1]
        u2 = wf[wb + c + 2]
        u3 = wf[wb + c + 3]
        u4 = wf[wb + c + 4]
        b = U(xb + c)
        for i in range(U(0), n):
            s0 = xf[b + i]
            s1 = xf[b + i + U(1)]
            s2 = xf[b + i + U(2)]
            s3 = xf[b + i + U(3)]
            s4 = xf[b + i + U(4)]
            of[o + i] += u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3 + u4 * s4
        c += 5


@jit()
def _row_pass2(of, ob0, ob1, xf, xb, wf, wb0, wb1, k, n, init1):
    """Two output rows that read the same input row through different kernel rows:
    of[ob0 + i] += sum_c wf[wb0 + c] * s[i + c] and of[ob1 + i] (+)= sum_c wf[wb1 + c] *
    s[i + c], s = xf[xb:] (the second row's first group writes when ``init1``). Each
    input vector loaded feeds two FMAs; groups as in _row_pass."""
    o0 = U(ob0)
    o1 = U(ob1)
    n = U(n)
    c = 0
    g = (k - 1) % 5 + 1
    if g == 1:
        u0 = wf[wb0 + c]
        v0 = wf[wb1 + c]
        b = U(xb + c)
        if init1:
            for i in range(U(0), n):
                s0 = xf[b + i]
                of[o0 + i] += u0 * s0
                of[o1 + i] = v0 * s0
        else:
            for i in range(U(0), n):
                s0 = xf[b + i]
                of[o0 + i] += u0 * s0
                of[o1 + i] += v0 * s0
    elif g == 2:
        u0 = wf[wb0 + c]
        u1 = wf[wb0 + c + 1]
        v0 = wf[wb1 + c]
        v1 = wf[wb1 + c + 1]
        b = U(xb + c)
        if init1:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                of[o0 + i] += u0 * s0 + u1 * s1
                of[o1 + i] = v0 * s0 + v1 * s1
        else:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                of[o0 + i] += u0 * s0 + u1 * s1
                of[o1 + i] += v0 * s0 + v1 * s1
    elif g == 3:
        u0 = wf[wb0 + c]
        u1 = wf[wb0 + c + 1]
        u2 = wf[wb0 + c + 2]
        v0 = wf[wb1 + c]
        v1 = wf[wb1 + c + 1]
        v2 = wf[wb1 + c + 2]
        b = U(xb + c)
        if init1:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                of[o0 + i] += u0 * s0 + u1 * s1 + u2 * s2
                of[o1 + i] = v0 * s0 + v1 * s1 + v2 * s2
        else:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                of[o0 + i] += u0 * s0 + u1 * s1 + u2 * s2
                of[o1 + i] += v0 * s0 + v1 * s1 + v2 * s2
    elif g == 4:
        u0 = wf[wb0 + c]
        u1 = wf[wb0 + c + 1]
        u2 = wf[wb0 + c + 2]
        u3 = wf[wb0 + c + 3]
        v0 = wf[wb1 + c]
        v1 = wf[wb1 + c + 1]
        v2 = wf[wb1 + c + 2]
        v3 = wf[wb1 + c + 3]
        b = U(xb + c)
        if init1:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                s3 = xf[b + i + U(3)]
                of[o0 + i] += u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3
                of[o1 + i] = v0 * s0 + v1 * s1 + v2 * s2 + v3 * s3
        else:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                s3 = xf[b + i + U(3)]
                of[o0 + i] += u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3
                of[o1 + i] += v0 * s0 + v1 * s1 + v2 * s2 + v3 * s3
    elif g == 5:
        u0 = wf[wb0 + c]
        u1 = wf[wb0 + c + 1]
        u2 = wf[wb0 + c + 2]
        u3 = wf[wb0 + c + 3]
        u4 = wf[wb0 + c + 4]
        v0 = wf[wb1 + c]
        v1 = wf[wb1 + c + 1]
        v2 = wf[wb1 + c + 2]
        v3 = wf[wb1 + c + 3]
        v4 = wf[wb1 + c + 4]
        b = U(xb + c)
        if init1:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                s3 = xf[b + i + U(3)]
                s4 = xf[b + i + U(4)]
                of[o0 + i] += u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3 + u4 * s4
                of[o1 + i] = v0 * s0 + v1 * s1 + v2 * s2 + v3 * s3 + v4 * s4
        else:
            for i in range(U(0), n):
                s0 = xf[b + i]
                s1 = xf[b + i + U(1)]
                s2 = xf[b + i + U(2)]
                s3 = xf[b + i + U(3)]
                s4 = xf[b + i + U(4)]
                of[o0 + i] += u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3 + u4 * s4
                of[o1 + i] += v0 * s0 + v1 * s1 + v2 * s2 + v3 * s3 + v4 * s4
    c = g
    while c < k:
        u0 = wf[wb0 + c]
        u1 = wf[wb0 + c + 1]
        u2 = wf[wb0 + c + 2]
        u3 = wf[wb0 + c + 3]
        u4 = wf[wb0 + c + 4]
        v0 = wf[wb1 + c]
        v1 = wf[wb1 + c + 1]
        v2 = wf[wb1 + c + 2]
        v3 = wf[wb1 + c + 3]
        v4 = wf[wb1 + c + 4]
        b = U(xb + c)
        for i in range(U(0), n):
            s0 = xf[b + i]
            s1 = xf[b + i + U(1)]
            s2 = xf[b + i + U(2)]
            s3 = xf[b + i + U(3)]
            s4 = xf[b + i + U(4)]
            of[o0 + i] += u0 * s0 + u1 * s1 + u2 * s2 + u3 * s3 + u4 * s4
            of[o1 + i] += v0 * s0 + v1 * s1 + v2 * s2 + v3 * s3 + v4 * s4
        c += 5


@jit()
def _edges(of, ob0, ob1, use0, use1, init0, init1, xf, off, mx, nl, r0, sx, wf, wb0, wb1,
           k, cval, i0, ilo, ihi, i1, buf):
    """Output columns [i0, ilo) and [ihi, i1) (next to the edges) of the pair's rows
    that use this input row. The extended columns they read are gathered once into
    ``buf`` through the column map (extended column e: mx[e] for e < nl, mx[nl + e - r0]
    for e >= r0, -1 the constant ``cval``, x column sx + e in between); the taps then
    run over buf through the interior's own row passes, so that an edge column's sum is
    rounded exactly as an interior one's (and as _corr3d_small's padded rows)."""
    for e0, e1 in ((i0, ilo), (ihi, i1)):
        if e1 <= e0:
            continue
        for e in range(e0, e1 + k - 1):
            if e < nl:
                j = mx[e]
            elif e >= r0:
                j = mx[nl + e - r0]
            else:
                j = sx + e
            buf[e - e0] = xf[off + j] if j >= 0 else cval
        if use0 and use1:        # row 0 is never initialised here (its t = 0 is alone)
            _row_pass2(of, ob0 + e0, ob1 + e0, buf, 0, wf, wb0, wb1, k, e1 - e0, init1)
        elif use0:
            _row_pass(of, ob0 + e0, buf, 0, wf, wb0, k, e1 - e0, init0)
        elif use1:
            _row_pass(of, ob1 + e0, buf, 0, wf, wb1, k, e1 - e0, init1)


@jit()
def _item(xf, pz, py, mx, nl, r0, sx, lo, hi, wf, fills, of, ny, nx, ky, kx, cval, z, y0,
          i0, i1, a, init, buf):
    """One work item, one kernel plane a: output rows y0 and y0 + 1 (if < ny) of plane z,
    columns [i0, i1). Input row y0 + t feeds row y0 through kernel row t and row y0 + 1
    through kernel row t - 1; with ``init`` the first pass into each output row writes it
    (rows y0 at t = 0, y0 + 1 at t = 1): no zeroing pass over the output. ``buf``:
    scratch for the edge columns (allocated here when smaller than they need)."""
    nr = min(2, ny - y0)
    ob0 = (z * ny + y0) * nx
    ob1 = ob0 + nx
    # this tile's interior columns; edge columns lie in [i0, ilo) and [ihi, i1)
    ilo = max(i0, min(lo, i1))
    ihi = min(i1, max(hi, ilo))
    plane = pz[z + a]
    # scratch for the edge columns' extended inputs (see _edges)
    need = max(ilo - i0, i1 - ihi) + kx - 1
    if buf.size < need:
        buf = np.empty(need, xf.dtype)
    for t in range(ky + nr - 1):
        use0 = t < ky
        use1 = nr == 2 and t >= 1
        init0 = init and t == 0
        init1 = init and t == 1
        b0 = a * ky + min(t, ky - 1)
        b1 = a * ky + max(t - 1, 0)
        row = py[y0 + t]
        if plane < 0 or row < 0:        # a whole input row of the constant fill
            for r in range(2):
                use = use0 if r == 0 else use1
                ini = init0 if r == 0 else init1
                f = fills[b0] if r == 0 else fills[b1]
                ob = ob0 if r == 0 else ob1
                if use and ini:
                    for i in range(i0, i1):
                        of[ob + i] = f
                elif use and f != 0:
                    for i in range(i0, i1):
                        of[ob + i] += f
            continue
        off = plane + row
        if use0 and use1:
            _row_pass2(of, ob0 + ilo, ob1 + ilo, xf, off + sx + ilo, wf, b0 * kx, b1 * kx,
                       kx, ihi - ilo, init1)
        else:
            _row_pass(of, (ob0 if use0 else ob1) + ilo, xf, off + sx + ilo, wf,
                      (b0 if use0 else b1) * kx, kx, ihi - ilo, init0 if use0 else init1)
        if ilo > i0 or ihi < i1:
            _edges(of, ob0, ob1, use0, use1, init0, init1, xf, off, mx, nl, r0, sx, wf,
                   b0 * kx, b1 * kx, kx, cval, i0, ilo, ihi, i1, buf)


@jit(parallel=True)
def _corr3d(xf, pz, py, mx, nl, r0, sx, lo, hi, wf, fills, of, nz, ny, nx, kz, ky, kx, cval,
            tile, accumulate):
    """of (nz, ny, nx) (+)= correlation of X with w (kz, ky, kx), all flat C-order arrays.
    X is read through the maps: plane offset pz[z + a] and row offset py[y + b] into xf
    (-1: constant fill), columns through mx, nl, r0 as in _edges; for output columns in
    [lo, hi) every tap reads column sx + i + c directly; fills[a * ky + b] is
    cval * sum(w[a, b, :]).
    Work items (plane, pair of rows, column tile) are shared among threads; the loop body
    is one call (a large prange body costs numba's parfor passes seconds of compile)."""
    ntile = (nx + tile - 1) // tile
    npair = (ny + 1) // 2
    none = np.empty(0, xf.dtype)      # each item allocates its own edge scratch
    for item in prange(nz * npair * ntile):
        zp = item // ntile
        i0 = (item - zp * ntile) * tile
        z = zp // npair
        y0 = (zp - z * npair) * 2
        for a in range(kz):
            _item(xf, pz, py, mx, nl, r0, sx, lo, hi, wf, fills, of, ny, nx, ky, kx, cval,
                  z, y0, i0, min(nx, i0 + tile), a, a == 0 and not accumulate, none)


# Small work runs _corr3d_small on one thread, whatever the thread count: below
# SMALL_FACTOR * LAUNCH_WORK outputs x taps, and up to that times T / (T - 1) for T
# threads, at most twice it (small_work). The small kernel does the serial twin's work
# in 0.55-0.95 of its time at these sizes, so its break-even with a parallel region lies
# above the twin's. Measured on this 2-core machine (median of 11 interleaved rounds,
# float32, us, small kernel against 2 threads), quiet (load 0.1): 3x3 at 112^2 (113k)
# 18.5 / 20.6, at 128^2 (147k) 24.3 / 22.4, 192^2 (332k) 48 / 31; 5x5 at 96^2 (230k)
# 20.2 / 24.9, at 128^2 (410k) 32.3 / 31.1. Under a load of ~8 the 2-thread median at
# 128^2 3x3 was 17 ms (a descheduled worker). The bound, 200k on 2 threads, gives up at
# most ~8 % at 3x3 between 130k and 200k on a quiet machine for calls that never wait
# on a thread wake-up. Above it the padded scratch outgrows the caches and the twin is
# as fast (float32 256^2 3x3: 86 us small, 70 twin). LAUNCH_WORK is read per call, so
# ``python -m fastconv warmup`` (which sets it to 0) reaches the parallel kernels.
SMALL_FACTOR = 2


def small_work(work) -> bool:
    """Whether a call of ``work`` runs _corr3d_small (serial) rather than _corr3d."""
    bound = SMALL_FACTOR * _jit.LAUNCH_WORK
    if work < bound:
        return True
    if work >= 2 * bound:
        return False
    t = num_threads()
    return _jit._fork_serial or t <= 1 or work * (t - 1) < bound * t


# The header of _corr3d_small's integer table: the scalars of _corr3d's call, then the
# lengths of the three index maps that follow it.
_HEAD = 15


@jit()
def _corr3d_small(xf, of, wtab, itab):
    """_corr3d for small work (small_work: always serial), with its arguments in
    two tables: ``wtab`` holds the flat kernel, then ``fills``, then ``cval``; ``itab``
    the header (nl, r0, sx, lo, hi, nz, ny, nx, kz, ky, kx, tile, and the lengths of pz,
    py, mx), then pz, py and mx. The dispatcher's typing of _corr3d's 21 arguments costs
    ~1.6 us a call, where the kernel of a 1-D call of 1,000 samples takes ~0.3 us: a
    small call passes four arrays instead (bind, through the compiled entry point).

    One row (1-D): _corr3d's work items, with one edge scratch for all. More rows: the
    rows of x that the window reads are first copied, extended by the boundary, into a
    padded scratch (fewer elements than the work: small_work's bound), and every output row is then a few
    full-width row passes over it: on small images the per-row edge handling (a gather
    and two short passes per input row and side) cost as much as the interior. The
    row passes, their order per output and the fill rows are _item's, and _edges runs
    the same row passes over the gathered columns: the bits of _corr3d."""
    nl = itab[0]
    r0 = itab[1]
    sx = itab[2]
    lo = itab[3]
    hi = itab[4]
    nz = itab[5]
    ny = itab[6]
    nx = itab[7]
    kz = itab[8]
    ky = itab[9]
    kx = itab[10]
    tile = itab[11]
    e0 = _HEAD + itab[12]
    e1 = e0 + itab[13]
    pz = itab[_HEAD:e0]
    py = itab[e0:e1]
    mx = itab[e1:e1 + itab[14]]
    nw = kz * ky * kx
    wf = wtab[:nw]
    fills = wtab[nw:wtab.size - 1]
    cval = wtab[wtab.size - 1]
    if nz * ny == 1:
        ntile = (nx + tile - 1) // tile
        buf = np.empty(min(nx, tile) + kx, xf.dtype)
        for it in range(ntile):
            i0 = it * tile
            for a in range(kz):      # one output row, but every kernel plane reads it
                _item(xf, pz, py, mx, nl, r0, sx, lo, hi, wf, fills, of, ny, nx, ky, kx,
                      cval, 0, 0, i0, min(nx, i0 + tile), a, a == 0, buf)
        return
    _padded(xf, of, pz, py, mx, nl, r0, sx, wf, fills, nz, ny, nx, kz, ky, kx, cval)


@jit()
def _padded(xf, of, pz, py, mx, nl, r0, sx, wf, fills, nz, ny, nx, kz, ky, kx, cval):
    """_corr3d_small on several rows (see there): rows of the extended input in a padded
    scratch P (NZ x NY x NX; rows wholly of the constant fill are left out: they take
    the row fills, as in _item), then _item's row passes over full output rows."""
    NZ = nz + kz - 1
    NY = ny + ky - 1
    NX = nx + kx - 1
    P = np.empty(NZ * NY * NX, xf.dtype)
    cl = min(nl, NX)                  # extended columns [cl, cr) are x's, at sx + e
    cr = max(cl, min(r0, NX))
    for p in range(NZ):
        plane = pz[p]
        for r in range(NY):
            row = py[r]
            if plane < 0 or row < 0:
                continue
            base = (p * NY + r) * NX
            off = plane + row
            for e in range(cl):
                j = mx[e]
                P[base + e] = xf[off + j] if j >= 0 else cval
            s = off + sx
            for e in range(cl, cr):
                P[base + e] = xf[s + e]
            for e in range(cr, NX):
                j = mx[nl + e - r0]
                P[base + e] = xf[off + j] if j >= 0 else cval
    npair = (ny + 1) // 2
    for zp in range(nz * npair):
        z = zp // npair
        y0 = (zp - z * npair) * 2
        nr = min(2, ny - y0)
        ob0 = (z * ny + y0) * nx
        ob1 = ob0 + nx
        for a in range(kz):
            init = a == 0
            plane = pz[z + a]
            for t in range(ky + nr - 1):
                use0 = t < ky
                use1 = nr == 2 and t >= 1
                init0 = init and t == 0
                init1 = init and t == 1
                b0 = a * ky + min(t, ky - 1)
                b1 = a * ky + max(t - 1, 0)
                if plane < 0 or py[y0 + t] < 0:      # a whole row of the fill: _item's
                    for r in range(2):
                        use = use0 if r == 0 else use1
                        ini = init0 if r == 0 else init1
                        f = fills[b0] if r == 0 else fills[b1]
                        ob = ob0 if r == 0 else ob1
                        if use and ini:
                            for i in range(nx):
                                of[ob + i] = f
                        elif use and f != 0:
                            for i in range(nx):
                                of[ob + i] += f
                    continue
                src = ((z + a) * NY + y0 + t) * NX
                if use0 and use1:
                    _row_pass2(of, ob0, ob1, P, src, wf, b0 * kx, b1 * kx, kx, nx, init1)
                elif use0:
                    _row_pass(of, ob0, P, src, wf, b0 * kx, kx, nx, init0)
                else:
                    _row_pass(of, ob1, P, src, wf, b1 * kx, kx, nx, init1)


def _small_tables(pz, py, mx, nl, r0, sx, lo, hi, wf, fills, o3, w3, cv, tile):
    """(wtab, itab) of _corr3d_small for one bound call (see there)."""
    head = np.array([nl, r0, sx, lo, hi, *o3, *w3, tile, pz.size, py.size, mx.size],
                    np.int64)
    itab = np.concatenate([head, pz, py, mx]).astype(np.int64)
    wtab = np.concatenate([wf, fills, np.array([cv], wf.dtype)]).astype(wf.dtype)
    return wtab, itab


def _readable(x):
    """x, or a C-ordered copy when the kernel cannot read it in place (last axis not
    unit-stride, strides not a multiple of the item size, or read-only)."""
    isz = x.itemsize
    if (x.shape[-1] > 1 and x.strides[-1] != isz) or any(s % isz for s in x.strides) \
            or not x.flags.writeable:
        return np.array(x, order="C")
    return x


def _run(*args):
    """_corr3d through run_parallel, its work items handed out in chunks; small work runs
    the serial twin (no chunk size to set then)."""
    nz, ny, nx, kz, ky, kx, tile = args[12:18] + (args[19],)
    if runs_serial(nz * ny * nx * kz * ky * kx):
        serial_twin(_corr3d)(*args)
        return
    _run_parallel(nz * ((ny + 1) // 2) * ((nx + tile - 1) // tile), args,
                  nz * ny * nx * kz * ky * kx)


def _run_parallel(items, args, work=None):
    chunk = 0                       # 0: numba's static split
    if CHUNKS_PER_THREAD:
        chunk = max(1, items // (CHUNKS_PER_THREAD * num_threads()))
    old = numba.set_parallel_chunksize(chunk)
    try:
        run_parallel(_corr3d, *args, work=work)
    finally:
        numba.set_parallel_chunksize(old)


# What a call's geometry fixes (index maps, flips, strides in elements), by everything it
# is computed from: building it is ~30 us of NumPy calls, where the kernel of a 1-D call of
# 1,000 samples takes ~1.5 us. Small (O(output + kernel) ints per entry) and bounded.
_GEOMETRY = LRU(256)
# cval * (sum of each kernel row), by the kernel's bytes and cval: only calls that read a
# whole row of the constant fill need it (2-D and 3-D constant boundaries).
_FILLS = LRU(256)
_ONE = np.zeros(1, np.int64)


def _geometry(x, w_shape, out_shape, start, boundary):
    """The index maps and view parameters of a call (see correlate), for ``x`` as
    returned by _readable."""
    nd = x.ndim
    isz = x.itemsize
    flips = tuple(s < 0 and n > 1 for s, n in zip(x.strides, x.shape))
    strides = tuple(-s if f else s for s, f in zip(x.strides, flips))
    steps = tuple(0 if n == 1 else s // isz for s, n in zip(strides, x.shape))
    span = 1 + sum((n - 1) * s for n, s in zip(x.shape, steps))

    def offsets(axis, e0, e1):
        """Element offsets into xf of extended indices [e0, e1) of ``axis``, or -1."""
        n = x.shape[axis]
        idx = index_map(n, start[axis] + e0, e1 - e0, boundary)
        if flips[axis]:
            idx = np.where(idx >= 0, n - 1 - idx, -1)
        return np.where(idx >= 0, idx * steps[axis], -1)

    # The contiguous axis: output columns [lo, hi) read x at sx + i + c directly; the
    # column map holds only the extended columns outside x (a 1-D signal of 10**6 would
    # otherwise cost several passes over a 10**6-entry map per call).
    n, k, m = x.shape[-1], w_shape[-1], out_shape[-1]
    sx = int(start[-1])
    lo = max(0, -sx)
    hi = min(m, n - k + 1 - sx)
    span_c = m + k - 1
    nl = min(max(0, -sx), span_c)
    r0 = max(nl, min(span_c, n - sx))
    mx = np.concatenate([offsets(nd - 1, 0, nl), offsets(nd - 1, r0, span_c)])
    lead = [offsets(a, 0, out_shape[a] + w_shape[a] - 1) for a in range(nd - 1)]
    tile = m if m <= ROW_MAX else TILE
    py = lead[-1] if nd >= 2 else _ONE
    pz = lead[-2] if nd >= 3 else _ONE
    # whether any plane or row is read wholly from the fill (then the kernel reads fills)
    fill_rows = bool((py < 0).any() or (pz < 0).any())
    # a C-ordered x is its own flat view (a reshape, 0.1 us, where as_strided costs 3 us)
    c_order = not any(flips) and span == x.size and all(
        s == t * isz for s, t, nn in zip(x.strides, _c_steps(x.shape), x.shape) if nn > 1)
    # ranks 1-3 as 3-D: shapes, outputs x taps (for runs_serial) and work items
    o3 = (1,) * (3 - nd) + tuple(out_shape) if nd <= 3 else None
    w3 = (1,) * (3 - nd) + tuple(w_shape) if nd <= 3 else None
    work = items = 0
    if nd <= 3:
        work = int(np.prod(o3, dtype=np.int64)) * int(np.prod(w3, dtype=np.int64))
        items = o3[0] * ((o3[1] + 1) // 2) * ((o3[2] + tile - 1) // tile)
    return (flips, span, c_order, mx, lead, py, pz, nl, r0, sx, lo, hi, tile, fill_rows,
            o3, w3, work, items)


def _c_steps(shape):
    steps, acc = [], 1
    for n in reversed(shape):
        steps.append(acc)
        acc *= n
    return steps[::-1]


def _row_fills(w3, cv, dtype):
    """cval * the sum of each kernel row (Inf taps times a zero fill: NaN, as the taps
    themselves give; a fill row past the dtype's range: Inf, as the summed taps give;
    no warning either way), memoised by the kernel's bytes."""
    key = (w3.shape, dtype.char, w3.tobytes(), cv.tobytes())
    f = _FILLS.get(key)
    if f is None:
        with np.errstate(invalid="ignore", over="ignore"):
            f = (w3.sum(axis=2) * cv).reshape(-1)
        _FILLS.put(key, f)
    return f


def correlate(x, w, out, start, boundary="constant", cval=0):
    """Direct correlation; see the module docstring for the contract."""
    nd = x.ndim
    if out.size == 0:
        return out
    dtype = out.dtype
    if dtype.kind == "c":
        return _correlate_complex(x, w, out, start, boundary, cval)
    if dtype.kind in "iu" and x.size and w.size and nd:
        return _correlate_integer(x, w, out, start, boundary, cval)
    cv = dtype.type(cval)
    w = np.ascontiguousarray(w, dtype=dtype)
    if w.size == 0:
        out[...] = 0
        return out
    if nd == 0:
        out[...] = w * x
        return out
    if x.size == 0:        # every read is the fill (numpy.pad allows only "constant" here)
        out[...] = cv * w.sum(dtype=dtype) if boundary == "constant" else 0
        return out
    x = _readable(x)
    key = (x.shape, x.strides, x.itemsize, w.shape, out.shape, tuple(start), boundary)
    geo = _GEOMETRY.get(key)
    if geo is None:
        geo = _geometry(x, w.shape, out.shape, start, boundary)
        _GEOMETRY.put(key, geo)
    (flips, span, c_order, mx, lead, py, pz, nl, r0, sx, lo, hi, tile, fill_rows, o3, w3,
     work, items) = geo
    if c_order:
        xf = x.reshape(-1)
    else:
        if any(flips):
            x = x[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
        xf = np.lib.stride_tricks.as_strided(x, shape=(span,), strides=(x.itemsize,))
    if nd <= 3:
        # the kernel reads fills only for rows and planes wholly of the fill
        fills = (_row_fills(w.reshape(w3), cv, dtype) if fill_rows
                 else _ZERO_FILLS[dtype.char])
        # w and out are C-contiguous: their flat views are reshapes
        if small_work(work):
            wtab, itab = _small_tables(pz, py, mx, nl, r0, sx, lo, hi, w.reshape(-1),
                                       fills, o3, w3, cv, tile)
            _corr3d_small(xf, out.reshape(-1), wtab, itab)
            return out
        args = (xf, pz, py, mx, nl, r0, sx, lo, hi, w.reshape(-1), fills, out.reshape(-1),
                *o3, *w3, cv, tile, False)
        if runs_serial(work):
            serial_twin(_corr3d)(*args)
        else:
            _run_parallel(items, args, work)
        return out
    # Rank > 3: sum 3-D correlations over the leading output and kernel indices.
    out[...] = 0
    for i in np.ndindex(*out.shape[:-3]):
        o3 = out[i]
        for j in np.ndindex(*w.shape[:-3]):
            w3 = w[j]
            base = [lead[a][i[a] + j[a]] for a in range(nd - 3)]
            if min(base) < 0:                       # a whole 3-D block of the fill
                with np.errstate(invalid="ignore", over="ignore"):
                    o3 += cv * w3.sum(dtype=dtype)
                continue
            with np.errstate(invalid="ignore", over="ignore"):
                fills = (w3.sum(axis=2) * cv).reshape(-1)
            _run(xf, np.where(pz >= 0, pz + sum(base), -1), py, mx, nl, r0, sx, lo, hi,
                 w3.reshape(-1), fills, o3.reshape(-1), *o3.shape, *w3.shape, cv, tile,
                 True)
    return out


def bind(x_shape, w, out_shape, start, boundary="constant", cval=0):
    """``correlate`` with everything but the data fixed, for plans: returns
    ``run(xf, of)``, where ``xf`` and ``of`` are the flat (``reshape(-1)``) views of a
    C-ordered, aligned, writeable ``x`` of shape ``x_shape`` and of a C-contiguous ``out`` of
    shape ``out_shape``, both of ``w``'s dtype (float32 or float64). ``run`` makes the
    kernel call ``correlate`` makes for such arrays, with the same arguments (the same
    bits), and nothing else. None where ``correlate`` takes another route (complex and
    integer data, ranks 0 and above 3, empty arrays)."""
    dtype = w.dtype
    nd = len(x_shape)
    if (dtype.char not in "fd" or not 1 <= nd <= 3 or 0 in x_shape or w.size == 0
            or 0 in out_shape):
        return None
    w = np.ascontiguousarray(w)
    cv = dtype.type(cval)
    (flips, span, c_order, mx, lead, py, pz, nl, r0, sx, lo, hi, tile, fill_rows, o3, w3,
     work, items) = _geometry(np.empty(x_shape, dtype), w.shape, out_shape, start,
                              boundary)
    fills = _row_fills(w.reshape(w3), cv, dtype) if fill_rows else _ZERO_FILLS[dtype.char]
    wf = w.reshape(-1)
    nz, ny, nx = o3
    kz, ky, kx = w3
    twin = serial_twin(_corr3d)

    def small_call():
        """_corr3d_small through its compiled entry point, four arrays (a call costs the
        kernel plus ~0.4 us; the twin's 21 typed arguments ~1.6 us)."""
        wtab, itab = _small_tables(pz, py, mx, nl, r0, sx, lo, hi, wf, fills, o3, w3, cv,
                                   tile)
        entry = _jit.entry_point(_corr3d_small, np.empty(1, dtype), np.empty(1, dtype),
                                 wtab, itab)

        def call(xf, of):
            entry(xf, of, wtab, itab)
        return call

    if work < SMALL_FACTOR * _jit.LAUNCH_WORK:
        return small_call()      # serial for every thread count (small_work): no checks

    small = []                   # built on first use

    def run(xf, of):
        if small_work(work):
            if not small:
                small.append(small_call())
            small[0](xf, of)
            return
        args = (xf, pz, py, mx, nl, r0, sx, lo, hi, wf, fills, of, nz, ny, nx, kz, ky, kx,
                cv, tile, False)
        if runs_serial(work):
            twin(*args)
        else:
            _run_parallel(items, args, work)

    return run


correlate.bind = bind


# The fills argument of calls that never read it (one element, the kernel's dtype).
_ZERO_FILLS = {"f": np.zeros(1, np.float32), "d": np.zeros(1, np.float64)}


# -- complex and integer data ------------------------------------------------------------
# The unrolled float kernels above cost 10-20 s of LLVM time per dtype on a cold cache.
# Complex data reuses the real kernels, and integers take a plain loop that compiles in
# about a second: both are rare on hot paths, and CI and first calls stay affordable.

def _correlate_complex(x, w, out, start, boundary, cval):
    """(xr + i xi) * (wr + i wi) as real correlations in the matching real dtype: the
    same multiply count as complex arithmetic; a real kernel needs only two of them."""
    rt = out.real.dtype
    cv = complex(cval)
    xr, xi = np.real(x), np.imag(x)
    wr = np.ascontiguousarray(np.real(w), dtype=rt)
    wi = np.ascontiguousarray(np.imag(w), dtype=rt)
    real_kernel = not wi.any()
    part = np.empty(out.shape, rt)
    tmp = np.empty(out.shape, rt)
    correlate(xr, wr, part, start, boundary, cv.real)
    if not real_kernel:
        correlate(xi, wi, tmp, start, boundary, cv.imag)
        part -= tmp
    out.real = part
    correlate(xi, wr, part, start, boundary, cv.imag)
    if not real_kernel:
        correlate(xr, wi, tmp, start, boundary, cv.real)
        part += tmp
    out.imag = part
    return out


@jit(parallel=True)
def _corr3d_plain(xp, w, out):
    # out[z, y, :] = sum over taps of w * the shifted input row: a unit-stride inner loop
    # per tap, rows shared among threads.
    nz, ny, nx = out.shape
    kz, ky, kx = w.shape
    for zy in prange(nz * ny):
        z = zy // ny
        y = zy - z * ny
        row = out[z, y]
        for a in range(kz):
            for b in range(ky):
                src = xp[z + a, y + b]
                for c in range(kx):
                    wv = w[a, b, c]
                    for i in range(nx):
                        row[i] += wv * src[i + c]


def _correlate_integer(x, w, out, start, boundary, cval):
    """Integers (int64, exact with wrap-around): the extended window, then plain loops."""
    xp = window(x, w.shape, out.shape, start, boundary, out.dtype.type(cval))
    xp = np.ascontiguousarray(xp, dtype=out.dtype)
    w = np.ascontiguousarray(w, dtype=out.dtype)
    out[...] = 0
    nd = x.ndim
    if nd <= 3:
        lead = (1,) * (3 - nd)
        run_parallel(_corr3d_plain, xp.reshape(lead + xp.shape), w.reshape(lead + w.shape),
                     out.reshape(lead + out.shape), work=out.size * w.size)
        return out
    for i in np.ndindex(*out.shape[:-3]):
        for j in np.ndindex(*w.shape[:-3]):
            run_parallel(_corr3d_plain, xp[tuple(a + b for a, b in zip(i, j))], w[j], out[i],
                         work=out[i].size * w[j].size)
    return out
