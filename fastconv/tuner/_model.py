"""The cost model used where nothing was measured: seconds = overhead + c * work.

Work is an op count per method (below); the constants ``c`` are per machine and per
compute dtype class. Shipped defaults come from a 2-core AVX-512 machine (see
docs/guide/autotuning.md); ``python -m fastconv tune --calibrate`` refits them here from
a short micro-benchmark and stores them beside the tuning cache.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import fft as sp_fft

# seconds per unit of work, per method, for float32 (other dtypes scale by DTYPE_FACTOR)
DEFAULTS = {
    "direct":    {"c": 2.5e-11, "overhead": 5e-6},   # per output x tap
    "separable": {"c": 5.0e-11, "overhead": 1e-5},   # per output x (sum of taps) x rank
    "fft":       {"c": 1.5e-10, "overhead": 3e-5},   # per padded point x log2(point count)
    "oa":        {"c": 2.0e-10, "overhead": 5e-5},   # per block point x log2(block) summed
}
# float64 and complex do proportionally more work per element (vector width, 4 real
# multiplies per complex one).
DTYPE_FACTOR = {"float32": 1.0, "float64": 2.0, "complex64": 4.0, "complex128": 8.0,
                "int64": 3.0}
FFT_DTYPE_FACTOR = {"float32": 1.0, "float64": 1.7, "complex64": 2.0, "complex128": 3.4,
                    "int64": 1.7}


def _prod(shape) -> int:
    return int(math.prod(int(n) for n in shape))


def work(spec, method: str, params: dict) -> float:
    """An op count proportional to the method's running time for ``spec``."""
    out = _prod(spec.out_shape)
    if method == "direct":
        return float(out * _prod(spec.w_shape))
    if method == "separable":
        rank = len(params.get("factors", [None])) if params else 1
        return float(out * sum(int(k) for k in spec.w_shape) * max(rank, 1)
                     + out * spec.ndim * 4)
    if method == "fft":
        # Transform lengths cover the window read (output + kernel - 1) on each axis.
        n = _prod(sp_fft.next_fast_len(int(m + k - 1), True)
                  for m, k in zip(spec.out_shape, spec.w_shape))
        # two forward real transforms, one inverse, plus pad/multiply/crop passes
        return float(1.5 * n * math.log2(max(n, 2)) + 6 * n)
    if method == "oa":
        block = params.get("block") if params else None
        sizes = []
        for i, (m, k) in enumerate(zip(spec.out_shape, spec.w_shape)):
            b = int(block[i]) if block else oa_block(int(m), int(k))
            sizes.append((math.ceil(m / b), sp_fft.next_fast_len(b + int(k) - 1, True)))
        nblocks = _prod(s[0] for s in sizes)
        per_block = _prod(s[1] for s in sizes)
        return float(nblocks * (per_block * math.log2(max(per_block, 2)) + 4 * per_block)
                     + 0.5 * per_block * math.log2(max(per_block, 2)))
    raise ValueError(method)


def oa_block(m: int, k: int) -> int:
    """A good overlap-add block length for an output axis of m with k taps (about 4-8x
    the kernel, the cost optimum of scipy's _calc_oa_lens)."""
    if k <= 1 or m <= 2 * k:
        return m
    target = sp_fft.next_fast_len(8 * k, True) - k + 1
    return max(1, min(m, target))


def predict(spec, method: str, params: dict | None, constants: dict | None = None) -> float:
    """Predicted seconds for one call."""
    consts = (constants or {}).get(method) or DEFAULTS[method]
    dt = np.dtype(spec.compute_dtype).name
    factor = (FFT_DTYPE_FACTOR if method in ("fft", "oa") else DTYPE_FACTOR).get(dt, 2.0)
    return consts["overhead"] + consts["c"] * factor * work(spec, method, params or {})


def fit(samples) -> dict:
    """Fit ``c`` per method from [(method, work_units, seconds)] (least squares through
    the overhead, with the overhead kept at its default). Used by --calibrate."""
    by_method: dict = {}
    for method, units, seconds in samples:
        by_method.setdefault(method, []).append((units, seconds))
    fitted = {}
    for method, pts in by_method.items():
        ov = DEFAULTS[method]["overhead"]
        num = sum(u * max(s - ov, 0.0) for u, s in pts)
        den = sum(u * u for u, _ in pts)
        if den > 0 and num > 0:
            fitted[method] = {"c": num / den, "overhead": ov}
    return fitted
