"""The auto-tuner behind ``method="auto"``.

Choice order for one call (``decide``; the dispatcher calls it, ``_dispatch.py``):

1. **Guards** decide which methods may run at all (``candidates``): integer and bool
   inputs take FFT/OA only inside scipy's exactness bound (bool never), and separable
   only with exact integer factors; a kernel must factor (or, in 2-D, be of low rank) to
   run separably; a kernel with a NaN or Inf tap runs directly (a transform would spread
   it over every output, and no factorisation of it is meaningful). A guard always beats
   a timing. Non-finite *data* needs no guard: the FFT/OA launchers keep NaN/Inf local.
2. **Cache**: the in-process memo, then this machine's tuning file (``_store``).
3. **Measure** (tuning mode ``measure``, the default): when the cost model cannot
   separate the best candidates (within ``MEASURE_MARGIN``) and the call is expensive
   enough to be worth it (``MEASURE_MIN_S``: measuring costs about ten calls, once per
   machine), the plausible candidates are timed through the dispatcher's ``runner``
   (warm-up excluded, interleaved, the device's synchronise hook before each clock stops,
   bounded by ``FASTCONV_TUNE_BUDGET``) and the result is stored on disk.
4. **Model**: otherwise the cost model's prediction.

Tuning mode ``model`` uses the cache and the model but never measures; ``off`` uses the
model alone (no cache reads or writes). Set it with ``FASTCONV_TUNE``,
``fastconv.set_tuning`` or ``with fastconv.tuning(...)``.

The tuner never imports the public layer or runs a kernel itself: the dispatcher hands it
a ``runner(method, params)`` that executes one call the way a user's call runs.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .. import _config
from .._finite import all_finite
from .._memo import LRU
from ..kernels import DEVICES, available, device_sync, device_timer
from . import _model
from ._bench import time_interleaved
from ._key import device_tag, fingerprint, fingerprint_id, layout, make_key
from ._store import store

__all__ = ["decide", "choose_custom", "candidates", "key_for", "Decision", "cache_info",
           "clear_cache", "export", "import_", "separable_params", "finite_kernel",
           "predicted_seconds", "transfer_seconds", "device_key"]

MEASURE_MARGIN = 3.0     # measure when the runner-up is predicted within 3x of the best
MEASURE_MIN_S = 2e-4     # ... and the best is predicted to take at least 0.2 ms
FLOAT_METHODS = ("separable", "fft", "oa")


@dataclass
class Decision:
    """Which method runs for a call, where, and why. Shared by every call with the same
    signature (the dispatcher memoises it): treat it as read-only."""
    method: str
    params: dict
    reason: str                  # explicit | guard | cache | measured | model
    key: str = ""
    times: dict = field(default_factory=dict)       # measured (fastest rounds, seconds)
    predicted: dict = field(default_factory=dict)   # cost-model seconds
    excluded: dict = field(default_factory=dict)    # method -> guard that ruled it out
    tuning_s: float = 0.0
    device: str = "cpu"
    tune: str = ""               # the tuning mode in force when it was decided
    # device="auto" on NumPy data: seconds per device ("cpu"; "cuda" with its copies),
    # measured or modelled (``placement_reason``), behind ``device``
    placement: dict = field(default_factory=dict)
    placement_reason: str = ""

    def __str__(self) -> str:
        lines = [f"method: {self.method} ({self.reason}) on {self.device}",
                 f"tuning: {self.tune or _config.get().tune}", f"key: {self.key}"]
        if self.placement:
            lines.append(f"device: {self.device} ({self.placement_reason}; cuda includes "
                         f"the copies to and from the GPU)")
            for dev, t in sorted(self.placement.items()):
                lines.append(f"  {dev:<10} {t * 1e3:9.3f} ms")
        for m in sorted(set(self.times) | set(self.predicted)):
            t = self.times.get(m)
            p = self.predicted.get(m)
            lines.append(f"  {m:<10} measured {t * 1e3:9.3f} ms" if t is not None else
                         f"  {m:<10} measured         -   ")
            if p is not None:
                lines[-1] += f"   model {p * 1e3:9.3f} ms"
        for m, why in self.excluded.items():
            lines.append(f"  {m:<10} excluded: {why}")
        if self.tuning_s:
            lines.append(f"tuning time: {self.tuning_s:.3f} s")
        return "\n".join(lines)


# ---- guards ------------------------------------------------------------------------------

_FACTOR_MEMO = LRU(64)


def finite_kernel(wk: np.ndarray) -> bool:
    """Whether every tap is finite."""
    return all_finite(wk)


def separable_params(wk: np.ndarray, device: str = "cpu"):
    """``{"factors": [term, ...]}`` for a prepared kernel that is a product of 1-D kernels
    (one term) or, in 2-D, of low rank cheaper than direct (r terms); None otherwise
    (also for a kernel with a non-finite tap: LAPACK is never handed one).
    Integer kernels need exact integer factors. Memoised by the kernel's dtype and bytes."""
    if wk.ndim < 2 or not available("correlate", "separable", device):
        return None
    if not finite_kernel(wk):
        return None
    key = (wk.shape, wk.dtype.str, wk.tobytes())
    hit = _FACTOR_MEMO.get(key)
    if hit is not None:
        return hit[0]
    from .._separable import low_rank_factors, separable_factors
    terms = None
    one = separable_factors(wk, wk.dtype)
    if one is not None:
        terms = [one]
    elif wk.ndim == 2 and wk.dtype.kind in "fc":
        terms = low_rank_factors(wk, wk.dtype)
    params = None if terms is None else {"factors": terms}
    _FACTOR_MEMO.put(key, (params,))
    return params


def fft_guard(spec, x, wk) -> str | None:
    """Why FFT/OA may not run this call (None: they may). Integer data in GPU memory is
    judged by its dtype's largest magnitude (reading its values would cost a copy)."""
    from .._fftsize import fft_is_exact
    if spec.result_dtype == np.bool_:
        return "bool input (scipy computes it directly)"
    if spec.compute_dtype.kind in "iu":
        exact = (fft_is_exact(x, wk, spec.cval, spec.boundary, spec.out_shape)
                 if isinstance(x, np.ndarray) else _device_int_exact(spec, x, wk))
        if not exact:
            return "integer input beyond the float64 exactness bound"
    if not finite_kernel(wk):
        return "non-finite kernel tap (a transform spreads it over every output)"
    return None


_DEVICE_EXACT = LRU(64)


def _device_int_exact(spec, x, wk) -> bool:
    """fft_is_exact for integer data on a GPU, with every sample at its dtype's largest
    magnitude (a zero-stride stand-in of x's shape, so sizes and transform lengths are
    the call's), memoised by the spec, x's dtype and the kernel."""
    key = (spec, np.dtype(x.dtype).str, wk.dtype.str, wk.tobytes())
    hit = _DEVICE_EXACT.get(key)
    if hit is not None:
        return hit[0]
    from .._fftsize import fft_is_exact
    dt = np.dtype(x.dtype)
    info = np.iinfo(dt) if dt.kind in "iu" else np.iinfo(np.uint8)
    big = info.min if -int(info.min) > int(info.max) else info.max
    probe = np.broadcast_to(np.array(big, dt if dt.kind in "iu" else np.uint8), x.shape)
    ok = fft_is_exact(probe, wk, spec.cval, spec.boundary, spec.out_shape)
    _DEVICE_EXACT.put(key, (ok,))
    return ok


def method_params(spec, method: str) -> dict:
    """The launcher parameters a method needs beyond the spec, decided here and not in
    the launcher: overlap-add's block shape (the measured rule of ``_fftsize``)."""
    if method == "oa":
        from .._fftsize import oa_block_shape
        return {"block": oa_block_shape(spec.out_shape, spec.w_shape,
                                        spec.compute_dtype.kind != "c")}
    return {}


def model_costs(spec, allowed: dict) -> dict:
    """The cost model's seconds for each ``{method: params}`` of ``allowed`` (no
    measuring, no cache)."""
    return {m: _model.predict(spec, m, p, _constants()) for m, p in allowed.items()}


def candidates(spec, x, wk) -> tuple[dict, dict]:
    """({method: params} that may run, {method: why not}) for this call; ``wk`` is the
    prepared kernel (``_dispatch.prepare_kernel``)."""
    allowed, excluded = {"direct": {}}, {}
    integer = spec.compute_dtype.kind in "iu"
    why_fft = fft_guard(spec, x, wk)
    for m in ("fft", "oa"):
        if not available(spec.kind, m, spec.device):
            excluded[m] = "not available"
        elif why_fft:
            excluded[m] = why_fft
        else:
            allowed[m] = method_params(spec, m)
    if spec.ndim < 2:
        excluded["separable"] = "1-D kernel"
    else:
        params = separable_params(wk, spec.device)
        if params is None:
            excluded["separable"] = (
                "not available" if not available(spec.kind, "separable", spec.device)
                else "non-finite kernel tap" if not finite_kernel(wk)
                else "kernel does not factor (exactly, for integers)" if integer
                else "kernel does not factor cheaply")
        else:
            allowed["separable"] = params
    return allowed, excluded


# ---- choice ------------------------------------------------------------------------------

_MEMO = LRU(4096)          # fast key -> {"times": {...}, "predicted": {...}, "reason": ...}
# Two threads never tune one key at once: a lock per key, from a fixed set of stripes
# (bounded; two keys that share a stripe only wait for each other while tuning).
_TUNE_LOCKS = tuple(threading.Lock() for _ in range(64))


def key_for(spec, x, allowed) -> str:
    sep = allowed.get("separable")
    tag = f"sep{len(sep['factors'])}" if sep else "nosep"
    return make_key(spec, layout(x), _threads(), spec.device) + "|" + tag


_HOT = LRU(4096)    # the whole decision of a floating call, by spec, kernel and context


_num_threads = None


def _threads() -> int:
    """The calling Python thread's thread count, through the cheapest reader (``_jit``,
    imported on first use so that ``import fastconv`` does not load numba)."""
    global _num_threads
    if _num_threads is None:
        from .._jit import num_threads
        _num_threads = num_threads
    return _num_threads()


def _after_fork_in_child():
    # A lock held by another thread of the parent at fork time stays held forever in the
    # child (that thread does not exist there): the child starts with fresh ones.
    global _TUNE_LOCKS
    _TUNE_LOCKS = tuple(threading.Lock() for _ in range(len(_TUNE_LOCKS)))
    for memo in (_MEMO, _HOT, _FACTOR_MEMO):
        memo.reset_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def decide(spec, x, wk, runner, force_measure: bool = False) -> Decision:
    """The :class:`Decision` of ``method="auto"`` for a ConvSpec call. ``wk`` is the
    prepared kernel; ``runner(method, params)`` runs one call (for measuring)."""
    cfg = _config.get()
    hot_key = None
    if not force_measure and spec.compute_dtype.kind in "fc" and wk.size <= 4096:
        # A hit is one dict lookup: nothing else here depends on the input values
        # (integer inputs do, through the FFT exactness bound, so they skip this memo).
        # The kernel's dtype is part of the key: equal bytes of another dtype are
        # another kernel.
        hot_key = (spec, wk.dtype.str, wk.tobytes(), layout(x), _threads(), cfg.tune,
                   cfg.cache_dir)
        hit = _HOT.get(hot_key)
        if hit is not None:
            return hit
    d = _decide(spec, x, wk, runner, force_measure, cfg)
    if hot_key is not None:
        _HOT.put(hot_key, d)
    return d


def _decide(spec, x, wk, runner, force_measure, cfg):
    allowed, excluded = candidates(spec, x, wk)
    if len(allowed) == 1 and not force_measure:
        m = next(iter(allowed))
        return Decision(m, allowed[m], "guard", key_for(spec, x, allowed),
                        excluded=excluded, device=spec.device, tune=cfg.tune)
    sep = allowed.get("separable")
    fast_key = (spec, layout(x), _threads(), len(sep["factors"]) if sep else 0,
                cfg.tune, cfg.cache_dir)
    info = None if force_measure else _MEMO.get(fast_key)
    if info is None:
        key = key_for(spec, x, allowed)
        info = _cached_or_tuned(
            key, fast_key, cfg, force_measure,
            lambda: {m: _model.predict(spec, m, p, _constants()) for m, p in allowed.items()},
            lambda m: runner(m, allowed[m]), device_sync(spec.device),
            device_timer(spec.device))
    scores = info["times"] or info["predicted"]
    method = min(scores, key=scores.get)
    if method not in allowed:     # cached winner guarded out: best allowed one
        usable = {m: t for m, t in scores.items() if m in allowed} or {
            m: _model.predict(spec, m, allowed[m], _constants()) for m in allowed}
        method = min(usable, key=usable.get)
    return Decision(method, allowed.get(method, {}), info["reason"], info.get("key", ""),
                    dict(info.get("times", {})), dict(info.get("predicted", {})),
                    excluded, info.get("tuning_s", 0.0), spec.device, cfg.tune)


def _constants():
    if _config.get().tune == "off":
        return None
    return store().model() or None


def _cached_or_tuned(key, fast_key, cfg, force_measure, predict, runner, sync=None,
                     timer=None):
    """The cache / measure / model steps for any tunable operation: ``predict()`` gives
    the model's seconds per allowed method, ``runner(method)`` runs one call, ``sync``
    waits for the device's queued work (None on the CPU), ``timer`` times one call on the
    device's clock (CUDA events; None: the host clock)."""
    with _TUNE_LOCKS[hash(key) % len(_TUNE_LOCKS)]:
        if not force_measure:
            hit = _MEMO.get(fast_key)
            if hit is not None:
                return hit
        predicted = predict()
        info = None
        if cfg.tune != "off" and not force_measure:
            entry = store().get(key)
            if entry is not None:
                info = {"times": dict(entry.get("times", {})), "predicted": predicted,
                        "reason": "cache", "tuning_s": entry.get("tuning_s", 0.0)}
        if info is None:
            if force_measure or (cfg.tune == "measure" and _worth_measuring(predicted)):
                info = _measure(key, predicted, runner, cfg.tune_budget_s, sync,
                                everything=force_measure, timer=timer)
            else:
                info = {"times": {}, "predicted": predicted, "reason": "model"}
        info["key"] = key
        _MEMO.put(fast_key, info)
        return info


def _worth_measuring(predicted: dict) -> bool:
    ranked = sorted(predicted.values())
    return (len(ranked) > 1 and ranked[0] >= MEASURE_MIN_S
            and ranked[1] <= MEASURE_MARGIN * ranked[0])


def _measure(key, predicted, runner, budget_s, sync, everything=False, timer=None):
    t_start = time.perf_counter()
    best = min(predicted.values())
    contenders = [m for m in sorted(predicted, key=predicted.get)
                  if everything or predicted[m] <= MEASURE_MARGIN * best]
    times = time_interleaved({m: (lambda m=m: runner(m)) for m in contenders}, budget_s,
                             sync=sync, timer=timer)
    tuning_s = time.perf_counter() - t_start
    choice = min(times, key=times.get)
    store().put(key, {"times": times, "choice": choice, "tuning_s": round(tuning_s, 4)})
    return {"times": times, "predicted": predicted, "reason": "measured",
            "tuning_s": tuning_s}


def choose_custom(key: str, predicted: dict, runner, device: str = "cpu",
                  force_measure: bool = False):
    """The tuner for operations outside the ConvSpec model (conv layers): ``key`` names
    the signature (the thread count and device are added here), ``predicted`` maps each
    allowed method to the caller's model seconds, ``runner(method)`` runs one call.
    Returns (method, reason, info)."""
    cfg = _config.get()
    full_key = f"{key}|t{_threads()}|{device}"
    fast_key = ("custom", full_key, cfg.tune, cfg.cache_dir)
    info = None if force_measure else _MEMO.get(fast_key)
    if info is None:
        # device "auto" (the CPU against the GPU with its copies): the runner synchronises
        # itself and the host clock is the only one that sees both sides.
        sync = device_sync(device) if device in DEVICES else None
        timer = device_timer(device) if device in DEVICES else None
        info = _cached_or_tuned(full_key, fast_key, cfg, force_measure,
                                lambda: dict(predicted), runner, sync, timer)
    scores = {m: t for m, t in (info["times"] or info["predicted"]).items()
              if m in predicted} or predicted
    return min(scores, key=scores.get), info["reason"], info


# ---- device="auto": the CPU against the GPU --------------------------------------------------

# Host <-> device copies of pageable NumPy memory: about 12 GB/s each way on PCIe 4/5
# x16 hosts (pinned memory reaches 25-50 GB/s; NumPy arrays are pageable), plus a fixed
# latency per copy. Used only where nothing was measured.
HOST_LINK_BYTES_PER_S = 12e9
HOST_LINK_LATENCY_S = 2e-5


def predicted_seconds(spec, decision) -> float:
    """Seconds of ``decision``'s method on ``spec``: measured if it was, else the model."""
    t = decision.times.get(decision.method)
    if t is None:
        t = decision.predicted.get(decision.method)
    if t is None:
        t = _model.predict(spec, decision.method, decision.params, _constants())
    return float(t)


def transfer_seconds(spec, x) -> float:
    """Model seconds of copying ``x`` to the GPU and the result back."""
    out_bytes = int(np.prod(spec.out_shape)) * np.dtype(spec.result_dtype).itemsize
    return 2 * HOST_LINK_LATENCY_S + (x.nbytes + out_bytes) / HOST_LINK_BYTES_PER_S


def device_key(spec, x) -> str:
    """The tuning key of the device choice for a NumPy call: the CPU call's key and the
    GPU it was weighed against."""
    return "device|" + key_for(spec, x, {}) + "|" + device_tag("cuda")


# ---- cache management ----------------------------------------------------------------------

def cache_info() -> dict:
    s = store()
    import os
    size = os.path.getsize(s.path) if os.path.exists(s.path) else 0
    return {"path": s.path, "directory": s.directory, "entries": len(s.entries()),
            "bytes": size, "fingerprint": fingerprint(), "fingerprint_id": fingerprint_id(),
            "calibrated": bool(s.model()), "memo_entries": len(_MEMO)}


def clear_cache(memory_only: bool = False) -> int:
    """Forget the in-process decisions and (unless ``memory_only``) delete this machine's
    tuning file; returns the number of entries removed. Raises OSError when the file
    cannot be removed."""
    _MEMO.clear()
    _HOT.clear()
    return 0 if memory_only else store().clear()


def export(path: str) -> int:
    """Write this machine's tuning results to ``path``; returns the entry count."""
    return store().export(path)


def import_(path: str) -> dict:
    """Merge tuning results exported on a machine of the same fingerprint; returns
    ``{"accepted": n, "rejected": n, "reasons": [...]}``."""
    report = store().import_(path)
    clear_cache(memory_only=True)
    return report


# ---- the FFT methods' scipy.fft backend ------------------------------------------------------

def _backend_file() -> str:
    return os.path.join(store().directory, f"fft-backend-{fingerprint_id()}.json")


def _installed_versions(names) -> dict:
    from importlib import metadata
    dist = {"mkl": "mkl_fft", "pyfftw": "pyFFTW"}
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(dist.get(n, n))
        except metadata.PackageNotFoundError:
            out[n] = "?"
    return out


def choose_fft_backend(names) -> dict:
    """``_fftsize``'s chooser for ``FASTCONV_FFT_BACKEND=auto`` with alternatives
    installed: {rank: backend}. The calibration (``_fftsize.time_backends``, seconds)
    runs once per machine and set of installed backends and is stored beside the
    tuning cache; later processes read it. Tuning mode ``off`` reads a stored choice but
    never measures (pocketfft then)."""
    import json

    from .. import _fftsize
    versions = _installed_versions(names)
    path = _backend_file()
    allowed = ("scipy",) + tuple(names)

    def stored():
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            choice = {int(r): n for r, n in data["choice"].items()}
            if (data.get("installed") == versions and set(choice) == set(_fftsize.RANKS)
                    and all(n in allowed for n in choice.values())):
                return choice
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return None

    choice = stored()
    if choice is not None:
        return choice
    if _config.get().tune == "off":
        return dict.fromkeys(_fftsize.RANKS, "scipy")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        import filelock
        # One process calibrates; processes starting at the same time wait and read its
        # answer (calibrations run side by side compete for the cores and can disagree,
        # which would split one signature's tuning keys between backends).
        lock = filelock.FileLock(path + ".lock", timeout=60)
        lock.acquire()
    except Exception:           # unwritable folder, lock timeout: calibrate unlocked
        lock = None
    try:
        choice = stored()
        if choice is None:
            times = _fftsize.time_backends(names)
            choice = _fftsize.choose_backend(names, times)
            try:
                tmp = f"{path}.{os.getpid()}.tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump({"installed": versions, "times": times, "choice": choice}, f)
                os.replace(tmp, path)
            except OSError:
                pass
    finally:
        if lock is not None:
            lock.release()
    return choice


def _install_backend_chooser():
    from .. import _fftsize
    _fftsize.set_backend_chooser(choose_fft_backend)


_install_backend_chooser()
