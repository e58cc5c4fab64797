"""The one place that decides how kernels are compiled and how parallel kernels are run.

* ``jit``: ``numba.njit`` with the on-disk cache, falling back to no cache when no cache
  folder is writable (numba raises at decoration time then), and with a fast-math set
  that keeps NaN/Inf semantics (no ``nnan``/``ninf``): NaN must reach the outputs whose
  window holds it, whatever the kernel.
* The threading layer: unless the user chose one (NUMBA_THREADING_LAYER), ask numba for a
  thread-safe layer (tbb if it loads, else OpenMP, never workqueue, which aborts the
  process when two Python threads enter a parallel region).
* ``run_parallel``: if the layer in force is workqueue anyway (the user forced it), parallel
  calls are serialised under a lock instead of aborting.
"""
from __future__ import annotations

import ctypes
import os
import threading

import numba

FASTMATH = frozenset({"contract", "reassoc", "nsz", "arcp"})


def _preload_tbb() -> bool:
    """The pip ``tbb`` wheel puts libtbb.so.12 where the loader does not look; load it by
    path so numba's tbb layer can start."""
    try:
        import importlib.metadata as md
        files = md.files("tbb") or []
    except Exception:
        return False
    for f in files:
        if f.name == "libtbb.so.12":
            try:
                ctypes.CDLL(str(f.locate()), mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                return False
    return False


def _choose_threading_layer() -> str:
    """The layer asked for, as a stable string (it goes into the tuner's fingerprint)."""
    if "NUMBA_THREADING_LAYER" in os.environ:
        return os.environ["NUMBA_THREADING_LAYER"]  # the user's choice stands
    tbb = _preload_tbb()
    numba.config.THREADING_LAYER = "threadsafe"
    return "threadsafe(tbb)" if tbb else "threadsafe"


REQUESTED_LAYER = _choose_threading_layer()

_PARALLEL_LOCK = threading.Lock()
_serialise: bool | None = None   # None until the layer is known (after the first call)


def _layer_is_workqueue() -> bool | None:
    try:
        return numba.threading_layer() == "workqueue"
    except ValueError:  # no parallel region has run yet
        return None


def run_parallel(kernel, *args):
    """Call a ``parallel=True`` kernel, serialising calls only under the workqueue layer."""
    global _serialise
    if _serialise is False:
        return kernel(*args)
    with _PARALLEL_LOCK:
        result = kernel(*args)
        _serialise = _layer_is_workqueue()
    return result


def threading_layer() -> str:
    """The numba threading layer in force, or what will be asked for if none ran yet."""
    try:
        return numba.threading_layer()
    except ValueError:
        return f"not started (requested: {numba.config.THREADING_LAYER})"


def jit(parallel: bool = False, fastmath: bool = True, cache: bool = True, **options):
    """Decorator: ``numba.njit`` with fastconv's compile options."""
    opts = dict(parallel=parallel, nogil=True, error_model="numpy", **options)
    if fastmath:
        opts["fastmath"] = set(FASTMATH)

    def decorate(fn):
        if cache:
            try:
                return numba.njit(cache=True, **opts)(fn)
            except RuntimeError:  # "cannot cache function ...: no locator available"
                pass
        return numba.njit(cache=False, **opts)(fn)

    return decorate
