"""scipy.ndimage's own 1-D passes as a "filter" launcher that needs no compile.

The first-call tier (``fastconv/_firstcall.py``) runs a FilterSpec step here while
``filters1d``'s kernels compile in another process. ``filters1d`` computes scipy's
arithmetic in scipy's order, so both give the same bits (tests/test_firstcall.py checks
it for every boundary, origin and fused pair).
"""
from __future__ import annotations

import numpy as np

# numpy.pad names (the kernels' boundaries) -> scipy.ndimage's C mode codes
# (scipy.ndimage._ni_support._extend_mode_to_code: nearest 0, wrap 1, reflect 2,
# mirror 3, constant 4).
SCIPY_MODE_CODES = {"edge": 0, "wrap": 1, "symmetric": 2, "reflect": 3, "constant": 4}


def _one_pass(x, out, p, cval):
    # scipy's C routines, not scipy.ndimage.correlate1d: while fastconv.patch_scipy() is
    # in force those public names are fastconv's own functions, which would call back here.
    from scipy.ndimage import _nd_image
    axis, start, boundary, weights, size = p
    mode = SCIPY_MODE_CODES[boundary]
    # filters1d's start is the extended index output 0's first tap reads: scipy's origin
    # is the shift of the window from its centre, k // 2.
    if weights is None:
        _nd_image.uniform_filter1d(x, int(size), int(axis), out, mode, float(cval),
                                   -(int(size) // 2) - int(start))
    else:
        w = np.ascontiguousarray(weights, dtype=np.float64)
        _nd_image.correlate1d(x, w, int(axis), out, mode, float(cval),
                              -(len(w) // 2) - int(start))


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
