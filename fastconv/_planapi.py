"""Reusable plans (``fastconv.plan``) and ``fastconv.explain``: validation, tuning and the
prepared kernel paid once for a fixed call signature, like an FFTW plan."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import _config
from ._arrays import CPU, placement
from ._config import workers_scope
from ._dispatch import bind, choose_device, decide, execute, prepare_kernel
from ._validate import (as_array, check_boundary, check_method, check_mode, check_out,
                        conv_spec, swap_needed)

_OPS = ("convolve", "correlate")
# NumPy's flag bits for C-contiguous, aligned and writeable: the arrays a bound kernel
# call takes (one attribute read instead of three)
_BOUND_FLAGS = 0x1 | 0x100 | 0x400


def _spec_for(op, x, w, mode, boundary, fillvalue, device="cpu"):
    if op not in _OPS:
        raise ValueError(f"op must be one of {_OPS}, got {op!r}")
    if x.ndim != w.ndim or x.ndim == 0:
        raise ValueError("in1 and in2 should have the same, non-zero, dimensionality")
    mode = check_mode(mode)
    bnd = check_boundary(boundary)
    if swap_needed(mode, x.shape, w.shape):
        raise ValueError("a plan needs in1 at least as large as in2 in 'valid' mode")
    return conv_spec(op, x, w, mode, boundary=bnd, fillvalue=fillvalue, device=device)


def _placed(where, op, x, w, mode, boundary, fillvalue, method):
    """(spec, decision) on the device of ``where``; "auto" (NumPy data) asks the tuner
    for the device first and records both sides in the decision."""
    if where.device != "auto":
        spec = _spec_for(op, x, w, mode, boundary, fillvalue, where.device)
        with where.scope():
            return spec, decide(spec, x, w, method)
    spec = _spec_for(op, x, w, mode, boundary, fillvalue, "cpu")
    dev, d, seconds, reason = choose_device(spec, x, w, method)
    spec = _spec_for(op, x, w, mode, boundary, fillvalue, dev)
    return spec, replace(d, params=dict(d.params), placement=seconds,
                         placement_reason=reason)


class Plan:
    """A convolution with a fixed input shape/dtype and a fixed kernel.

    Calling it runs the dispatcher's execute step with the decision made once: no
    validation beyond a shape/dtype check, no tuner lookup, the kernel already flipped,
    cast and factored (separable), or its spectrum kept after the first call (FFT and
    overlap-add). A one-shot call takes the same execute step. With the direct method on
    real floating data, the launcher also binds its per-call arguments once
    (``_dispatch.bind``): a C-ordered input of the compute dtype then goes straight to the
    kernel call that execute would make, with the same arguments and bits.
    """

    def __init__(self, spec, w, decision):
        self.spec = spec
        self.method = decision.method
        params = dict(decision.params)
        if self.method in ("fft", "oa"):
            # The plan owns its kernel's spectra: transformed on the first call, reused
            # by every later one (like an FFTW plan's precomputed state).
            params["spectra"] = {}
        self.decision = replace(decision, params=params)
        self._wk = prepare_kernel(spec, w)
        # The launcher's kernel call with its arguments built once (direct method, real
        # floating data): taken for C-ordered inputs of the compute dtype, where a call
        # then costs about the kernel alone.
        self._run = bind(spec, self.decision, self._wk)
        self._x_shape, self._out_shape = spec.x_shape, spec.out_shape
        self._flat = len(spec.x_shape) == 1
        self._dt = spec.compute_dtype

    def __call__(self, in1, out=None):
        if self.spec.device != "cpu":
            return self._call_device(in1, out)
        run = self._run
        if run is not None and type(in1) is np.ndarray and in1.shape == self._x_shape \
                and in1.dtype == self._dt and in1.flags.num & _BOUND_FLAGS == _BOUND_FLAGS:
            # (a 1-D array is its own flat view; ravel of a C-ordered one is its flat
            # view, in half a reshape's time)
            xf = in1 if self._flat else in1.ravel()
            if out is None:
                result = np.empty(self._out_shape, self._dt)
                run(xf, result if self._flat else result.ravel())
                return result
            if (type(out) is np.ndarray and out.shape == self._out_shape
                    and out.dtype == self._dt
                    and out.flags.num & _BOUND_FLAGS == _BOUND_FLAGS):
                run(xf, out if self._flat else out.ravel())
                return out
        x = np.asarray(in1)
        if x.shape != self.spec.x_shape:
            raise ValueError(f"in1 has shape {x.shape}; this plan was made for "
                             f"{self.spec.x_shape}")
        if np.result_type(x.dtype, self.spec.result_dtype) != self.spec.result_dtype:
            raise TypeError(f"in1 has dtype {x.dtype}; this plan computes "
                            f"{self.spec.result_dtype}")
        spec = self.spec
        check_out(out, spec.out_shape, spec.result_dtype)
        direct_out = (out is not None and spec.result_dtype == spec.compute_dtype
                      and not spec.reverse_out)
        buf = out if direct_out and out.flags.c_contiguous else None
        result = execute(spec, x, None, self.decision, wk=self._wk, out=buf)
        if out is not None and result is not out:
            out[...] = result
            return out
        return result

    def _call_device(self, in1, out):
        """A plan made for the GPU: GPU input in, the same kind out, on the caller's
        stream; NumPy input is copied in and the result copied back (NumPy out)."""
        if out is not None:
            raise TypeError("out= is not supported by a plan that runs on the GPU (the "
                            "result is a new array of the input's kind)")
        where = placement("cuda", (in1, "in1"))
        x = where.array(in1, "in1")
        spec = self.spec
        if tuple(x.shape) != spec.x_shape:
            raise ValueError(f"in1 has shape {tuple(x.shape)}; this plan was made for "
                             f"{spec.x_shape}")
        if np.result_type(x.dtype, spec.result_dtype) != spec.result_dtype:
            raise TypeError(f"in1 has dtype {x.dtype}; this plan computes "
                            f"{spec.result_dtype}")
        with where.scope():
            return where.deliver(execute(spec, x, None, self.decision, wk=self._wk))

    def explain(self) -> str:
        return str(self.decision)

    def __repr__(self) -> str:
        s = self.spec
        return (f"<fastconv.Plan {s.op} x={s.x_shape} w={s.w_shape} mode={s.mode} "
                f"dtype={s.result_dtype} method={self.method}>")


def _shape_dtype(in1):
    """``(shape, dtype)`` when ``in1`` is such a pair (a tuple of ints and something
    numpy accepts as a dtype), else None: then ``in1`` is example data."""
    if not (isinstance(in1, tuple) and len(in1) == 2 and isinstance(in1[0], tuple)
            and all(isinstance(n, (int, np.integer)) for n in in1[0])):
        return None
    try:
        return tuple(int(n) for n in in1[0]), np.dtype(in1[1])
    except TypeError:
        return None


def plan(in1, in2, mode="full", *, op="convolve", method="auto", boundary="fill",
         fillvalue=0, workers=None, device=None):
    """Make a :class:`Plan` for ``op(in1, in2, mode)`` with fixed shapes and kernel.

    `in1` is an example input (its values are used only for tuning measurements) or a
    ``(shape, dtype)`` pair. The plan holds the chosen method and the prepared kernel.
    ``device`` as for :func:`fastconv.convolve`: a plan made for the GPU (GPU example
    data, or 'cuda', or 'auto' choosing it) runs its calls there, GPU arrays in, the
    same kind out (NumPy input: copied in and back; ``out=`` is then not supported).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> p = fastconv.plan(np.zeros((64, 64), np.float32), np.ones((3, 3), np.float32),
    ...                   mode="same")
    >>> p(np.ones((64, 64), np.float32))[1, 1]
    np.float32(9.0)
    """
    spec_pair = _shape_dtype(in1)
    where = placement(device, (in2, "in2")) if spec_pair else \
        placement(device, (in1, "in1"), (in2, "in2"))
    if where is CPU:
        x = np.zeros(*spec_pair) if spec_pair else as_array(in1, "in1")
        w = as_array(in2, "in2")
        method = check_method(method)
        spec = _spec_for(op, x, w, mode, boundary, fillvalue)
        with workers_scope(workers):
            decision = decide(spec, x, w, method)
        return Plan(spec, w, decision)
    x = np.zeros(*spec_pair) if spec_pair else where.array(in1, "in1")
    w = where.array(in2, "in2")
    method = check_method(method)
    with workers_scope(workers):
        spec, decision = _placed(where, op, x, w, mode, boundary, fillvalue, method)
    return Plan(spec, w, decision)


def explain(in1, in2, mode="full", *, op="convolve", method="auto", boundary="fill",
            fillvalue=0, device=None):
    """Which method ``op(in1, in2, mode, method)`` runs, and why.

    Returns a :class:`fastconv.tuner.Decision`: ``.method``, ``.device``, ``.reason``
    (explicit, guard, cache, measured or model), ``.tune`` (the tuning mode in force), the
    measured and predicted times behind it, and the methods a guard excluded. ``print()``
    it for a readable summary. ``device`` as for :func:`fastconv.convolve`; with 'auto'
    (NumPy data, a GPU present) ``.placement`` holds both sides of the device choice:
    seconds on the CPU and on the GPU with the copies, measured or modelled.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.explain(np.ones(1000), np.ones(3)).method
    'direct'
    """
    where = placement(device, (in1, "in1"), (in2, "in2"))
    arr = as_array if where is CPU else where.array
    x = arr(in1, "in1")
    w = arr(in2, "in2")
    method = check_method(method)
    spec, d = _placed(where, op, x, w, mode, boundary, fillvalue, method)
    # The dispatcher's decisions are shared memo entries: explain hands out a copy, with
    # the tuning mode it was made under.
    return replace(d, params=dict(d.params), tune=d.tune or _config.get().tune)
