"""Helpers of the CUDA kernel tests (simulator or GPU): device copies and the checks
against the float64 reference, as tests/test_kernels_direct.py makes them."""
import numpy as np
import pytest

pytest.importorskip("numba.cuda")

from fastconv.kernels.cuda import _memory  # noqa: E402
from fastconv.kernels.cuda._backend import SIMULATOR, cuda  # noqa: E402

BOUNDARIES = ["constant", "wrap", "symmetric", "reflect", "edge"]
DTYPES = [np.float32, np.float64, np.complex64, np.complex128, np.int64]


def dev(a):
    """An explicit host-to-device copy."""
    return cuda.to_device(np.ascontiguousarray(a))


def host(d):
    return _memory.to_host(d)


def data(rng, shape, dtype, scale=4.0):
    x = rng.standard_normal(shape) * scale
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape) * scale
    if np.dtype(dtype).kind == "i":
        x = np.round(x * 4)
    return x.astype(dtype)


def tol(dtype):
    return 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10


def check(got, ref, dtype, rtol=None):
    """int64 exactly; floats to the dtype's tolerance, relative to the largest value;
    the NaN/Inf pattern must match the reference's exactly."""
    dtype = np.dtype(dtype)
    if dtype.kind == "i":
        np.testing.assert_array_equal(got, ref.real.astype(np.int64))
        return
    ref = np.asarray(ref)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    t = tol(dtype) if rtol is None else rtol
    scale = max(1.0, float(np.abs(ref[fin]).max())) if fin.any() else 1.0
    np.testing.assert_allclose(got[fin], ref[fin], rtol=t, atol=t * scale)


def mode_start(mode, n_shape, k_shape):
    """(start, out_shape) of scipy.signal's modes for correlation."""
    if mode == "same":
        return (tuple(-((k - 1) // 2) for k in k_shape), tuple(n_shape))
    if mode == "full":
        return (tuple(-(k - 1) for k in k_shape),
                tuple(n + k - 1 for n, k in zip(n_shape, k_shape)))
    return ((0,) * len(n_shape), tuple(n - k + 1 for n, k in zip(n_shape, k_shape)))


__all__ = ["BOUNDARIES", "DTYPES", "SIMULATOR", "dev", "host", "data", "tol", "check",
           "mode_start", "cuda", "_memory"]
