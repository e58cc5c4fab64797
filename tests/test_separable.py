"""Separable factor detection and the separable launcher."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from fastconv._separable import (low_rank_factors, rank_tolerance, require_factors,
                                 separable_factors)
from fastconv.kernels.cpu import direct, separable
from reference import correlate_ref

BOUNDARIES = ["constant", "wrap", "symmetric", "reflect", "edge"]


def _outer(factors):
    w = np.asarray(factors[0])
    for f in factors[1:]:
        w = np.multiply.outer(w, f)
    return w


# -- detection -----------------------------------------------------------------------------

def test_gaussian_2d_and_3d_are_separable():
    g = np.exp(-np.arange(-9, 10) ** 2 / 18.0)
    for dtype in (np.float32, np.float64):
        f = separable_factors(np.outer(g, g).astype(dtype), dtype)
        assert f is not None and [len(v) for v in f] == [19, 19]
        assert all(v.dtype == dtype for v in f)
        assert (f[0] > 0).all() and (f[1] > 0).all()
        np.testing.assert_allclose(np.outer(*f), np.outer(g, g), rtol=1e-5 if dtype == np.float32 else 1e-12)
    w3 = _outer([g[:5], g[:3], g])
    f3 = separable_factors(w3, np.float64)
    np.testing.assert_allclose(_outer(f3), w3, rtol=1e-12, atol=1e-15)


def test_not_separable_and_tolerance_follows_dtype():
    rng = np.random.default_rng(0)
    assert separable_factors(rng.standard_normal((5, 5)), np.float64) is None
    assert separable_factors(rng.standard_normal((3, 4, 5)), np.float64) is None
    # a 3-D kernel separable along axis 0 only fails the rank test on the other axes
    assert separable_factors(np.multiply.outer(rng.standard_normal(3),
                                               rng.standard_normal((4, 5))), np.float64) is None
    w = np.outer(rng.standard_normal(7), rng.standard_normal(7))
    w_noisy = w + 1e-9 * np.linalg.norm(w) * rng.standard_normal(w.shape)
    assert rank_tolerance(np.float32) > 1e-9 > rank_tolerance(np.float64)
    assert separable_factors(w_noisy, np.float32) is not None
    assert separable_factors(w_noisy, np.float64) is None


def test_integer_and_complex_factors():
    sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    f = separable_factors(sobel, np.int64)
    assert all(v.dtype == np.int64 for v in f)
    np.testing.assert_array_equal(np.outer(*f), sobel)
    assert separable_factors(np.array([[1, 2], [3, 4]]), np.int64) is None
    rng = np.random.default_rng(1)
    a = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    b = rng.standard_normal(5) + 1j * rng.standard_normal(5)
    fc = separable_factors(np.outer(a, b), np.complex128)
    np.testing.assert_allclose(np.outer(*fc), np.outer(a, b), atol=1e-13)


def test_low_rank_and_clear_error():
    rng = np.random.default_rng(2)
    w = sum(np.outer(rng.standard_normal(15), rng.standard_normal(15)) for _ in range(3))
    terms = low_rank_factors(w, np.float64)
    assert len(terms) == 3
    np.testing.assert_allclose(sum(np.outer(u, v) for u, v in terms), w, atol=1e-12)
    assert low_rank_factors(rng.standard_normal((5, 5)), np.float64) is None
    with pytest.raises(ValueError, match="method='separable' needs a kernel"):
        require_factors(rng.standard_normal((5, 5)))
    with pytest.raises(ValueError, match="not"):
        separable.correlate_separable(np.ones((8, 8)), rng.standard_normal((5, 5)),
                                      np.empty((8, 8)), (-2, -2))


# -- the launcher against the reference -------------------------------------------------------

@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_launcher_matches_reference(ndim, boundary):
    rng = np.random.default_rng(ndim * 10 + BOUNDARIES.index(boundary))
    for trial in range(3):
        hi = 9 if ndim < 4 else 4
        shape = tuple(int(v) for v in rng.integers(1, hi, size=ndim))
        kshape = tuple(int(v) for v in rng.integers(1, 5 if ndim < 4 else 3, size=ndim))
        start = tuple(int(v) for v in rng.integers(-5, 2, size=ndim))
        out_shape = tuple(int(v) for v in rng.integers(1, hi + 2, size=ndim))
        x = rng.standard_normal(shape) * 4
        fs = [rng.standard_normal(k) for k in kshape]
        w = _outer(fs)
        cval = 1.5 if trial else 0.0
        out = np.empty(out_shape)
        given_factors = [fs] if trial != 2 else None       # also detect them here
        separable.correlate_separable(x, w, out, start, boundary, cval, factors=given_factors)
        ref = correlate_ref(x, w, start, out_shape, boundary, cval)
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10 * (np.abs(ref).max() + 1))


@pytest.mark.parametrize("dtype", [np.float32, np.complex128, np.int64])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_dtypes_and_modes_2d(dtype, mode):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((23, 30)) * 4
    a, b = rng.standard_normal(5) * 3, rng.standard_normal(4) * 3
    if dtype == np.int64:
        x, a, b = np.rint(x), np.rint(a), np.rint(b)
    if dtype == np.complex128:
        x = x + 1j * rng.standard_normal(x.shape)
        a = a + 1j
    x, a, b = x.astype(dtype), a.astype(dtype), b.astype(dtype)
    w = np.outer(a, b)
    k = np.array(w.shape)
    n = np.array(x.shape)
    start = {"full": -(k - 1), "same": -(k // 2), "valid": 0 * k}[mode]
    m = {"full": n + k - 1, "same": n, "valid": n - k + 1}[mode]
    out = np.empty(tuple(m), dtype)
    separable.correlate_separable(x, w, out, tuple(start), "reflect", factors=[[a, b]])
    ref = correlate_ref(x, w, tuple(start), tuple(m), "reflect")
    if dtype == np.int64:
        np.testing.assert_array_equal(out, ref.real.astype(np.int64))
    else:
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_low_rank_launcher_and_strided_input():
    rng = np.random.default_rng(4)
    big = rng.standard_normal((60, 70))
    x = big[::2, ::-2]
    w = sum(np.outer(rng.standard_normal(9), rng.standard_normal(9)) for _ in range(2))
    out = np.empty((30, 35))
    separable.correlate_separable(x, w, out, (-4, -4), "edge")        # factors detected
    ref = correlate_ref(x, w, (-4, -4), out.shape, "edge")
    np.testing.assert_allclose(out, ref, atol=1e-10)


def test_nonfinite_stays_local():
    rng = np.random.default_rng(5)
    for shape, fs in [((20, 21), [rng.standard_normal(5), rng.standard_normal(3)]),
                      ((8, 9, 10), [rng.standard_normal(3)] * 3)]:
        x = rng.standard_normal(shape)
        x.reshape(-1)[[5, 40, -7]] = [np.nan, np.inf, -np.inf]
        fs[1] = fs[1].copy()
        fs[1][1] = 0.0
        w = _outer(fs)
        start = tuple(-(len(f) // 2) for f in fs)
        out, ref = np.empty(shape), np.empty(shape)
        separable.correlate_separable(x, w, out, start, factors=[fs])
        direct.correlate(x, w, ref, start)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
        fin = np.isfinite(ref)
        np.testing.assert_allclose(out[fin], ref[fin], atol=1e-10)


@given(n0=st.integers(1, 12), n1=st.integers(1, 12), k0=st.integers(1, 6),
       k1=st.integers(1, 6), s0=st.integers(-6, 2), s1=st.integers(-6, 2),
       boundary=st.sampled_from(BOUNDARIES), seed=st.integers(0, 2**16))
def test_property_matches_direct(n0, n1, k0, k1, s0, s1, boundary, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n0, n1))
    a, b = rng.standard_normal(k0), rng.standard_normal(k1)
    out, ref = np.empty((n0 + 1, n1)), np.empty((n0 + 1, n1))
    separable.correlate_separable(x, np.outer(a, b), out, (s0, s1), boundary, 0.5,
                                  factors=[[a, b]])
    direct.correlate(x, np.outer(a, b), ref, (s0, s1), boundary, 0.5)
    np.testing.assert_allclose(out, ref, atol=1e-10)
