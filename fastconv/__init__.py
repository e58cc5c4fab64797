"""fastconv: JIT-compiled convolution with scipy.signal semantics and an auto-tuner.

Public re-exports only; see the submodules for the implementations.
"""
__version__ = "0.1.0"

from ._config import (get_num_threads, get_tuning, set_num_threads, set_tuning, threads,
                      tuning)
from ._patch import patch_scipy, scipy_is_patched, scipy_patched, unpatch_scipy
from ._planapi import Plan, explain, plan
from .signal import (choose_conv_method, convolve, convolve2d, correlate, correlate2d,
                     fftconvolve, oaconvolve)

__all__ = [
    "__version__", "convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d",
    "correlate2d",
    "choose_conv_method", "explain", "plan", "Plan", "threads", "get_num_threads",
    "set_num_threads", "tuning", "get_tuning", "set_tuning", "nn", "ndimage",
    "patch_scipy", "unpatch_scipy", "scipy_patched", "scipy_is_patched",
]


def __getattr__(name):
    # fastconv.nn and fastconv.ndimage load on first use (they import their kernels,
    # BLAS controls and scipy pieces that a signal-only user never needs).
    if name in ("nn", "ndimage"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
