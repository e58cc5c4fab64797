"""The auto-tuner behind ``method="auto"``.

Choice order for one call (``choose``):

1. **Guards** decide which methods may run at all: integer and bool inputs take FFT/OA only
   inside scipy's exactness bound (bool never), and separable only with exact integer
   factors; a kernel must factor (or, in 2-D, be of low rank) to run separably. A guard
   always beats a timing. Non-finite inputs need no guard: the FFT/OA launchers keep
   NaN/Inf local themselves.
2. **Cache**: the in-process memo, then this machine's tuning file (``_store``).
3. **Measure** (``FASTCONV_TUNE=measure``, the default): when the cost model cannot
   separate the best candidates (within ``MEASURE_MARGIN``) and the call is expensive
   enough to be worth it (``MEASURE_MIN_S``: measuring costs about ten calls, once per
   machine), the plausible candidates are timed (warm-up
   excluded, bounded by ``FASTCONV_TUNE_BUDGET``) and the result is stored on disk.
4. **Model**: otherwise the cost model's prediction.

``FASTCONV_TUNE=model`` uses the cache and the model but never measures; ``off`` uses the
model alone (no cache reads or writes).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numba
import numpy as np

from .. import _config, _execute
from ..kernels import REGISTRY
from . import _model
from ._bench import time_call, time_interleaved
from ._key import fingerprint, fingerprint_id, layout, make_key
from ._store import store

__all__ = ["choose", "decide", "choose_custom", "Decision", "cache_info", "clear_cache",
           "export", "import_", "calibrate", "measure_all", "resolve_explicit"]

MEASURE_MARGIN = 3.0     # measure when the runner-up is predicted within 3x of the best
MEASURE_MIN_S = 2e-4     # ... and the best is predicted to take at least 0.2 ms
FLOAT_METHODS = ("separable", "fft", "oa")


@dataclass
class Decision:
    """Which method runs for a call, and why."""
    method: str
    params: dict
    reason: str                  # explicit | guard | cache | measured | model
    key: str = ""
    times: dict = field(default_factory=dict)       # measured medians (seconds)
    predicted: dict = field(default_factory=dict)   # cost-model seconds
    excluded: dict = field(default_factory=dict)    # method -> guard that ruled it out
    tuning_s: float = 0.0

    def __str__(self) -> str:
        lines = [f"method: {self.method} ({self.reason})", f"key: {self.key}"]
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

def _available(method: str) -> bool:
    return (method, "cpu") in REGISTRY


_FACTOR_MEMO: OrderedDict = OrderedDict()
_FACTOR_LOCK = threading.Lock()


def separable_params(wk: np.ndarray):
    """``{"factors": [term, ...]}`` for a prepared kernel that is a product of 1-D kernels
    (one term) or, in 2-D, of low rank cheaper than direct (r terms); None otherwise.
    Integer kernels need exact integer factors. Memoised by the kernel's bytes."""
    if wk.ndim < 2 or not _available("separable"):
        return None
    key = (wk.shape, wk.dtype.str, wk.tobytes())
    with _FACTOR_LOCK:
        if key in _FACTOR_MEMO:
            _FACTOR_MEMO.move_to_end(key)
            return _FACTOR_MEMO[key]
    from .._separable import low_rank_factors, separable_factors
    terms = None
    one = separable_factors(wk, wk.dtype)
    if one is not None:
        terms = [one]
    elif wk.ndim == 2 and wk.dtype.kind in "fc":
        terms = low_rank_factors(wk, wk.dtype)
    params = None if terms is None else {"factors": terms}
    with _FACTOR_LOCK:
        _FACTOR_MEMO[key] = params
        while len(_FACTOR_MEMO) > 64:
            _FACTOR_MEMO.popitem(last=False)
    return params


def candidates(spec, x, w, wk=None) -> tuple[dict, dict]:
    """({method: params} that may run, {method: why not}) for this call.

    Non-finite inputs need no guard here: the FFT/OA launchers keep NaN/Inf local
    themselves (they transform the finite part and add the non-finite samples'
    contributions back to exactly the outputs whose window holds them).
    """
    from ..kernels.cpu.fft import fft_is_exact
    allowed, excluded = {"direct": {}}, {}
    integer = spec.compute_dtype.kind in "iu"
    for m in ("fft", "oa"):
        if not _available(m):
            excluded[m] = "not available"
        elif spec.result_dtype == np.bool_:
            excluded[m] = "bool input (scipy computes it directly)"
        elif integer and not fft_is_exact(x, w, spec.cval):
            excluded[m] = "integer input beyond the float64 exactness bound"
        else:
            allowed[m] = {}
    if spec.ndim < 2:
        excluded["separable"] = "1-D kernel"
    else:
        if wk is None:
            wk = _execute.prepare_kernel(spec, w)
        params = separable_params(wk)
        if params is None:
            excluded["separable"] = ("not available" if not _available("separable")
                                     else "kernel does not factor (exactly, for integers)"
                                     if integer else "kernel does not factor cheaply")
        else:
            allowed["separable"] = params
    return allowed, excluded


# ---- choice ------------------------------------------------------------------------------

_MEMO: dict = {}           # key -> {"times": {...}, "predicted": {...}, "reason": ...}
_MEMO_LOCK = threading.Lock()
_TUNE_LOCKS: dict = {}     # key -> lock, so two threads never tune one key at once


def key_for(spec, x, allowed) -> str:
    sep = allowed.get("separable")
    tag = f"sep{len(sep['factors'])}" if sep else "nosep"
    return make_key(spec, layout(x)) + "|" + tag


def choose(spec, x, w, wk=None) -> tuple:
    """(method, params, reason) for a call: the hot path of ``method="auto"``."""
    method, params, reason, *_ = _decide(spec, x, w, wk, False)
    return method, params, reason


def decide(spec, x, w, wk=None, force_measure: bool = False) -> Decision:
    """The full :class:`Decision` (what ``fastconv.explain`` shows)."""
    method, params, reason, info, key, excluded = _decide(spec, x, w, wk, force_measure)
    if key is None:
        key = key_for(spec, x, candidates(spec, x, w, wk)[0])
    return Decision(method, params, reason, key, dict(info.get("times", {})),
                    dict(info.get("predicted", {})), excluded, info.get("tuning_s", 0.0))


_HOT: dict = {}     # the whole decision of a floating call, by spec, kernel and context


def _thread_count_reader():
    """numba.get_num_threads() costs ~1 us (it re-checks the pool each call); after the
    pool is up, numba's own per-thread reader is enough."""
    numba.get_num_threads()                       # starts the pool if needed
    try:
        from numba.np.ufunc import parallel as _parallel
        reader = _parallel._get_num_threads
        if reader() == numba.get_num_threads():
            return reader
    except Exception:       # another numba: use the public function
        pass
    return numba.get_num_threads


_num_threads = None


def _threads() -> int:
    """The calling Python thread's thread count, through the cheapest reader."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _thread_count_reader()
    return _num_threads()


def _decide(spec, x, w, wk, force_measure):
    cfg = _config.get()
    hot_key = None
    if not force_measure and spec.compute_dtype.kind in "fc" and w.size <= 4096:
        # A cache hit is one dict lookup: nothing else here depends on the input values
        # (integer inputs do, through the FFT exactness bound, so they skip this memo).
        hot_key = (spec, w.tobytes(), layout(x), _threads(), cfg.tune, cfg.cache_dir)
        hit = _HOT.get(hot_key)
        if hit is not None:
            return hit
    result = _decide_slow(spec, x, w, wk, force_measure, cfg)
    if hot_key is not None:
        if len(_HOT) > 4096:
            _HOT.clear()
        _HOT[hot_key] = result
    return result


def _decide_slow(spec, x, w, wk, force_measure, cfg):
    allowed, excluded = candidates(spec, x, w, wk)
    sep = allowed.get("separable")
    fast_key = (spec, layout(x), _threads(),
                len(sep["factors"]) if sep else 0, cfg.tune, cfg.cache_dir)
    if len(allowed) == 1 and not force_measure:
        m = next(iter(allowed))
        return m, allowed[m], "guard", {}, None, excluded
    info = None if force_measure else _MEMO.get(fast_key)
    if info is None:
        key = key_for(spec, x, allowed)
        info = _lookup_or_tune(spec, x, w, allowed, key, fast_key, cfg, force_measure)
    scores = info["times"] or info["predicted"]
    method = min(scores, key=scores.get)
    reason = info["reason"]
    if method not in allowed:     # cached winner guarded out: best allowed one
        usable = {m: t for m, t in scores.items() if m in allowed} or {
            m: _model.predict(spec, m, allowed[m], _constants()) for m in allowed}
        method = min(usable, key=usable.get)
    return method, allowed.get(method, {}), reason, info, info.get("key", ""), excluded


def _constants():
    if _config.get().tune == "off":
        return None
    return store().model() or None


def _lookup_or_tune(spec, x, w, allowed, key, fast_key, cfg, force_measure):
    wk = None

    def runner(m):
        nonlocal wk
        if wk is None:
            wk = _execute.prepare_kernel(spec, w)
        return _execute.run(spec, x, w, m, allowed[m], wk=wk)

    return _cached_or_tuned(key, fast_key, cfg, force_measure,
                            lambda: {m: _model.predict(spec, m, p, _constants())
                                     for m, p in allowed.items()}, runner)


def _cached_or_tuned(key, fast_key, cfg, force_measure, predict, runner):
    """The cache / measure / model steps for any tunable operation: ``predict()`` gives
    the model's seconds per allowed method, ``runner(method)`` runs one call."""
    with _MEMO_LOCK:
        lock = _TUNE_LOCKS.setdefault(key, threading.Lock())
    with lock:
        if not force_measure and fast_key in _MEMO:
            return _MEMO[fast_key]
        predicted = predict()
        info = None
        if cfg.tune != "off" and not force_measure:
            entry = store().get(key)
            if entry is not None:
                info = {"times": dict(entry.get("times", {})), "predicted": predicted,
                        "reason": "cache", "tuning_s": entry.get("tuning_s", 0.0)}
        if info is None:
            if force_measure or (cfg.tune == "measure" and _worth_measuring(predicted)):
                info = _measure(key, predicted, runner, cfg.tune_budget_s,
                                everything=force_measure)
            else:
                info = {"times": {}, "predicted": predicted, "reason": "model"}
        info["key"] = key
        _MEMO[fast_key] = info
        return info


def _worth_measuring(predicted: dict) -> bool:
    ranked = sorted(predicted.values())
    return (len(ranked) > 1 and ranked[0] >= MEASURE_MIN_S
            and ranked[1] <= MEASURE_MARGIN * ranked[0])


def _measure(key, predicted, runner, budget_s, everything=False):
    t_start = time.perf_counter()
    best = min(predicted.values())
    contenders = [m for m in sorted(predicted, key=predicted.get)
                  if everything or predicted[m] <= MEASURE_MARGIN * best]
    times = time_interleaved({m: (lambda m=m: runner(m)) for m in contenders}, budget_s)
    tuning_s = time.perf_counter() - t_start
    choice = min(times, key=times.get)
    store().put(key, {"times": times, "choice": choice, "tuning_s": round(tuning_s, 4)})
    return {"times": times, "predicted": predicted, "reason": "measured",
            "tuning_s": tuning_s}


def choose_custom(key: str, predicted: dict, runner, force_measure: bool = False):
    """The tuner for operations outside the ConvSpec model (conv layers): ``key`` names
    the signature (the thread count and device are added here), ``predicted`` maps each
    allowed method to the caller's model seconds, ``runner(method)`` runs one call.
    Returns (method, reason, info)."""
    cfg = _config.get()
    full_key = f"{key}|t{_threads()}|cpu"
    fast_key = ("custom", full_key, cfg.tune, cfg.cache_dir)
    info = None if force_measure else _MEMO.get(fast_key)
    if info is None:
        info = _cached_or_tuned(full_key, fast_key, cfg, force_measure,
                                lambda: dict(predicted), runner)
    scores = {m: t for m, t in (info["times"] or info["predicted"]).items()
              if m in predicted} or predicted
    return min(scores, key=scores.get), info["reason"], info


def resolve_explicit(spec, x, w, method: str):
    """An explicit ``method=``: run it, except where a correctness guard forbids it."""
    if method == "direct":
        return "direct", {}, "explicit"
    if not _available(method):
        raise ValueError(f"method {method!r} is not available in this build")
    allowed, excluded = candidates(spec, x, w)
    if method == "separable":
        if "separable" not in allowed:
            why = excluded.get("separable", "")
            raise ValueError(f"method='separable' needs a kernel that is a product of 1-D "
                             f"kernels (or of low rank); this one is not usable: {why}")
        return "separable", allowed["separable"], "explicit"
    if method not in allowed:
        # Integers beyond the exactness bound stay exact through the direct method.
        return "direct", {}, f"guard: {excluded.get(method)}"
    return method, allowed[method], "explicit"


def measure_all(spec, x, w) -> dict:
    """Time every allowed method for this call (choose_conv_method(measure=True))."""
    d = decide(spec, x, w, force_measure=True)
    return dict(d.times)


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
    with _MEMO_LOCK:
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


def calibrate(progress=None) -> dict:
    """Fit the cost model's constants to this machine from a short micro-benchmark and
    store them. Returns the fitted constants."""
    from .. import signal
    rng = np.random.default_rng(0)
    samples = []
    cases = [((512, 512), (3, 3)), ((512, 512), (9, 9)), ((1024, 1024), (5, 5)),
             ((512, 512), (17, 17)), ((512, 512), (31, 31)), ((1024, 1024), (15, 15)),
             ((100_000,), (15,)), ((100_000,), (255,)), ((400_000,), (63,)),
             ((400_000,), (1023,)), ((48, 48, 48), (3, 3, 3)), ((48, 48, 48), (7, 7, 7))]
    for i, (xs, ws) in enumerate(cases):
        if progress:
            progress(i, len(cases), f"{xs} * {ws}")
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        if len(ws) >= 2:        # a separable kernel, so that every method runs on it
            g = rng.standard_normal(ws[0]).astype(np.float32)
            w = g
            for _ in ws[1:]:
                w = np.multiply.outer(w, g)
        spec = signal._spec("convolve", x, w, "same")
        allowed, _ = candidates(spec, x, w)
        wk = _execute.prepare_kernel(spec, w)
        for m, p in allowed.items():
            units = _model.work(spec, m, p)
            if m == "direct" and units > 2e9:      # seconds per call: the fit needs no more
                continue
            t, _ = time_call(lambda: _execute.run(spec, x, w, m, p, wk=wk), 0.2)
            samples.append((f"{m}/{len(xs)}", units, t))
    fitted = _model.fit(samples)
    store().put_model(fitted)
    clear_cache(memory_only=True)
    return fitted
