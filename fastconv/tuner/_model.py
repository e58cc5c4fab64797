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


# Weight of an edge column's multiply-add against an interior one in the 1-D direct
# kernel (``_fftsize.cost_direct_edges``): fitted on 1-D 'same' correlations, n 3e3..1e6,
# k 63..1023 (1 thread, float32; rms log error of the fit 0.24 against 0.48 without the
# term). Without it the model took 1-D direct at 10000 samples x 1023 taps for 0.47 ms
# against FFT's 0.59, and direct ran 1.8-2.5x slower than FFT there. In 2-D the edge
# columns are a smaller share and the fit did not improve, so the term is 1-D only.
DIRECT_EDGE_WEIGHT_1D = 11.0


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
        units = _fftsize.cost_direct(out, k)
        if len(k) == 1:
            units += DIRECT_EDGE_WEIGHT_1D * _fftsize.cost_direct_edges(out, k)
        return units
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
    """Predicted seconds for one call (on a GPU: ``gpu_predict``)."""
    if spec.device != "cpu":
        return gpu_predict(spec, method, params or {})
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


# ---- the GPU model: a roofline from the device's own attributes ------------------------
#
# seconds = launches * LAUNCH_S + max(bytes / (BW_EFF * bandwidth), flops / (FLOP_EFF * peak))
#
# bandwidth = 2 * memory clock * bus width / 8 (double data rate; device attributes
# MEMORY_CLOCK_RATE, GLOBAL_MEMORY_BUS_WIDTH), peak = SMs * clock * 128 FP32 lanes * 2
# (MULTIPROCESSOR_COUNT, CLOCK_RATE); float64 runs at half that on data-centre parts
# (cc 6.0, 7.0, 8.0, 9.0, 10.0) and 1/32 elsewhere; complex multiplies cost 4 real ones.
# Where the driver reports no clocks (CUDA 13 drops some attributes), an H100-class
# device stands in. Bytes: each method's global-memory traffic (direct and separable read
# the input once per pass thanks to shared-memory tiles and write the output; FFT moves
# the padded complex array about twice per transform). The efficiencies are what tiled
# kernels and cuFFT reach on such parts; measuring replaces the model wherever it matters.
GPU_LAUNCH_S = 1e-5
GPU_BW_EFF = 0.7
GPU_FLOP_EFF = 0.5
GPU_FALLBACK = {"sms": 132, "clock_khz": 1_755_000, "mem_clock_khz": 2_619_000,
                "bus_bits": 5120}
_FP64_FULL = ("6.0", "7.0", "8.0", "9.0", "10.0")


def gpu_rates(facts: dict) -> tuple:
    """(bytes/s, float32 flop/s, float64 flop/s) of a device from its facts."""
    f = {k: (facts.get(k) or v) for k, v in GPU_FALLBACK.items()}
    bandwidth = 2 * f["mem_clock_khz"] * 1e3 * f["bus_bits"] / 8
    peak32 = f["sms"] * f["clock_khz"] * 1e3 * 128 * 2
    peak64 = peak32 / 2 if str(facts.get("cc")) in _FP64_FULL else peak32 / 32
    return bandwidth, peak32, peak64


def _facts(device):
    from ..kernels import device_facts
    return _cached_facts(device, device_facts)


_FACTS: dict = {}


def _cached_facts(device, source):
    hit = _FACTS.get(device)
    if hit is None:
        hit = _FACTS[device] = source(device)
    return hit


def gpu_predict(spec, method: str, params: dict) -> float:
    """Predicted seconds of ``method`` on ``spec.device`` (a GPU), by the roofline above."""
    bandwidth, peak32, peak64 = gpu_rates(_facts(spec.device))
    dt = np.dtype(spec.compute_dtype)
    real_size = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
    peak = peak64 if real_size == 8 else peak32
    mult = 4.0 if dt.kind == "c" else 1.0
    n_in = float(np.prod(spec.x_shape))
    n_out = float(np.prod(spec.out_shape))
    if method == "direct":
        launches = 1
        nbytes = (n_in + n_out) * dt.itemsize
        flops = 2 * mult * _fftsize.cost_direct(spec.out_shape, spec.w_shape)
    elif method == "separable":
        rank = len(params.get("factors") or [None])
        passes = rank * spec.ndim
        launches = passes + 1
        nbytes = passes * 2 * max(n_in, n_out) * dt.itemsize
        flops = 2 * mult * _fftsize.cost_separable(spec.out_shape, spec.w_shape, rank)
    elif method in ("fft", "oa"):
        real = dt.kind != "c"
        L = float(np.prod(_fftsize.fft_shape(spec.x_shape, spec.w_shape, spec.out_shape,
                                             real)))
        scale = 0.5 if real else 1.0
        cplx = 2 * real_size
        # transforms of x and the kernel, the product, the inverse, padding and crop
        launches = 6
        nbytes = (3 * 2 * 2 * scale * L * cplx + (n_in + n_out) * dt.itemsize)
        flops = 3 * 5 * scale * L * math.log2(max(L, 2))
    else:
        raise ValueError(method)
    return launches * GPU_LAUNCH_S + max(nbytes / (GPU_BW_EFF * bandwidth),
                                         flops / (GPU_FLOP_EFF * peak))
