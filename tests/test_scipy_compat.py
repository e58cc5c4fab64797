"""Drop-in details that SciPy's own test suite checks (tests/test_scipy_suite.py runs it):
each case here failed before the fix it names."""
import warnings

import numpy as np
import pytest
import scipy.signal

import fastconv
from fastconv._compat import scipy_choose_conv_method
from fastconv._separable import separable_factors


@pytest.mark.parametrize("func", [fastconv.fftconvolve, fastconv.oaconvolve])
@pytest.mark.parametrize("dtype", [np.longdouble, np.clongdouble])
def test_long_double_inputs_return_long_double(func, dtype):
    # scipy returns long double; fastconv computes in double and widens the result.
    rng = np.random.default_rng(0)
    x = rng.random((9, 7)).astype(dtype)
    h = rng.random((3, 2)).astype(dtype)
    got = func(x, h)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, scipy.signal.fftconvolve(x, h), rtol=1e-12, atol=1e-12)
    assert func(x.real.astype(np.float32), h.real.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("op", [fastconv.convolve, fastconv.correlate])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_method_fft_warns_as_scipy_on_non_finite_input(op, bad):
    x = np.random.default_rng(1).standard_normal(300)
    x[100] = bad
    h = np.hanning(31)
    with pytest.warns(RuntimeWarning, match="Use of fft convolution on input with NAN or inf"):
        got = op(x, h, mode="same", method="fft")
    # ... and the values are fastconv's: the non-finite value stays in its window.
    assert np.isfinite(got[:80]).all() and np.isfinite(got[120:]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op(x, h, mode="same", method="direct")
        op(x, h, mode="same")                     # auto picks a NaN-safe route: no warning
        op(np.ones(300), h, mode="same", method="fft")


def test_scipy_choose_conv_method_answers_in_scipy_vocabulary():
    rng = np.random.default_rng(2)
    for x, h in [(rng.standard_normal(1000), rng.standard_normal(3)),
                 (rng.standard_normal(100_000), rng.standard_normal(2000)),
                 (rng.standard_normal((64, 64)), np.outer(np.hanning(9), np.hanning(9)))]:
        assert scipy_choose_conv_method(x, h) in ("direct", "fft")
        method, times = scipy_choose_conv_method(x, h, measure=True)
        assert method in ("direct", "fft")
        assert set(times) <= {"direct", "fft"} and method == min(times, key=times.get)


def test_separable_factors_keep_tiny_entries_of_an_outer_product():
    # scipy's firwin_2d taps span 1e-36 .. 0.16; the SVD's factors were accurate only to
    # eps * 0.16, so convolve2d(impulse, taps) lost the small taps entirely.
    taps = scipy.signal.firwin_2d((31, 31), ("hamming", "hamming"), fc=0.4)
    f0, f1 = separable_factors(taps, np.float64)
    np.testing.assert_allclose(np.outer(f0, f1), taps, rtol=1e-14, atol=0)
    impulse = np.zeros((63, 63))
    impulse[31, 31] = 1
    got = fastconv.convolve2d(impulse, taps, mode="same")[16:47, 16:47]
    np.testing.assert_allclose(got, taps, rtol=1e-12, atol=0)
    g3 = np.multiply.outer(np.multiply.outer([1e-30, 1.0, 3.0], [2.0, 1e-20]), [1.0, 5.0])
    f = separable_factors(g3, np.float64)
    np.testing.assert_allclose(np.multiply.outer(np.multiply.outer(f[0], f[1]), f[2]), g3,
                               rtol=1e-14, atol=0)
