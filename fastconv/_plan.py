"""spec -> method: the order in which a method is chosen.

1. an explicit ``method=`` (integer inputs only take FFT inside the exactness guard);
2. correctness guards (integer exactness, separability; non-finite inputs are handled by
   the FFT/OA launchers themselves);
3. for ``method="auto"``: the tuner (cache hit, measurement, or cost model).
"""
from __future__ import annotations

from . import tuner


def choose(spec, x, w, method: str):
    """Return (method, params, reason)."""
    if method != "auto":
        return tuner.resolve_explicit(spec, x, w, method)
    return tuner.choose(spec, x, w)
