"""Reliability defects found by fuzzing (issue 14): each test failed before its fix.

Calls that used to hang (an Inf in a kernel sent LAPACK's SVD into an endless loop that
ignores Ctrl-C) run in a subprocess with a deadline, so a regression fails instead of
hanging the test run.
"""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.ndimage as sn
import scipy.signal as ss

import fastconv
import fastconv.ndimage as fn
from fastconv._dispatch import prepare_kernel
from fastconv._validate import conv_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NONFINITE = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


def run_with_deadline(code: str, deadline_s: float = 150.0):
    """Run ``code`` in a fresh interpreter on this checkout; fail (with the child's
    stacks, dumped by faulthandler shortly before the deadline) if it does not finish."""
    prelude = (f"import faulthandler, sys; sys.path.insert(0, {ROOT!r}); "
               f"sys.path.insert(0, {os.path.join(ROOT, 'tests')!r}); "
               f"faulthandler.dump_traceback_later({deadline_s - 20}, exit=True)\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    try:
        proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                              cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=deadline_s)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hung for {deadline_s} s:\n{exc.stderr}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def assert_same_nonfinite(got, want, rtol=1e-9, atol=1e-9):
    """NaN, +Inf and -Inf at the same positions, finite values close."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=atol)


# -- 1. NaN/Inf in a 2-D or 3-D kernel --------------------------------------------------------

def nonfinite_kernel_battery(shape, value_name):
    """Every position of a ``shape`` kernel holding ``value_name``, through every public
    entry point and method, against scipy's direct method (run in a subprocess)."""
    from fastconv import _separable, tuner
    value = NONFINITE[value_name]
    rng = np.random.default_rng(len(shape))
    xshape = (7, 6) if len(shape) == 2 else (5, 4, 6)
    x = rng.standard_normal(xshape)
    for pos in np.ndindex(*shape):
        w = rng.standard_normal(shape)
        w[pos] = value
        assert _separable.separable_factors(w) is None
        assert _separable.low_rank_factors(w) is None or len(shape) != 2
        with pytest.raises(ValueError, match="NaN or Inf"):
            _separable.require_factors(w)
        for op in ("convolve", "correlate"):
            for mode in ("full", "same", "valid"):
                want = getattr(ss, op)(x, w, mode, method="direct")
                for method in ("auto", "direct", "fft", "oa"):
                    got = getattr(fastconv, op)(x, w, mode, method=method)
                    assert_same_nonfinite(got, want)
                    d = fastconv.explain(x, w, mode, op=op, method=method)
                    assert d.method != "separable"
                    p = fastconv.plan(x, w, mode, op=op, method=method)
                    assert_same_nonfinite(p(x), want)
                with pytest.raises(ValueError, match="separable"):
                    getattr(fastconv, op)(x, w, mode, method="separable")
                with pytest.raises(ValueError, match="separable"):
                    fastconv.plan(x, w, mode, op=op, method="separable")
            assert fastconv.choose_conv_method(x, w, "same") in ("direct", "fft", "oa")
            if len(shape) == 2:
                for boundary in ("fill", "wrap", "symm"):
                    for mode in ("full", "same", "valid"):
                        want = getattr(ss, op + "2d")(x, w, mode, boundary)
                        got = getattr(fastconv, op + "2d")(x, w, mode, boundary)
                        assert_same_nonfinite(got, want)
            for mode in ("reflect", "constant", "wrap"):
                assert_same_nonfinite(getattr(fn, op)(x, w, mode=mode),
                                      getattr(sn, op)(x, w, mode=mode))
        # the tuner's separability check itself
        spec = conv_spec("convolve", x, w, "same")
        assert "separable" not in tuner.candidates(spec, x, prepare_kernel(spec, w))[0]


@pytest.mark.parametrize("value", sorted(NONFINITE))
@pytest.mark.parametrize("shape", [(3, 3), (2, 2, 2)])
def test_nonfinite_kernel_never_hangs_and_matches_scipy(shape, value):
    out = run_with_deadline(f"""
        import test_reliability as t
        t.nonfinite_kernel_battery({shape!r}, {value!r})
        print("ok")
    """)
    assert out.strip() == "ok"


def test_ndimage_footprint_drops_zero_tiny_and_nan_weights_like_scipy():
    """scipy.ndimage.correlate/convolve sum only the taps with |w| > DBL_EPSILON: a NaN,
    zero or tiny weight never meets the data (no NaN from 0 * Inf)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 7))
    x[2, 3] = np.inf
    x[4, 1] = np.nan
    laplace = np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
    for w in (laplace, np.where(laplace == 0, 1e-17, laplace),
              np.where(laplace == 0, np.nan, laplace),
              np.where(laplace == -4, np.inf, laplace)):
        for mode in ("reflect", "constant", "nearest", "mirror", "wrap"):
            for cval in (0.0, np.nan):
                for op in ("correlate", "convolve"):
                    for dt in (np.float64, np.float32):
                        got = getattr(fn, op)(x.astype(dt), w, mode=mode, cval=cval)
                        want = getattr(sn, op)(x.astype(dt), w, mode=mode, cval=cval)
                        assert_same_nonfinite(got, want, rtol=1e-5, atol=1e-5)


# -- 4. big-endian arrays in fastconv.ndimage ---------------------------------------------------

NDIMAGE_CALLS = {
    # weights with exact binary fractions: N-d correlate/convolve sum in another order
    # than scipy, which may move an integer output by one for inexact weights
    "convolve": lambda m, x, **kw: m.convolve(x, np.full((3, 3), 0.25), **kw),
    "correlate": lambda m, x, **kw: m.correlate(x, np.arange(9.0).reshape(3, 3) / 8, **kw),
    "convolve1d": lambda m, x, **kw: m.convolve1d(x, [1, 2, 3], **kw),
    "correlate1d": lambda m, x, **kw: m.correlate1d(x, [1, 2, 3], axis=0, **kw),
    "gaussian_filter": lambda m, x, **kw: m.gaussian_filter(x, 1.5, **kw),
    "gaussian_filter1d": lambda m, x, **kw: m.gaussian_filter1d(x, 1.5, **kw),
    "uniform_filter": lambda m, x, **kw: m.uniform_filter(x, 3, **kw),
    "uniform_filter1d": lambda m, x, **kw: m.uniform_filter1d(x, 3, **kw),
    "sobel": lambda m, x, **kw: m.sobel(x, **kw),
    "prewitt": lambda m, x, **kw: m.prewitt(x, **kw),
    "laplace": lambda m, x, **kw: m.laplace(x, **kw),
    "gaussian_laplace": lambda m, x, **kw: m.gaussian_laplace(x, 1.2, **kw),
    "gaussian_gradient_magnitude":
        lambda m, x, **kw: m.gaussian_gradient_magnitude(x, 1.2, **kw),
}


def _check_like_scipy(got, want):
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
    else:
        rtol = 2e-5 if want.dtype.itemsize == 4 else 1e-12
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_ndimage_table_covers_every_public_function():
    assert sorted(NDIMAGE_CALLS) == sorted(fn.__all__)


@pytest.mark.parametrize("dtype", [">f8", ">f4", ">i4"])
@pytest.mark.parametrize("name", sorted(NDIMAGE_CALLS))
def test_ndimage_accepts_big_endian_like_scipy(name, dtype):
    call = NDIMAGE_CALLS[name]
    native = (np.arange(56).reshape(7, 8) % 13 * 1.5).astype(np.dtype(dtype).newbyteorder("="))
    x = native.astype(dtype)
    assert not x.dtype.isnative
    got = call(fn, x)
    _check_like_scipy(got, call(sn, x))
    np.testing.assert_array_equal(got, call(fn, native))   # byte order changes nothing
    # big-endian outputs, as an array and as a dtype
    for output in (np.zeros(x.shape, ">f8"), np.dtype(">f4"), np.zeros(x.shape, ">i4")):
        want = call(sn, x, output=output.copy() if isinstance(output, np.ndarray) else output)
        got = call(fn, x, output=output)
        _check_like_scipy(got, want)
        assert got.dtype == want.dtype
    # complex big-endian input
    xc = (native + 1j * native[::-1]).astype(">c16")
    _check_like_scipy(call(fn, xc), call(sn, xc))


# -- 6. huge magnitudes in FFT / overlap-add ----------------------------------------------------

def _direct(x, w, shape, start, cval=0):
    from fastconv.kernels.cpu import direct
    ref = np.empty(shape, np.result_type(x, w))
    with np.errstate(over="ignore", invalid="ignore"):
        direct.correlate(x, w, ref, start, "constant", cval)
    return ref


@pytest.mark.parametrize("method", ["fft", "oa", "auto", "direct"])
def test_huge_fillvalue_does_not_poison_fft(method):
    """The issue's example: every method gives direct's [1e308, 3, 6, ..., 1e308]."""
    want = np.array([1e308, 3, 6, 9, 12, 15, 18, 21, 24, 1e308])
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # nor an overflow warning from any method
        got = fastconv.convolve(np.arange(10.0), [1.0, 1, 1], "same", method=method,
                                fillvalue=1e308)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    got32 = fastconv.convolve(np.arange(10, dtype=np.float32), np.ones(3, np.float32),
                              "same", method=method, fillvalue=3e38)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, np.where(want > 1e300, 3e38, want), rtol=1e-6)


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_fill_beyond_the_range_is_inf_where_the_exact_sum_overflows(ndim):
    """Outputs reading two or more 1e308 fill samples overflow (Inf) in every method, the
    others are finite; no method warns."""
    x = np.ones((4,) * ndim)
    w = np.ones((3,) * ndim)
    want = None
    for method in ("direct", "fft", "oa"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = fastconv.convolve(x, w, "full", method=method, fillvalue=1e308)
        assert not np.isnan(got).any()
        if want is None:
            want = got
        assert_same_nonfinite(got, want, rtol=1e-12, atol=0)


def test_huge_fillvalue_through_auto_when_auto_picks_fft():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(60_000)
    w = rng.standard_normal(1001)
    d = fastconv.explain(x, w, "same", fillvalue=1e300)
    assert d.method in ("fft", "oa"), d
    got = fastconv.convolve(x, w, "same", fillvalue=1e300)
    want = fastconv.convolve(x, w, "same", method="direct", fillvalue=1e300)
    assert np.isfinite(got).all()
    # outputs that never read the fill are those of a zero fill, bit for bit
    inner = slice(500, -500)
    np.testing.assert_array_equal(got[inner], fastconv.convolve(x, w, "same")[inner])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(w).sum())


@pytest.mark.parametrize("launcher", ["correlate_fft", "correlate_oa"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("shapes", [((300,), (7,)), ((40, 33), (5, 4)),
                                    ((12, 10, 11), (3, 4, 2)), ((9, 10, 11), (9, 3, 3))])
def test_fill_never_enters_the_transform(launcher, dtype, shapes):
    """A finite fill is added exactly after the transform: outputs that do not read it
    equal those of a zero fill bit for bit, edge outputs match the direct method, for
    every start (windows inside, across and beyond the data)."""
    from fastconv.kernels.cpu import fft
    xs, ks = shapes
    rng = np.random.default_rng(len(xs))
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ks).astype(dtype)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(xs)
        w = w + 1j * rng.standard_normal(ks)
    big = {np.float64: 1e300, np.float32: 1e30, np.complex128: 1e300 - 2e299j}[dtype]
    for starts in ([-(k - 1) for k in ks], [-(k // 2) for k in ks], [0] * len(ks),
                   [-(k + 3) for k in ks], [n - 2 for n in xs]):
        shape = tuple(n + k - 1 for n, k in zip(xs, ks))
        zero = np.empty(shape, dtype)
        getattr(fft, launcher)(x, w, zero, tuple(starts), "constant", 0)
        for cval in (2.5, big):
            got = np.empty(shape, dtype)
            getattr(fft, launcher)(x, w, got, tuple(starts), "constant", cval)
            want = _direct(x, w, shape, tuple(starts), cval)
            reads_fill = np.zeros(shape, bool)
            for a, (n, k, s, m) in enumerate(zip(xs, ks, starts, shape)):
                i = np.arange(m)
                edge = (s + i < 0) | (s + i + k > n)
                reads_fill |= edge.reshape((-1,) + (1,) * (len(xs) - a - 1))
            np.testing.assert_array_equal(got[~reads_fill], zero[~reads_fill])
            tol = fft.fft_error_bound(x, w, dtype, cval=cval) + 1e-5 * abs(cval) * np.abs(w).sum() \
                if np.dtype(dtype).itemsize <= 8 and np.dtype(dtype).kind == "f" else \
                fft.fft_error_bound(x, w, dtype, cval=cval)
            assert np.isfinite(got).all()
            assert np.abs(got - want).max() <= tol


@pytest.mark.parametrize("launcher", ["correlate_fft", "correlate_oa"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shapes", [((5000,), (31,)), ((64, 50), (7, 5)),
                                    ((20, 18, 16), (3, 3, 3)), ((12, 14, 10), (10, 3, 2))])
def test_huge_data_never_turns_the_output_nan(launcher, dtype, shapes):
    """Data or kernels so large that the transforms' sums would overflow although every
    exact output is far below the dtype's maximum: the documented error bound, and NaN/Inf
    samples still local (the old code returned NaN everywhere)."""
    from fastconv.kernels.cpu import fft
    xs, ks = shapes
    rng = np.random.default_rng(7)
    fmax = float(np.finfo(dtype).max)
    start = tuple(-(k // 2) for k in ks)
    k = int(np.prod(ks))
    # positive data: the zero-frequency sums reach n * max|x| * sum|w| > fmax
    for xscale, wscale in ((fmax / 1e2, 1.0 / k), (1.0 / k, fmax / 1e2)):
        x = (rng.uniform(0.5, 1, xs) * xscale).astype(dtype)
        w = (rng.uniform(-0.5, 1, ks) * wscale).astype(dtype)
        x.flat[3] = np.nan
        x.flat[x.size // 2] = np.inf
        x.flat[x.size // 2 + 1] = -np.inf
        finite_x = np.where(np.isfinite(x), x, 0).astype(dtype)
        want = _direct(finite_x, w, xs, start)       # partial sums stay below fmax / 1e2
        nonfinite = _direct(np.where(np.isfinite(x), 0, x).astype(dtype), w, xs, start)
        want = want + nonfinite
        got = np.empty(xs, dtype)
        getattr(fft, launcher)(x, w, got, start)
        assert_same_nonfinite(got, want, rtol=0, atol=fft.fft_error_bound(finite_x, w, dtype))
        assert np.isfinite(got).sum() > 0.5 * got.size


@pytest.mark.parametrize("method", ["fft", "oa"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_outputs_beyond_the_dtype_range_become_inf_as_with_direct(method, dtype):
    fmax = float(np.finfo(dtype).max)
    x = np.zeros(400, dtype)
    x[100:103] = 0.4 * fmax             # three taps of 1: 1.2 * fmax overflows, two do not
    x[300] = -0.4 * fmax
    w = np.ones(3, dtype)
    want = fastconv.correlate(x, w, "same", method="direct")
    got = fastconv.correlate(x, w, "same", method=method)
    assert np.isinf(want).sum() == 1
    assert_same_nonfinite(got, want, rtol=1e-5, atol=1e-5 * fmax)


def test_plan_with_huge_then_normal_data_keeps_its_cached_spectrum_right():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 40))
    w = rng.standard_normal((5, 5))
    for method in ("fft", "oa"):
        p = fastconv.plan(x, w, "same", method=method)
        want = ss.correlate(x, w[::-1, ::-1], "same", method="direct")
        np.testing.assert_allclose(p(x), want, atol=1e-12)
        huge = p(x * 1e306)
        assert np.isfinite(huge).all()
        np.testing.assert_allclose(huge, want * 1e306, atol=1e-12 * 1e306)
        np.testing.assert_allclose(p(x), want, atol=1e-12)
