"""fastconv.ndimage against scipy.ndimage (every function x mode x dtype x odd/even size x
origin x axes, 1-D to 3-D) and the filters1d kernels against the naive reference."""
import itertools
import warnings

import numpy as np
import pytest
import scipy.ndimage as sn
from hypothesis import given, strategies as st

import fastconv.ndimage as fn
from fastconv.kernels.cpu import filters1d
from reference import correlate_ref

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-constant", "grid-mirror",
         "grid-wrap"]
BOUNDARIES = ["constant", "wrap", "symmetric", "reflect", "edge"]
# The separable filters (the 1-D filters, gaussian, uniform, sobel, prewitt, laplace and
# the Gaussian derivatives) must equal scipy bit for bit for every dtype, float32 included;
# N-d correlate/convolve sum in another order (tolerances).
DTYPES = [np.float64, np.float32, np.uint8, np.int16, np.int64]
SHAPES = {1: (11,), 2: (7, 9), 3: (4, 5, 6)}


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 100, shape).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.random(shape) > 0.5
    return (rng.standard_normal(shape) * 10).astype(dtype)


def check(got, want, exact=True):
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    if exact:
        np.testing.assert_array_equal(got, want)
    elif got.dtype in (np.float32, np.complex64):
        scale = max(1.0, float(np.abs(want).max(initial=0)))
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * scale)
    else:
        scale = max(1.0, float(np.abs(want).max(initial=0)))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * scale)


# -- 1-D filters: exact arithmetic ---------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_correlate1d_convolve1d(dtype, ndim):
    x = _data(SHAPES[ndim], dtype)
    rng = np.random.default_rng(ndim)
    for mode, size in itertools.product(MODES, [1, 2, 3, 4, 5]):
        w = rng.standard_normal(size)
        if size == 5:
            w = w + w[::-1]                     # scipy's symmetric branch
        if size == 3 and mode == "wrap":
            w = np.array([-1.0, 0.5, 1.0])
        for axis in range(-ndim, ndim):
            for origin in range(-(size // 2), (size - 1) // 2 + 1):
                kw = dict(axis=axis, mode=mode, cval=2.5, origin=origin)
                check(fn.correlate1d(x, w, **kw), sn.correlate1d(x, w, **kw))
                check(fn.convolve1d(x, w, **kw), sn.convolve1d(x, w, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_uniform_filter1d(dtype, ndim):
    x = _data(SHAPES[ndim], dtype)
    for mode, size in itertools.product(MODES, [1, 2, 3, 4, 7, 14]):
        for axis in range(ndim):
            for origin in {-(size // 2), 0, (size - 1) // 2}:
                kw = dict(axis=axis, mode=mode, cval=-1.5, origin=origin)
                check(fn.uniform_filter1d(x, size, **kw), sn.uniform_filter1d(x, size, **kw))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8])
def test_gaussian_filter1d_orders(dtype):
    x = _data((6, 13), dtype)
    for mode, order, sigma in itertools.product(MODES, [0, 1, 2, 3], [0.7, 2.0]):
        kw = dict(axis=1, order=order, mode=mode, cval=1.0)
        check(fn.gaussian_filter1d(x, sigma, **kw), sn.gaussian_filter1d(x, sigma, **kw))
    for radius in [0, 1, 5]:
        check(fn.gaussian_filter1d(x, 1.5, radius=radius),
              sn.gaussian_filter1d(x, 1.5, radius=radius))
    check(fn.gaussian_filter1d(x, 1.5, truncate=1.2), sn.gaussian_filter1d(x, 1.5, truncate=1.2))


# -- N-d separable filters ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_gaussian_filter(dtype, ndim):
    x = _data(SHAPES[ndim], dtype)
    for mode in MODES:
        for sigma in [0.8, 2.5]:
            kw = dict(mode=mode, cval=3.0)
            check(fn.gaussian_filter(x, sigma, **kw), sn.gaussian_filter(x, sigma, **kw))
    # Per-axis sigma, order, mode and radius; an axis skipped with sigma 0.
    sig = [1.0, 0.0, 1.5][:ndim]
    kw = dict(order=[1, 0, 2][:ndim], mode=["wrap", "constant", "mirror"][:ndim], cval=2.0,
              radius=[2, 3, 4][:ndim])
    check(fn.gaussian_filter(x, sig, **kw), sn.gaussian_filter(x, sig, **kw))


@pytest.mark.parametrize("axes", [(0,), (1,), (0, 2), (2, 0), (-1, -2), (0, 1, 2)])
def test_gaussian_filter_axes(axes):
    x = _data((5, 6, 7), np.float64)
    for mode in ["reflect", "constant"]:
        kw = dict(mode=mode, cval=1.5, axes=axes)
        check(fn.gaussian_filter(x, 1.3, **kw), sn.gaussian_filter(x, 1.3, **kw))
    sig = [1.0, 2.0, 0.5][:len(axes)]
    check(fn.gaussian_filter(x, sig, axes=axes), sn.gaussian_filter(x, sig, axes=axes))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_uniform_filter(dtype, ndim):
    x = _data(SHAPES[ndim], dtype)
    for mode in MODES:
        for size in [2, 3, 4, 5, 8]:
            kw = dict(mode=mode, cval=-2.0)
            check(fn.uniform_filter(x, size, **kw), sn.uniform_filter(x, size, **kw))
    sizes = [3, 4, 1][:ndim]
    origins = [1, -2, 0][:ndim]
    kw = dict(mode=["nearest", "constant", "wrap"][:ndim], cval=4.0, origin=origins)
    check(fn.uniform_filter(x, sizes, **kw), sn.uniform_filter(x, sizes, **kw))


@pytest.mark.parametrize("axes", [(0, 1), (1, 2), (0, 2), (2, 1)])
def test_uniform_filter_axes(axes):
    x = _data((6, 7, 8), np.float64)
    kw = dict(mode=["wrap", "constant"], cval=1.0, axes=axes, origin=[0, 1])
    check(fn.uniform_filter(x, [4, 3], **kw), sn.uniform_filter(x, [4, 3], **kw))


@pytest.mark.parametrize("func", ["sobel", "prewitt"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_sobel_prewitt(func, dtype):
    for ndim in [1, 2, 3]:
        x = _data(SHAPES[ndim], dtype)
        for mode, axis in itertools.product(MODES, range(-1, ndim)):
            kw = dict(axis=axis, mode=mode, cval=5.0)
            check(getattr(fn, func)(x, **kw), getattr(sn, func)(x, **kw))
        modes = ["mirror", "constant", "wrap"][:ndim]
        check(getattr(fn, func)(x, 0, mode=modes, cval=1.0),
              getattr(sn, func)(x, 0, mode=modes, cval=1.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_laplace_family(dtype):
    for ndim in [1, 2, 3]:
        x = _data(SHAPES[ndim], dtype)
        for mode in MODES:
            kw = dict(mode=mode, cval=0.5)
            check(fn.laplace(x, **kw), sn.laplace(x, **kw))
            check(fn.gaussian_laplace(x, 1.2, **kw), sn.gaussian_laplace(x, 1.2, **kw))
            check(fn.gaussian_gradient_magnitude(x, 1.2, **kw),
                  sn.gaussian_gradient_magnitude(x, 1.2, **kw))
    x = _data((5, 6, 7), dtype)
    for axes in [(0,), (2, 0), (1, 2)]:
        kw = dict(axes=axes, mode=["reflect", "wrap"][:len(axes)])
        check(fn.laplace(x, **kw), sn.laplace(x, **kw))
        check(fn.gaussian_laplace(x, 1.0, truncate=2.0, **kw),
              sn.gaussian_laplace(x, 1.0, truncate=2.0, **kw))
        check(fn.gaussian_gradient_magnitude(x, [1.0, 2.0, 0.5], **kw),
              sn.gaussian_gradient_magnitude(x, [1.0, 2.0, 0.5], **kw))


def test_multichannel_image():
    x = _data((20, 17, 3), np.float32)
    kw = dict(axes=(0, 1))
    check(fn.gaussian_filter(x, 2.0, **kw), sn.gaussian_filter(x, 2.0, **kw))
    check(fn.uniform_filter(x, 5, **kw), sn.uniform_filter(x, 5, **kw))
    check(fn.correlate(x, np.ones((3, 4)), **kw), sn.correlate(x, np.ones((3, 4)), **kw),
          False)


# -- N-d correlation --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_correlate_convolve(dtype, ndim):
    x = _data(SHAPES[ndim], dtype)
    rng = np.random.default_rng(ndim)
    for mode in MODES:
        for kshape in [(3, 2, 3)[:ndim], (4, 1, 2)[:ndim], (1, 5, 4)[:ndim]]:
            # Integer weights: exact in float64 whatever the summation order.
            w = rng.integers(-3, 4, kshape).astype(np.float64)
            origin = [(k - 1) // 2 for k in kshape]
            for func in ["correlate", "convolve"]:
                for o in [0, origin]:
                    kw = dict(mode=mode, cval=1.5, origin=o)
                    check(getattr(fn, func)(x, w, **kw), getattr(sn, func)(x, w, **kw),
                          np.dtype(dtype).kind in "iu")


def test_correlate_float_weights_and_axes():
    x = _data((6, 7, 5), np.float64)
    w = np.random.default_rng(1).standard_normal((3, 4))
    for axes in [(0, 1), (2, 0), (-1, 1)]:
        for func in ["correlate", "convolve"]:
            kw = dict(axes=axes, mode="mirror", origin=[1, -1])
            check(getattr(fn, func)(x, w, **kw), getattr(sn, func)(x, w, **kw), False)


def test_complex():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 7)) + 1j * rng.standard_normal((6, 7))
    w = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    for func in ["correlate", "convolve"]:
        check(getattr(fn, func)(x, w, cval=1 + 2j, mode="constant"),
              getattr(sn, func)(x, w, cval=1 + 2j, mode="constant"), False)
        check(getattr(fn, func)(x.real, w), getattr(sn, func)(x.real, w), False)
        check(getattr(fn, func)(x.astype(np.complex64), w.real),
              getattr(sn, func)(x.astype(np.complex64), w.real), False)
    for func in ["correlate1d", "convolve1d"]:
        check(getattr(fn, func)(x, w[:, 0], axis=0), getattr(sn, func)(x, w[:, 0], axis=0))
        check(getattr(fn, func)(x.real, w[:, 1]), getattr(sn, func)(x.real, w[:, 1]))
    check(fn.gaussian_filter(x, 1.0), sn.gaussian_filter(x, 1.0))
    check(fn.uniform_filter(x, 3), sn.uniform_filter(x, 3))
    check(fn.uniform_filter1d(x, 4), sn.uniform_filter1d(x, 4))
    check(fn.sobel(x), sn.sobel(x))


# -- output argument ----------------------------------------------------------------------------

def test_output_forms():
    x = _data((8, 9), np.float64)
    for output in [np.float32, "float32", np.dtype(np.int32), np.uint8, np.bool_]:
        check(fn.gaussian_filter(x, 1.0, output=output), sn.gaussian_filter(x, 1.0, output=output))
        check(fn.correlate(x, np.ones((2, 2)), output=output),
              sn.correlate(x, np.ones((2, 2)), output=output), np.dtype(output).kind in "biu")
    # Arrays: non-contiguous, negative strides, in place.
    for func, args in [("gaussian_filter", (1.0,)), ("uniform_filter", (4,)),
                       ("sobel", ()), ("correlate", (np.ones((3, 2)),)),
                       ("correlate1d", ([1.0, 2.0],))]:
        want = getattr(sn, func)(x, *args)
        exact = func != "correlate"
        out = np.zeros((9, 8)).T
        assert getattr(fn, func)(x, *args, output=out) is out
        check(out, want, exact)
        out = np.zeros((8, 18))[::-1, ::2]
        getattr(fn, func)(x, *args, output=out)
        check(out, want, exact)
        y = x.copy()
        getattr(fn, func)(y, *args, output=y)
        check(y, want, exact)
    # Views as input.
    big = _data((10, 20), np.float32)
    view = big[::-2, 3::2]
    check(fn.gaussian_filter(view, 1.5), sn.gaussian_filter(view, 1.5))
    check(fn.uniform_filter(view, 3), sn.uniform_filter(view, 3))


def test_int_output_truncation_and_wrap():
    x = np.array([1, 2, 3, -3, -1, 200], dtype=np.int64)
    for output in [np.int8, np.uint8, np.int16, np.uint32, np.int64]:
        for w in [[0.5], [1.9], [-1.3, 0.7]]:
            check(fn.correlate1d(x, w, output=output), sn.correlate1d(x, w, output=output))


def test_nan_stays_local():
    x = np.zeros((40, 41), np.float32)
    x[20, 20] = np.nan
    y = fn.gaussian_filter(x, 1.0)
    assert np.isnan(y[20, 20]) and np.isnan(y).sum() == 9 * 9
    y = fn.correlate(x, np.ones((3, 4)))
    assert np.isnan(y).sum() == 3 * 4
    # Running sums (scipy's too) carry a NaN on along the line once it entered the window.
    y = fn.uniform_filter(x, 5)
    assert np.isnan(y[18:23, 18:23]).all()


# -- errors, as scipy raises them -----------------------------------------------------------

BAD_CALLS = [
    ("correlate1d", (np.arange(5.0), [1, 2]), dict(mode="foo")),
    ("correlate1d", (np.arange(5.0), []), {}),
    ("correlate1d", (np.arange(5.0), [[1, 2]]), {}),
    ("correlate1d", (np.arange(5.0), [1, 2, 3]), dict(origin=2)),
    ("correlate1d", (np.arange(5.0), [1, 2, 3]), dict(axis=1)),
    ("correlate1d", (np.arange(5.0, dtype=np.float16), [1, 2]), {}),
    ("correlate1d", (np.arange(5.0), [1, 2]), dict(output=np.zeros(4))),
    ("correlate1d", (np.arange(5.0), [1, 2]), dict(output=np.complex128)),
    ("correlate1d", (np.arange(5.0), [1, 2]), dict(cval=1j)),
    ("correlate1d", (np.arange(5.0) + 1j, [1, 2]), dict(output=np.zeros(5))),
    ("correlate1d", (np.arange(5.0), [1, 2]), dict(output="U3")),
    ("uniform_filter1d", (np.arange(5.0), 0), {}),
    ("uniform_filter1d", (np.arange(5.0), 3), dict(origin=2)),
    ("uniform_filter", (np.ones((3, 3)), [3, 3, 3]), {}),
    ("uniform_filter", (np.ones((3, 3)), 3), dict(axes=(0, 0))),
    ("uniform_filter", (np.ones((3, 3)), 3), dict(axes=(0, 2))),
    ("gaussian_filter1d", (np.arange(5.0), 1.0), dict(radius=-1)),
    ("gaussian_filter1d", (np.arange(5.0), 1.0), dict(radius=1.5)),
    ("gaussian_filter1d", (np.arange(5.0), 1.0), dict(order=-1)),
    ("gaussian_filter", (np.ones((3, 3)), [1, 2, 3]), {}),
    ("gaussian_filter", (np.ones((3, 3)), 1.0), dict(mode=["reflect"])),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2, 2))), {}),
    ("correlate", (np.ones((3, 3)), np.ones((3, 3))), dict(origin=2)),
    ("correlate", (np.ones((3, 3)), np.ones((3, 3))), dict(mode=["reflect", "wrap"])),
    ("correlate", (np.ones((3, 3)), np.ones(3)), dict(axes=(0, 1))),
    ("convolve", (np.ones((3, 3)), np.ones((2, 2))), dict(origin=(1, 0))),
    ("sobel", (np.ones((3, 3)),), dict(axis=2)),
    ("sobel", (np.ones((3, 3)),), dict(mode="bad")),
    ("laplace", (np.ones((3, 3)),), dict(mode=["reflect"] * 3)),
]


@pytest.mark.parametrize("func,args,kwargs", BAD_CALLS)
def test_errors_match_scipy(func, args, kwargs):
    with pytest.raises(Exception) as theirs:
        getattr(sn, func)(*args, **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        getattr(fn, func)(*args, **kwargs)
    assert str(ours.value) == str(theirs.value)


# -- the kernels against the naive reference ----------------------------------------------------

@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernels_match_reference(boundary, dtype):
    rng = np.random.default_rng(BOUNDARIES.index(boundary))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for shape, axis in [((9,), 0), ((4, 6), 1), ((40, 3), 0), ((3, 40, 2), 1), ((2, 3, 50), 1)]:
        x = rng.standard_normal(shape).astype(dtype)
        n = shape[axis]
        for k in [1, 2, 5, 2 * n + 3]:           # kernels longer than the line too
            w = rng.standard_normal(k).astype(dtype)
            start = -int(rng.integers(0, k))
            wn = w.reshape([k if a == axis else 1 for a in range(x.ndim)])
            st_ = tuple(start if a == axis else 0 for a in range(x.ndim))
            ref = correlate_ref(x, wn, st_, x.shape, boundary, cval=0.5)
            out = np.empty_like(x)
            filters1d.correlate1d(x, w, out, axis, start, boundary, 0.5)
            np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * 10)
            filters1d.uniform1d(x, k, out, axis, start, boundary, 0.5)
            box = np.ones(wn.shape) / k
            np.testing.assert_allclose(out, correlate_ref(x, box, st_, x.shape, boundary, 0.5),
                                       rtol=tol, atol=tol * 10)
    # Fused pairs, including the C > 1 trailing layout and running sums on long lines.
    for shape, ay in [((9, 8), 0), ((6, 31, 2), 0), ((3, 5, 23), 1)]:
        x = rng.standard_normal(shape).astype(dtype)
        for ky, kx in [(1, 4), (5, 3), (2, 9)]:
            wy, wx = rng.standard_normal(ky).astype(dtype), rng.standard_normal(kx).astype(dtype)
            sy, sx = -(ky // 2), -((kx - 1) // 2)
            wn = np.multiply.outer(wy, wx).reshape(
                (1,) * ay + (ky, kx) + (1,) * (x.ndim - ay - 2))
            st_ = (0,) * ay + (sy, sx) + (0,) * (x.ndim - ay - 2)
            ref = correlate_ref(x, wn, st_, x.shape, boundary, cval=0.0)
            out = np.empty_like(x)
            filters1d.correlate2d_separable(x, wy, wx, out, ay, sy, sx, boundary, boundary, 0.0)
            np.testing.assert_allclose(out, ref, rtol=tol * 10, atol=tol * 10)
            # The exact fused pair: the bits of its two passes.
            two = np.empty_like(x)
            filters1d.correlate1d(x, wy.astype(np.float64), two, ay, sy, boundary, 0.5)
            filters1d.correlate1d(two.copy(), wx.astype(np.float64), two, ay + 1, sx,
                                  boundary, 0.5)
            filters1d.correlate2d_exact(x, wy.astype(np.float64), wx.astype(np.float64), out,
                                        ay, sy, sx, boundary, boundary, 0.5)
            np.testing.assert_array_equal(out, two)
            # ... and in the other order (x first: the ring of filtered rows).
            filters1d.correlate1d(x, wx.astype(np.float64), two, ay + 1, sx, boundary, 0.5)
            filters1d.correlate1d(two.copy(), wy.astype(np.float64), two, ay, sy, boundary,
                                  0.5)
            filters1d.correlate2d_exact(x, wy.astype(np.float64), wx.astype(np.float64), out,
                                        ay, sy, sx, boundary, boundary, 0.5, x_first=True)
            np.testing.assert_array_equal(out, two)


# -- properties -------------------------------------------------------------------------------

@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       kseed=st.integers(0, 2**32 - 1), mode=st.sampled_from(MODES),
       cval=st.floats(-5, 5))
def test_correlate_matches_scipy_property(shape, kseed, mode, cval):
    rng = np.random.default_rng(kseed)
    x = rng.standard_normal(shape)
    kshape = tuple(int(k) for k in rng.integers(1, 5, len(shape)))
    w = rng.standard_normal(kshape)
    origin = [int(rng.integers(-(k // 2), (k - 1) // 2 + 1)) for k in kshape]
    kw = dict(mode=mode, cval=cval, origin=origin)
    check(fn.correlate(x, w, **kw), sn.correlate(x, w, **kw), False)
    size = [int(k) for k in kshape]
    check(fn.uniform_filter(x, size, mode=mode, cval=cval),
          sn.uniform_filter(x, size, mode=mode, cval=cval))


@given(shape=st.lists(st.integers(1, 12), min_size=1, max_size=3),
       sigma=st.floats(0.0, 3.0), order=st.integers(0, 2),
       modes=st.lists(st.sampled_from(MODES), min_size=3, max_size=3),
       cval=st.floats(-5, 5), seed=st.integers(0, 2**32 - 1))
def test_separable_filters_match_scipy_property(shape, sigma, order, modes, cval, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    modes = modes[:len(shape)]
    kw = dict(mode=modes, cval=cval)
    check(fn.gaussian_filter(x, sigma, order=order, **kw),
          sn.gaussian_filter(x, sigma, order=order, **kw))
    check(fn.sobel(x, -1, **kw), sn.sobel(x, -1, **kw))
    sizes = [int(s) for s in np.random.default_rng(seed).integers(1, 9, len(shape))]
    check(fn.uniform_filter(x, sizes, **kw), sn.uniform_filter(x, sizes, **kw))
    # ... and equal to scipy's own definition: the sequence of 1-D filters, modes per axis
    # (scipy's test_multiple_modes_sequentially).
    seq = x
    for axis, mode in enumerate(modes):
        seq = fn.gaussian_filter1d(seq, sigma, axis, order, mode=mode, cval=cval) \
            if sigma > 1e-15 else seq
    check(fn.gaussian_filter(x, sigma, order=order, **kw), seq)




# -- the kernels' own paths at sizes the small cases above do not reach --------------------

_PATH_CALLS = [
    ("gaussian s=1", lambda m, x, **k: m.gaussian_filter(x, 1.0, **k)),
    ("gaussian s=2.5 order=(1,0)", lambda m, x, **k: m.gaussian_filter(
        x, 2.5, order=[1] + [0] * (x.ndim - 1), **k)),
    ("sobel 0", lambda m, x, **k: m.sobel(x, 0, **k)),
    ("sobel -1", lambda m, x, **k: m.sobel(x, -1, **k)),
    ("prewitt 1", lambda m, x, **k: m.prewitt(x, 1, **k)),
    ("uniform 3", lambda m, x, **k: m.uniform_filter(x, 3, **k)),
    ("uniform 4", lambda m, x, **k: m.uniform_filter(x, 4, **k)),
    ("uniform1d 0", lambda m, x, **k: m.uniform_filter1d(x, 6, 0, **k)),
    ("correlate1d 0", lambda m, x, **k: m.correlate1d(x, np.linspace(-1, 2, 9), 0, **k)),
    ("gaussian_laplace", lambda m, x, **k: m.gaussian_laplace(x, 1.2, **k)),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, ">f4"])
def test_separable_bits_on_every_kernel_path(threads, dtype):
    """scipy's bits where the kernels split work: eight-line groups of the box filter and a
    remainder (19, 43 rows), parallel row ranges (whole planes, or cut inside the plane
    for the fused box sweep: 131 x 160), column blocks (planes fewer than threads), the
    fused sweeps, a fill value that float32 cannot hold, strided and reversed inputs,
    big-endian data."""
    import numba
    rng = np.random.default_rng(7)
    base = rng.standard_normal((3, 43, 160)) * 10
    inputs = [base[1, :19].astype(dtype), base.astype(dtype), base[0, ::-1, ::2].astype(dtype),
              np.asarray(base[:, 3, :].T, dtype=dtype),
              np.vstack([base[0], base[1], base[2, :45]]).astype(dtype)]
    saved = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        for x, (name, f), mode in itertools.product(
                inputs, _PATH_CALLS, ["reflect", "constant", "wrap", "mirror"]):
            want = f(sn, x, mode=mode, cval=0.1)
            got = f(fn, x, mode=mode, cval=0.1)
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {mode} {x.shape}")
    finally:
        numba.set_num_threads(saved)


@pytest.mark.parametrize("threads", [2, 3, 5, 8])
def test_box_sweep_ranges_give_the_bits_of_one_sweep(threads):
    """The fused box sweep's row ranges (what each thread of a T-thread machine gets)
    each start their running sums down y at the plane's first row: run range by range,
    they give the bits of one sweep from the top."""
    rng = np.random.default_rng(threads)
    for A, NY, NX in [(1, 37, 21), (2, 17, 40), (3, 9, 33)]:
        x = rng.standard_normal((A, NY, NX)).astype(np.float32)
        ty = filters1d.extension_table(NY, -2, NY + 4, "symmetric")
        tx = filters1d.extension_table(NX, -1, NX + 2, "wrap")
        whole = np.empty_like(x)
        filters1d._box2d_rows(x, 5, ty, 3, tx, 1, 0.0, whole, 0, A * NY)
        bounds = filters1d._box_bounds(A, NY, threads)
        assert bounds[0] == 0 and bounds[-1] == A * NY and np.all(np.diff(bounds) >= 0)
        if A < threads:
            assert len(bounds) - 1 >= threads
        parts = np.empty_like(x)
        # Last range first: a range must not rely on buffers a previous call left behind.
        for r0, r1 in reversed(list(zip(bounds[:-1], bounds[1:]))):
            filters1d._box2d_rows(x, 5, ty, 3, tx, 1, 0.0, parts, r0, r1)
        np.testing.assert_array_equal(parts, whole)
        np.testing.assert_array_equal(
            whole, sn.uniform_filter1d(sn.uniform_filter1d(x, 5, 1, mode="reflect"), 3, 2,
                                       mode="wrap"))

# -- argument types as scipy's C layer takes them (issue 14, item 7) -----------------------------

_X2 = np.arange(30.0).reshape(5, 6)
ALL_CALLS = {
    "correlate": lambda m, **k: m.correlate(_X2, np.ones((3, 3)), **k),
    "convolve": lambda m, **k: m.convolve(_X2, np.ones((3, 3)), **k),
    "correlate1d": lambda m, **k: m.correlate1d(_X2, [1.0, 2.0, 1.0], **k),
    "convolve1d": lambda m, **k: m.convolve1d(_X2, [1.0, 2.0, 3.0], **k),
    "uniform_filter": lambda m, **k: m.uniform_filter(_X2, 3, **k),
    "uniform_filter1d": lambda m, **k: m.uniform_filter1d(_X2, 3, **k),
    "gaussian_filter": lambda m, **k: m.gaussian_filter(_X2, 1.0, **k),
    "gaussian_filter1d": lambda m, **k: m.gaussian_filter1d(_X2, 1.0, **k),
    "sobel": lambda m, **k: m.sobel(_X2, **k),
    "prewitt": lambda m, **k: m.prewitt(_X2, **k),
    "laplace": lambda m, **k: m.laplace(_X2, **k),
    "gaussian_laplace": lambda m, **k: m.gaussian_laplace(_X2, 1.0, **k),
    "gaussian_gradient_magnitude": lambda m, **k: m.gaussian_gradient_magnitude(_X2, 1.0, **k),
}
WITH_ORIGIN = ["correlate", "convolve", "correlate1d", "convolve1d", "uniform_filter",
               "uniform_filter1d"]


def test_every_function_is_covered():
    assert sorted(ALL_CALLS) == sorted(fn.__all__)


@pytest.mark.parametrize("name", WITH_ORIGIN)
@pytest.mark.parametrize("origin", [0.5, 1.0, -0.5, [0.5, 0]])
def test_non_integer_origin_raises_type_error(name, origin):
    if name.endswith("1d") and isinstance(origin, list):
        pytest.skip("one origin per 1-D call")
    with pytest.raises(TypeError) as theirs:
        ALL_CALLS[name](sn, origin=origin)
    with pytest.raises(TypeError) as ours:
        ALL_CALLS[name](fn, origin=origin)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("name", WITH_ORIGIN)
def test_integer_origins_of_any_integer_type(name):
    for origin in (np.int64(1), np.int8(-1), 0):
        check(ALL_CALLS[name](fn, origin=origin), ALL_CALLS[name](sn, origin=origin),
              exact=False)


@pytest.mark.parametrize("name", sorted(ALL_CALLS))
@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_cval_that_is_not_a_real_number_raises_type_error(name, mode):
    for cval in ("a", "1", None, object(), [1.0]):
        with pytest.raises(TypeError, match="must be real number"):
            ALL_CALLS[name](sn, cval=cval, mode=mode)
        with pytest.raises(TypeError, match="must be real number"):
            ALL_CALLS[name](fn, cval=cval, mode=mode)
    for cval in (np.float32(2.5), np.array(-1.0), True, 3, np.int16(4)):
        check(ALL_CALLS[name](fn, cval=cval, mode="constant"),
              ALL_CALLS[name](sn, cval=cval, mode="constant"), exact=False)


@pytest.mark.parametrize("w", [[np.inf, 1.0, np.inf], [np.inf, 1.0, -np.inf],
                               [np.nan, 1.0, 2.0]])
def test_infinite_weight_pairs_take_scipys_formula(w):
    # scipy's symmetry test lets a pair whose difference is NaN (inf - inf) count as
    # symmetric, and its symmetric formula then gives inf where the general one gives
    # NaN (x*inf + 0*inf). The compiled kernels used their own copy of the test, which
    # said "neither": all-NaN rows, with a RuntimeWarning. One shared test now.
    x = np.array([0.0, 1.0, 0.0, 0.0, 2.0, 0.0])
    for mode in ("constant", "reflect"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            got = fn.correlate1d(x, w, mode=mode)
        want = sn.correlate1d(x, w, mode=mode)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape, kshape, origin", [
    ((1, 1, 1), (3, 2, 2), (-1, 0, -1)),
    ((1, 1, 3), (2, 1, 3), (-1, 0, 1)),
    ((1, 1, 2), (2, 4, 4), (-1, -1, -2)),
    ((1, 1, 5), (4, 1, 1), (0, 0, 0))])
def test_one_output_row_with_deep_kernel(mode, shape, kshape, origin):
    # The small-work kernel's one-row branch (nz * ny == 1) ran kernel plane 0 only: a
    # 3-D kernel more than one plane deep over a single output row lost the other
    # planes' sums (hypothesis found it in CI: shape (1, 1, 1), kernel (3, 2, 2)).
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(kshape)
    kw = dict(mode=mode, cval=0.5, origin=list(origin))
    check(fn.correlate(x, w, **kw), sn.correlate(x, w, **kw), False)
    check(fn.convolve(x, w, mode=mode, cval=0.5), sn.convolve(x, w, mode=mode, cval=0.5),
          False)
