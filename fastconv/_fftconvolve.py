"""Drop-ins for ``scipy.signal.fftconvolve`` and ``scipy.signal.oaconvolve``.

Same signature, validation, error messages, output shapes and dtypes as scipy (``axes=``
with broadcasting over the other axes, length-1 axes, 'same'/'valid' cropping); the work
runs through fastconv's FFT / overlap-add launchers, which add two things scipy lacks:
transforms on fastconv's thread count, and NaN/Inf that stay local to the outputs whose
window holds them (scipy's FFT smears them over the whole result).
"""
from __future__ import annotations

import functools
import operator
from numbers import Number

import numpy as np

from ._arrays import CPU, array_kind, engine_for, on_cpu, placement, run_placed
from ._dispatch import dispatch
from ._validate import ConvSpec

__all__ = ["fftconvolve", "oaconvolve"]

_MODES = ("full", "same", "valid")


def fftconvolve(in1, in2, mode="full", axes=None, *, device=None):
    """Convolve two N-dimensional arrays using FFT (``scipy.signal.fftconvolve``).

    Parameters
    ----------
    in1, in2 : array_like
        Inputs, with the same number of dimensions.
    mode : {'full', 'valid', 'same'}
        Output size, as in scipy.
    axes : int or sequence of ints or None
        Axes to convolve over (default: all); other axes broadcast.
    device : {None, 'cpu', 'cuda', 'auto'}, keyword-only
        Where it runs, as for :func:`fastconv.convolve` (GPU arrays: cuFFT through CuPy,
        the result as the kind that came in).

    Returns
    -------
    ndarray
        Float (or complex) result; float32 inputs give float32.  Non-finite input values
        only affect the outputs whose window contains them.  long double inputs are
        computed in double and returned as long double, scipy's dtype.
    """
    return _as_scipy_dtype(_convolve(in1, in2, mode, axes, device), in1, in2)


def oaconvolve(in1, in2, mode="full", axes=None, *, device=None):
    """Convolve two N-dimensional arrays using overlap-add (``scipy.signal.oaconvolve``).

    Same parameters and results as :func:`fftconvolve` (both run fastconv's blocked
    transform: blocks sized by a measured rule, one whole transform where blocks do not
    pay, O(block) extra memory for long signals).
    """
    return _as_scipy_dtype(_convolve(in1, in2, mode, axes, device), in1, in2)


def _convolve(in1, in2, mode, axes, device=None):
    if on_cpu(device, in1, in2):
        where = CPU
    else:
        engine = engine_for(in1, in2, device=device)
        if engine is not None:       # a Dask array: a lazy result, one task per block
            return engine.conv(functools.partial(_plan, mode=mode, axes=axes),
                               functools.partial(_convolve, mode=mode, axes=axes,
                                                 device=device), in1, in2)
        where = placement(device, (in1, "in1"), (in2, "in2"))
    plan = _plan(in1, in2, mode, axes, where)
    if plan[0] == "result":
        return where.deliver(plan[1])
    if where is not CPU:
        return run_placed(where, *plan[1:])
    return dispatch(*plan[1:])


def _plan(in1, in2, mode, axes, where=CPU):
    """Validation: ("result", array) where no transform runs, else ("run", spec, in1, in2,
    "oa")."""
    on_host = where is CPU
    in1 = np.asarray(in1) if on_host else where.array(in1, "in1")
    in2 = np.asarray(in2) if on_host else where.array(in2, "in2")
    if in1.ndim == in2.ndim == 0:  # scalar inputs
        if not on_host:
            return "result", where.to_device(_host(in1) * _host(in2))
        return "result", in1 * in2
    if in1.ndim != in2.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    if in1.size == 0 or in2.size == 0:
        return "result", np.asarray([]) if on_host else where.to_device(np.asarray([]))
    in1, in2, axes = _init_freq_conv_axes(in1, in2, mode, axes)
    if mode not in _MODES:     # scipy checks the axes first, then the mode
        raise ValueError("acceptable mode flags are 'valid', 'same', or 'full'")
    s1, s2 = in1.shape, in2.shape
    if not axes and on_host:
        # No axis to transform: a broadcast product (on a GPU the spec below computes it:
        # every axis is length-1 or paired elementwise).
        return "result", _apply_conv_mode(in1 * in2, s1, s2, mode, axes)

    dtype = _result_dtype(in1.dtype, in2.dtype)
    out_shape, start, batch = [], [], []
    for a in range(in1.ndim):
        n, k = s1[a], s2[a]
        if a in axes or n == 1 or k == 1:
            # A length-1 axis convolves like a broadcast; scipy keeps its full length
            # in 'valid' mode (it is not a convolved axis there).
            eff = mode if a in axes or mode != "valid" else "full"
            if eff == "full":
                out_shape.append(n + k - 1)
                start.append(-(k - 1))
            elif eff == "same":
                out_shape.append(n)
                start.append(-(k - 1) + (k - 1) // 2)
            else:
                out_shape.append(n - k + 1)
                start.append(0)
        else:
            batch.append(a)                     # equal lengths: elementwise
            out_shape.append(n)
            start.append(0)
    # Convolution = correlation with the kernel flipped along the convolved axes (the
    # dispatcher flips it: not along the batch axes, where x and w pair elementwise).
    # Both run the blocked transform with the measured block rule: it falls back to one
    # whole transform where blocks do not pay (kernel comparable to the input, small
    # 3-D volumes), and is 2-5x faster than whole transforms for large 1-D/2-D inputs.
    spec = ConvSpec(op="fftconvolve", x_shape=in1.shape, w_shape=in2.shape,
                    out_shape=tuple(out_shape), start=tuple(start), compute_dtype=dtype,
                    result_dtype=dtype, flip=True, mode=mode, batch=tuple(batch),
                    device="cpu" if where.device == "auto" else where.device)
    return "run", spec, in1, in2, "oa"


def _host(a):
    """A 0-d GPU argument's value (one number) on the host."""
    return a if isinstance(a, np.ndarray) else np.asarray(a.copy_to_host())


# long double types wider than double on this platform (empty where they are double)
_LONG = {np.dtype(np.longdouble), np.dtype(np.clongdouble)} - {np.dtype(np.float64),
                                                               np.dtype(np.complex128)}


def _as_scipy_dtype(out, in1, in2):
    """scipy returns long double (complex) results for long double inputs; fastconv
    computes them in double (its kernels stop at 64-bit floats) and widens at the end.
    GPU results have no long double to widen to."""
    if array_kind(out) == "cuda":
        return out
    rt = np.result_type(_dtype_of(in1), _dtype_of(in2))
    return out.astype(rt) if rt in _LONG else out


def _dtype_of(a):
    # An array's own dtype: np.asarray would compute a Dask array just to read it.
    dt = getattr(a, "dtype", None)
    return dt if isinstance(dt, np.dtype) else np.asarray(a).dtype


def _result_dtype(d1, d2):
    """scipy.fft's promotion: integers and bools compute in float64, float16 in float32,
    long double in double (fastconv's kernels stop at 64-bit floats)."""
    def floated(d):
        if d.kind in "biu":
            return np.dtype(np.float64)
        if d.kind == "f":
            return np.dtype(np.float32) if d.itemsize <= 4 else np.dtype(np.float64)
        if d.kind == "c":
            return np.dtype(np.complex64) if d.itemsize <= 8 else np.dtype(np.complex128)
        raise TypeError(f"unsupported input dtype {d} for FFT convolution")
    return np.result_type(floated(d1), floated(d2))


def _iterable_of_int(x, name):
    if isinstance(x, Number):
        x = (x,)
    try:
        return [operator.index(a) for a in x]
    except TypeError as e:
        raise ValueError(f"{name} must be a scalar or iterable of integers") from e


def _init_freq_conv_axes(in1, in2, mode, axes):
    """scipy's checks, messages and input swap for frequency-domain convolution."""
    s1, s2 = in1.shape, in2.shape
    if axes is None:
        axes = list(range(in1.ndim))
    else:
        axes = _iterable_of_int(axes, "axes")
        axes = [a + in1.ndim if a < 0 else a for a in axes]
        if any(a >= in1.ndim or a < 0 for a in axes):
            raise ValueError("axes exceeds dimensionality of input")
        if len(set(axes)) != len(axes):
            raise ValueError("all axes must be unique")
        if not axes:
            raise ValueError("when provided, axes cannot be empty")
    # Axes of length 1 rely on broadcasting; no transform needed.
    axes = [a for a in axes if s1[a] != 1 and s2[a] != 1]
    if not all(s1[a] == s2[a] or s1[a] == 1 or s2[a] == 1
               for a in range(in1.ndim) if a not in axes):
        raise ValueError(f"incompatible shapes for in1 and in2: {s1} and {s2}")
    if mode == "valid" and s1:
        ok1 = all(s1[i] >= s2[i] for i in axes)
        ok2 = all(s2[i] >= s1[i] for i in axes)
        if not (ok1 or ok2):
            raise ValueError("For 'valid' mode, one must be at least "
                             "as large as the other in every dimension")
        if not ok1:
            in1, in2 = in2, in1
    return in1, in2, axes


def _apply_conv_mode(ret, s1, s2, mode, axes):
    if mode == "full":
        return ret.copy()
    if mode == "same":
        return _centered(ret, s1).copy()
    shape_valid = [ret.shape[a] if a not in axes else s1[a] - s2[a] + 1
                   for a in range(ret.ndim)]
    return _centered(ret, shape_valid).copy()


def _centered(arr, newshape):
    start = [(c - n) // 2 for c, n in zip(arr.shape, newshape)]
    return arr[tuple(slice(s, s + n) for s, n in zip(start, newshape))]
