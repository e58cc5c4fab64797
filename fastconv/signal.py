"""scipy.signal drop-ins: same signatures, results, output dtypes and exceptions.

Beyond scipy: ``method`` also takes ``"oa"`` and ``"separable"``; ``convolve``/``correlate``
take keyword-only ``boundary``/``fillvalue`` (the boundary names of
docs/guide/boundaries.md) and ``workers`` (threads, scipy.fft's convention).
"""
from __future__ import annotations

import functools

import numpy as np

from . import _compat
from ._arrays import CPU, engine_for, on_cpu, placement, run_placed
from ._config import workers_scope
from ._dispatch import EMPTY, FAST, choose_device, decide, dispatch, execute, measure_all
from ._validate import (
    SIGNAL2D_BOUNDARIES, as_array, check_boundary, check_method, check_mode, conv_spec,
    swap_needed,
)
from ._fftconvolve import fftconvolve, oaconvolve

__all__ = ["convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d", "correlate2d",
           "choose_conv_method"]

def _check_not_empty(x, w, mode):
    if w.size == 0:
        raise ValueError("in2 cannot be empty")
    if x.size == 0 and mode != "same":
        raise ValueError("in1 cannot be empty")


def _fast_repeat(op, in1, in2, mode, method, boundary, fillvalue):
    """(key, result) of a call through the dispatcher's fast lane (``_dispatch.FAST``):
    ``key`` is everything the full path's checks and choices read (None when the call has
    none: an unhashable argument, a kernel too large to key by its bytes); ``result`` is
    the output of the bound kernel call kept for a repeat of a call that passed every
    check, or None (no entry, or the entry declined these arrays): then the full path
    runs, and makes the entry under ``key``."""
    if in2.size > 4096:
        return None, None
    key = (op, mode, method, boundary, fillvalue, type(fillvalue), in1.shape, in1.strides,
           in1.dtype, in2.shape, in2.dtype, in2.tobytes())
    try:
        # (peek: no reordering on hits; an entry evicted first is remade by its next call)
        call = FAST.peek(key)
    except TypeError:        # an unhashable argument: the full path checks it
        return None, None
    return key, (call(in1) if call is not None else None)


def _nd_call(op, in1, in2, mode, method, boundary, fillvalue, workers, device=None):
    key = None
    if workers is None and device is None and type(in1) is np.ndarray \
            and type(in2) is np.ndarray:
        key, result = _fast_repeat(op, in1, in2, mode, method, boundary, fillvalue)
        if result is not None:
            return result
    if on_cpu(device, in1, in2):
        where = CPU
    else:
        engine = engine_for(in1, in2, device=device)
        if engine is not None:       # a Dask array: a lazy result, one task per block
            prep = functools.partial(_nd_plan, op, mode=mode, method=method,
                                     boundary=boundary, fillvalue=fillvalue)
            call = functools.partial(_nd_call, op, mode=mode, method=method,
                                     boundary=boundary, fillvalue=fillvalue,
                                     workers=workers, device=device)
            return engine.conv(prep, call, in1, in2, workers)
        where = placement(device, (in1, "in1"), (in2, "in2"))
    plan = _nd_plan(op, in1, in2, mode, method, boundary, fillvalue, where)
    if plan[0] == "result":
        return where.deliver(plan[1])
    _, spec, x, w, method = plan
    if where is not CPU:
        with workers_scope(workers):
            return run_placed(where, spec, x, w, method, finite_warning=method == "fft")
    if method == "fft":
        _compat.warn_fft_nonfinite(x, w, stacklevel=4)   # scipy's warning, fastconv's facts
    if key is not None and x is in1 and method in ("auto", "direct"):
        return dispatch(spec, x, w, method, fast_key=key)
    with workers_scope(workers):
        return dispatch(spec, x, w, method)


def _nd_plan(op, in1, in2, mode, method, boundary, fillvalue, where=CPU):
    """Validation: ("result", array) for scalar inputs, else ("run", spec, x, w, method)."""
    arr = as_array if where is CPU else where.array
    x = arr(in1, "in1")
    w = arr(in2, "in2")
    if x.ndim == w.ndim == 0:
        if where is not CPU:          # two GPU scalars: the product of their values
            x, w = _host_scalar(x), _host_scalar(w)
            return "result", where.to_device(
                x * (np.conj(w) if op == "correlate" and w.dtype.kind == "c" else w))
        return "result", x * (np.conj(w) if op == "correlate" and w.dtype.kind == "c" else w)
    if x.ndim != w.ndim:
        raise ValueError("volume and kernel should have the same dimensionality"
                         if op == "convolve" else
                         "in1 and in2 should have the same dimensionality")
    mode = check_mode(mode)
    method = check_method(method)
    bnd = check_boundary(boundary)
    swapped = swap_needed(mode, x.shape, w.shape)
    if swapped:
        x, w = w, x
    _check_not_empty(x, w, mode)
    spec = conv_spec(op, x, w, mode, boundary=bnd, fillvalue=fillvalue, swapped=swapped,
                     device=_spec_device(where))
    if 0 in spec.out_shape:
        return "result", _empty(spec, x, w, where)
    return "run", spec, x, w, method


def _spec_device(where):
    """The device a spec is built for: "auto" decides later, from a CPU spec."""
    return "cpu" if where.device == "auto" else where.device


def _empty(spec, x, w, where):
    """scipy's empty result, on the device of the call (inside its stream)."""
    if spec.device == "cpu":
        return execute(spec, x, w, EMPTY)
    with where.scope():
        return execute(spec, x, w, EMPTY)


def _host_scalar(a):
    """A 0-d argument's value on the host (one number: the only GPU read fastconv makes
    outside the kernel, for the 0-d product scipy defines)."""
    if isinstance(a, np.ndarray):
        return a
    return np.asarray(a.copy_to_host())


def convolve(in1, in2, mode="full", method="auto", *, boundary="fill", fillvalue=0,
             workers=None, device=None):
    """Convolve two N-dimensional arrays, as :func:`scipy.signal.convolve`.

    Parameters
    ----------
    in1, in2 : array_like
        Input and kernel, of the same number of dimensions. In 'valid' mode the larger
        one (in every dimension) is used as the input, as scipy does.
    mode : {'full', 'valid', 'same'}
        Output size: the full linear convolution, the part computed without the
        boundary, or the size of `in1` centred on the full output.
    method : {'auto', 'direct', 'fft', 'oa', 'separable'}
        'auto' lets fastconv's tuner choose the fastest correct method.
    boundary : str, keyword-only
        How `in1` is extended past its edges (default 'fill', zeros as scipy). Also
        'wrap', 'symm', 'mirror', 'nearest', ... (fastconv extension).
    fillvalue : scalar, keyword-only
        The value used with ``boundary='fill'``.
    workers : int, optional, keyword-only
        Threads for this call (None: the current setting; negative counts from the CPUs).
    device : {None, 'cpu', 'cuda', 'auto'}, keyword-only
        Where it runs (docs/guide/gpu.md): None where the data lives (a CuPy array, torch
        CUDA tensor or other CUDA array on the GPU, on the caller's stream; NumPy data on
        ``FASTCONV_DEVICE``, by default the CPU); 'cuda' copies NumPy data to the GPU and
        the result back; 'auto' sends NumPy data to the GPU only when the measured copies
        and GPU call beat the CPU. A GPU array with 'cpu' raises TypeError.

    Returns
    -------
    ndarray
        The convolution, of dtype ``np.result_type(in1, in2)``; integer inputs are exact.
        GPU arrays give the same kind of GPU array.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    return _nd_call("convolve", in1, in2, mode, method, boundary, fillvalue, workers,
                    device)


def correlate(in1, in2, mode="full", method="auto", *, boundary="fill", fillvalue=0,
              workers=None, device=None):
    """Cross-correlate two N-dimensional arrays, as :func:`scipy.signal.correlate`.

    ``z[k] = sum_l in1[l + k] * conj(in2[l])`` (with the offsets of `mode`). Parameters
    as :func:`convolve`.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.correlate([1, 2, 3], [0, 1, 0.5])
    array([0.5, 2. , 3.5, 3. , 0. ])
    """
    return _nd_call("correlate", in1, in2, mode, method, boundary, fillvalue, workers,
                    device)


def _2d_call(op, in1, in2, mode, boundary, fillvalue, device=None):
    key = None
    if device is None and type(in1) is np.ndarray and type(in2) is np.ndarray:
        key, result = _fast_repeat(op, in1, in2, mode, "auto", boundary, fillvalue)
        if result is not None:
            return result
    if on_cpu(device, in1, in2):
        where = CPU
    else:
        engine = engine_for(in1, in2, device=device)
        if engine is not None:       # a Dask array: a lazy result, one task per block
            prep = functools.partial(_2d_plan, op, mode=mode, boundary=boundary,
                                     fillvalue=fillvalue)
            call = functools.partial(_2d_call, op, mode=mode, boundary=boundary,
                                     fillvalue=fillvalue, device=device)
            return engine.conv(prep, call, in1, in2)
        where = placement(device, (in1, "in1"), (in2, "in2"))
    plan = _2d_plan(op, in1, in2, mode, boundary, fillvalue, where)
    if plan[0] == "result":
        return where.deliver(plan[1])
    if where is not CPU:
        return run_placed(where, *plan[1:])
    if key is not None and plan[2] is in1:
        return dispatch(*plan[1:], fast_key=key)
    return dispatch(*plan[1:])


def _2d_plan(op, in1, in2, mode, boundary, fillvalue, where=CPU):
    """Validation: ("result", array) for empty inputs, else ("run", spec, x, w, "auto")."""
    arr = as_array if where is CPU else where.array
    x = arr(in1, "in1")
    w = arr(in2, "in2")
    if not x.ndim == w.ndim == 2:
        raise ValueError(f"{op} inputs must both be 2-D arrays")
    swapped = swap_needed(mode, x.shape, w.shape)
    if swapped:
        x, w = w, x
    mode = check_mode(mode)
    bnd = check_boundary(boundary, SIGNAL2D_BOUNDARIES)
    spec = conv_spec(op, x, w, mode, boundary=bnd, fillvalue=fillvalue, swapped=swapped,
                     device=_spec_device(where))
    if x.size == 0 or w.size == 0:
        return "result", _empty(spec, x, w, where)
    return "run", spec, x, w, "auto"


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, device=None):
    """Convolve two 2-D arrays with a boundary rule, as :func:`scipy.signal.convolve2d`.

    Parameters
    ----------
    in1, in2 : array_like
        2-D input and kernel.
    mode : {'full', 'valid', 'same'}
    boundary : {'fill', 'wrap', 'symm'}
        'fill' pads with `fillvalue`; 'wrap' (or 'circular') is periodic; 'symm'
        (or 'symmetric') mirrors with the edge sample repeated.
    fillvalue : scalar
    device : {None, 'cpu', 'cuda', 'auto'}, keyword-only
        Where it runs, as for :func:`convolve` (fastconv extension).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.convolve2d(np.eye(3), [[1, 1]], mode="same")
    array([[1., 1., 0.],
           [0., 1., 1.],
           [0., 0., 1.]])
    """
    return _2d_call("convolve2d", in1, in2, mode, boundary, fillvalue, device)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, device=None):
    """Cross-correlate two 2-D arrays, as :func:`scipy.signal.correlate2d`.

    Note scipy's 'same' centring here differs from :func:`correlate` for even kernels
    (the window starts at ``-((k - 1) // 2)``, not ``-(k // 2)``); fastconv follows it.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.correlate2d(np.eye(3), [[1, 2]], mode="same")
    array([[1., 0., 0.],
           [2., 1., 0.],
           [0., 2., 1.]])
    """
    return _2d_call("correlate2d", in1, in2, mode, boundary, fillvalue, device)


def choose_conv_method(in1, in2, mode="full", measure=False, *, device=None):
    """The method fastconv's ``method='auto'`` runs for ``convolve(in1, in2, mode)``.

    As :func:`scipy.signal.choose_conv_method`, but the answer is fastconv's own choice,
    one of 'direct', 'fft', 'oa', 'separable' (each valid for ``method=``). With
    ``measure=True`` every applicable method is timed and ``(method, times)`` returned,
    times in seconds per call, JIT compile excluded. ``device`` as for :func:`convolve`:
    the answer is the method for the device the call would run on (with 'auto', the
    device the tuner picks for this NumPy call).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.choose_conv_method(np.ones(1000), np.ones(3))
    'direct'
    """
    where = placement(device, (in1, "in1"), (in2, "in2"))
    arr = as_array if where is CPU else where.array
    x = arr(in1, "in1")
    w = arr(in2, "in2")
    if x.ndim != w.ndim:
        raise ValueError("volume and kernel should have the same dimensionality")
    mode = check_mode(mode)
    if x.ndim == 0:
        return ("direct", {}) if measure else "direct"
    if swap_needed(mode, x.shape, w.shape):
        x, w = w, x
    _check_not_empty(x, w, mode)
    spec = conv_spec("convolve", x, w, mode, device=_spec_device(where))
    if where.device == "auto":
        spec = conv_spec("convolve", x, w, mode,
                         device=choose_device(spec, x, w, "auto")[0])
    with where.scope():
        if measure:
            times = measure_all(spec, x, w)
            return min(times, key=times.get), times
        return decide(spec, x, w, "auto").method
