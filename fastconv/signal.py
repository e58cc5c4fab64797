"""scipy.signal drop-ins: same signatures, results, output dtypes and exceptions.

Beyond scipy: ``method`` also takes ``"oa"`` and ``"separable"``; ``convolve``/``correlate``
take keyword-only ``boundary``/``fillvalue`` (the boundary names of
docs/guide/boundaries.md) and ``workers`` (threads, scipy.fft's convention).
"""
from __future__ import annotations

import functools

import numpy as np

from . import _compat
from ._arrays import engine_for
from ._config import workers_scope
from ._dispatch import EMPTY, decide, dispatch, execute, measure_all
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


def _nd_call(op, in1, in2, mode, method, boundary, fillvalue, workers):
    engine = engine_for(in1, in2)
    if engine is not None:       # a Dask array: a lazy result, one task per block
        prep = functools.partial(_nd_plan, op, mode=mode, method=method, boundary=boundary,
                                 fillvalue=fillvalue)
        call = functools.partial(_nd_call, op, mode=mode, method=method,
                                 boundary=boundary, fillvalue=fillvalue, workers=workers)
        return engine.conv(prep, call, in1, in2, workers)
    plan = _nd_plan(op, in1, in2, mode, method, boundary, fillvalue)
    if plan[0] == "result":
        return plan[1]
    _, spec, x, w, method = plan
    if method == "fft":
        _compat.warn_fft_nonfinite(x, w, stacklevel=4)   # scipy's warning, fastconv's facts
    with workers_scope(workers):
        return dispatch(spec, x, w, method)


def _nd_plan(op, in1, in2, mode, method, boundary, fillvalue):
    """Validation: ("result", array) for scalar inputs, else ("run", spec, x, w, method)."""
    x = as_array(in1, "in1")
    w = as_array(in2, "in2")
    if x.ndim == w.ndim == 0:
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
    spec = conv_spec(op, x, w, mode, boundary=bnd, fillvalue=fillvalue, swapped=swapped)
    if 0 in spec.out_shape:
        return "result", execute(spec, x, w, EMPTY)
    return "run", spec, x, w, method


def convolve(in1, in2, mode="full", method="auto", *, boundary="fill", fillvalue=0,
             workers=None):
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

    Returns
    -------
    ndarray
        The convolution, of dtype ``np.result_type(in1, in2)``; integer inputs are exact.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    return _nd_call("convolve", in1, in2, mode, method, boundary, fillvalue, workers)


def correlate(in1, in2, mode="full", method="auto", *, boundary="fill", fillvalue=0,
              workers=None):
    """Cross-correlate two N-dimensional arrays, as :func:`scipy.signal.correlate`.

    ``z[k] = sum_l in1[l + k] * conj(in2[l])`` (with the offsets of `mode`). Parameters
    as :func:`convolve`.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.correlate([1, 2, 3], [0, 1, 0.5])
    array([0.5, 2. , 3.5, 3. , 0. ])
    """
    return _nd_call("correlate", in1, in2, mode, method, boundary, fillvalue, workers)


def _2d_call(op, in1, in2, mode, boundary, fillvalue):
    engine = engine_for(in1, in2)
    if engine is not None:       # a Dask array: a lazy result, one task per block
        prep = functools.partial(_2d_plan, op, mode=mode, boundary=boundary,
                                 fillvalue=fillvalue)
        call = functools.partial(_2d_call, op, mode=mode, boundary=boundary,
                                 fillvalue=fillvalue)
        return engine.conv(prep, call, in1, in2)
    plan = _2d_plan(op, in1, in2, mode, boundary, fillvalue)
    if plan[0] == "result":
        return plan[1]
    return dispatch(*plan[1:])


def _2d_plan(op, in1, in2, mode, boundary, fillvalue):
    """Validation: ("result", array) for empty inputs, else ("run", spec, x, w, "auto")."""
    x = as_array(in1, "in1")
    w = as_array(in2, "in2")
    if not x.ndim == w.ndim == 2:
        raise ValueError(f"{op} inputs must both be 2-D arrays")
    swapped = swap_needed(mode, x.shape, w.shape)
    if swapped:
        x, w = w, x
    mode = check_mode(mode)
    bnd = check_boundary(boundary, SIGNAL2D_BOUNDARIES)
    spec = conv_spec(op, x, w, mode, boundary=bnd, fillvalue=fillvalue, swapped=swapped)
    if x.size == 0 or w.size == 0:
        return "result", execute(spec, x, w, EMPTY)
    return "run", spec, x, w, "auto"


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
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

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.convolve2d(np.eye(3), [[1, 1]], mode="same")
    array([[1., 1., 0.],
           [0., 1., 1.],
           [0., 0., 1.]])
    """
    return _2d_call("convolve2d", in1, in2, mode, boundary, fillvalue)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
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
    return _2d_call("correlate2d", in1, in2, mode, boundary, fillvalue)


def choose_conv_method(in1, in2, mode="full", measure=False):
    """The method fastconv's ``method='auto'`` runs for ``convolve(in1, in2, mode)``.

    As :func:`scipy.signal.choose_conv_method`, but the answer is fastconv's own choice,
    one of 'direct', 'fft', 'oa', 'separable' (each valid for ``method=``). With
    ``measure=True`` every applicable method is timed and ``(method, times)`` returned,
    times in seconds per call, JIT compile excluded.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.choose_conv_method(np.ones(1000), np.ones(3))
    'direct'
    """
    x = as_array(in1, "in1")
    w = as_array(in2, "in2")
    if x.ndim != w.ndim:
        raise ValueError("volume and kernel should have the same dimensionality")
    mode = check_mode(mode)
    if x.ndim == 0:
        return ("direct", {}) if measure else "direct"
    if swap_needed(mode, x.shape, w.shape):
        x, w = w, x
    _check_not_empty(x, w, mode)
    spec = conv_spec("convolve", x, w, mode)
    if measure:
        times = measure_all(spec, x, w)
        return min(times, key=times.get), times
    return decide(spec, x, w, "auto").method
