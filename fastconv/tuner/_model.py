"""The cost model used where nothing was measured: seconds = overhead + c * work.

Work is an op count per method (below); the constants ``c`` are per machine and per
compute dtype class. Shipped defaults come from a 2-core AVX-512 machine (see
docs/guide/autotuning.md); ``python -m fastconv tune --calibrate`` refits them here from
a short micro-benchmark and stores them beside the tuning cache.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _fftsize

# seconds per unit of work (see ``work``), per method and rank ('direct/1' for 1-D; the
# plain name serves the other ranks), for float32; other dtypes scale by DTYPE_FACTOR.
# Fitted by ``python -m fastconv tune --calibrate`` on the 2-core development machine
# (AMD EPYC, AVX2, quiet, 2 threads). Overheads: the FFT paths' fixed cost per call
# (planning, the kernel's spectrum, block set-up) was measured at 0.3-0.6 ms on small
# inputs, where it decides against them.
DEFAULTS = {
    "direct":      {"c": 5.4e-11, "overhead": 5e-6},
    "direct/1":    {"c": 4.5e-11, "overhead": 5e-6},
    "direct/3":    {"c": 3.7e-10, "overhead": 5e-6},
    "separable":   {"c": 1.1e-10, "overhead": 1e-5},
    "separable/3": {"c": 3.7e-10, "overhead": 1e-5},
    "fft":         {"c": 9.3e-11, "overhead": 3e-4},
    "fft/1":       {"c": 1.9e-10, "overhead": 3e-4},
    "fft/3":       {"c": 1.4e-10, "overhead": 3e-4},
    "oa":          {"c": 5.2e-11, "overhead": 6e-4},
    "oa/1":        {"c": 1.2e-10, "overhead": 6e-4},
    "oa/3":        {"c": 1.5e-10, "overhead": 6e-4},
}
# float64 and complex do proportionally more work per element (vector width, 4 real
# multiplies per complex one).
DTYPE_FACTOR = {"float32": 1.0, "float64": 2.0, "complex64": 4.0, "complex128": 8.0,
                "int64": 3.0}
FFT_DTYPE_FACTOR = {"float32": 1.0, "float64": 1.7, "complex64": 2.0, "complex128": 3.4,
                    "int64": 1.7}


def _number(v) -> bool:
    """A real JSON number that is finite (bool is not a number here)."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v))


def constants_problem(name, value) -> str | None:
    """Why ``name: value`` cannot be an entry of a stored model section (what
    ``calibrate`` writes and ``predict`` reads), or None when it can: the name is a method
    of ``DEFAULTS``, optionally with a rank ``/1``, ``/2`` or ``/3``; the value an object
    with a finite ``c`` > 0 and a finite ``overhead`` >= 0 (seconds)."""
    if not isinstance(name, str):
        return f"name {name!r} is not a string"
    method, _, rank = name.partition("/")
    if method not in {m.split("/")[0] for m in DEFAULTS} or rank not in ("", "1", "2", "3"):
        return f"{name!r} is not a method (or method/rank) of the cost model"
    if not isinstance(value, dict):
        return f"{name!r} is {type(value).__name__}, not an object of constants"
    c, overhead = value.get("c"), value.get("overhead")
    if not (_number(c) and c > 0):
        return f"{name!r}: c = {c!r} is not a finite number > 0"
    if not (_number(overhead) and overhead >= 0):
        return f"{name!r}: overhead = {overhead!r} is not a finite number >= 0"
    return None


def work(spec, method: str, params: dict) -> float:
    """Flop-like units (one ~ one real multiply-add of a vectorised loop) of ``method`` on
    ``spec``: the op counts of ``fastconv._fftsize``, which also sizes the transforms."""
    out, k = spec.out_shape, spec.w_shape
    real = np.dtype(spec.compute_dtype).kind != "c"
    if method == "direct":
        return _fftsize.cost_direct(out, k)
    if method == "separable":
        rank = len(params.get("factors") or [None]) if params else 1
        return _fftsize.cost_separable(out, k, rank)
    if method == "fft":
        return _fftsize.cost_fft(spec.x_shape, k, out, real)
    if method == "oa":
        return _fftsize.cost_oa(spec.x_shape, k, out, params.get("block") if params else None,
                                real)
    raise ValueError(method)


def _lookup(table: dict, method: str, ndim: int):
    """Constants for a method at a rank: 'direct/2' if fitted, else 'direct'."""
    return table.get(f"{method}/{min(ndim, 3)}") or table.get(method)


def predict(spec, method: str, params: dict | None, constants: dict | None = None) -> float:
    """Predicted seconds for one call."""
    consts = (_lookup(constants or {}, method, spec.ndim)
              or _lookup(DEFAULTS, method, spec.ndim))
    dt = np.dtype(spec.compute_dtype).name
    factor = (FFT_DTYPE_FACTOR if method in ("fft", "oa") else DTYPE_FACTOR).get(dt, 2.0)
    return consts["overhead"] + consts["c"] * factor * work(spec, method, params or {})


def fit(samples) -> dict:
    """Fit ``c`` per method (names like 'direct' or 'direct/2', method per rank) from
    [(name, work_units, seconds)] samples measured at float32. The geometric mean of (seconds - overhead) / units: the model ranks methods
    by ratios, so relative error is what to minimise, and a log fit keeps one large case
    from dominating. Used by ``calibrate``."""
    by_method: dict = {}
    for method, units, seconds in samples:
        by_method.setdefault(method, []).append((units, seconds))
    fitted = {}
    for method, pts in by_method.items():
        ov = DEFAULTS[method.split("/")[0]]["overhead"]
        logs = [math.log(max(s - ov, 0.1 * s) / u) for u, s in pts if u > 0 and s > 0]
        if logs:
            fitted[method] = {"c": math.exp(sum(logs) / len(logs)), "overhead": ov}
    return fitted
