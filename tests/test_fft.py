"""FFT and overlap-add launchers, and the fftconvolve/oaconvolve drop-ins."""
import tracemalloc

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, strategies as st

from fastconv import _fftsize
from fastconv._fftconvolve import fftconvolve, oaconvolve
from fastconv.kernels.cpu import direct, fft
from reference import correlate_ref

BOUNDARIES = ["constant", "wrap", "symmetric", "reflect", "edge"]
TOL = {np.float32: 2e-4, np.float64: 1e-10, np.complex64: 2e-4, np.complex128: 1e-10}


def _data(rng, shape, dtype, scale=4.0):
    a = rng.standard_normal(shape) * scale
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def _run(method, x, w, out, start, boundary="constant", cval=0, block=None):
    if method == "fft":
        return fft.correlate_fft(x, w, out, start, boundary, cval)
    return fft.correlate_oa(x, w, out, start, boundary, cval, block=block)


# -- launcher contract against the reference -----------------------------------------------

@pytest.mark.parametrize("method", ["fft", "oa"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int64])
def test_launcher_matches_reference(method, ndim, boundary, dtype):
    rng = np.random.default_rng(hash((method, ndim, boundary, str(dtype))) % 2**32)
    for _ in range(3):
        shape = tuple(int(v) for v in rng.integers(1, 10, size=ndim))
        kshape = tuple(int(v) for v in rng.integers(1, 6, size=ndim))
        start = tuple(int(v) for v in rng.integers(-7, 3, size=ndim))
        out_shape = tuple(int(v) for v in rng.integers(1, 12, size=ndim))
        if dtype == np.int64:
            x = rng.integers(-50, 50, size=shape)
            w = rng.integers(-50, 50, size=kshape)
            cval = 3
        else:
            x, w, cval = _data(rng, shape, dtype), _data(rng, kshape, dtype), 1.5
        block = tuple(k + int(rng.integers(0, 4)) for k in kshape)
        out = np.empty(out_shape, dtype)
        _run(method, x, w, out, start, boundary, cval, block)
        ref = correlate_ref(x, w, start, out_shape, boundary, cval)
        if dtype == np.int64:
            np.testing.assert_array_equal(out, ref.real.astype(np.int64))
        else:
            tol = TOL[dtype]
            np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * (np.abs(ref).max() + 1))


@pytest.mark.parametrize("method", ["fft", "oa"])
def test_noncontiguous_and_negative_strides(method):
    rng = np.random.default_rng(5)
    big = rng.standard_normal((40, 50))
    x = big[::2, ::-3]                       # strided, reversed view
    w = rng.standard_normal((9, 8))[::-1]
    out = np.empty((20, 17))
    _run(method, x, w, out, (-4, -3), block=(16, 16))
    ref = correlate_ref(x, w, (-4, -3), out.shape)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)


def test_oa_many_blocks_1d_matches_direct():
    rng = np.random.default_rng(6)
    x = rng.standard_normal(5000).astype(np.float32)
    w = rng.standard_normal(101).astype(np.float32)
    for start, m in [(-100, 5100), (-50, 5000), (0, 4900), (-300, 5500)]:
        out, ref = np.empty(m, np.float32), np.empty(m, np.float32)
        fft.correlate_oa(x, w, out, (start,), block=(512,))
        direct.correlate(x, w, ref, (start,))
        assert np.abs(out - ref).max() <= fft.fft_error_bound(x, w, np.float32)


@pytest.mark.parametrize("method", ["fft", "oa"])
def test_float32_error_bound(method):
    """The documented bound of float32 FFT against the exact (float64 direct) result."""
    rng = np.random.default_rng(7)
    for shape, kshape in [((300,), (41,)), ((64, 70), (9, 13)), ((20, 18, 22), (5, 4, 3))]:
        x = rng.standard_normal(shape).astype(np.float32) * 100
        w = rng.standard_normal(kshape).astype(np.float32)
        start = tuple(-(k // 2) for k in kshape)
        out = np.empty(shape, np.float32)
        _run(method, x, w, out, start, block=tuple(2 * k + 3 for k in kshape))
        exact = np.empty(shape, np.float64)
        direct.correlate(x.astype(np.float64), w.astype(np.float64), exact, start)
        assert out.dtype == np.float32
        assert np.abs(out - exact).max() <= fft.fft_error_bound(x, w, np.float32)


def test_integer_exactness_guard():
    x = np.full(50, 2**20, np.int64)
    w = np.full(7, 2**20, np.int64)
    assert fft.fft_is_exact(x, w)                # 2^40 * 7 < 2^52
    out = np.empty(56, np.int64)
    fft.correlate_fft(x, w, out, (-6,))
    ref = np.convolve(x, w)
    np.testing.assert_array_equal(out, ref)
    big = np.full(50, 2**30, np.int64)
    assert not fft.fft_is_exact(big, w)          # beyond float64's mantissa
    out2 = np.empty(56, np.int64)
    fft.correlate_fft(big, w, out2, (-6,))       # routed to the direct method: exact
    np.testing.assert_array_equal(out2, np.convolve(big, w))


# -- NaN / Inf locality ------------------------------------------------------------------------

def _same_nonfinite(a, b):
    for part in (np.real, np.imag):
        pa, pb = part(a), part(b)
        np.testing.assert_array_equal(np.isnan(pa), np.isnan(pb))
        np.testing.assert_array_equal(np.isposinf(pa), np.isposinf(pb))
        np.testing.assert_array_equal(np.isneginf(pa), np.isneginf(pb))


@pytest.mark.parametrize("method", ["fft", "oa"])
@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
@pytest.mark.parametrize("boundary", ["constant", "reflect"])
def test_nonfinite_stays_local(method, dtype, boundary):
    rng = np.random.default_rng(8)
    for ndim in (1, 2, 3):
        shape = (40,) if ndim == 1 else (16, 13) if ndim == 2 else (7, 8, 9)
        kshape = (5,) * ndim
        x = _data(rng, shape, dtype, 1.0)
        w = _data(rng, kshape, dtype, 1.0)
        w.flat[3] = 0                            # 0 * Inf must still give NaN
        flat = x.reshape(-1)
        flat[[2, 17, -5]] = [np.nan, np.inf, -np.inf]
        start = tuple(-2 for _ in kshape)
        out, ref = np.empty(shape, dtype), np.empty(shape, dtype)
        _run(method, x, w, out, start, boundary, block=(9,) * ndim)
        direct.correlate(x, w, ref, start, boundary)
        _same_nonfinite(out, ref)
        fin = np.isfinite(ref)
        assert fin.sum() > 0.3 * ref.size        # most of the output is untouched
        np.testing.assert_allclose(out[fin], ref[fin], rtol=1e-3, atol=1e-3)


def test_nonfinite_kernel_and_mostly_nan_input_use_direct():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((12, 12))
    w = rng.standard_normal((3, 3))
    w[1, 1] = np.inf
    out, ref = np.empty((14, 14)), np.empty((14, 14))
    fft.correlate_fft(x, w, out, (-2, -2))
    direct.correlate(x, w, ref, (-2, -2))
    _same_nonfinite(out, ref)
    x[::2] = np.nan
    w[1, 1] = 1
    fft.correlate_oa(x, w, out, (-2, -2), block=(6, 6))
    direct.correlate(x, w, ref, (-2, -2))
    _same_nonfinite(out, ref)


def test_dropin_nan_local_where_scipy_smears():
    x = np.ones(1000)
    x[500] = np.nan
    w = np.ones(11)
    ours = fftconvolve(x, w, "same")
    assert np.isnan(ours).sum() == 11
    assert np.isnan(ss.fftconvolve(x, w, "same")).all()      # scipy: everything NaN
    np.testing.assert_array_equal(np.isnan(oaconvolve(x, w, "same")), np.isnan(ours))


# -- drop-ins against scipy --------------------------------------------------------------------

CASES = [
    ((13,), (4,), None), ((12,), (5,), None), ((5,), (12,), None),
    ((9, 10), (3, 4), None), ((10, 9), (4, 3), (0, 1)), ((9, 10), (3, 10), 0),
    ((8, 9), (8, 4), 1), ((6, 7, 8), (3, 1, 4), (0, 2)), ((6, 7, 8), (1, 7, 3), [-1]),
    ((1, 9), (4, 3), None), ((4, 1), (3, 5), None), ((5, 6, 7), (5, 6, 2), 2),
    ((2, 30), (2, 7), -1),
]


@pytest.mark.parametrize("func, peer", [(fftconvolve, ss.fftconvolve),
                                        (oaconvolve, ss.oaconvolve)])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("dtypes", [(np.float64, np.float64), (np.float32, np.float32),
                                    (np.complex128, np.float64), (np.int32, np.float32),
                                    (np.complex64, np.complex64)])
def test_dropin_matches_scipy(func, peer, mode, dtypes):
    rng = np.random.default_rng(10)
    for s1, s2, axes in CASES:
        a, b = _data(rng, s1, dtypes[0]), _data(rng, s2, dtypes[1])
        try:
            ref = peer(a, b, mode, axes)
        except ValueError as e:
            with pytest.raises(ValueError, match=str(e).replace("(", r"\(").replace(")", r"\)")):
                func(a, b, mode, axes)
            continue
        got = func(a, b, mode, axes)
        assert got.shape == ref.shape and got.dtype == ref.dtype, (s1, s2, axes)
        # scipy transforms a float32 input in single precision even when the result is
        # float64 (mixed inputs); fastconv computes in the result's precision
        single = any(np.dtype(d) in (np.dtype(np.float32), np.dtype(np.complex64))
                     for d in dtypes)
        tol = 2e-4 if single else 1e-9
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * (np.abs(ref).max() + 1))


def test_dropin_large_oa_matches_scipy():
    rng = np.random.default_rng(11)
    a = rng.standard_normal((300, 257))
    b = rng.standard_normal((11, 20))
    for mode in ("full", "same", "valid"):
        np.testing.assert_allclose(oaconvolve(a, b, mode), ss.oaconvolve(a, b, mode),
                                   atol=1e-9)
        np.testing.assert_allclose(fftconvolve(b, a, mode), ss.fftconvolve(b, a, mode),
                                   atol=1e-9)


@pytest.mark.parametrize("args, message", [
    (((1, 2), [[1]]), "in1 and in2 should have the same dimensionality"),
    (((1, 2, 3), (1, 2), "middle"), "acceptable mode flags are 'valid', 'same', or 'full'"),
    ((np.ones((3, 4)), np.ones((4, 3)), "valid"), "For 'valid' mode, one must be at least"),
    ((np.ones((3, 4)), np.ones((2, 3)), "full", 2), "axes exceeds dimensionality of input"),
    ((np.ones((3, 4)), np.ones((2, 3)), "full", [0, 0]), "all axes must be unique"),
    ((np.ones((3, 4)), np.ones((2, 3)), "full", []), "when provided, axes cannot be empty"),
    ((np.ones((3, 4)), np.ones((2, 3)), "full", 1.5), "axes must be a scalar or iterable"),
    ((np.ones((3, 4)), np.ones((2, 3)), "full", 1), "incompatible shapes for in1 and in2"),
])
def test_dropin_errors_like_scipy(args, message):
    for func, peer in [(fftconvolve, ss.fftconvolve), (oaconvolve, ss.oaconvolve)]:
        with pytest.raises(ValueError, match=message):
            peer(*args)
        with pytest.raises(ValueError, match=message):
            func(*args)


def test_dropin_scalars_and_empty():
    assert fftconvolve(2.0, 3.0) == 6.0
    assert oaconvolve(np.array(2), np.array(3)) == 6
    assert fftconvolve(np.array([]), np.array([1.0])).shape == (0,)
    assert oaconvolve(np.ones((0, 3)), np.ones((2, 2))).shape == (0,)


def test_dropin_only_length1_axes_multiplies():
    a = np.arange(6).reshape(1, 6)
    b = np.arange(3).reshape(3, 1)
    for mode in ("full", "same", "valid"):
        ref = ss.fftconvolve(a, b, mode)
        got = fftconvolve(a, b, mode)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)


@given(n=st.integers(1, 40), k=st.integers(1, 12), mode=st.sampled_from(["full", "same", "valid"]),
       seed=st.integers(0, 2**16))
def test_property_dropins_match_numpy(n, k, mode, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n), rng.standard_normal(k)
    ref = ss.convolve(a, b, mode, method="direct")
    np.testing.assert_allclose(fftconvolve(a, b, mode), ref, atol=1e-10)
    np.testing.assert_allclose(oaconvolve(a, b, mode), ref, atol=1e-10)


# -- memory bound of overlap-add and the size helpers ------------------------------------------

def test_oa_extra_memory_is_bounded_by_the_block(monkeypatch):
    """Overlap-add's extra memory is O(block), set by the batch budget, not O(input)."""
    monkeypatch.setattr(fft, "OA_CHUNK_BYTES", 1 << 20)
    x = np.random.default_rng(12).standard_normal(4_000_000).astype(np.float32)
    w = np.ones(1001, np.float32)
    out = np.empty(x.size + 1000, np.float32)
    fft.correlate_oa(x, w, out, (-1000,))             # warm up
    tracemalloc.start()
    fft.correlate_oa(x, w, out, (-1000,))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.25 * x.nbytes, peak


def test_fft_sizes_and_costs():
    assert _fftsize.fast_len(2078) >= 2078
    L = _fftsize.oa_block_len(10**6, 1001)
    assert 4 * 1001 <= L <= 65536
    assert _fftsize.oa_block_shape((2048, 2048), (31, 31))[0] >= 62
    assert _fftsize.cost_fft((2048, 2048), (63, 63)) < _fftsize.cost_direct((2048, 2048), (63, 63))
    assert _fftsize.cost_direct((2048, 2048), (3, 3)) < _fftsize.cost_fft((2048, 2048), (3, 3))
    assert _fftsize.cost_oa((10**6,), (255,)) < _fftsize.cost_fft((10**6,), (255,))
    assert _fftsize.cost_separable((512, 512), (19, 19)) < _fftsize.cost_direct((512, 512), (19, 19))


def test_dropin_batch_axes_nan_local_and_batched():
    rng = np.random.default_rng(13)
    a = rng.standard_normal((5, 40))
    b = rng.standard_normal((5, 7))
    ref = ss.fftconvolve(a, b, "same", axes=1)
    np.testing.assert_allclose(fftconvolve(a, b, "same", axes=1), ref, atol=1e-10)
    a[2, 20] = np.nan
    got = oaconvolve(a, b, "same", axes=1)
    assert np.isnan(got).sum() == 7 and np.isnan(got[2]).sum() == 7
    rows = [0, 1, 3, 4]
    np.testing.assert_allclose(got[rows], ref[rows], atol=1e-10)


def test_kernel_spectra_reused_from_caller_cache():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((30, 40))
    w = rng.standard_normal((5, 4))
    cache = {}
    a, b, ref = np.empty((30, 40)), np.empty((30, 40)), np.empty((30, 40))
    fft.correlate_oa(x, w, a, (-2, -2), block=(12, 12), spectra=cache)
    n = len(cache)
    assert n > 0
    fft.correlate_oa(x * 2, w, b, (-2, -2), block=(12, 12), spectra=cache)
    assert len(cache) == n                                   # all reused
    direct.correlate(x, w, ref, (-2, -2))
    np.testing.assert_allclose(a, ref, atol=1e-10)
    np.testing.assert_allclose(b, 2 * ref, atol=1e-10)
