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
#   "filter"     launcher(x, out, passes, cval): scipy.ndimage 1-D passes (one, or two
#                weighted ones fused on neighbouring axes; see _validate.FilterSpec)
#   "layer"      launcher(x, w, out, stride, dilation, groups, pads): a conv layer on
#                (N, C, D, H, W) arrays (pads None: x is already padded)
#   "layer_weight"  launcher(x, go, grad, stride, dilation, groups, pads): the weight
#                gradient of that layer from its input x and grad_output go
#
# A new device is a kernels/<device>/ folder with the same launcher names plus one block
# here (and its ``DEVICES`` entry).
REGISTRY = {
    ("correlate", "direct", "cpu"): ("fastconv.kernels.cpu.direct", "correlate"),
    ("correlate", "fft", "cpu"): ("fastconv.kernels.cpu.fft", "correlate_fft"),
    ("correlate", "oa", "cpu"): ("fastconv.kernels.cpu.fft", "correlate_oa"),
    ("correlate", "separable", "cpu"): ("fastconv.kernels.cpu.separable",
                                        "correlate_separable"),
    ("batched", "fft", "cpu"): ("fastconv.kernels.cpu.fft", "correlate_batched"),
    ("filter", "passes", "cpu"): ("fastconv.kernels.cpu.filters1d", "run_passes"),
    ("layer", "direct", "cpu"): ("fastconv.kernels.cpu.nn", "layer_direct"),
    ("layer", "gemm", "cpu"): ("fastconv.kernels.cpu.nn", "layer_gemm"),
    ("layer", "fft", "cpu"): ("fastconv.kernels.cpu.nn", "layer_fft"),
    ("layer", "winograd", "cpu"): ("fastconv.kernels.cpu.nn", "layer_winograd"),
    ("layer_weight", "gemm", "cpu"): ("fastconv.kernels.cpu.nn", "weight_gemm"),
    ("layer_weight", "direct", "cpu"): ("fastconv.kernels.cpu.nn", "weight_direct"),
}

# Per device: how the tuner waits for queued work before it stops a clock (None: calls
# return when their work is done).
DEVICES = {
    "cpu": {"sync": None},
}


_LOADED: dict = {}


def available(kind: str, method: str, device: str = "cpu") -> bool:
    return (kind, method, device) in REGISTRY


def methods(kind: str, device: str = "cpu") -> tuple:
    """The methods registered for an operation kind on a device, in registry order."""
    return tuple(m for k, m, d in REGISTRY if k == kind and d == device)


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
