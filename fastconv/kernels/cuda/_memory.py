"""Device memory helpers for the CUDA path: allocation, dtype conversion, the result cast,
the finiteness check and the explicit host <-> device copies.

The device plumbing (``_dispatch`` on device "cuda") reaches these through
``kernels.DEVICES["cuda"]["memory"]``; every function queues its work on
``_backend.current_stream()``. Arrays are numba device arrays (or the simulator's); a
caller's CuPy array or torch tensor is wrapped by ``_backend.as_device_array`` first.

* ``convert(x, dtype)``: a C-contiguous device array of ``dtype`` holding ``x`` (any
  strides, negative ones included, any supported dtype; bool, int8..uint64, float16 and
  wider). ``x`` itself when it already is one. Casts follow NumPy's ``astype``
  (integers wrap, floats to integers truncate).
* ``finish(out, result_dtype, reverse, conj)``: the result as ``_dispatch._finish`` makes
  it on the CPU: cast (int64 to narrower integers wraps; bool is ``!= 0``), every axis
  reversed when ``reverse`` (for a C-contiguous array that is the flat index reversed),
  conjugated when ``conj`` and complex.
* ``all_finite(a)``: one pass over the device array, a flag written by any thread that
  sees a NaN or Inf (all write the same value, so no atomics), read back to the host.
"""
from __future__ import annotations

import math

import numpy as np

from ._backend import SIMULATOR, cuda, current_stream, jit, launch, strided_view

__all__ = ["empty", "zeros", "convert", "finish", "all_finite", "to_host", "from_host",
           "PTX_SIGNATURES"]

THREADS = 256
# Grid-stride loops: at most this many blocks; each thread then handles several elements
# (enough blocks to fill an H200's 132 SMs several times over).
MAX_BLOCKS = 4096


def _grid(n):
    return max(1, min(MAX_BLOCKS, -(-n // THREADS)))


# -- kernels ---------------------------------------------------------------------------------

@jit
def _fill(a, value):
    """a[i] = value over a flat C-contiguous array (grid-stride loop)."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < a.shape[0]:
        a[i] = value
        i += step


@jit
def _cast4(x, out):
    """out = x cast to out's dtype: rank 4 (any strides in x; out C-contiguous). Every
    rank runs through it: lower ranks get size-1 axes, higher ones loop over rank-4
    slabs on the host (a kernel indexes with a fixed number of subscripts)."""
    n1 = out.shape[1]
    n2 = out.shape[2]
    n3 = out.shape[3]
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        d = i % n3
        r = i // n3
        c = r % n2
        r = r // n2
        out[r // n1, r % n1, c, d] = x[r // n1, r % n1, c, d]
        i += step


@jit
def _cast_flat(x, out):
    """out[i] = x[i] cast to out's dtype over flat C-contiguous arrays (the common case:
    a contiguous input of another dtype; no index decoding)."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.shape[0]:
        out[i] = x[i]
        i += step


@jit
def _cast_bool(x, out):
    """out[i] = x[i] != 0 (a bool result, as ``out != 0`` on the CPU); flat arrays."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.shape[0]:
        out[i] = x[i] != 0
        i += step


@jit
def _finish_flat(x, out, reverse, conj):
    """out[i] = x[n-1-i] (reverse) or x[i], conjugated when ``conj``, cast to out's dtype.
    Flat C-contiguous arrays: reversing every axis is reversing the flat index."""
    n = out.shape[0]
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < n:
        v = x[n - 1 - i] if reverse else x[i]
        if conj:
            v = v.conjugate()
        out[i] = v
        i += step


@jit
def _nonfinite_flag(a, flag):
    """flag[0] = 1 when any element of the flat array is NaN or Inf (real and imaginary
    parts checked; ``.imag`` of a real value is 0)."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    found = False
    while i < a.shape[0]:
        v = a[i]
        if not (math.isfinite(v.real) and math.isfinite(v.imag)):
            found = True
        i += step
    if found:
        flag[0] = 1


# Input dtypes ``convert`` accepts, each with the kernel dtype the dispatcher computes it
# in (fastconv._validate.compute_dtype; bool is read as uint8, uint64 as int64); the
# casting kernels are compiled for these pairs (and any other pair a caller asks for).
CONVERT_PAIRS = tuple((np.dtype(a), np.dtype(b)) for a, b in [
    (np.int8, np.int64), (np.int16, np.int64), (np.int32, np.int64),
    (np.int64, np.int64), (np.uint8, np.int64), (np.uint16, np.int64),
    (np.uint32, np.int64), (np.float16, np.float32),
    (np.float32, np.float32), (np.float64, np.float64), (np.complex64, np.complex64),
    (np.complex128, np.complex128), (np.float32, np.float64), (np.float64, np.float32),
    (np.float16, np.float64)])

# Every conversion a call can ask for: each input type (bool read as uint8, uint64 as
# int64) to each kernel dtype NumPy's type promotion can give it (an int8 image with a
# float32 kernel computes in float32, a float32 one with a complex128 kernel in
# complex128). The flat cast is compiled for all of them in the PTX test, the strided
# one (the same assignment) for CONVERT_PAIRS.
_INTS = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
ALL_CONVERSIONS = tuple(
    [(np.dtype(a), np.dtype(b)) for a in _INTS
     for b in (np.int64, np.float32, np.float64, np.complex64, np.complex128)]
    + [(np.dtype(a), np.dtype(b)) for a in (np.float16, np.float32, np.float64)
       for b in (np.float32, np.float64, np.complex64, np.complex128)]
    + [(np.dtype(a), np.dtype(b)) for a in (np.complex64, np.complex128)
       for b in (np.complex64, np.complex128)])


# Result casts ``finish`` makes: from the kernel dtype to the result dtype (integers go
# through a strided view of their low bytes, so their copy is of one dtype, layout "A").
FINISH_PAIRS = tuple((np.dtype(a), np.dtype(b), lay) for a, b, lay in [
    (np.int8, np.int8, "A"), (np.int16, np.int16, "A"), (np.int32, np.int32, "A"),
    (np.int64, np.int64, "A"), (np.uint8, np.uint8, "A"), (np.uint16, np.uint16, "A"),
    (np.uint32, np.uint32, "A"), (np.uint64, np.uint64, "A"), (np.int64, np.int64, "C"),
    (np.float32, np.float16, "C"), (np.float32, np.float32, "C"),
    (np.float64, np.float64, "C"), (np.complex64, np.complex64, "C"),
    (np.complex128, np.complex128, "C")])


def _ptx_signatures():
    """Every (kernel, argument types) the helpers launch, for tests/test_cuda_ptx.py."""
    from numba import types
    from numba.np.numpy_support import from_dtype

    def arr(dt, nd, layout="C"):
        return types.Array(from_dtype(dt), nd, layout)

    from fastconv.kernels import KERNEL_DTYPES
    sigs = {_fill: [(arr(dt, 1), from_dtype(dt)) for dt in KERNEL_DTYPES],
            _nonfinite_flag: [(arr(dt, 1), arr(np.int32, 1))
                              for dt in KERNEL_DTYPES if dt.kind in "fc"],
            _cast_bool: [(arr(np.int64, 1), arr(np.bool_, 1))],
            _finish_flat: [(arr(a, 1, lay), arr(b, 1), types.boolean, types.boolean)
                           for a, b, lay in FINISH_PAIRS]}
    sigs[_cast4] = [(arr(a, 4, "A"), arr(b, 4)) for a, b in CONVERT_PAIRS]
    sigs[_cast_flat] = [(arr(a, 1), arr(b, 1)) for a, b in ALL_CONVERSIONS]
    return sigs


PTX_SIGNATURES = _ptx_signatures


# -- helpers -----------------------------------------------------------------------------------

def _flat(a):
    """A 1-D view of a C-contiguous device array."""
    return a.reshape(a.size)


def empty(shape, dtype):
    """Uninitialised C-ordered device memory of ``shape`` and ``dtype``."""
    return cuda.device_array(tuple(int(s) for s in shape), dtype=np.dtype(dtype),
                             stream=current_stream())


def zeros(shape, dtype):
    """A zero-filled C-ordered device array."""
    a = empty(shape, dtype)
    if a.size:
        dt = np.dtype(dtype)
        launch(_fill, _grid(a.size), THREADS, _flat(a), dt.type(0))
    return a


def fill(a, value):
    """Set every element of the C-contiguous device array ``a`` to ``value``."""
    if a.size:
        launch(_fill, _grid(a.size), THREADS, _flat(a), a.dtype.type(value))
    return a


def _is_c_contiguous(a):
    if SIMULATOR:
        return bool(a.flags["C_CONTIGUOUS"]) if hasattr(a, "flags") else True
    return bool(a.is_c_contiguous())


def convert(x, dtype):
    """``x`` as a C-contiguous device array of ``dtype`` (``x`` itself when it is one)."""
    dt = np.dtype(dtype)
    if x.dtype == dt and _is_c_contiguous(x):
        return x
    out = empty(x.shape, dt)
    if out.size == 0:
        return out
    if x.dtype == np.bool_ and dt.kind != "b":
        # bool is read as its byte: a uint8 view keeps the kernels free of bool arithmetic
        x = x.view(np.uint8)
    elif x.dtype == np.uint64 and dt == np.int64:
        # the same bits: wrap-around by reinterpretation (astype's result), no cast
        x = x.view(np.int64)
        if _is_c_contiguous(x):
            return x
    _cast_into(x, out)
    return out


def _merged(shape, strides):
    """Adjacent axes merged where one stride steps over the other's extent (C order),
    size-1 axes dropped: the fewest axes that describe the same elements."""
    dims = [(n, st) for n, st in zip(shape, strides) if n != 1]
    merged = []
    for n, st in dims:
        if merged and merged[-1][1] == st * n:
            pn, _ = merged[-1]
            merged[-1] = (pn * n, st)
        else:
            merged.append((n, st))
    return merged


def _cast_into(x, out):
    """out (C-contiguous, x's shape) = x cast: one flat pass when x is C-contiguous too,
    else through rank-4 views of both."""
    if _is_c_contiguous(x):
        n = out.size
        launch(_cast_flat, _grid(n), THREADS, _flat(x), _flat(out))
        return
    dims = _merged(x.shape, x.strides)
    if len(dims) > 4:
        for i in range(x.shape[0]):          # rank > 4 after merging: leading slabs
            _cast_into(x[i], out[i])
        return
    dims = [(1, x.dtype.itemsize)] * (4 - len(dims)) + dims
    shape = tuple(n for n, _ in dims)
    xv = strided_view(x, shape, tuple(st for _, st in dims))
    isz = out.dtype.itemsize
    ost = (shape[1] * shape[2] * shape[3] * isz, shape[2] * shape[3] * isz, shape[3] * isz,
           isz)
    ov = strided_view(out, shape, ost)
    launch(_cast4, _grid(out.size), THREADS, xv, ov)


def finish(out, result_dtype, reverse=False, conj=False):
    """The result in ``result_dtype``, every axis reversed when ``reverse`` (conjugated
    when ``conj`` too and complex): ``_dispatch._finish`` on the device."""
    rt = np.dtype(result_dtype)
    conj = bool(conj) and reverse and out.dtype.kind == "c"
    if rt == out.dtype and not reverse:
        return out
    res = empty(out.shape, rt)
    if out.size == 0:
        return res
    src = _flat(out)
    dst = _flat(res)
    n = out.size
    if rt.kind == "b":
        if reverse:
            tmp = empty((n,), out.dtype)
            launch(_finish_flat, _grid(n), THREADS, src, tmp, True, False)
            src = tmp
        launch(_cast_bool, _grid(n), THREADS, src, dst)
        return res
    if out.dtype.kind in "iu" and rt.kind in "iu" and rt.itemsize < out.dtype.itemsize:
        # integer wrap-around = the low bytes of each (little-endian) int64: a strided
        # view of them, copied; the same bits as astype without an overflowing cast
        src = strided_view(src, (n,), (out.dtype.itemsize,), rt)
    elif out.dtype.kind in "iu" and rt.kind in "iu":
        src = strided_view(src, (n,), (out.dtype.itemsize,), rt)     # uint64: same bits
    launch(_finish_flat, _grid(n), THREADS, src, dst, bool(reverse), conj)
    return res


def all_finite(a) -> bool:
    """True iff every value of the device array ``a`` is finite (integers always are)."""
    if a.dtype.kind not in "fc" or a.size == 0:
        return True
    if not _is_c_contiguous(a):
        a = convert(a, a.dtype)
    stream = current_stream()
    flag = cuda.to_device(np.zeros(1, np.int32), stream=stream)
    launch(_nonfinite_flag, _grid(a.size), THREADS, _flat(a), flag)
    host = flag.copy_to_host(stream=stream)
    stream.synchronize()
    return not host[0]


def to_host(a):
    """An explicit device-to-host copy (waits for the stream)."""
    stream = current_stream()
    host = a.copy_to_host(stream=stream)
    stream.synchronize()
    return host


def from_host(a):
    """An explicit host-to-device copy of a NumPy array (C order)."""
    return cuda.to_device(np.ascontiguousarray(a), stream=current_stream())
