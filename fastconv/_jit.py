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
* ``jit(slp=True)``: compile with LLVM's SLP (straight-line) vectoriser on, which numba
  leaves off by default. Register-tiled kernels (kernels/cpu/_nn_tiles.py) are written as
  scalar code over a tile of adjacent outputs and only SLP turns that into vector FMAs
  with the accumulators held in registers; the switch is flipped under numba's compiler
  lock for that compile alone, so no other function's code changes.
"""
from __future__ import annotations

import ctypes
import os
import threading

import numba

FASTMATH = frozenset({"contract", "reassoc", "nsz", "arcp"})
# Without reassociation: a reduction loop then stays scalar for the loop vectoriser, which
# leaves it to SLP to vectorise across the independent accumulators of a register tile
# (with "reassoc" the loop vectoriser vectorises the tap loop instead, with gathers).
FASTMATH_ORDERED = frozenset({"contract", "nsz", "arcp"})


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


def _with_slp(dispatcher):
    """Make every compile of ``dispatcher`` (lazy, per signature; a load from the on-disk
    cache goes through here too) run with numba's SLP vectoriser switched on."""
    from numba.core import config
    from numba.core.compiler_lock import global_compiler_lock
    compile_ = dispatcher.compile

    def compile_with_slp(sig):
        # numba reads the setting when it builds each pass manager, inside compile; all
        # compiles hold this (re-entrant) lock, so none other sees the switch.
        with global_compiler_lock:
            saved = config.SLP_VECTORIZE
            config.SLP_VECTORIZE = 1
            try:
                return compile_(sig)
            finally:
                config.SLP_VECTORIZE = saved

    dispatcher.compile = compile_with_slp
    return dispatcher


def jit(parallel: bool = False, fastmath=True, cache: bool = True, slp: bool = False,
        **options):
    """Decorator: ``numba.njit`` with fastconv's compile options. ``fastmath`` is True
    (``FASTMATH``), False, or a flag set such as ``FASTMATH_ORDERED``; ``slp`` switches
    on the SLP vectoriser for this function's compiles."""
    opts = dict(parallel=parallel, nogil=True, error_model="numpy", **options)
    if fastmath:
        opts["fastmath"] = set(FASTMATH if fastmath is True else fastmath)

    def decorate(fn):
        disp = None
        if cache:
            try:
                disp = numba.njit(cache=True, **opts)(fn)
            except RuntimeError:  # "cannot cache function ...: no locator available"
                pass
        if disp is None:
            disp = numba.njit(cache=False, **opts)(fn)
        return _with_slp(disp) if slp else disp

    return decorate
