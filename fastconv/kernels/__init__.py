"""Kernels: plain loops compiled by numba, and the launchers (plain Python) that call them.

Kernels never validate user input: they receive arrays of a supported dtype
(``KERNEL_DTYPES``) and plain ints, prepared by the public layer.
"""
import numpy as np

# The dtypes every kernel is compiled for. Integer and bool inputs are computed in int64
# (exact, and wrap-around modulo 2**bits matches computing in the narrower type), other
# real types in float32/float64.
KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.complex64),
                 np.dtype(np.complex128), np.dtype(np.int64))

# numpy.pad names are the internal boundary names (see docs/guide/boundaries).
BOUNDARIES = ("constant", "wrap", "symmetric", "reflect", "edge")

# The ONE launcher registry: (operation kind, method, device) -> (module, launcher name).
# Modules are imported on first use, so a device's kernels load only when a call runs
# there. Operation kinds and their launcher contracts:
#
#   "correlate"  launcher(x, w, out, start, boundary, cval, **params)
#                out[i] = sum_j w[j] * X[start + i + j] (X = x extended by boundary)
#   "batched"    launcher(x, w, out, start, batch, **params): the same over the axes not
#                in ``batch``; along ``batch`` x and w pair elementwise (fftconvolve axes=)
#   "filter"     launcher(x, out, passes, cval): scipy.ndimage 1-D passes (one, or two on
#                neighbouring axes, weighted or boxes; see _validate.FilterSpec)
#   "layer"      launcher(x, w, out, stride, dilation, groups, pads): a conv layer on
#                (N, C, D, H, W) arrays (pads None: x is already padded)
#   "layer_weight"  launcher(x, go, grad, stride, dilation, groups, pads): the weight
#                gradient of that layer from its input x and grad_output go
#   "col2im"     launcher(y, out, stride, padding, dilation): out = the taps' values
#                y (N, O, KD, KH, KW, D, H, W) added at i*stride - padding + tap*dilation
#   "layer_transposed"  launcher(x, w, out, stride, padding, dilation, groups): a
#                transposed convolution, w (Cin, O/groups, *k), computed directly
#
# A new device is a kernels/<device>/ folder with the same launcher names plus one block
# here (and its ``DEVICES`` entry).
REGISTRY = {
    ("correlate", "direct", "cpu"): ("fastconv.kernels.cpu.direct", "correlate"),
    ("correlate", "fft", "cpu"): ("fastconv.kernels.cpu.fft", "correlate_fft"),
    ("correlate", "oa", "cpu"): ("fastconv.kernels.cpu.fft", "correlate_oa"),
    ("correlate", "separable", "cpu"): ("fastconv.kernels.cpu.separable",
                                        "correlate_separable"),
    # The direct method in NumPy: no compile (first calls, _firstcall.py)
    ("correlate", "numpy", "cpu"): ("fastconv.kernels.cpu.direct_numpy", "correlate"),
    ("batched", "fft", "cpu"): ("fastconv.kernels.cpu.fft", "correlate_batched"),
    ("filter", "passes", "cpu"): ("fastconv.kernels.cpu.filters1d", "run_passes"),
    # scipy.ndimage's passes: the same bits with no compile (first calls, _firstcall.py)
    ("filter", "scipy", "cpu"): ("fastconv.kernels.cpu.filters_scipy", "run_passes"),
    ("layer", "direct", "cpu"): ("fastconv.kernels.cpu.nn", "layer_direct"),
    ("layer", "gemm", "cpu"): ("fastconv.kernels.cpu.nn", "layer_gemm"),
    ("layer", "fft", "cpu"): ("fastconv.kernels.cpu.nn", "layer_fft"),
    ("layer", "winograd", "cpu"): ("fastconv.kernels.cpu.nn", "layer_winograd"),
    # A layer in NumPy (one matmul per tap): no compile (first calls, _firstcall.py)
    ("layer", "numpy", "cpu"): ("fastconv.kernels.cpu.nn_numpy", "layer"),
    # CUDA twins (numba-cuda, imported on first use; no "layer" rows: conv layers on the
    # GPU are out of scope). x and out are device arrays, w a host array (see
    # kernels/cuda/direct.py); launchers queue on kernels.cuda._backend.current_stream().
    ("correlate", "direct", "cuda"): ("fastconv.kernels.cuda.direct", "correlate"),
    ("correlate", "fft", "cuda"): ("fastconv.kernels.cuda.fft", "correlate_fft"),
    ("correlate", "oa", "cuda"): ("fastconv.kernels.cuda.fft", "correlate_oa"),
    ("correlate", "separable", "cuda"): ("fastconv.kernels.cuda.separable",
                                         "correlate_separable"),
    ("batched", "fft", "cuda"): ("fastconv.kernels.cuda.fft", "correlate_batched"),
    ("filter", "passes", "cuda"): ("fastconv.kernels.cuda.filters1d", "run_passes"),
    ("layer_weight", "gemm", "cpu"): ("fastconv.kernels.cpu.nn", "weight_gemm"),
    ("layer_weight", "direct", "cpu"): ("fastconv.kernels.cpu.nn", "weight_direct"),
    ("col2im", "direct", "cpu"): ("fastconv.kernels.cpu.nn", "col2im"),
    ("layer_transposed", "direct", "cpu"): ("fastconv.kernels.cpu.nn", "transposed_direct"),
}

# Per device: how the tuner waits for queued work before it stops a clock (None: calls
# return when their work is done).
DEVICES = {
    "cpu": {"sync": None},
    # "memory": the module of device-array helpers (empty, zeros, convert, finish,
    # all_finite, to_host, from_host), named so that nothing imports numba-cuda before a
    # call runs on the GPU; load it with ``device_memory("cuda")``.
    "cuda": {"sync": lambda: _cuda_backend().synchronize(),
             "memory": "fastconv.kernels.cuda._memory"},
}


def _cuda_backend():
    import importlib
    return importlib.import_module("fastconv.kernels.cuda._backend")


def device_memory(device: str):
    """The device's memory-helper module (None for the CPU: NumPy is its memory)."""
    name = DEVICES[device].get("memory")
    if name is None:
        return None
    import importlib
    return importlib.import_module(name)


_LOADED: dict = {}


def available(kind: str, method: str, device: str = "cpu") -> bool:
    return (kind, method, device) in REGISTRY


# Launchers that need no compile and serve only first calls (_firstcall.py): not methods a
# user or the tuner chooses.
FIRST_CALL_ONLY = frozenset({("correlate", "numpy"), ("filter", "scipy"), ("layer", "numpy")})


def methods(kind: str, device: str = "cpu") -> tuple:
    """The methods a user or the tuner may choose for an operation kind on a device, in
    registry order (the first-call launchers excluded)."""
    return tuple(m for k, m, d in REGISTRY
                 if k == kind and d == device and (k, m) not in FIRST_CALL_ONLY)


def device_sync(device: str):
    """The device's synchronise hook for timing (None when there is nothing to wait for)."""
    try:
        return DEVICES[device]["sync"]
    except KeyError:
        raise ValueError(f"unknown device {device!r}; fastconv runs on "
                         f"{sorted(DEVICES)}") from None


def get_launcher(kind: str, method: str, device: str = "cpu"):
    """The launcher of ``method`` for operation ``kind`` on ``device`` (contracts above)."""
    fn = _LOADED.get((kind, method, device))
    if fn is not None:
        return fn
    import importlib
    try:
        module, name = REGISTRY[(kind, method, device)]
    except KeyError:
        raise ValueError(f"method {method!r} is not available for {kind!r} on device "
                         f"{device!r}") from None
    fn = _LOADED[(kind, method, device)] = getattr(importlib.import_module(module), name)
    return fn


# -- device facts and clocks for the tuner (it imports nothing above the kernels) ---------

def device_facts(device: str) -> dict:
    """What the device is ({} for the CPU, whose facts are the tuner's fingerprint): for
    "cuda", ``kernels/cuda/_backend.device_facts()`` (name, compute capability, driver,
    runtime, numba-cuda and CuPy versions, SM count, clocks, memory bus)."""
    if device == "cpu":
        return {}
    import importlib
    return importlib.import_module("fastconv.kernels.cuda._backend").device_facts()


def device_timer(device: str):
    """``timer(fn) -> seconds`` that times one call on the device's own clock (CUDA
    events on the current stream for "cuda"), or None: the host clock with the sync hook."""
    if device != "cuda":
        return None
    import importlib
    b = importlib.import_module("fastconv.kernels.cuda._backend")
    current = getattr(b, "current_stream", None)
    return lambda fn: b.time_launches(fn, current() if current is not None else None)
