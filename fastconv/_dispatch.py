"""The one path every public call takes: ``dispatch(spec, x, w, method)`` = ``decide`` then
``execute``.

Above it, the public layer (signal.py, _fftconvolve.py, ndimage.py, nn.py, the plans)
validates its arguments and builds a frozen spec (``_validate``). Below it, the tuner
chooses among the methods the guards allow, and the launchers of the one registry
(``kernels.REGISTRY``, keyed by operation kind, method and device) run the work. A plan
is a spec and a :class:`~fastconv.tuner.Decision` held for reuse: it calls ``execute``
with them, so a plan and a one-shot call can never take different routes.

Specs (``_validate``) and what each kind decides:

* ``ConvSpec`` ("correlate", or "batched" for fftconvolve's broadcast axes): an explicit
  method runs unless a correctness guard forbids it (integer data beyond the FFT's
  exactness bound, a non-finite kernel tap: then direct); ``"auto"`` asks the tuner.
* ``FilterSpec`` ("filter"): scipy.ndimage's 1-D passes, one method.
* ``LayerSpec`` ("layer"): conv layers; ``"auto"`` asks the tuner with the layer cost
  model; FFT and Winograd give way to direct or GEMM when the data holds NaN or Inf.
* ``LayerWeightSpec`` ("layer_weight"): a layer's weight gradient; ``"auto"`` takes the
  model's choice (the depthwise kernel or one GEMM over all groups).
* ``Col2imSpec`` ("col2im"): the scatter-add step of a transposed convolution done as a
  GEMM; one method.
* ``TransposedSpec`` ("layer_transposed"): a strided transposed convolution of few
  channels per group (depthwise layers' input gradients) computed directly; one method.

Everything a launcher needs (block sizes, factors, fallbacks, the device) is in the
decision; launchers never choose and never raise on user input.

Devices: a spec's ``device`` ("cpu" or "cuda") says where ``execute`` runs it. On
"cuda" the data ``x`` is a numba device array (or a NumPy array, copied in explicitly),
the output is allocated, converted and finished on the device through the device's
memory hooks (``kernels.DEVICES["cuda"]["memory"]``), and the launchers run on the stream
the public layer set (``_arrays.Placement.scope``). The kernel ``w`` is always prepared
on the host: a GPU kernel array is copied to the host once (kernels are small; the
launchers take the prepared kernel as a NumPy array). ``choose_device`` is
``device="auto"``: the tuner times the CPU call against transfer + GPU call.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _config, _firstcall, tuner
from ._finite import all_finite
from ._memo import LRU
from .kernels import DEVICES, get_launcher
from .tuner import Decision

__all__ = ["dispatch", "decide", "execute", "bind", "prepare_kernel", "measure_all",
           "Decision", "EMPTY", "device_backend", "device_memory", "choose_device"]

# An empty input or output needs no method: execute only shapes and casts the zeros that
# scipy returns.
EMPTY = Decision("none", {}, "empty input or output")


# -- ConvSpec: kernel and input preparation, result dtype --------------------------------

def prepare_kernel(spec, w: np.ndarray) -> np.ndarray:
    """The kernel as the launcher sees it: flipped for convolution (not along batch
    axes), conjugated for complex correlation, in the compute dtype, contiguous (kernels
    are small), on the host (a GPU kernel array is copied to the host: an explicit copy
    of the small operand, never of the data)."""
    if not isinstance(w, np.ndarray):
        w = device_memory("cuda").to_host(w)
    if spec.flip:
        w = w[_flip_index(w.ndim, spec.batch)]
    if spec.conj and w.dtype.kind == "c":
        w = np.conj(w)
    return np.ascontiguousarray(w, dtype=spec.compute_dtype)


@functools.lru_cache(maxsize=64)
def _flip_index(ndim, batch):
    """The index that reverses every axis but the batch axes (built once per rank)."""
    return tuple(slice(None) if a in batch else slice(None, None, -1) for a in range(ndim))


def _finish(spec, out: np.ndarray) -> np.ndarray:
    rt = spec.result_dtype
    if rt == np.bool_:
        out = out != 0
    elif out.dtype != rt:
        out = out.astype(rt)          # integer wrap-around as scipy's integer arithmetic
    if spec.reverse_out:
        out = out[(slice(None, None, -1),) * out.ndim]
        out = np.conj(out) if spec.conj_out and out.dtype.kind == "c" else out.copy()
    return out


# -- decide ------------------------------------------------------------------------------

def decide(spec, x, w, method: str = "auto", *, wk=None,
           force_measure: bool = False) -> Decision:
    """The :class:`Decision` for running ``spec`` on ``x`` and ``w`` with ``method``."""
    return _DECIDE[spec.kind](spec, x, w, method, wk, force_measure)


def _decide_conv(spec, x, w, method, wk, force_measure):
    if wk is None:
        wk = prepare_kernel(spec, w)
    if spec.kind == "batched":       # fftconvolve with broadcast axes: one method
        return Decision("fft", {}, "explicit", device=spec.device)
    if method == "direct":
        return Decision("direct", {}, "explicit", device=spec.device)
    if method == "auto":
        def runner(m, params):
            return execute(spec, x, w, Decision(m, params, "measuring", device=spec.device),
                           wk=wk)
        return tuner.decide(spec, x, wk, runner, force_measure)
    return _explicit(spec, x, wk, method)


def _explicit(spec, x, wk, method):
    """An explicit ``method=``: run it, except where a correctness guard forbids it."""
    if method == "separable":
        params = tuner.separable_params(wk, spec.device) if spec.ndim >= 2 else None
        if params is None:
            why = ("a 1-D kernel" if spec.ndim < 2 else
                   "a non-finite tap" if not tuner.finite_kernel(wk) else
                   "not a product of 1-D kernels" + (" (exactly, for integers)"
                                                     if wk.dtype.kind in "iu" else ""))
            raise ValueError(f"method='separable' needs a kernel that is a product of 1-D "
                             f"kernels (or of low rank); this one is not usable: {why}")
        return Decision("separable", params, "explicit", device=spec.device)
    why = tuner.fft_guard(spec, x, wk)
    if why:
        # Integers beyond the exactness bound, and kernels with a NaN/Inf tap, keep the
        # exactness and NaN locality of the direct method.
        return Decision("direct", {}, f"guard: {why}", excluded={method: why},
                        device=spec.device)
    return Decision(method, tuner.method_params(spec, method), "explicit",
                    device=spec.device)


def _decide_filter(spec, x, w, method, wk, force_measure):
    return _FILTER_DECISION if spec.device == "cpu" else _FILTER_DECISIONS[spec.device]


_FILTER_DECISION = Decision("passes", {}, "explicit")
_FILTER_DECISIONS = {"cuda": Decision("passes", {}, "explicit", device="cuda")}


def _decide_layer(spec, x, w, method, wk, force_measure):
    from .kernels.cpu import nn as _k   # conv layers run on the CPU only
    st, dl, g = spec.stride, spec.dilation, spec.groups
    if method != "auto":
        if not _k.applicable(method, spec.x_shape, spec.w_shape, st, dl, g):
            raise ValueError(f"method={method!r} does not apply to this layer (winograd "
                             f"needs 3x3 kernels with stride 1 and dilation 1 in height "
                             f"and width)")
        return Decision(method, {}, "explicit", device=spec.device)
    costs, key = _layer_model(spec.x_shape, spec.w_shape, st, dl, g, spec.dtype)

    def runner(m):
        execute(spec, x, w, Decision(m, {}, "measuring", device=spec.device),
                out=np.empty(spec.out_shape, spec.dtype))

    m, reason, info = tuner.choose_custom(key, costs, runner, spec.device, force_measure)
    if m in ("fft", "winograd") and not (all_finite(x) and all_finite(w)):
        # Only FFT and Winograd spread a NaN or Inf past its window: the data is checked
        # (one summing pass) only when one of them was chosen.
        m = _k.choose_method(spec.x_shape, spec.w_shape, st, dl, g, spec.dtype,
                             finite=False)
        reason = "guard: non-finite data"
    return Decision(m, {}, reason, key, dict(info.get("times", {})),
                    dict(info.get("predicted", {})), device=spec.device)


@functools.lru_cache(maxsize=512)
def _layer_model(x_shape, w_shape, st, dl, groups, dtype):
    """(model seconds per method, tuning key) of a layer signature: pure functions of the
    shapes, memoised (they cost ~40 us a call, as much as a small layer)."""
    from .kernels.cpu import nn as _k
    costs = _k.layer_costs(x_shape, w_shape, st, dl, groups, dtype)
    key = "conv|" + "|".join(str(v) for v in _k.layer_key(x_shape, w_shape, st, dl,
                                                            groups, dtype))
    return costs, key


def _decide_layer_weight(spec, x, w, method, wk, force_measure):
    from .kernels.cpu import nn as _k
    if method != "auto":
        return Decision(method, {}, "explicit", device=spec.device)
    return Decision(_k.choose_weight_method(spec.w_shape, spec.groups), {}, "model",
                    device=spec.device)


_DIRECT_DECISION = Decision("direct", {}, "explicit")


def _decide_direct(spec, x, w, method, wk, force_measure):
    """Kinds with one method (col2im, layer_transposed)."""
    return _DIRECT_DECISION


_DECIDE = {"correlate": _decide_conv, "batched": _decide_conv, "filter": _decide_filter,
           "layer": _decide_layer, "layer_weight": _decide_layer_weight,
           "col2im": _decide_direct, "layer_transposed": _decide_direct}


# -- execute -----------------------------------------------------------------------------

def execute(spec, x, w, decision: Decision, *, wk=None, out=None):
    """Run ``spec`` with ``decision``'s method on its device. ``wk``: the prepared kernel
    (plans keep it); ``out``: a caller-owned buffer (C-contiguous, compute dtype, output
    shape) to compute into."""
    return _EXECUTE[spec.kind](spec, x, w, decision, wk, out)


def _execute_conv(spec, x, w, decision, wk, out):
    if spec.device != "cpu":
        return _execute_conv_device(spec, x, w, decision, wk, out)
    if decision is EMPTY:
        return _finish(spec, np.zeros(spec.out_shape, spec.compute_dtype))
    if out is None:
        out = np.empty(spec.out_shape, spec.compute_dtype)
    if out.size == 0:
        return _finish(spec, out)
    if wk is None:
        wk = prepare_kernel(spec, w)
    if decision.method == "direct" and type(x) is np.ndarray and wk.size <= 4096:
        run = _bound_direct(spec, x, wk, decision)
        if run:
            run(x.reshape(-1), out.reshape(-1))
            return out
    # astype(copy=False) keeps views of native arrays (any strides) and converts
    # big-endian or narrower types; the launchers handle strides themselves.
    xin = x.astype(spec.compute_dtype, copy=False)
    launcher = get_launcher(spec.kind, decision.method, decision.device)
    if spec.kind == "batched":
        launcher(xin, wk, out, spec.start, spec.batch, **decision.params)
    else:
        launcher(xin, wk, out, spec.start, spec.boundary, spec.cval, **decision.params)
    return _finish(spec, out)


def _execute_conv_device(spec, x, w, decision, wk, out):
    """``_execute_conv`` on a GPU: the same steps through the device's memory hooks
    (allocate, convert to the compute dtype, finish = cast/reverse/conjugate), all on the
    current stream; ``x`` is a device array or a NumPy array copied in here."""
    mem = device_memory(spec.device)
    if decision is EMPTY or 0 in spec.out_shape:
        out = mem.zeros(spec.out_shape, spec.compute_dtype)
        return mem.finish(out, spec.result_dtype, spec.reverse_out, spec.conj_out)
    if out is None:
        out = mem.empty(spec.out_shape, spec.compute_dtype)
    if wk is None:
        wk = prepare_kernel(spec, w)
    if isinstance(x, np.ndarray):
        x = mem.from_host(np.ascontiguousarray(x))
    xin = mem.convert(x, spec.compute_dtype)
    launcher = get_launcher(spec.kind, decision.method, spec.device)
    if spec.kind == "batched":
        launcher(xin, wk, out, spec.start, spec.batch, **decision.params)
    else:
        launcher(xin, wk, out, spec.start, spec.boundary, spec.cval, **decision.params)
    return mem.finish(out, spec.result_dtype, spec.reverse_out, spec.conj_out)


def bind(spec, decision: Decision, wk):
    """For a plan: ``run(xf, of)`` with everything but the data fixed (the launcher's
    ``bind``), or None where the launcher has none or the call needs more than the
    launcher's step (a result cast or reversal, parameters). ``run`` takes the flat views
    of a C-ordered writeable input of the spec's shape and of a C-contiguous output, both
    of the compute dtype, and makes the launcher's own kernel call: a plan that uses it
    computes the bits ``execute`` would."""
    if (spec.kind != "correlate" or decision is EMPTY or decision.params
            or spec.result_dtype != spec.compute_dtype or spec.reverse_out
            or spec.device != "cpu"):
        return None
    binder = getattr(get_launcher(spec.kind, decision.method, decision.device), "bind",
                     None)
    if binder is None:
        return None
    return binder(spec.x_shape, wk, spec.out_shape, spec.start, spec.boundary, spec.cval)


# One-shot direct calls reuse a plan's bound kernel call (see bind), by spec and kernel
# bytes: the launcher's per-call Python (~3-4 us) becomes one lookup.
_BOUND = LRU(256)


def _bound_direct(spec, x, wk, decision):
    """The bound runner for a direct call on ``x``, or None (then execute's usual path):
    only for C-ordered, aligned, writeable inputs of the compute dtype, results that need no cast,
    and an ``out`` the caller left to execute (C-contiguous, compute dtype)."""
    if x.dtype != spec.compute_dtype or spec.result_dtype != spec.compute_dtype \
            or spec.reverse_out or decision.params:
        return None
    if x.flags.num & _FAST_FLAGS != _FAST_FLAGS:     # C-ordered, aligned, writeable
        return None
    key = (spec, wk.tobytes())
    run = _BOUND.get(key)
    if run is None:
        run = bind(spec, decision, wk) or False
        _BOUND.put(key, run)
    return run


def _execute_filter(spec, x, w, decision, wk, out):
    get_launcher("filter", decision.method, decision.device)(x, out, spec.passes,
                                                             spec.cval)
    return out


def _launch(spec, decision, out, shape, inputs, params):
    """Run the registered launcher of ``spec``'s kind as ``f(*inputs, out, *params)``,
    into ``out`` or a new array of ``shape``."""
    if out is None:
        out = np.empty(shape, spec.dtype)
    get_launcher(spec.kind, decision.method, decision.device)(*inputs, out, *params)
    return out


def _execute_layer(spec, x, w, decision, wk, out):
    return _launch(spec, decision, out, spec.out_shape, (x, w),
                   (spec.stride, spec.dilation, spec.groups, spec.pads))


def _execute_layer_weight(spec, x, go, decision, wk, out):
    return _launch(spec, decision, out, spec.w_shape, (x, go),
                   (spec.stride, spec.dilation, spec.groups, spec.pads))


def _execute_col2im(spec, y, w, decision, wk, out):
    return _launch(spec, decision, out, spec.out_shape, (y,),
                   (spec.stride, spec.padding, spec.dilation))


def _execute_transposed(spec, x, w, decision, wk, out):
    return _launch(spec, decision, out, spec.out_shape, (x, w),
                   (spec.stride, spec.padding, spec.dilation, spec.groups))


_EXECUTE = {"correlate": _execute_conv, "batched": _execute_conv,
            "filter": _execute_filter, "layer": _execute_layer,
            "layer_weight": _execute_layer_weight, "col2im": _execute_col2im,
            "layer_transposed": _execute_transposed}


# -- the one entry point ----------------------------------------------------------------

def dispatch(spec, x, w, method: str = "auto", *, out=None, fast_key=None):
    """Decide and execute: the function every public call reaches. ``fast_key``: the
    public layer's key of this call in :data:`FAST` (see there), where the call's
    bound kernel call is kept for the next calls of its signature."""
    wk = prepare_kernel(spec, w) if spec.kind in _CONV_KINDS else None
    # A call whose kernels are not compiled yet: a method that needs no compile, while
    # they compile in the background (_firstcall.py).
    first = _firstcall.serve(spec, x, wk, method, out)
    if first is not None:
        result = execute(spec, x, w, first, wk=wk, out=out)
        _firstcall.start_loads()
        return result
    decision = decide(spec, x, w, method, wk=wk)
    if fast_key is not None and out is None:
        _remember(fast_key, spec, x, wk, decision)
    return execute(spec, x, w, decision, wk=wk, out=out)


_CONV_KINDS = ("correlate", "batched")


# -- the fast lane of repeated one-shot calls ----------------------------------------------

# A one-shot call repeated with one signature (small signals and images in a loop) spends
# most of its time above the kernel: validation, the spec and decision memos, kernel
# preparation and the bound-call memo (~8 us of a 10 us call of 1,000 samples). The
# public layer keys each call by everything these steps read (operation, mode, method,
# boundary, fill and its type, the input's shape, strides and dtype, the kernel's shape,
# dtype and bytes) and finds here the call the full path made for that key: the same
# bound kernel call (``bind``) into a new output, the bits ``execute`` computes. Entries
# are made only by a full call that passed every check and took the direct method's
# bound call (C-ordered input of the compute dtype, no result cast, compiled kernels);
# each holds the configuration and thread count it was decided under and declines (None:
# the full path runs) under any other, and a tuner cache clear clears them all, as it
# clears the decisions they hold. A kernel changed in place has other bytes: another key.
FAST = LRU(512)
FAST.clears_with(tuner._HOT)
# NumPy's flag bits for C-contiguous, aligned and writeable: what the bound call's kernel
# was typed for (one attribute read instead of three)
_FAST_FLAGS = 0x1 | 0x100 | 0x400


def _remember(fast_key, spec, x, wk, decision):
    """Keep the bound call of this full call under ``fast_key`` (see FAST), where the
    call took it (``_bound_direct``)."""
    if not (decision.method == "direct" and spec.kind == "correlate"
            and spec.device == "cpu" and type(x) is np.ndarray and wk.size <= 4096):
        return
    run = _bound_direct(spec, x, wk, decision)
    if not run:
        return
    cfg = _config.get()
    threads = tuner._threads()
    get, threads_now = _config.get, tuner._threads
    shape, dt = spec.out_shape, spec.compute_dtype
    flat = len(shape) == 1
    empty = np.empty

    def call(x):
        if get() is not cfg or x.flags.num & _FAST_FLAGS != _FAST_FLAGS \
                or threads_now() != threads:
            return None
        out = empty(shape, dt)
        # (ravel of a C-ordered array: its flat view, in half a reshape's time)
        run(x, out) if flat else run(x.ravel(), out.ravel())
        return out

    FAST.put(fast_key, call)


def measure_all(spec, x, w) -> dict:
    """Time every allowed method for this call (``choose_conv_method(measure=True)``)."""
    return dict(decide(spec, x, w, "auto", force_measure=True).times)


# -- devices -------------------------------------------------------------------------------

def finite(a) -> bool:
    """``all_finite`` of a NumPy array, or of a GPU array on its device (one reduction,
    one number copied back)."""
    if isinstance(a, np.ndarray):
        return all_finite(a)
    return bool(device_memory("cuda").all_finite(a))


def device_backend(device: str = "cuda"):
    """The module behind a device's arrays and streams (``kernels/cuda/_backend.py``, the
    one module that imports numba-cuda), loaded on first use. ImportError without
    numba-cuda."""
    import importlib
    if device != "cuda":
        raise ValueError(f"device {device!r} has no array backend")
    return importlib.import_module("fastconv.kernels.cuda._backend")


def device_memory(device: str = "cuda"):
    """The device's memory hooks (``empty``, ``zeros``, ``convert``, ``finish``,
    ``all_finite``, ``to_host``, ``from_host``): ``kernels.DEVICES[device]["memory"]``."""
    import importlib
    try:
        name = DEVICES[device]["memory"]
    except KeyError:
        raise ValueError(f"device {device!r} has no memory hooks") from None
    return importlib.import_module(name)


def choose_device(spec, x, w, method: str = "auto"):
    """``device="auto"`` for NumPy data: ("cpu" or "cuda", {device: seconds}, reason,
    key). The CPU call is timed against the GPU call with its copies (host to device, the
    kernel, device to host, synchronised); the choice is cached on disk like a method
    choice (``tuner.choose_custom``), and the cost models stand in where nothing is
    measured (tuning mode ``model``/``off``, or a call too cheap to be worth timing)."""
    from dataclasses import replace as _replace
    wk = prepare_kernel(spec, w)
    gspec = _replace(spec, device="cuda")
    cpu_d = decide(spec, x, w, method, wk=wk)
    gpu_d = decide(gspec, x, w, method, wk=wk)
    costs = {"cpu": tuner.predicted_seconds(spec, cpu_d),
             "cuda": tuner.predicted_seconds(gspec, gpu_d)
             + tuner.transfer_seconds(spec, x)}
    mem = device_memory("cuda")
    sync = DEVICES["cuda"].get("sync")

    def runner(dev):
        if dev == "cpu":
            execute(spec, x, w, cpu_d, wk=wk)
        else:
            mem.to_host(execute(gspec, x, w, gpu_d, wk=wk))
            if sync is not None:
                sync()

    dev, reason, info = tuner.choose_custom(tuner.device_key(spec, x), costs, runner,
                                            "auto")
    seconds = dict(info.get("times") or info.get("predicted") or costs)
    return dev, (cpu_d if dev == "cpu" else gpu_d), seconds, reason
