"""The test oracle: naive float64 (or complex128) loops, independent of fastconv and scipy.

``correlate_ref(x, w, start, out_shape, boundary, cval)`` is the definition every method
must match: out[i] = sum_j w[j] * X[start + i + j], X being x extended by ``boundary``
(numpy.pad names). Everything else (modes, convolution) is derived from it here, in the
plainest possible way.
"""
import itertools

import numpy as np


def _extended_index(e, n, boundary):
    """Map an extended index to an index of x, or None for the constant fill."""
    if 0 <= e < n:
        return e
    if boundary == "constant":
        return None
    if boundary == "wrap":
        return e % n
    if boundary == "edge":
        return min(max(e, 0), n - 1)
    if boundary == "symmetric":          # ... b a | a b c | c b ...
        period = 2 * n
        e %= period
        return e if e < n else period - 1 - e
    if boundary == "reflect":            # ... c b | a b c | b a ...
        if n == 1:
            return 0
        period = 2 * n - 2
        e %= period
        return e if e < n else period - e
    raise ValueError(boundary)


def correlate_ref(x, w, start, out_shape, boundary="constant", cval=0):
    x = np.asarray(x)
    w = np.asarray(w)
    acc = np.complex128 if np.iscomplexobj(x) or np.iscomplexobj(w) else np.float64
    xv = x.astype(acc)
    wv = w.astype(acc)
    out = np.zeros(out_shape, acc)
    for i in itertools.product(*(range(m) for m in out_shape)):
        total = acc(0)
        for j in itertools.product(*(range(k) for k in w.shape)):
            idx = [_extended_index(s + a + b, n, boundary)
                   for s, a, b, n in zip(start, i, j, x.shape)]
            v = cval if any(t is None for t in idx) else xv[tuple(idx)]
            total += wv[j] * v
        out[i] = total
    return out


def convolve_full_ref(x, w):
    """Full linear convolution, straight from the definition."""
    w = np.asarray(w)
    flipped = w[(slice(None, None, -1),) * w.ndim]
    out_shape = tuple(n + k - 1 for n, k in zip(np.shape(x), w.shape))
    start = tuple(-(k - 1) for k in w.shape)
    return correlate_ref(x, flipped, start, out_shape)
