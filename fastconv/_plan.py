"""spec -> method: the order in which a method is chosen.

1. an explicit ``method=`` (integer inputs only take FFT inside the exactness guard);
2. correctness guards (integer exactness, non-finite input, separability);
3. for ``method="auto"``: the tuner (cache hit, measurement, or cost model).
"""
from __future__ import annotations

import numpy as np

from . import tuner


def fft_exact(x: np.ndarray, w: np.ndarray) -> bool:
    """scipy's exactness guard for integer inputs: the largest possible output magnitude
    must fit in float64's mantissa for FFT to round back to the exact integers."""
    if x.size == 0 or w.size == 0:
        return True
    bound = int(np.max(np.abs(x.astype(np.int64, copy=False)))) * int(
        np.max(np.abs(w.astype(np.int64, copy=False))))
    bound *= min(x.size, w.size)
    return bound <= 2 ** np.finfo(np.float64).nmant - 1


def choose(spec, x, w, method: str):
    """Return (method, params, reason)."""
    if method != "auto":
        return tuner.resolve_explicit(spec, x, w, method)
    return tuner.choose(spec, x, w)
