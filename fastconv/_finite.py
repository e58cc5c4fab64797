"""Whether an array holds only finite values, in one summing pass: the guard in front of
every method that would spread a NaN or Inf beyond the outputs whose window holds it
(FFT, overlap-add, Winograd, a factorisation), shared by the launchers, the tuner, the
dispatcher and the public layer."""
from __future__ import annotations

import numpy as np

__all__ = ["all_finite"]


def all_finite(a) -> bool:
    """True iff every value is finite: the sum of finite values is finite unless it
    overflows, and any Inf/NaN makes it non-finite; an overflow is settled exactly."""
    a = np.asarray(a)
    if a.dtype.kind not in "fc" or a.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        total = a.sum()          # native dtype: one SIMD pass, no conversion
    if np.isfinite(total):
        return True
    return bool(np.isfinite(a).all())
