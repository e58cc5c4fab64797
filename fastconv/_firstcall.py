"""First calls: a call whose kernels are not compiled yet runs a method that needs no
compile, while a background process compiles the kernels into numba's disk cache.

Why. Measured on the 2-core dev machine, fresh numba cache, new process, float32 'same'
1024^2 with 5x5: the first ``convolve`` (auto) took 9.4 s, with ``method="direct"`` 11.3 s,
the first ``gaussian_filter`` 10.5 s: LLVM optimising the kernels. The FFT and
overlap-add launchers compile nothing (scipy.fft and NumPy): 0.31-0.5 s for the same
first call, and scipy.ndimage computes the 1-D filter passes with no compile at all.

What. ``serve(spec, x, wk, method)`` is asked by the dispatcher for every ``"auto"``
convolution and every ndimage filter step on the CPU. For a call *class* (operation kind,
dtypes, rank, boundaries) not compiled yet it returns a decision for the no-compile tier:

* a ConvSpec: the direct method in NumPy (one pass per tap: few taps, small calls,
  ``kernels/cpu/direct_numpy``), FFT or overlap-add, whichever costs least by the cost
  model; FFT and overlap-add only where the FFT guard allows them (integers within the
  float64 exactness bound, finite kernel taps). The result is within the documented
  tolerance of the direct kernel; integers stay exact; NaN/Inf stay local (the direct
  rule, or the FFT launcher's);
* a filter step: scipy.ndimage's 1-D passes written in NumPy (``kernels/cpu/
  filters_scipy``; importing scipy.ndimage would cost 0.3 s), the same bits as scipy and
  as fastconv's kernels, which follow scipy's arithmetic;
* a conv layer (``fastconv.nn``, ``"auto"``): one NumPy matmul per kernel tap
  (``kernels/cpu/nn_numpy``).

Nothing is tuned or stored while the tier serves: ``auto`` measures once the kernels are
there. Explicit methods, plans and ``explain`` never take the tier (a user who asks for
direct gets direct).

A class already on disk (an earlier child or ``warmup`` compiled it) is loaded by a
thread of this process while the tier serves its first calls (``_load``): numba's start-up
and cache reads took 0.5 s of a 0.7 s warm first call. ``fork()`` waits for such a thread.

The compile runs in a separate Python process (``python -m fastconv._firstcall``, fed the
call classes on stdin), which calls the real launchers on small replicas of each call
(serial twins and the parallel kernels, every method the tuner may pick) and records the
class in a marker file (fastconv's cache folder, one file per numba cache location and
versions) when its kernels are on disk. The calling
process polls the child (one ``waitpid``, and one ``stat`` of the marker: a class the
child has recorded is ready before the child exits) on its next first-tier call and, once
a class is done, takes the compiled route, loading the kernels from the cache.

The measured first calls, and what they became, are in docs/install.md ("First calls").

A process and not a thread, because: compiling holds the GIL for much of its time (type
inference is Python), which would slow the caller's own Python; a thread holding numba's
compiler lock at ``fork()`` leaves the child deadlocked at its first compile; and a
thread inside LLVM when the interpreter exits can crash the exit or make it wait for the
compile. The child owns none of the caller's locks, survives the caller's exit harmlessly
(numba writes cache files atomically), and a forked caller simply forgets it.

Disabled (every call compiles in the foreground, as before) with ``FASTCONV_FIRST_CALL=
compile``, and when the marker's folder is not writable. A class recorded by an earlier
child or by ``python -m fastconv warmup`` is loaded by a thread (above); were numba's
cache not writable, that thread compiles it instead, still off the calling thread.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading

import numpy as np

from . import tuner
from ._config import first_call_mode
from .tuner import Decision

__all__ = ["serve", "start_loads", "wait", "pending", "ready_classes", "record_warmed",
           "served", "hand_off", "load_now"]

# The operation kinds the tier serves (others, such as weight gradients, compile first).
_TIERED = frozenset({"correlate", "layer", "filter"})

# Per call kind, the methods whose launchers compile nothing (measured above).
NO_COMPILE = {"correlate": ("numpy", "fft", "oa"), "filter": ("scipy",)}
# The NumPy direct method's seconds per output and tap (kernels/cpu/direct_numpy.py:
# 0.2-4.5 ns measured), for its choice against the FFT's cost model.
NUMPY_TAP_S = 2e-9
# Importing scipy.fft (the FFT launchers) and numba (the tuner's calibrated cost model is
# keyed by the machine's fingerprint, which numba reports): 0.2-0.3 s here.
NUMBA_IMPORT_S = 0.25

_LOCK = threading.Lock()
_READY: set = set()           # classes whose kernels are compiled or on disk
_QUEUED: dict = {}            # class -> job payload, waiting for a child
_RUNNING: dict = {}           # class -> job payload, in the running child
_PROC = None                  # the running child (subprocess.Popen) or None
_OTHERS: list = []            # children started beside _PROC by ``hand_off``
_LIVE: set = set()            # classes whose kernels are loaded in this process
_LOADERS: dict = {}           # class -> the thread loading its kernels from the disk cache
_STATE = {"loaded": False, "usable": None}
_SERVED = [0]                 # calls the tier has served in this process (``served``)


# -- call classes ---------------------------------------------------------------------------

def _class(spec) -> str:
    """A ConvSpec's class: what its compiled kernels depend on (kernels specialise on
    dtypes, rank and boundary handling, never on sizes or tap values), as a string for
    the marker."""
    return f"correlate|{spec.compute_dtype.str}|{spec.ndim}|{spec.boundary}"


def _layer_class(spec) -> str:
    # The layer kernels specialise on everything but the batch and spatial sizes.
    return (f"layer|{np.dtype(spec.dtype).str}|{spec.w_shape}|{spec.stride}|"
            f"{spec.dilation}|{spec.groups}|{spec.pads is None}")


def _filter_class(spec, x, out) -> str:
    bounds = ",".join(p[2] + ("box" if p[3] is None else "") for p in spec.passes)
    return f"filter|{x.dtype.str}|{out.dtype.str}|{x.ndim}|{len(spec.passes)}|{bounds}"


# -- the decision ---------------------------------------------------------------------------

def serve(spec, x, wk, method, out=None):
    """The no-compile tier's Decision for this call, or None when the call should take the
    usual route (its kernels are compiled, or the tier does not apply)."""
    if method not in ("auto", "passes") or spec.kind not in _TIERED \
            or spec.device != "cpu":
        return None
    if spec.kind == "correlate":
        # On every auto call: the class string is built once per spec object (specs are
        # memoised per signature), then one dict and one set lookup.
        cls = spec.__dict__.get("_first_call_class")
        if cls is None:
            cls = _class(spec)
            object.__setattr__(spec, "_first_call_class", cls)
    elif spec.kind == "layer" and method == "auto":
        cls = _layer_class(spec)
    elif spec.kind == "filter" and out is not None:
        cls = _filter_class(spec, x, out)
    else:
        return None
    if cls in _LIVE:
        return None
    if first_call_mode() != "tier":
        return None
    if not _STATE["loaded"]:
        _load_ready()
    if not _STATE["usable"]:
        return None
    _poll()
    loader = _LOADERS.get(cls)
    if cls in _READY and loader is not None and loader.ident is not None \
            and not loader.is_alive():
        _LIVE.add(cls)             # loaded into this process by its thread
        return None
    if spec.kind == "correlate":
        decision = _conv_tier(spec, x, wk)
        payload = ("correlate", _conv_payload(spec, wk))
    elif spec.kind == "layer":
        decision = Decision("numpy", {}, "first call: a matmul per tap while the layer "
                            "kernels compile in the background", device=spec.device)
        payload = ("layer", _layer_payload(spec))
    else:
        decision = Decision("scipy", {}, "first call: scipy.ndimage while the filter "
                            "kernels compile in the background")
        payload = ("filter", _filter_payload(spec, x, out))
    if cls in _READY:
        _load(cls, payload)        # on disk: load it in a thread of this process
    else:
        _enqueue(cls, payload)     # not compiled anywhere: a child compiles it
    _SERVED[0] += 1
    return decision


def served() -> int:
    """How many calls the no-compile tier has served in this process (the demo asks
    whether a call took the compiled route: the count did not move)."""
    return _SERVED[0]


def _conv_tier(spec, x, wk):
    costs = {"numpy": NUMPY_TAP_S * float(np.prod(spec.out_shape)) * wk.size}
    # The FFT launcher's module, and the calibrated cost model (the tuner's store, keyed by
    # the machine's fingerprint), load numba and scipy.fft: a cost this call pays too
    # while they are not loaded. Worth it only when the NumPy direct method costs more.
    start_up = 0.0 if "numba" in sys.modules else NUMBA_IMPORT_S
    if costs["numpy"] > start_up and not tuner.fft_guard(spec, x, wk):
        # Only where the FFT is exact enough (integers) and its NaN rule applies.
        costs.update({m: t + start_up for m, t in tuner.model_costs(
            spec, {m: tuner.method_params(spec, m) for m in ("fft", "oa")}).items()})
    m = min(costs, key=costs.get)
    return Decision(m, tuner.method_params(spec, m),
                    f"first call: {m} while the kernels compile in the background",
                    device=spec.device)


def _conv_payload(spec, wk):
    return {"op": spec.op, "w_shape": tuple(spec.w_shape), "start": tuple(spec.start),
            "dtype": spec.compute_dtype.str, "boundary": spec.boundary, "cval": spec.cval,
            "mode": spec.mode, "flip": spec.flip, "conj": spec.conj, "wk": wk}


def _layer_payload(spec):
    return {"x_shape": spec.x_shape, "w_shape": spec.w_shape, "out_shape": spec.out_shape,
            "stride": spec.stride, "dilation": spec.dilation, "groups": spec.groups,
            "dtype": np.dtype(spec.dtype).str, "pads": spec.pads}


def _filter_payload(spec, x, out):
    return {"passes": spec.passes, "cval": spec.cval, "x_dtype": x.dtype.str,
            "out_dtype": out.dtype.str, "ndim": x.ndim}


# -- readiness: in this process, and recorded in fastconv's cache folder ------------------

def _marker_path():
    """The marker of compiled classes, in fastconv's cache folder (the tuner's), named by
    what locates numba's cache of the kernels (``NUMBA_CACHE_DIR``, the package folder)
    and the versions. Found without importing numba, so that a first call whose
    kernels are on disk need not wait for numba's start-up either."""
    import hashlib

    from .tuner._store import cache_dir
    try:
        ident = "|".join([os.environ.get("NUMBA_CACHE_DIR", ""),
                          os.path.dirname(os.path.abspath(__file__))]
                         + [f"{k}={v}" for k, v in sorted(_versions().items())])
        folder = cache_dir()
    except Exception:        # no numba distribution or no cache folder: no tier
        return None
    name = hashlib.sha1(ident.encode()).hexdigest()[:16]
    return os.path.join(folder, f"first-calls-{name}.json")


def _writable(folder) -> bool:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


_VERSIONS: dict = {}


def _versions() -> dict:
    if not _VERSIONS:
        from importlib.metadata import version

        import fastconv
        _VERSIONS.update(fastconv=fastconv.__version__, numba=version("numba"))
    return _VERSIONS


def _load_ready():
    """Read the marker: classes recorded by earlier children and by ``python -m fastconv
    warmup`` (``record_warmed``)."""
    with _LOCK:
        if _STATE["loaded"]:
            return
        path = _STATE["path"] = _marker_path()
        _STATE["usable"] = path is not None and _writable(os.path.dirname(path))
        if path is not None:
            _READY.update(_recorded(path))
        _STATE["loaded"] = True


def _recorded(path) -> set:
    try:
        with open(path) as f:
            data = json.load(f)
        if {k: data.get(k) for k in ("fastconv", "numba")} != _versions():
            return set()
        return {c for c in data.get("classes", []) if isinstance(c, str)}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()


def record_warmed(dtypes, ranks):
    """``python -m fastconv warmup`` compiled the convolution kernels of these dtypes and
    ranks: their classes start compiled in later processes."""
    from .kernels import BOUNDARIES
    path = _marker_path()
    if path is None or not _writable(os.path.dirname(path)):
        return
    _record(path, [f"correlate|{np.dtype(d).str}|{r}|{b}"
                   for d in dtypes for r in ranks for b in BOUNDARIES])


def _record(path, classes):
    """Add ``classes`` to the marker: read, merge, write to a temporary file and rename
    (a reader never sees half a file; a racing writer may drop a class, which costs only
    a redundant background compile later)."""
    data = {"classes": []}
    try:
        with open(path) as f:
            old = json.load(f)
        if {k: old.get(k) for k in ("fastconv", "numba")} == _versions():
            data = old
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    merged = sorted(set(data.get("classes", [])) | set(classes))
    data = dict(_versions(), classes=merged)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=0)
    os.replace(tmp, path)


# -- the background child ---------------------------------------------------------------------

def _enqueue(cls, payload):
    with _LOCK:
        if cls not in _RUNNING and cls not in _QUEUED:
            _QUEUED[cls] = payload
        if _PROC is None:
            _start()


def _start():
    """Start a child for every queued class (called under ``_LOCK``)."""
    global _PROC
    if not _QUEUED:
        return
    jobs = dict(_QUEUED)
    _QUEUED.clear()
    # The child compiles and never tunes: nothing of its replicas reaches the tuner cache.
    env = dict(os.environ, FASTCONV_FIRST_CALL="compile", FASTCONV_TUNE="off")
    # The child imports this same fastconv, wherever it was imported from.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "")
                                                  .split(os.pathsep) if p])
    try:
        proc = subprocess.Popen([sys.executable, "-m", "fastconv._firstcall"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        proc.stdin.write(pickle.dumps(list(jobs.items())))
        proc.stdin.close()
    except (OSError, ValueError, pickle.PicklingError):
        # No child (a sandbox without fork/exec, say): these classes compile in the
        # foreground, as they would without the tier.
        _READY.update(jobs)
        return
    _RUNNING.update(jobs)
    _PROC = proc


def _poll():
    """If the child has finished: its classes are ready (recorded or not: a class whose
    child failed compiles in the foreground rather than tiering forever); start the next."""
    global _PROC
    proc = _PROC
    if proc is None:
        return
    if proc.poll() is None:
        _refresh()
        return
    with _LOCK:
        if _PROC is not proc:
            return
        _READY.update(_RUNNING)
        _RUNNING.clear()
        _PROC = None
        _start()


_MARKER_SEEN = [None]         # (mtime, size) of the marker when last read by _refresh


def _refresh():
    """While a child runs: the classes it has recorded so far are ready (a child compiles
    its classes one after another, and records each as it finishes). One ``stat`` of the
    marker per call; it is read again only when it changed."""
    path = _STATE.get("path")
    try:
        st = os.stat(path)
    except (OSError, TypeError):
        return
    seen = (st.st_mtime_ns, st.st_size)
    if seen == _MARKER_SEEN[0]:
        return
    _MARKER_SEEN[0] = seen
    done = _recorded(path)
    with _LOCK:
        for cls in [c for c in _RUNNING if c in done]:
            _READY.add(cls)
            del _RUNNING[cls]


def hand_off():
    """Start a child now for every class still queued, even while another child runs
    (the caller is about to exit: queued classes would otherwise be forgotten, and the
    next process would tier and queue them again; or it waits for the compiles anyway
    and has a second core). Nothing waits for the children but ``wait``."""
    global _PROC
    with _LOCK:
        running = _PROC
        _PROC = None
        _start()
        if _PROC is None:
            _PROC = running
        elif running is not None:
            _OTHERS.append(running)      # ``wait`` waits for it too


def pending() -> tuple:
    """Classes queued or compiling in a child."""
    _poll()
    with _LOCK:
        return tuple(_RUNNING) + tuple(_QUEUED)


def ready_classes() -> tuple:
    return tuple(sorted(_READY))


def wait(timeout: float | None = None) -> bool:
    """Wait for the background compiles (tests, benchmarks that want the compiled route);
    True when none is left. Classes on disk then load on their next call."""
    import time
    deadline = None if timeout is None else time.monotonic() + timeout
    for other in list(_OTHERS):          # children started beside another (hand_off)
        try:
            other.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        _OTHERS.remove(other)
    while True:
        proc = _PROC
        if proc is None and not _QUEUED:
            start_loads()
            for t in list(_LOADERS.values()):
                t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            return not any(t.is_alive() for t in _LOADERS.values())
        if proc is not None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                proc.wait(left)
            except subprocess.TimeoutExpired:
                return False
        _poll()
        with _LOCK:
            if _PROC is None and _QUEUED:
                _start()


def _load(cls, payload):
    """Load a class's kernels from numba's disk cache in a thread of this process (the
    replicas the child compiled, now found on disk): about half a second of numba's
    start-up and cache reads (measured: the warm first call spent 0.5 of its 0.7 s
    there), during which the tier serves the calls. The thread starts when the call
    that asked for it has its result (``start_loads``): numba's start-up holds the GIL
    for most of its time, and the call should not wait behind it."""
    with _LOCK:
        if cls in _LOADERS:
            return
        kind, p = payload
        _LOADERS[cls] = threading.Thread(target=_load_in_thread, args=(kind, p),
                                         name=f"fastconv-load-{kind}", daemon=False)


def start_loads():
    """Start the loader threads queued by ``serve`` (the dispatcher calls this after a
    first-tier call has computed its result)."""
    with _LOCK:
        waiting = [t for t in _LOADERS.values() if t.ident is None]
        for t in waiting:
            t.start()


def _load_in_thread(kind, p):
    from . import _config
    try:
        with _config.override(first_call="compile"):
            _COMPILERS[kind](p)
    except Exception:      # the foreground call loads (or compiles) it instead
        pass


def load_now():
    """Load, before returning, the classes queued for a loader thread (their kernels are
    on disk): the next call of such a class takes the compiled route."""
    start_loads()
    _join_loaders()


def _join_loaders():
    # A loader holds numba's compiler lock while it reads the cache: a fork in the middle
    # would leave the child's copy of that lock held forever. Wait for them (under a
    # second each) before forking.
    for t in list(_LOADERS.values()):
        if t.is_alive() and t is not threading.current_thread():
            t.join()


def _after_fork_in_child():
    # The child of a fork does not own the background process (it cannot wait for it)
    # and may hold a copy of a held lock: start clean; its first calls re-queue.
    global _PROC, _LOCK
    _PROC = None
    _LOCK = threading.Lock()
    _OTHERS.clear()
    _QUEUED.clear()
    _RUNNING.clear()
    for cls, t in list(_LOADERS.items()):
        if t.ident is not None and not t.is_alive():
            _LIVE.add(cls)         # loaded before the fork: the child has it too
    _LOADERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_join_loaders, after_in_child=_after_fork_in_child)


# -- the child: compile by running small replicas of each class ---------------------------

def _replica_shapes(w_shape, taps):
    """A small input (serial twins) and one above the parallel-region threshold (the
    parallel kernels) for a kernel of ``w_shape``."""
    from . import _jit
    ndim = len(w_shape)
    small = tuple(k + 4 for k in w_shape)
    outputs = 8 * _jit.LAUNCH_WORK // max(taps, 1) + 1
    side = int(np.ceil(outputs ** (1.0 / ndim)))
    large = tuple(max(side, k + 4) for k in w_shape)
    return small, large


def _compile_conv(p):
    from . import _dispatch
    from ._validate import ConvSpec
    dt = np.dtype(p["dtype"])
    wk = np.asarray(p["wk"], dt)
    rng = np.random.default_rng(0)
    methods = {"direct": {}}
    if wk.ndim >= 2:
        # A rank-1 kernel of the same shape compiles the separable kernels whatever the
        # caller's kernel factors into.
        ones = np.ones((), dt)
        for k in wk.shape:
            ones = np.multiply.outer(ones, np.ones(k, dt))
        params = tuner.separable_params(ones)
        if params is not None:
            methods["separable"] = params
    if wk.ndim == 3 and dt.kind in "fc":
        methods["fft"] = {}     # the 3-D FFT's tap sum over planes is a numba pass
    for shape in _replica_shapes(wk.shape, wk.size):
        x = rng.standard_normal(shape).astype(dt) if dt.kind in "fc" else \
            rng.integers(-9, 9, shape).astype(dt)
        spec = ConvSpec(op=p["op"], x_shape=shape, w_shape=wk.shape, out_shape=shape,
                        start=p["start"], compute_dtype=dt, result_dtype=dt,
                        boundary=p["boundary"], cval=p["cval"], mode=p["mode"])
        for m, params in methods.items():
            kern = wk if m == "direct" else np.ones(wk.shape, dt)
            _dispatch.execute(spec, x, None, Decision(m, params, "first-call compile"),
                              wk=kern)


def _compile_filter(p):
    from . import _dispatch
    from ._validate import FilterSpec
    rng = np.random.default_rng(0)
    passes = tuple(p["passes"])
    orders = [passes]
    if len(passes) == 2 and all(q[3] is not None for q in passes):
        # The class does not name the axis order of a fused weighted pair (sobel along
        # axis 1 runs axis 1 then 0, gaussian_filter 0 then 1): compile both orders.
        orders.append(passes[::-1])
    taps = sum(len(q[3]) if q[3] is not None else 3 for q in passes)
    for shape in _replica_shapes((4,) * p["ndim"], taps):
        x = rng.standard_normal(shape).astype(np.dtype(p["x_dtype"]))
        out = np.empty(shape, np.dtype(p["out_dtype"]))
        for order in orders:
            _dispatch.execute(FilterSpec(order, p["cval"]), x, None,
                              Decision("passes", {}, "first-call compile"), out=out)


def _compile_layer(p):
    """Every method that applies, on the layer with batch 1 and a few output rows and
    columns (enough columns for the register-tiled kernels, which need 32)."""
    from . import _dispatch
    from ._validate import LayerSpec
    dt = np.dtype(p["dtype"])
    st, dl, ws = p["stride"], p["dilation"], p["w_shape"]
    pads = p["pads"] or ((0, 0),) * 3
    limits = (2, 6, 40)
    osp, xsp, padded = [], [], []
    for a in range(3):
        o = min(p["out_shape"][2 + a], limits[a])
        full = (o - 1) * st[a] + dl[a] * (ws[2 + a] - 1) + 1
        inner = full - pads[a][0] - pads[a][1]
        while inner < 1:                 # the pads alone would cover it: one more row
            o += 1
            full += st[a]
            inner += st[a]
        osp.append(o)
        padded.append(full)
        xsp.append(inner if p["pads"] is not None else full)
    spec = LayerSpec(x_shape=tuple(p["x_shape"][:2]) + tuple(padded), w_shape=ws,
                     out_shape=(1, p["out_shape"][1]) + tuple(osp), stride=st,
                     dilation=dl, groups=p["groups"], dtype=dt, pads=p["pads"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, p["x_shape"][1]) + tuple(xsp)).astype(dt)
    w = rng.standard_normal(ws).astype(dt)
    from .kernels import methods
    for m in methods("layer"):
        try:
            d = _dispatch.decide(spec, x, w, m)
        except ValueError:               # the method does not apply to this layer
            continue
        _dispatch.execute(spec, x, w, d, out=np.empty(spec.out_shape, dt))


_COMPILERS = {"correlate": _compile_conv, "filter": _compile_filter,
              "layer": _compile_layer}


def _child_main():
    jobs = pickle.loads(sys.stdin.buffer.read())
    path = _marker_path()
    for cls, (kind, payload) in jobs:
        try:
            _COMPILERS[kind](payload)
        except Exception:         # the caller compiles this class itself later
            continue
        if path is not None:
            _record(path, [cls])


if __name__ == "__main__":
    _child_main()
