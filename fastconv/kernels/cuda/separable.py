"""Separable (and low-rank) correlation on the GPU: one 1-D pass per axis.

Launcher contract (as ``kernels/cpu/separable.py``)::

    correlate_separable(x, w, out, start, boundary="constant", cval=0, *, factors=None)

computes out[i] = sum_j w[j] * X[start + i + j] for a kernel ``w`` that is a product of
1-D kernels, or (2-D) a sum of r such products. ``factors`` is a list of terms, each a
list of per-axis 1-D factors (``_separable.require_factors`` gives it; computed here when
None, raising ValueError for a kernel that is not separable).

How: per term, a pass along axis 0 (extending x by the boundary along that axis), then
along axis 1 over that result, and so on (``filters1d.axis_pass``: shared-memory tiles,
the boundary applied while loading). Pass a's output has the final length along axes
<= a and x's length along the others, so every pass reads its input through the same
boundary rule: the extension of a product kernel's partial result along a later axis is
the partial result of the extension (index maps act per axis), except for the constant
fill, which after the passes over axes < a is ``cval * prod(sum of those factors)``. A
rank-1 2-D kernel with factors of up to ``filters1d.KF`` taps (any dtype but complex128,
whose tiles would not fit in a block's shared memory) runs both passes in one sweep
(``filters1d.pass2d``: one output tile loads its input tile once and keeps the
intermediate in shared memory, as OpenCV's CUDA filters fuse where it pays); otherwise
the intermediates cost one extra write and read of an image per axis. A rank-r kernel
adds its terms.
"""
from __future__ import annotations

import numpy as np

from ..._separable import launcher_terms
from ._backend import cuda, jit, launch
from . import filters1d

__all__ = ["correlate_separable", "PTX_SIGNATURES"]


@jit
def _add_into(out, part):
    """out += part over flat C-contiguous arrays (a low-rank kernel's later terms)."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.shape[0]:
        out[i] += part[i]
        i += step


def _ptx_signatures():
    from numba import types
    from numba.np.numpy_support import from_dtype

    from fastconv.kernels import KERNEL_DTYPES
    return {_add_into: [(types.Array(from_dtype(dt), 1, "C"),) * 2 for dt in KERNEL_DTYPES]}


PTX_SIGNATURES = _ptx_signatures


def correlate_separable(x, w, out, start, boundary="constant", cval=0, *, factors=None):
    """Separable correlation on the device; see the module docstring for the contract."""
    from . import _memory
    if out.size == 0:
        return out
    if w.size == 0:
        return _memory.fill(out, 0)
    factors = launcher_terms(w, out.dtype, factors)
    dt = out.dtype
    nd = x.ndim
    start = tuple(int(s) for s in start)
    if (nd == 2 and len(factors) == 1 and dt.itemsize <= filters1d.FUSED_ITEMSIZE
            and all(len(f) <= filters1d.KF for f in factors[0])):
        # rank 1 in 2-D: both passes fused in one sweep (the intermediate stays on chip;
        # complex128 tiles would not fit in a block's shared memory)
        f0, f1 = (np.ascontiguousarray(f, dtype=dt) for f in factors[0])
        cval = dt.type(cval)
        return filters1d.pass2d(x, out, 0, start, (boundary, boundary), f0, f1, cval,
                                cval * f0.sum(dtype=dt), True)
    for t, term in enumerate(factors):
        target = out if t == 0 else _memory.empty(out.shape, dt)
        _term(x, [np.ascontiguousarray(f, dtype=dt) for f in term], target, start,
              boundary, dt.type(cval), nd)
        if t:
            n = out.size
            launch(_add_into, _memory._grid(n), _memory.THREADS, out.reshape(n),
                   target.reshape(n))
    return out


def _term(x, fs, out, start, boundary, cval, nd):
    """One product term: the passes over axes 0 .. nd-1, the last one into ``out``."""
    from . import _memory
    cur = x
    fill = cval
    for a in range(nd):
        if a == nd - 1:
            nxt = out
        else:
            shape = tuple(out.shape[d] if d <= a else x.shape[d] for d in range(nd))
            nxt = _memory.empty(shape, out.dtype)
        filters1d.axis_pass(cur, nxt, a, start[a], boundary, fs[a], fill)
        fill = fill * fs[a].sum(dtype=fs[a].dtype)   # the fill after this axis's pass
        cur = nxt
    return out
