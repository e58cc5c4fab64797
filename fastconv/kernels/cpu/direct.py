"""Direct (sliding-window) correlation on the CPU.

Launcher contract, shared by every method's launcher::

    correlate(x, w, out, start, boundary="constant", cval=0)

computes, over every axis,  out[i] = sum_j w[j] * X[start + i + j],  where X is ``x``
extended past its edges by ``boundary`` (numpy.pad names: constant with ``cval``, wrap,
symmetric, reflect, edge). ``x``, ``w`` and ``out`` have the same ndim and one dtype from
``KERNEL_DTYPES``; ``out`` is C-contiguous; ``start`` holds one int per axis (negative
reaches into the boundary). Convolution is correlation with the flipped kernel; modes are
choices of ``start`` and ``out.shape`` made by the caller.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..._jit import jit, run_parallel


@jit(parallel=True)
def _corr3d_valid_accumulate(xp, w, out):
    # Loop order: for each output row, for each tap, a contiguous axpy over the row, so the
    # innermost loop is a unit-stride loop LLVM vectorises; rows are shared among threads.
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


def correlate(x, w, out, start, boundary="constant", cval=0):
    """Direct correlation; see the module docstring for the contract."""
    out[...] = 0
    if out.size == 0 or w.size == 0:
        return out
    xp = _window(x, w.shape, out.shape, start, boundary, cval)
    w = np.ascontiguousarray(w)
    nd = x.ndim
    if nd <= 3:
        shape3 = (1,) * (3 - nd)
        run_parallel(_corr3d_valid_accumulate, xp.reshape(shape3 + xp.shape),
                     w.reshape(shape3 + w.shape), out.reshape(shape3 + out.shape))
        return out
    # Rank > 3: sum 3-D correlations over the leading kernel and output indices.
    lead_out = out.shape[:-3]
    for i in np.ndindex(*lead_out):
        for j in np.ndindex(*w.shape[:-3]):
            src = xp[tuple(a + b for a, b in zip(i, j))]
            run_parallel(_corr3d_valid_accumulate, src, w[j], out[i])
    return out


def _window(x, w_shape, out_shape, start, boundary, cval):
    """The extended input restricted to what the output reads, C-contiguous: index 0 of
    each axis is extended index ``start``."""
    pads, core = [], []
    for n, k, m, s in zip(x.shape, w_shape, out_shape, start):
        stop = s + m + k - 1                     # one past the last extended index read
        pads.append((max(0, -s), max(0, stop - n)))
        core.append(slice(min(max(0, s), n), max(min(n, stop), 0)))
    if boundary == "constant":
        # Only the part of x that is read gets copied; the rest is the fill value.
        part = x[tuple(core)]
        if all(p == (0, 0) for p in pads):
            return np.ascontiguousarray(part)
        return np.pad(part, pads, mode="constant", constant_values=cval)
    if all(p == (0, 0) for p in pads):
        return np.ascontiguousarray(x[tuple(core)])
    padded = np.pad(x, pads, mode=boundary)
    window = tuple(slice(s + before, s + before + m + k - 1)
                   for (before, _), k, m, s in zip(pads, w_shape, out_shape, start))
    return np.ascontiguousarray(padded[window])
