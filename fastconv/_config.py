"""Every FASTCONV_* environment variable and the thread-count setting, read in one place.

A bad value never breaks an import: it warns once and falls back to the default.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import warnings
from dataclasses import dataclass, replace

__all__ = [
    "Config", "get", "override", "get_num_threads", "set_num_threads", "threads",
    "resolve_workers", "workers_scope", "get_tuning", "set_tuning", "tuning",
]

TUNE_VALUES = ("off", "model", "measure")
FIRST_CALL_VALUES = ("tier", "compile")
DEVICE_VALUES = ("cpu", "cuda", "auto")
FFT_BACKEND_VALUES = ("auto", "scipy", "mkl", "pyfftw")


@dataclass(frozen=True)
class Config:
    cache_dir: str | None = None      # FASTCONV_CACHE_DIR: the tuner's cache folder
    tune: str = "measure"             # FASTCONV_TUNE: off | model | measure
    device: str = "cpu"               # FASTCONV_DEVICE: where NumPy data runs by default
                                      # (cpu | cuda | auto; GPU arrays run where they live)
    tune_budget_s: float = 2.0        # FASTCONV_TUNE_BUDGET: seconds of measuring per signature
    first_call: str = "tier"          # FASTCONV_FIRST_CALL: tier | compile (_firstcall.py)
    fft_backend: str = "auto"         # FASTCONV_FFT_BACKEND: auto | scipy | mkl | pyfftw
                                      # (_fftsize: scipy.fft backend of the FFT methods)


def _choice(cfg: Config, field: str, var: str, values: tuple) -> Config:
    """``cfg`` with ``field`` set from environment variable ``var`` when its value is one
    of ``values``; any other value warns and keeps the default."""
    value = os.environ.get(var, "").strip().lower()
    if not value:
        return cfg
    if value in values:
        return replace(cfg, **{field: value})
    warnings.warn(f"{var}={value!r} is not one of {values}; using "
                  f"{getattr(cfg, field)!r}", RuntimeWarning, stacklevel=4)
    return cfg


def _from_env() -> Config:
    env = os.environ
    cfg = Config(cache_dir=env.get("FASTCONV_CACHE_DIR") or None)
    cfg = _choice(cfg, "tune", "FASTCONV_TUNE", TUNE_VALUES)
    cfg = _choice(cfg, "device", "FASTCONV_DEVICE", DEVICE_VALUES)
    cfg = _choice(cfg, "first_call", "FASTCONV_FIRST_CALL", FIRST_CALL_VALUES)
    cfg = _choice(cfg, "fft_backend", "FASTCONV_FFT_BACKEND", FFT_BACKEND_VALUES)
    budget = env.get("FASTCONV_TUNE_BUDGET", "").strip()
    if budget:
        try:
            value = float(budget)
            if not value > 0:
                raise ValueError
            cfg = replace(cfg, tune_budget_s=value)
        except ValueError:
            warnings.warn(f"FASTCONV_TUNE_BUDGET={budget!r} is not a positive number; "
                          f"using {cfg.tune_budget_s}", RuntimeWarning, stacklevel=3)
    return cfg


_CONFIG = _from_env()
_CONFIG_LOCK = threading.Lock()
# A scoped override (``tuning()``, ``override()``) holds for the calling thread (context)
# only, so one thread's ``with`` block never changes what another thread's calls do.
_SCOPED: contextvars.ContextVar = contextvars.ContextVar("fastconv_config", default=None)


def get() -> Config:
    """The configuration in force in this thread (context)."""
    scoped = _SCOPED.get()
    return _CONFIG if scoped is None else scoped


def _checked(cfg: Config) -> Config:
    if cfg.tune not in TUNE_VALUES:
        raise ValueError(f"tune must be one of {TUNE_VALUES}, got {cfg.tune!r}")
    if cfg.first_call not in FIRST_CALL_VALUES:
        raise ValueError(f"first_call must be one of {FIRST_CALL_VALUES}, got "
                         f"{cfg.first_call!r}")
    return cfg


def set_first_call(mode: str) -> str:
    """Set the process-wide first-call mode (what ``FASTCONV_FIRST_CALL`` sets at import);
    returns the previous one. Benchmarks, ``tune``, ``warmup`` and the demo set
    ``"compile"``: they measure or compile the kernels themselves."""
    if mode not in FIRST_CALL_VALUES:
        raise ValueError(f"first-call mode must be one of {FIRST_CALL_VALUES}, got {mode!r}")
    return _set_process_wide("first_call", mode)


def _set_process_wide(field: str, value):
    """Replace one field of the process-wide configuration; returns its previous value."""
    global _CONFIG
    with _CONFIG_LOCK:
        old = getattr(_CONFIG, field)
        _CONFIG = replace(_CONFIG, **{field: value})
    return old


def first_call_mode() -> str:
    """``"tier"``: a call whose kernels are not compiled yet runs a method that needs no
    compile while they compile in the background (``_firstcall.py``); ``"compile"``:
    it compiles them first."""
    return get().first_call


@contextlib.contextmanager
def override(**changes):
    """Temporarily replace configuration fields in this thread (tests, benchmarks)."""
    new = _checked(replace(get(), **changes))
    token = _SCOPED.set(new)
    try:
        yield new
    finally:
        _SCOPED.reset(token)


# -- tuning mode, from code -----------------------------------------------------------------

def get_tuning() -> str:
    """The tuning mode in force: ``"measure"`` (time the plausible methods once per call
    signature and machine, cache the result on disk), ``"model"`` (cache and cost model,
    never measure) or ``"off"`` (cost model alone, no cache reads or writes)."""
    return get().tune


def _tune_value(mode) -> str:
    if not isinstance(mode, str):
        raise TypeError(f"tuning mode must be a string, got {type(mode).__name__}")
    value = mode.strip().lower()
    if value not in TUNE_VALUES:
        raise ValueError(f"tuning mode must be one of {TUNE_VALUES}, got {mode!r}")
    return value


def set_tuning(mode: str) -> str:
    """Set the process-wide tuning mode (what ``FASTCONV_TUNE`` sets at import); returns
    the previous one. A ``with tuning(...)`` block in force in a thread still wins there."""
    return _set_process_wide("tune", _tune_value(mode))


@contextlib.contextmanager
def tuning(mode: str):
    """Context manager: calls made in this thread (context) inside the block use tuning
    mode ``mode``; other threads are not affected."""
    with override(tune=_tune_value(mode)) as cfg:
        yield cfg.tune


# -- threads -----------------------------------------------------------------------------
# numba.set_num_threads is per calling thread, so a context manager in one Python thread
# never changes the thread count another Python thread sees.

_nb = None


def _numba():
    """numba, loaded on first use (``import fastconv`` stays light), through ``_jit``:
    importing ``_jit`` chooses the threading layer, which must happen before anything
    starts numba's thread pool, as ``numba.get_num_threads`` does."""
    global _nb
    if _nb is None:
        from . import _jit
        _nb = _jit.numba
    return _nb


def get_num_threads() -> int:
    """Threads that fastconv's parallel kernels and scipy.fft use in this Python thread."""
    return _numba().get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the thread count for this Python thread (1 <= n <= numba.config.NUMBA_NUM_THREADS)."""
    _numba().set_num_threads(_check_threads(n))


def _check_threads(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"number of threads must be an integer, got {type(n).__name__}")
    n = int(n)
    top = _numba().config.NUMBA_NUM_THREADS
    if not 1 <= n <= top:
        raise ValueError(f"number of threads must be in [1, {top}], got {n}")
    return n


def resolve_workers(workers) -> int:
    """scipy.fft's ``workers=`` convention: None keeps the current count; a negative value
    counts back from the number of CPUs (-1 = all of them)."""
    if workers is None:
        return get_num_threads()
    if isinstance(workers, bool) or not hasattr(workers, "__index__"):
        raise TypeError(f"workers must be an integer or None, got {type(workers).__name__}")
    workers = int(workers)
    top = _numba().config.NUMBA_NUM_THREADS
    if workers == 0:
        raise ValueError("workers must not be 0")
    if workers < 0:
        workers = top + 1 + workers
        if workers < 1:
            raise ValueError(f"workers value out of range; got a negative count past "
                             f"-{top}")
    return min(workers, top)


@contextlib.contextmanager
def threads(n):
    """Context manager: run fastconv calls in this Python thread on ``n`` threads."""
    n = _check_threads(n)
    nb = _numba()
    old = nb.get_num_threads()
    nb.set_num_threads(n)
    try:
        yield n
    finally:
        nb.set_num_threads(old)


_NO_SCOPE = contextlib.nullcontext()


def workers_scope(workers):
    """Apply a public function's ``workers=`` argument for the duration of one call.
    ``None`` (the common case, on every call's hot path) is a shared no-op context."""
    if workers is None:
        return _NO_SCOPE
    return threads(resolve_workers(workers))
