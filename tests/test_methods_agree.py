"""direct, fft, oa and separable agree on random inputs within the documented tolerance.

Tolerance table (elementwise, against the direct method):
  fft / oa    fft_error_bound(x, w, dtype)      (~eps * log2(L) * ||w||_2 sqrt(k) max|x|)
  separable   8 * eps * sum|w| * max|x|           (same rounding class as direct)
  int64       exact, for every method (FFT only inside fft_is_exact)
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from fastconv.kernels.cpu import direct, fft, separable

BOUNDARIES = ["constant", "wrap", "symmetric", "reflect", "edge"]


def _all_methods(x, w, out_shape, start, boundary, cval, factors=None):
    res = {}
    for name, fn in [("direct", direct.correlate), ("fft", fft.correlate_fft),
                     ("oa", lambda *a: fft.correlate_oa(
                         *a, block=tuple(2 * k + 1 for k in w.shape)))]:
        out = np.empty(out_shape, x.dtype)
        fn(x, w, out, start, boundary, cval)
        res[name] = out
    if factors is not None:
        out = np.empty(out_shape, x.dtype)
        separable.correlate_separable(x, w, out, start, boundary, cval, factors=factors)
        res["separable"] = out
    return res


def _check(res, x, w, cval=0):
    ref = res["direct"]
    if x.dtype == np.int64:
        for name, got in res.items():
            np.testing.assert_array_equal(got, ref, err_msg=name)
        return
    eps = np.finfo(x.dtype).eps
    xmax = max(np.abs(x).max() if x.size else 0, abs(cval))
    scale = np.abs(w).sum() * xmax + 1e-30
    for name, got in res.items():
        tol = fft.fft_error_bound(x, w, x.dtype, cval, ref.shape) if name in ("fft", "oa") else 8 * eps * scale
        assert np.abs(got - ref).max() <= tol + 4 * eps * scale, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.int64])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_methods_agree_random(dtype, ndim):
    rng = np.random.default_rng(ndim * 7 + np.dtype(dtype).itemsize)
    for trial in range(4):
        shape = tuple(int(v) for v in rng.integers(3, 24 if ndim < 3 else 10, size=ndim))
        kshape = tuple(int(v) for v in rng.integers(1, 8 if ndim < 3 else 5, size=ndim))
        fs = [rng.standard_normal(k) * 3 for k in kshape]
        if dtype == np.int64:
            fs = [np.rint(f) for f in fs]
            x = rng.integers(-100, 100, size=shape).astype(np.int64)
        else:
            x = rng.standard_normal(shape) * 10
            if np.dtype(dtype).kind == "c":
                x = x + 1j * rng.standard_normal(shape)
            x = x.astype(dtype)
        fs = [f.astype(dtype) for f in fs]
        w = fs[0]
        for f in fs[1:]:
            w = np.multiply.outer(w, f)
        boundary = BOUNDARIES[trial % 5 if dtype != np.int64 else trial % 2 * 2]
        start = tuple(-(k // 2) for k in kshape)
        factors = [fs] if ndim > 1 and dtype != np.complex64 else None
        res = _all_methods(x, w, shape, start, boundary, 0, factors)
        _check(res, x, w)


@given(n=st.integers(1, 60), k=st.integers(1, 20), s=st.integers(-25, 5),
       m=st.integers(1, 70), seed=st.integers(0, 2**16),
       boundary=st.sampled_from(BOUNDARIES))
def test_property_fft_oa_agree_with_direct_1d(n, k, s, m, seed, boundary):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    w = rng.standard_normal(k)
    _check(_all_methods(x, w, (m,), (s,), boundary, 0.25), x, w, 0.25)
