"""A conv layer in NumPy: one batched matrix product per kernel tap.

It needs no compile, so the first-call tier (``fastconv/_firstcall.py``) runs it while
the numba layer kernels compile in another process. For each tap the strided input view
of every group, (N, G, C/G, P) with P the output positions, is multiplied by that tap's
(G, O/G, C/G) weights with ``np.matmul`` (BLAS) and added into the output: the direct
method's products, summed over channels by BLAS and over taps in order, in the layer's
dtype. NaN and Inf reach the outputs whose windows hold them (and, through BLAS, no
others: a product with a zero weight is still NaN for an Inf input, as in the direct
kernels).

Launcher contract: ``("layer", *, "cpu")`` in kernels/__init__.py.
"""
from __future__ import annotations

import numpy as np


def layer(x, w, out, stride, dilation, groups, pads=None):
    if pads is not None and any(lo or hi for lo, hi in pads):
        x = np.pad(x, ((0, 0), (0, 0)) + tuple(tuple(p) for p in pads))
    n, c = x.shape[:2]
    o = w.shape[0]
    g = groups
    cg, og = c // g, o // g
    osp = out.shape[2:]
    p = int(np.prod(osp))
    acc = np.zeros((n, g, og, p), out.dtype)
    wg = w.reshape((g, og, cg) + w.shape[2:])
    for tap in np.ndindex(w.shape[2:]):
        view = x[(slice(None), slice(None)) + tuple(
            slice(t * d, t * d + (m - 1) * s + 1, s)
            for t, d, s, m in zip(tap, dilation, stride, osp))]
        cols = view.reshape(n, g, cg, p)                 # a copy: the view is strided
        with np.errstate(invalid="ignore", over="ignore"):   # silent, as the kernels
            acc += np.matmul(wg[(slice(None), slice(None), slice(None)) + tap], cols)
    out[...] = acc.reshape(out.shape)
    return out
