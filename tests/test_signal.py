"""fastconv's scipy.signal drop-ins against scipy.signal itself and the naive reference."""
import threading

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, strategies as st

import fastconv
from reference import convolve_full_ref

MODES = ["full", "same", "valid"]
FLOATS = [np.float32, np.float64, np.complex64, np.complex128]
TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.complex64): 2e-5,
       np.dtype(np.float64): 1e-12, np.dtype(np.complex128): 1e-12}


def rand(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -50), min(info.max, 50)
        return rng.integers(lo, hi + 1, size=shape).astype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    a = rng.standard_normal(shape)
    if dtype.kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def assert_close(got, want):
    assert got.shape == want.shape
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if got.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
        return
    tol = TOL.get(got.dtype, 1e-5)
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", ["convolve", "correlate"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_nd_matches_scipy(ndim, mode, func, dtype):
    rng = np.random.default_rng([ndim, MODES.index(mode), FLOATS.index(dtype)])
    xs = tuple(int(n) for n in rng.integers(3, 12 if ndim < 3 else 7, size=ndim))
    ws = tuple(int(n) for n in rng.integers(1, 6, size=ndim))   # odd and even
    if mode == "valid":
        ws = tuple(min(k, n) for k, n in zip(ws, xs))
    x, w = rand(rng, xs, dtype), rand(rng, ws, dtype)
    if mode == "valid" and rng.random() < 0.5:
        x, w = w, x                      # scipy swaps when in2 is the larger
    want = getattr(ss, func)(x, w, mode=mode, method="direct")
    for method in ["auto", "direct"]:
        assert_close(getattr(fastconv, func)(x, w, mode=mode, method=method), want)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64,
                                   np.uint64, np.bool_])
@pytest.mark.parametrize("mode", MODES)
def test_integer_and_bool_exact(dtype, mode):
    rng = np.random.default_rng(7)
    x, w = rand(rng, (13, 9), dtype), rand(rng, (4, 3), dtype)
    for func in ["convolve", "correlate"]:
        if dtype == np.bool_:   # scipy's N-d direct path rejects bool: OR of ANDs
            want = getattr(ss, func)(x.astype(int), w.astype(int), mode=mode,
                                     method="direct") != 0
        else:
            want = getattr(ss, func)(x, w, mode=mode, method="direct")
        assert_close(getattr(fastconv, func)(x, w, mode=mode), want)
        assert_close(getattr(fastconv, func)(x, w, mode=mode, method="fft"), want)
    if dtype == np.bool_:        # scipy's convolve2d rejects bool; fastconv computes it
        want = ss.convolve2d(x.astype(int), w.astype(int), mode) != 0
    else:
        want = ss.convolve2d(x, w, mode)
    assert_close(fastconv.convolve2d(x, w, mode), want)


def test_integer_wraparound_like_scipy():
    x = np.array([1, 2], np.int8)
    w = np.array([100, 100], np.int8)
    np.testing.assert_array_equal(fastconv.convolve(x, w), ss.convolve(x, w))


def test_large_integers_stay_exact():
    x = np.array([2**40 + 1, 3, 2**40 - 7] * 50, np.int64)
    w = np.array([2**20 + 3, -5, 7], np.int64)
    ref = convolve_full_ref(x.astype(object), w.astype(object))
    got = fastconv.convolve(x, w, method="fft")        # beyond the exactness bound
    np.testing.assert_array_equal(got, np.convolve(x, w))
    assert got.dtype == np.int64 and ref.shape == got.shape


@pytest.mark.parametrize("pair", [(np.float32, np.float64), (np.int16, np.uint8),
                                  (np.int16, np.float64), (np.complex64, np.float64),
                                  (np.uint8, np.float32), (np.float16, np.float16)])
def test_mixed_dtypes_follow_result_type(pair):
    rng = np.random.default_rng(3)
    x, w = rand(rng, (8, 7), pair[0]), rand(rng, (3, 2), pair[1])
    got = fastconv.convolve(x, w)
    assert got.dtype == np.result_type(x, w)
    want = ss.convolve(x.astype(np.complex128 if got.dtype.kind == "c" else np.float64),
                       w.astype(np.float64), method="direct")
    tol = 2e-3 if got.dtype == np.float16 else 1e-5
    np.testing.assert_allclose(got.astype(want.dtype), want, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("func", ["convolve2d", "correlate2d"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", ["fill", "pad", "wrap", "circular", "symm", "symmetric"])
def test_2d_boundaries_match_scipy(func, mode, boundary):
    rng = np.random.default_rng([MODES.index(mode), len(boundary)])
    for xs, ws in [((7, 9), (3, 3)), ((8, 6), (4, 2)), ((5, 5), (5, 6)), ((3, 4), (6, 7))]:
        if mode == "valid" and not (
                all(a >= b for a, b in zip(xs, ws)) or all(a <= b for a, b in zip(xs, ws))):
            continue
        x, w = rand(rng, xs, np.float64), rand(rng, ws, np.float64)
        want = getattr(ss, func)(x, w, mode, boundary=boundary, fillvalue=1.5)
        assert_close(getattr(fastconv, func)(x, w, mode, boundary=boundary, fillvalue=1.5),
                     want)


def test_2d_complex_and_swapped_correlate():
    rng = np.random.default_rng(11)
    x, w = rand(rng, (3, 4), np.complex128), rand(rng, (5, 6), np.complex128)
    for func in ["convolve2d", "correlate2d"]:
        assert_close(getattr(fastconv, func)(x, w, "valid"), getattr(ss, func)(x, w, "valid"))
        assert_close(getattr(fastconv, func)(w, x, "full"), getattr(ss, func)(w, x, "full"))


def test_views_and_memory_layouts():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((30, 40))
    w = rng.standard_normal((4, 5))
    views = [base[::2, ::3], base[::-1, ::-2], np.asfortranarray(base),
             base.astype(">f8"), base.T]
    ro = base.copy()
    ro.setflags(write=False)
    views.append(ro)
    for v in views:
        for mode in MODES:
            assert_close(fastconv.convolve(v, w, mode), ss.convolve(np.array(v), w, mode))
            assert_close(fastconv.correlate(v, w[::-1], mode),
                         ss.correlate(np.array(v), w[::-1], mode))


def test_lists_scalars_and_zero_d():
    assert_close(fastconv.convolve([1, 2, 3], [4, 5]), ss.convolve([1, 2, 3], [4, 5]))
    assert fastconv.convolve(3, 4) == 12
    assert fastconv.correlate(2j, 3j) == ss.correlate(2j, 3j)
    assert_close(fastconv.convolve2d([[1, 2], [3, 4]], [[1]]),
                 ss.convolve2d([[1, 2], [3, 4]], [[1]]))


def test_empty_inputs():
    assert fastconv.convolve(np.ones(0), np.ones(3), "same").shape == (0,)
    with pytest.raises(ValueError):
        fastconv.convolve(np.ones(3), np.ones(0))
    with pytest.raises(ValueError):
        fastconv.convolve(np.ones(0), np.ones(3), "full")
    assert_close(fastconv.convolve2d(np.ones((3, 4)), np.ones((0, 0))),
                 ss.convolve2d(np.ones((3, 4)), np.ones((0, 0))))


def test_bad_input_messages():
    with pytest.raises(ValueError, match="same dimensionality"):
        fastconv.convolve(np.ones(3), np.ones((2, 2)))
    with pytest.raises(ValueError, match="same dimensionality"):
        fastconv.correlate(np.ones(3), np.ones((2, 2)))
    with pytest.raises(ValueError, match="mode"):
        fastconv.convolve(np.ones(3), np.ones(2), mode="bad")
    with pytest.raises(ValueError, match="method"):
        fastconv.convolve(np.ones(3), np.ones(2), method="bad")
    with pytest.raises(ValueError, match="in1 has unsupported dtype object"):
        fastconv.convolve(np.ones(3, object), np.ones(2))
    with pytest.raises(ValueError, match="at least as large"):
        fastconv.convolve(np.ones((3, 4)), np.ones((4, 2)), mode="valid")
    with pytest.raises(ValueError, match="at least as large"):
        fastconv.convolve2d(np.ones((3, 4)), np.ones((4, 2)), mode="valid")
    with pytest.raises(ValueError, match="2-D"):
        fastconv.convolve2d(np.ones(3), np.ones((2, 2)))
    with pytest.raises(ValueError, match="boundary"):
        fastconv.convolve2d(np.ones((3, 3)), np.ones((2, 2)), boundary="reflect")
    with pytest.raises(ValueError, match="fillvalue"):
        fastconv.convolve2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue=[1, 2])
    with pytest.raises(ValueError, match="fillvalue"):
        fastconv.convolve2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue=1j)
    with pytest.raises(ValueError, match="boundary"):
        fastconv.convolve(np.ones(3), np.ones(2), boundary="nope")
    with pytest.raises(TypeError, match="workers"):
        fastconv.convolve(np.ones(3), np.ones(2), workers="two")


def test_boundary_extension_on_nd_api():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((9, 8)), rng.standard_normal((3, 4))
    for b in ["wrap", "symm"]:
        assert_close(fastconv.convolve(x, w, "same", boundary=b),
                     ss.convolve2d(x, w, "same", boundary=b))


def test_choose_conv_method():
    x, w = np.ones((64, 64), np.float32), np.ones((3, 3), np.float32)
    m = fastconv.choose_conv_method(x, w, mode="same")
    assert m in ("direct", "fft", "oa", "separable")
    m2, times = fastconv.choose_conv_method(x, w, mode="same", measure=True)
    assert m2 == min(times, key=times.get) and all(t > 0 for t in times.values())
    assert fastconv.choose_conv_method(np.ones(10, bool), np.ones(3, bool)) == "direct"


def test_workers_and_threads_context():
    x, w = np.ones(1000), np.ones(5)
    want = ss.convolve(x, w)
    assert_close(fastconv.convolve(x, w, workers=1), want)
    assert_close(fastconv.convolve(x, w, workers=-1), want)
    before = fastconv.get_num_threads()
    with fastconv.threads(1):
        assert fastconv.get_num_threads() == 1
        assert_close(fastconv.convolve(x, w), want)
    assert fastconv.get_num_threads() == before
    with pytest.raises(ValueError):
        fastconv.set_num_threads(0)


def test_many_threads_at_once():
    rng = np.random.default_rng(9)
    images = [rng.standard_normal((96, 80)).astype(np.float32) for _ in range(8)]
    w = rng.standard_normal((5, 5)).astype(np.float32)
    wants = [ss.convolve(im, w, "same", method="direct") for im in images]
    errors = []

    def worker(i):
        try:
            for _ in range(10):
                assert_close(fastconv.convolve(images[i], w, "same"), wants[i])
        except Exception as exc:          # collected, asserted below
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


@given(n=st.integers(1, 40), k=st.integers(1, 12), mode=st.sampled_from(MODES),
       seed=st.integers(0, 2**31 - 1))
def test_property_1d_against_reference(n, k, mode, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(n), rng.standard_normal(k)
    full = convolve_full_ref(x, w)
    got = fastconv.convolve(x, w, mode)
    if mode == "full":
        want = full
    elif mode == "same":
        s = (k - 1) // 2
        want = full[s:s + n]
    else:
        lo, hi = min(n, k), max(n, k)
        want = full[lo - 1:hi]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@given(seed=st.integers(0, 2**31 - 1), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_property_linearity_and_shift(seed, a, b):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    w = rng.standard_normal((3, 2))
    lhs = fastconv.convolve(a * x1 + b * x2, w)
    rhs = a * fastconv.convolve(x1, w) + b * fastconv.convolve(x2, w)
    np.testing.assert_allclose(lhs, rhs, atol=1e-9)
    # shifting the input shifts the full output
    shifted = fastconv.convolve(np.pad(x1, ((1, 0), (2, 0))), w)
    np.testing.assert_allclose(shifted[1:, 2:], fastconv.convolve(x1, w), atol=1e-12)


def test_nan_stays_local():
    x = np.zeros((40, 40))
    x[20, 20] = np.nan
    w = np.ones((3, 3))
    out = fastconv.convolve(x, w, "same")
    assert np.isnan(out[19:22, 19:22]).all()
    assert np.isfinite(np.delete(np.delete(out, [19, 20, 21], 0), [19, 20, 21], 1)).all()


# -- fillvalue casts (issue 14, items 5 and 7) ---------------------------------------------------

_CAST_ERRORS = [(np.uint8, -1), (np.uint8, 256), (np.int32, 2**40), (np.int32, 1e30),
                (np.int64, 2**63), (np.int64, 1e30), (np.int32, float("nan")),
                (np.int16, float("inf")), (np.uint8, -1.5), (np.int32, 1 + 0j),
                (np.float64, 1j), (np.int32, None)]
_CAST_OK = [(np.uint8, 255), (np.uint8, 0), (np.uint8, -0.5), (np.int32, 1.5),
            (np.int32, -1.5), (np.int32, 2**31 - 1), (np.int64, -2**63), (np.int64, "7"),
            (np.float32, 1e30), (np.float32, -3.25), (np.float64, None), (np.float64, True),
            (np.float64, "1.5"), (np.complex128, 2 - 1j), (np.complex64, 1e30)]


@pytest.mark.parametrize("dtype,fill", _CAST_ERRORS)
def test_fillvalue_that_does_not_fit_the_dtype_raises_as_scipy(dtype, fill):
    x = np.arange(12).reshape(3, 4).astype(dtype)
    w = np.ones((2, 2), dtype)
    with pytest.raises(ValueError, match="could not cast `fillvalue`"):
        ss.convolve2d(x, w, fillvalue=fill)
    for func in (fastconv.convolve2d, fastconv.correlate2d):
        with pytest.raises(ValueError, match="could not cast `fillvalue` directly to the output"):
            func(x, w, "same", fillvalue=fill)
    # the same rule for the N-d functions' keyword fillvalue (a fastconv extension), plans
    # and explain
    for call in (lambda: fastconv.convolve(x, w, "same", fillvalue=fill),
                 lambda: fastconv.correlate(x, w, method="direct", fillvalue=fill),
                 lambda: fastconv.plan(x, w, "same", fillvalue=fill),
                 lambda: fastconv.explain(x, w, fillvalue=fill)):
        with pytest.raises(ValueError, match="could not cast `fillvalue`"):
            call()


@pytest.mark.parametrize("dtype,fill", _CAST_OK)
def test_fillvalue_that_fits_is_cast_as_scipy(dtype, fill):
    x = (np.arange(12).reshape(3, 4) % 5).astype(dtype)
    w = np.array([[1, 2], [0, 1]], dtype)
    for name in ("convolve2d", "correlate2d"):
        for mode in ("full", "same"):
            want = getattr(ss, name)(x, w, mode, fillvalue=fill)
            assert_close(getattr(fastconv, name)(x, w, mode, fillvalue=fill), want)


def test_fillvalue_numpy_scalars_and_other_boundaries():
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    w = np.ones((2, 2), np.uint8)
    # NumPy scalars that do not fit raise too (scipy wraps them silently)
    for fill in (np.int64(-1), np.int64(2**40), np.float64(1e30), np.uint64(2**64 - 1)):
        with pytest.raises(ValueError, match="could not cast `fillvalue`"):
            fastconv.convolve2d(x, w, fillvalue=fill)
    # a finite fill that overflows a float dtype raises (scipy warns and fills with inf)
    with pytest.raises(ValueError, match="could not cast `fillvalue`"):
        fastconv.convolve2d(x.astype(np.float32), w.astype(np.float32), fillvalue=1e300)
    assert_close(fastconv.convolve2d(x, w, fillvalue=np.int64(7)),
                 ss.convolve2d(x, w, fillvalue=7))
    # only boundary='fill' reads the value; scipy neither checks nor uses it otherwise
    for boundary in ("wrap", "symm"):
        assert_close(fastconv.convolve2d(x, w, "same", boundary, fillvalue=-1),
                     ss.convolve2d(x, w, "same", boundary, fillvalue=-1))
        fastconv.convolve(x, w, "same", boundary=boundary, fillvalue=2**40)


def test_fillvalue_that_is_not_a_number_raises_type_error():
    x, w = np.ones((3, 3)), np.ones((2, 2))
    with pytest.raises(TypeError):
        ss.convolve2d(x, w, fillvalue=object())
    for call in (lambda: fastconv.convolve2d(x, w, fillvalue=object()),
                 lambda: fastconv.correlate2d(x, w, fillvalue=object()),
                 lambda: fastconv.convolve(x, w, fillvalue=object())):
        with pytest.raises(TypeError, match="fillvalue must be a number"):
            call()
    with pytest.raises(ValueError, match="fillvalue"):        # scipy: ValueError as well
        fastconv.convolve2d(x, w, fillvalue="a")
    with pytest.raises(ValueError, match="empty"):
        fastconv.convolve2d(x, w, fillvalue=[])
