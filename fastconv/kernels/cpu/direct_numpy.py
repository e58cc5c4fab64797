"""The direct method in NumPy: one multiply-add pass over the output per kernel tap.

It needs no compile, so the first-call tier (``fastconv/_firstcall.py``) runs it while
the numba kernels compile in another process, for calls where it costs less than the
FFT (few taps). It is the direct method's arithmetic: each output is the sum of its own
window's products, in tap order, in the compute dtype, so NaN and Inf stay in the
outputs whose window holds them, integers are exact (int64, wrapping as the kernels do),
and a non-finite kernel tap is handled as direct handles it. Measured on the 2-core dev
machine: 0.2-1.6 ns per output and tap for float32, 0.4-4.5 for float64 (memory-bound:
two passes per tap), against 1024^2 with 5x5 float32 in 26 ms (FFT 43 ms).

Launcher contract: as ``direct.correlate`` (kernels/__init__.py).
"""
from __future__ import annotations

import numpy as np

from ..._extend import window


def correlate(x, w, out, start, boundary="constant", cval=0):
    if out.size == 0:
        return out
    if w.size == 0:
        out[...] = 0
        return out
    data = window(x, w.shape, out.shape, start, boundary, cval)
    tmp = np.empty(out.shape, out.dtype)
    first = True
    # Inf * 0 and overflow give NaN/Inf silently, as the compiled kernels do.
    with np.errstate(invalid="ignore", over="ignore"):
        for j in np.ndindex(w.shape):
            src = data[tuple(slice(a, a + m) for a, m in zip(j, out.shape))]
            if first:
                np.multiply(src, w[j], out=out)
                first = False
            else:
                np.multiply(src, w[j], out=tmp)
                np.add(out, tmp, out=out)
    return out
