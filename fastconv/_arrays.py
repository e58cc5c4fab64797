"""What kind of array came in, read in one place, and the one conversion to NumPy.

Every public function turns its array arguments into NumPy arrays here (``as_array``),
so that adding an array kind (a CuPy or other CUDA array, a Dask array) changes this
module and the dispatcher's engine choice, not every public function.

Kinds today:

* ``"numpy"``: anything NumPy accepts as an array (lists, scalars, ndarrays, objects with
  ``__array__``), computed on the CPU;
* ``"dask"``: a ``dask.array.Array``. The public functions that take one hand it to the
  Dask engine (``engine_for``, ``dask_aware``: ``fastconv.engines.dask``), which returns a
  lazy Dask array; ``as_array`` (used for kernels and by functions without an engine
  path, such as ``fastconv.nn``) converts it to NumPy, computing it, as ``np.asarray``
  and scipy do;
* ``"cuda"``: an array that lives on a GPU (``__cuda_array_interface__``, or a DLPack
  device other than the CPU). No CUDA kernels are built yet, and a silent copy to the
  host would hide a large transfer, so it is refused with a TypeError that says so.
"""
from __future__ import annotations

import numpy as np

__all__ = ["array_kind", "as_array", "device_of", "engine_for", "dask_aware"]

# DLPack device types (dlpack.h): 1 = CPU, 3 = CUDA host (pinned), everything else is a
# device memory.
_DLPACK_HOST = (1, 3)


def array_kind(value) -> str:
    """``"numpy"``, ``"dask"`` or ``"cuda"``: where ``value``'s data lives and who runs it."""
    if isinstance(value, np.ndarray):
        return "numpy"
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    if module.startswith("dask.") and hasattr(value, "chunks") and hasattr(value, "dask"):
        return "dask"
    if hasattr(value, "__cuda_array_interface__"):
        return "cuda"
    dev = getattr(value, "__dlpack_device__", None)
    if dev is not None:
        try:
            if int(dev()[0]) not in _DLPACK_HOST:
                return "cuda"
        except Exception:     # a malformed device query: let NumPy decide below
            pass
    return "numpy"


def device_of(kind: str) -> str:
    """The device that runs work on arrays of ``kind``."""
    return "cuda" if kind == "cuda" else "cpu"


def as_array(value, name: str) -> np.ndarray:
    """``value`` as a NumPy array of a dtype fastconv computes with, or the exception
    scipy would raise, naming the argument."""
    if array_kind(value) == "cuda":
        raise TypeError(
            f"{name} is a GPU array ({type(value).__module__}.{type(value).__name__}); "
            f"this build of fastconv has CPU kernels only. Copy it to the host first "
            f"(e.g. cupy.asnumpy or tensor.cpu().numpy()).")
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind in "SUVMmO":
        raise ValueError(f"{name} has unsupported dtype {arr.dtype}; fastconv convolves "
                         f"bool, integer, floating and complex arrays")
    return arr


def engine_for(*values):
    """The engine module that runs a call on these arguments, or None for the NumPy path:
    a Dask array among them selects ``fastconv.engines.dask`` (imported only then)."""
    for v in values:
        if array_kind(v) == "dask":
            from .engines import dask as engine
            return engine
    return None


def dask_aware(func):
    """Decorator for public functions whose first argument is the data: a Dask array
    goes to the Dask engine (``engine.filter_call``), anything else to ``func``."""
    import functools

    @functools.wraps(func)
    def wrapper(input, *args, **kwargs):
        engine = engine_for(input)
        if engine is not None:
            return engine.filter_call(func, input, args, kwargs)
        return func(input, *args, **kwargs)
    return wrapper
