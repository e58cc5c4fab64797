"""Runs a validated :class:`ConvSpec` with a chosen method: casts the inputs to the compute
dtype, calls the method's launcher, and casts the result back as scipy would."""
from __future__ import annotations

import numpy as np

from .kernels import get_launcher


def prepare_kernel(spec, w: np.ndarray) -> np.ndarray:
    """The kernel as the launcher sees it: flipped for convolution, conjugated for complex
    correlation, in the compute dtype, contiguous (kernels are small)."""
    if spec.flip:
        w = w[(slice(None, None, -1),) * w.ndim]
    if spec.conj and w.dtype.kind == "c":
        w = np.conj(w)
    return np.ascontiguousarray(w, dtype=spec.compute_dtype)


def prepare_input(spec, x: np.ndarray) -> np.ndarray:
    # astype(copy=False) keeps views of native arrays (any strides) and converts
    # big-endian or narrower types; the launcher handles strides itself.
    return x.astype(spec.compute_dtype, copy=False)


def finish(spec, out: np.ndarray) -> np.ndarray:
    rt = spec.result_dtype
    if rt == np.bool_:
        out = out != 0
    elif out.dtype != rt:
        out = out.astype(rt)          # integer wrap-around as scipy's integer arithmetic
    if spec.reverse_out:
        out = out[(slice(None, None, -1),) * out.ndim]
        out = np.conj(out) if spec.conj_out and out.dtype.kind == "c" else out.copy()
    return out


def run(spec, x, w, method: str, params=None, device: str = "cpu", wk=None, out=None):
    """Execute ``spec`` on arrays ``x`` (input) and ``w`` (raw kernel; unused when the
    prepared kernel ``wk`` is given) with ``method``. ``out``: a C-contiguous buffer of
    the compute dtype and output shape to compute into (a plan's caller-owned output)."""
    if out is None:
        out = np.empty(spec.out_shape, spec.compute_dtype)
    if out.size == 0:
        return finish(spec, out)
    if wk is None:
        wk = prepare_kernel(spec, w)
    launcher = get_launcher(method, device)
    launcher(prepare_input(spec, x), wk, out, spec.start, spec.boundary, spec.cval,
             **(params or {}))
    return finish(spec, out)
