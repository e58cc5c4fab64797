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

# (method, device) -> (module, launcher name). Modules are imported on first use, so a
# CUDA module is only imported when a CUDA path runs.
REGISTRY = {
    ("direct", "cpu"): ("fastconv.kernels.cpu.direct", "correlate"),
    ("fft", "cpu"): ("fastconv.kernels.cpu.fft", "correlate_fft"),
    ("oa", "cpu"): ("fastconv.kernels.cpu.fft", "correlate_oa"),
    ("separable", "cpu"): ("fastconv.kernels.cpu.separable", "correlate_separable"),
}


_LOADED: dict = {}


def get_launcher(method: str, device: str = "cpu"):
    """The launcher ``f(x, w, out, start, boundary, cval, **params)`` of a method."""
    fn = _LOADED.get((method, device))
    if fn is not None:
        return fn
    import importlib
    try:
        module, name = REGISTRY[(method, device)]
    except KeyError:
        raise ValueError(f"method {method!r} is not available on device {device!r}") from None
    fn = _LOADED[(method, device)] = getattr(importlib.import_module(module), name)
    return fn
