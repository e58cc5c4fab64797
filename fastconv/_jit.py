"""The one place that decides how kernels are compiled and how parallel kernels are run.

* ``jit``: ``numba.njit`` with the on-disk cache, falling back to no cache when no cache
  folder is writable (numba raises at decoration time then), and with a fast-math set
  that keeps NaN/Inf semantics (no ``nnan``/``ninf``): NaN must reach the outputs whose
  window holds it, whatever the kernel.
* The threading layer: unless the user chose one (NUMBA_THREADING_LAYER), ask numba for a
  thread-safe layer when this module loads. ``import fastconv`` does not load it (nor numba);
  every kernel module imports it at its top and ``_config``'s thread functions through
  ``_config._numba()``, so the request is made before anything can start numba's thread
  pool from fastconv. The choice: tbb if it loads, else OpenMP, never workqueue, which
  aborts the process when two Python threads enter a parallel region.
* ``run_parallel``: if the layer in force is workqueue anyway (the user forced it), parallel
  calls are serialised under a lock instead of aborting.
* Serial twins: every ``jit(parallel=True)`` kernel has one, the same Python function
  compiled with ``parallel=False`` (``prange`` runs as ``range``) under its own cache name,
  built on first use (the direct kernel's twin compiles in 0.02 s since its loop bodies are
  shared helpers; the register-tiled conv kernel's in about 2 s cold, 0.3 s from the
  cache). ``run_parallel(kernel, *args, work=...)`` runs the twin when ``runs_serial``
  says so:

  - in a child forked after the OpenMP layer started. Numba's OpenMP pool terminates a
    forked child at its first parallel region (GNU OpenMP is not fork-safe) and a
    ``multiprocessing`` fork pool then hangs; an ``os.register_at_fork`` handler marks
    the child instead. TBB and workqueue children keep their threads. This was chosen
    over TBB as a dependency and default layer: no ``tbb`` wheels for Linux aarch64 or
    macOS arm64, and a conv layer right after a torch call ran 1.6-2.6 ms under OpenMP
    against 3.0-6.2 ms under TBB here (docs/guide/threads.md has the numbers);
  - when the calling thread is set to one thread (a region would only add its cost);
  - when ``work`` (outputs x taps, passed by the launchers) is below ``LAUNCH_WORK * T /
    (T - 1)`` for T threads: splitting saves ``1 - 1/T`` of the serial time, and a
    region costs about the time of ``LAUNCH_WORK`` units on one thread. Measured on the
    2-core dev machine (best of 41 interleaved batches, serial twin against 2 threads):
    break-even near 100-150k for the direct kernel (128^2 f64 3x3: 68.5 against 65.0
    us) and 65k for the 1-D filters (96^2, 7 taps: 32.1 against 32.0 us); 50,000 puts
    T=2 at 100k. Only T <= 2 could be measured here: larger machines may want more.
  The twins give the parallel kernels' bits: each prange iteration writes its own
  outputs in a fixed order. Where FMA contraction is allowed that rests on LLVM fusing
  the same products in both compiles, which tests/_fork_scenario.py checks for every
  kernel family (the FFT layers' spectral product did not, by 1 ulp, and now uses
  strict IEEE arithmetic).
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
import time
import types

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


# -- serial execution: small work, one thread, and children forked from an OpenMP parent ---

# The work (outputs x taps, or the launcher's equivalent) that one thread does in the time
# one parallel region costs to start and join: measured on the 2-core dev machine, see the
# module docstring.
LAUNCH_WORK = 50_000

_fork_serial = False     # set in a child forked after the OpenMP layer started
_num_threads = None      # the calling thread's thread count, read as cheaply as numba allows
_TWIN_LOCK = threading.Lock()


def _thread_count_reader():
    """numba.get_num_threads() costs 1-4 us (it re-checks the pool on every call); once the
    pool is up, the layer's own per-thread getter that it wraps is enough."""
    numba.get_num_threads()                       # starts the pool if needed
    try:
        from numba.np.ufunc import parallel as _parallel
        reader = _parallel._get_num_threads
        if reader() == numba.get_num_threads():
            return reader
    except Exception:       # another numba: use the public function
        pass
    return numba.get_num_threads


def runs_serial(work=None) -> bool:
    """Whether a kernel call of ``work`` runs its serial twin instead of a parallel region.

    Serial when: this process was forked after the OpenMP layer started (GNU OpenMP kills
    the child at its next parallel region); the calling thread is set to one thread (a
    region would only add its start cost); or ``work`` is below the break-even
    ``LAUNCH_WORK * T / (T - 1)`` for T threads, where splitting saves ``(1 - 1/T)`` of the
    serial time and the region costs about ``LAUNCH_WORK`` of it. ``None``: unknown work,
    which runs in parallel. Also serial: work below ``CONTENDED_WORK`` while a recent
    parallel region stalled (:func:`note_region`)."""
    if _fork_serial:
        return True
    t = num_threads()
    if t <= 1 or work is None:
        return t <= 1
    if work * (t - 1) < LAUNCH_WORK * t:
        return True
    return work < CONTENDED_WORK and contended()


# -- contention: parallel regions that stall while other work holds the cores ------------
#
# A fork-join region waits for its slowest thread. When another process (or other threads
# of this one) keeps the cores busy, a worker can be descheduled for a whole time slice,
# and a region of 0.2 ms took 4-15 ms here (a 512^2 5x5 call beside a process running
# FFT calls: median 7.4 ms against 0.17 ms alone, intermittently). OpenMP's passive wait
# policy removes the stall but costs every region a thread wake-up, 50-100 us on this
# virtual machine (256^2 3x3: 98 us against 50 us, slower than one thread's 75 us), so
# the spinning default stays, and fastconv instead watches its own regions: two within
# STALL_WINDOW_S that each take STALL_FACTOR times longer than the best rate seen for
# their kernel (plus STALL_SLACK_S) mark the process contended, and for a while work
# below CONTENDED_WORK runs on the calling thread, which depends on no other thread's
# time slice. The while doubles on each stall in a row (CONTENDED_S up to
# CONTENDED_MAX_S) and resets after a parallel region that ran normally; larger work
# stays parallel (a stall of a few ms is a small share of it).
STALL_FACTOR = 4.0
STALL_SLACK_S = 0.5e-3
CONTENDED_S = 0.5
CONTENDED_MAX_S = 8.0
CONTENDED_WORK = 20_000_000
STALL_WINDOW_S = 1.0
_contended_until = 0.0        # perf_counter() time until which medium work runs serially
_last_stall = -1e9            # perf_counter() time of the last stalled region
_backoff = CONTENDED_S
_best_rate = {}               # kernel -> best seconds per work unit of its parallel regions


def _contended() -> bool:
    global _contended_until
    if time.perf_counter() < _contended_until:
        return True
    _contended_until = 0.0
    return False


def note_region(kernel, work, seconds) -> bool:
    """Record a parallel region of ``kernel`` that did ``work`` units in ``seconds``;
    returns whether it stalled (and marks the process contended if so)."""
    global _contended_until, _backoff, _last_stall
    if not work:
        return False
    rate = seconds / work
    best = _best_rate.get(kernel)
    if best is None or rate < best:
        _best_rate[kernel] = rate
        best = rate
    if seconds > STALL_FACTOR * best * work + STALL_SLACK_S:
        now = time.perf_counter()
        # One stall alone is a hiccup (this virtual machine has some every few seconds
        # even when idle): contended from the second within STALL_WINDOW_S.
        if now - _last_stall < STALL_WINDOW_S:
            _contended_until = now + _backoff
            _backoff = min(CONTENDED_MAX_S, 2 * _backoff)
        _last_stall = now
        return True
    _backoff = CONTENDED_S
    return False


def contended() -> bool:
    """Whether medium work runs serially now because a recent parallel region stalled."""
    return _contended_until != 0.0 and _contended()


def num_threads() -> int:
    """The calling Python thread's thread count (numba's), through the cheapest reader."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _thread_count_reader()
    return _num_threads()


def run_parallel(kernel, *args, work=None):
    """Call a ``parallel=True`` kernel made by :func:`jit`: its serial twin when
    :func:`runs_serial` says so, else the parallel kernel, serialised across Python
    threads only under the workqueue layer."""
    global _serialise
    if runs_serial(work):
        return serial_twin(kernel)(*args)
    t0 = time.perf_counter()
    if _serialise is False:
        result = kernel(*args)
    else:
        with _PARALLEL_LOCK:
            result = kernel(*args)
            _serialise = _layer_is_workqueue()
    if work is not None:
        note_region(kernel, work, time.perf_counter() - t0)
    return result


def entry_point(dispatcher, *example):
    """The compiled entry point of ``dispatcher`` for the types of ``example`` (compiled
    or loaded from the cache now), or the dispatcher itself where numba offers none.

    Calling the entry point skips the dispatcher's typing of every argument (~0.1 us per
    array, more for scalars): for calls of a few microseconds. The caller must pass
    arguments of exactly those types (dtype, rank, layout, writeable), since the entry
    point converts them without checking; arrays of other types go to the dispatcher."""
    sig = tuple(numba.typeof(a) for a in example)
    try:
        dispatcher.compile(sig)
        return dispatcher.overloads[sig].entry_point
    except Exception:     # another numba's internals: the checked call
        return dispatcher


def serial_twin(kernel):
    """The same Python function as ``kernel``, compiled with ``parallel=False`` (``prange``
    then runs as ``range``), built on first use so that a process that never needs it
    never compiles it. Its body is the kernel's: the parallel version only splits the
    outer ``prange`` loop, whose iterations write disjoint outputs, so the results agree
    bit for bit as long as LLVM contracts the same products into FMAs in both compiles
    (see the module docstring)."""
    twin = kernel._fastconv_twin
    if twin is None:
        with _TWIN_LOCK:
            twin = kernel._fastconv_twin
            if twin is None:
                fn, opts, cache, slp = kernel._fastconv_recipe
                twin = _build(_renamed(fn, "__serial"), dict(opts, parallel=False), cache,
                              slp)
                kernel._fastconv_twin = twin
    return twin


def _renamed(fn, suffix):
    """A copy of ``fn`` under another name. numba's on-disk cache names its files after
    the function's qualified name and keys entries by bytecode and signature only, not by
    the compile options: the twin under the kernel's own name would load the parallel
    machine code from the cache."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix,
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + suffix
    twin.__module__ = fn.__module__
    twin.__doc__ = fn.__doc__
    twin.__kwdefaults__ = fn.__kwdefaults__
    return twin


def _after_fork_in_child():
    """In a forked child: fresh locks (one held by another thread at the fork stays held
    forever), and serial kernels from now on if the parent had started GNU OpenMP."""
    global _PARALLEL_LOCK, _TWIN_LOCK, _fork_serial
    _PARALLEL_LOCK = threading.Lock()
    _TWIN_LOCK = threading.Lock()
    try:
        layer = numba.threading_layer()
    except ValueError:       # the parent never started a pool: the child starts its own
        return
    if layer == "omp":
        _fork_serial = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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


def _build(fn, opts, cache, slp):
    disp = None
    if cache:
        try:
            disp = numba.njit(cache=True, **opts)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            pass
    if disp is None:
        disp = numba.njit(cache=False, **opts)(fn)
    return _with_slp(disp) if slp else disp


def jit(parallel: bool = False, fastmath=True, cache: bool = True, slp: bool = False,
        **options):
    """Decorator: ``numba.njit`` with fastconv's compile options. ``fastmath`` is True
    (``FASTMATH``), False, or a flag set such as ``FASTMATH_ORDERED``; ``slp`` switches
    on the SLP vectoriser for this function's compiles. A ``parallel`` kernel is called
    through :func:`run_parallel`, which may run its lazily built :func:`serial_twin`."""
    opts = dict(nogil=True, error_model="numpy", **options)
    if fastmath:
        opts["fastmath"] = set(FASTMATH if fastmath is True else fastmath)

    def decorate(fn):
        disp = _build(fn, dict(opts, parallel=parallel), cache, slp)
        if parallel:
            disp._fastconv_recipe = (fn, opts, cache, slp)
            disp._fastconv_twin = None
        return disp

    return decorate
