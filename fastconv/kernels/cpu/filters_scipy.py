"""scipy.ndimage's 1-D passes as a "filter" launcher that needs no compile, in NumPy.

The first-call tier (``fastconv/_firstcall.py``) runs a FilterSpec step here while
``filters1d``'s kernels compile in another process (or load from numba's disk cache in a
thread). ``filters1d`` computes scipy's arithmetic in scipy's order, and so does this
module: both give scipy.ndimage's bits (tests/test_firstcall.py checks it against
scipy.ndimage and against ``filters1d`` for every boundary, origin and fused pair).

Why NumPy and not scipy.ndimage's C routines (which an earlier version called): importing
scipy.ndimage costs 0.3 s here (SciPy 1.17's array-API layer and scipy.special, measured
with ``python -X importtime``), more than a whole warm first call may take (issue 15:
<= 0.3 s with ``import fastconv``), and its C routines are private
(``scipy.ndimage._nd_image``). These passes are as fast: a 1024^2 Gaussian (sigma 2, two
passes of 17 taps) took 66 / 43 ms (float32 / float64) against 60 / 45 ms for the C
routines, the box filter 36 / 34 against 29 / 30 ms (one thread, medians of 5).

The passes are scipy's C loops (NI_Correlate1D, NI_UniformFilter1D) written as array
operations, each IEEE operation the same as the C loop's and in the same order (NumPy
ufuncs never contract a multiply and an add into an FMA; nor does scipy's baseline
x86-64 build), on float64 data, rounded once to the output dtype:

* weights symmetric (odd length, pairs within DBL_EPSILON, scipy's test):
  ``o = x[c]*w[c]``, then ``o += (x[j] + x[2c-j]) * w[j]`` for ``j = 0 .. c-1``;
  antisymmetric: the same with ``-``; otherwise ``o = x[k-1]*w[k-1]``, then
  ``o += x[j] * w[j]`` for ``j = 0 .. k-2``;
* box filter: the first window summed in order from 0.0, then the running sum
  ``s += x_in - x_out`` (``np.add.accumulate``, sequential along the axis), each output
  ``s / size``.

The lines are processed in blocks of about ``BLOCK`` outputs so that the float64
temporaries stay in the core's cache (one pass over memory instead of one per tap: 2x
faster than whole-array operations at 1024^2).
"""
from __future__ import annotations

import numpy as np

from ..._extend import index_map
from ..._separable import ndimage_symmetry

# Outputs per block of the NumPy passes: three float64 temporaries of this size (the
# extended input, the sum, one term) fit in a 1-2 MiB L2 cache.
BLOCK = 16384


symmetry = ndimage_symmetry      # scipy's test, one copy (_separable)


def _extended(x, tab, lo, cval):
    """Lines of ``x`` (shape (A, N, B)) extended along axis 1 as float64: position t reads
    line element ``tab[t]``, or ``cval`` where ``tab[t] < 0``; the line itself at lo."""
    A, N, B = x.shape
    e = np.empty((A, tab.shape[0], B), np.float64)
    e[:, lo:lo + N] = x
    for part in (slice(0, lo), slice(lo + N, tab.shape[0])):
        t = tab[part]
        if t.size:
            e[:, part] = x[:, np.maximum(t, 0)]
            if (t < 0).any():
                e[:, part][:, t < 0] = cval
    return e


def _correlate_block(e, w, sym, N, acc, tmp):
    """scipy's correlation of extended lines ``e`` (A, N + k - 1, B) into ``acc``."""
    k = w.shape[0]
    if sym:
        c = k // 2
        np.multiply(e[:, c:c + N], w[c], out=acc)
        pair = np.subtract if sym < 0 else np.add
        for j in range(c):
            pair(e[:, j:j + N], e[:, 2 * c - j:2 * c - j + N], out=tmp)
            tmp *= w[j]
            acc += tmp
    else:
        np.multiply(e[:, k - 1:k - 1 + N], w[k - 1], out=acc)
        for j in range(k - 1):
            np.multiply(e[:, j:j + N], w[j], out=tmp)
            acc += tmp
    return acc


def _uniform_block(e, size, N, acc, tmp):
    """scipy's running sum of extended lines ``e`` (A, N + size - 1, B) into ``acc``."""
    first = acc[:, :1]
    np.add(e[:, :1], 0.0, out=first)       # scipy: t = 0.0; t += x[0] (-0.0 -> +0.0)
    for j in range(1, size):
        first += e[:, j:j + 1]
    np.subtract(e[:, size:size + N - 1], e[:, :N - 1], out=acc[:, 1:])
    np.add.accumulate(acc, axis=1, out=acc)
    acc /= float(size)
    return acc


def _one_pass(x, out, p, cval):
    axis, start, boundary, weights, size = p
    axis = int(axis)
    N = x.shape[axis]
    if x.size == 0:
        return
    A = int(np.prod(x.shape[:axis], dtype=np.int64))
    B = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    target = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
    x3, o3 = x.reshape(A, N, B), target.reshape(A, N, B)
    if weights is None:
        k = int(size)
    else:
        w = np.asarray(weights, dtype=np.float64)
        k = w.shape[0]
        sym = symmetry(w)
    lo = -int(start)
    tab = index_map(N, int(start), N + k - 1, boundary)
    cval = float(cval)
    # Blocks of whole lines (over A), or of columns (over B) when one line of every
    # column is already more than a block.
    per = N * B
    if per <= BLOCK or B == 1:
        step_a, step_b = max(1, BLOCK // per), B
    else:
        step_a, step_b = 1, max(1, BLOCK // N)
    for a0 in range(0, A, step_a):
        a1 = min(A, a0 + step_a)
        for b0 in range(0, B, step_b):
            b1 = min(B, b0 + step_b)
            e = _extended(x3[a0:a1, :, b0:b1], tab, lo, cval)
            acc = np.empty((a1 - a0, N, b1 - b0), np.float64)
            tmp = np.empty_like(acc)
            with np.errstate(all="ignore"):      # as scipy's C loops: NaN/Inf silently
                if weights is None:
                    _uniform_block(e, k, N, acc, tmp)
                else:
                    _correlate_block(e, w, sym, N, acc, tmp)
            o3[a0:a1, :, b0:b1] = acc         # one rounding to the output dtype
    if target is not out:
        out[...] = target


def run_passes(x, out, passes, cval):
    """The ``("filter", *, "cpu")`` launcher contract (kernels/__init__.py): the passes in
    the order given, the intermediate of a fused pair in the output dtype (scipy's)."""
    if len(passes) == 1:
        _one_pass(x, out, passes[0], cval)
        return out
    tmp = np.empty(out.shape, out.dtype)
    _one_pass(x, tmp, passes[0], cval)
    _one_pass(tmp, out, passes[1], cval)
    return out
