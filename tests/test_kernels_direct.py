"""The direct kernel's launcher contract against the naive reference and scipy/numpy."""
import numpy as np
import pytest
import scipy.signal
from hypothesis import given, strategies as st

from fastconv.kernels.cpu import direct
from reference import correlate_ref

BOUNDARIES = ["constant", "wrap", "symmetric", "reflect", "edge"]


def _tol(dtype):
    return 1e-4 if dtype in (np.float32, np.complex64) else 1e-10


def _check(out, ref, dtype):
    if dtype == np.int64:
        np.testing.assert_array_equal(out, ref.real.astype(np.int64))
    else:
        tol = _tol(dtype)
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * max(1, np.abs(ref).max()))


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int64])
def test_launcher_matches_reference(ndim, boundary, dtype):
    rng = np.random.default_rng(ndim * 100 + BOUNDARIES.index(boundary))
    shape = tuple(rng.integers(2, 7 if ndim < 4 else 4, size=ndim))
    kshape = tuple(rng.integers(1, 5 if ndim < 4 else 3, size=ndim))
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    w = (rng.standard_normal(kshape) * 4).astype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * rng.standard_normal(shape)
    start = tuple(int(s) for s in rng.integers(-4, 2, size=ndim))
    out_shape = tuple(int(m) for m in rng.integers(1, 9, size=ndim))
    out = np.empty(out_shape, dtype)
    cval = 1.5 if dtype != np.int64 else 3
    direct.correlate(x, w, out, start, boundary, cval=cval)
    _check(out, correlate_ref(x, w, start, out_shape, boundary, cval=cval), dtype)


def _conv(x, w, mode, out_dtype=None):
    """scipy.signal.convolve's modes through the launcher."""
    wc = np.ascontiguousarray(w[(slice(None, None, -1),) * w.ndim])
    if mode == "full":
        shape = tuple(n + k - 1 for n, k in zip(x.shape, w.shape))
        start = tuple(-(k - 1) for k in w.shape)
    elif mode == "same":
        shape = x.shape
        start = tuple(-(k // 2) for k in w.shape)   # full, from offset (k - 1) // 2
    else:
        shape = tuple(max(0, n - k + 1) for n, k in zip(x.shape, w.shape))
        start = (0,) * x.ndim
    out = np.empty(shape, out_dtype or x.dtype)
    return direct.correlate(x, wc, out, start)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("shapes", [
    ((37,), (4,)), ((50,), (7,)), ((13, 21), (3, 3)), ((16, 19), (4, 6)), ((12, 9), (5, 2)),
    ((7, 9, 10), (3, 2, 3)), ((6, 5, 8), (2, 4, 4)), ((3, 3), (5, 4))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_modes_match_scipy(mode, shapes, dtype):
    xs, ks = shapes
    rng = np.random.default_rng(len(xs) * 10 + ks[0])
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ks).astype(dtype)
    if mode == "valid" and any(k > n for n, k in zip(xs, ks)):
        return                      # scipy requires one array to cover the other
    expect = scipy.signal.convolve(x.astype(np.float64), w.astype(np.float64), mode=mode,
                                   method="direct")
    got = _conv(x, w, mode)
    assert got.dtype == dtype and got.shape == expect.shape
    _check(got, expect, dtype)


@pytest.mark.parametrize("view", ["reversed", "transposed", "subwindow", "step2_outer",
                                  "step2_last", "negative_both", "readonly", "broadcast"])
def test_strided_inputs(view):
    rng = np.random.default_rng(7)
    base = rng.standard_normal((23, 31))
    x = {"reversed": base[::-1],
         "transposed": base.T,
         "subwindow": base[3:19, 5:28],
         "step2_outer": base[::2],
         "step2_last": base[:, ::2],
         "negative_both": base[::-2, ::-1],
         "readonly": base.copy(),
         "broadcast": np.broadcast_to(base[4], (9, 31))}[view]
    if view == "readonly":
        x.flags.writeable = False
    w = rng.standard_normal((4, 3))
    for boundary in ("constant", "reflect"):
        start = (-2, -1)
        out = np.empty((x.shape[0] + 1, x.shape[1] - 1))
        direct.correlate(x, w, out, start, boundary, cval=0.5)
        ref = correlate_ref(np.ascontiguousarray(x), w, start, out.shape, boundary,
                            cval=0.5)
        _check(out, ref, np.float64)


def test_long_rows_are_tiled(monkeypatch):
    """Rows longer than ROW_MAX split into tiles (1-D signals run in parallel); small
    settings force several tiles, edges inside tiles and tiles shorter than the edge."""
    monkeypatch.setattr(direct, "ROW_MAX", 16)
    monkeypatch.setattr(direct, "TILE", 5)
    rng = np.random.default_rng(3)
    for xs, ks in (((103,), (7,)), ((9, 41), (3, 6)), ((4, 5, 33), (2, 3, 9))):
        x = rng.standard_normal(xs)
        w = rng.standard_normal(ks)
        for mode in ("full", "same", "valid"):
            got = _conv(x, w, mode)
            _check(got, scipy.signal.convolve(x, w, mode=mode, method="direct"), np.float64)
        start = tuple(-k for k in ks)
        out = np.empty(tuple(n + 3 for n in xs))
        direct.correlate(x, w, out, start, "wrap")
        _check(out, correlate_ref(x, w, start, out.shape, "wrap"), np.float64)


def test_long_signal_matches_numpy():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(50_001).astype(np.float32)
    for k in (3, 31, 63):
        w = rng.standard_normal(k).astype(np.float32)
        got = _conv(x, w, "same")
        expect = np.convolve(x.astype(np.float64), w.astype(np.float64), mode="same")
        np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4 * np.abs(expect).max())


def test_nan_stays_local():
    x = np.zeros((12, 14), np.float32)
    x[5, 6] = np.nan
    w = np.ones((3, 3), np.float32)
    got = _conv(x, w, "same")
    hit = np.isnan(got)
    assert hit[4:7, 5:8].all() and hit.sum() == 9


def test_integer_exact():
    rng = np.random.default_rng(11)
    x = rng.integers(-2**20, 2**20, size=(15, 17)).astype(np.int64)
    w = rng.integers(-2**10, 2**10, size=(4, 5)).astype(np.int64)
    got = _conv(x, w, "full")
    expect = scipy.signal.convolve(x, w, mode="full", method="direct")
    np.testing.assert_array_equal(got, expect)


def test_degenerate_sizes():
    x = np.arange(6.0)
    out = np.full(4, 7.0)
    direct.correlate(x, np.zeros((0,)), out, (0,))          # empty kernel
    assert (out == 0).all()
    out = np.full(3, 7.0)
    direct.correlate(np.zeros((0,)), np.ones(2), out, (-1,), cval=2.0)   # empty input
    np.testing.assert_array_equal(out, 4.0)
    out = np.empty(0)
    direct.correlate(x, np.ones(3), out, (0,))               # empty output


@given(ndim=st.integers(1, 3), seed=st.integers(0, 2**31 - 1),
       boundary=st.sampled_from(BOUNDARIES))
def test_property_matches_reference(ndim, seed, boundary):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 9, size=ndim))
    kshape = tuple(int(k) for k in rng.integers(1, 8, size=ndim))
    x = rng.standard_normal(shape)
    w = rng.standard_normal(kshape)
    start = tuple(int(s) for s in rng.integers(-9, 4, size=ndim))
    out_shape = tuple(int(m) for m in rng.integers(1, 12, size=ndim))
    out = np.empty(out_shape)
    direct.correlate(x, w, out, start, boundary, cval=-0.75)
    _check(out, correlate_ref(x, w, start, out_shape, boundary, cval=-0.75), np.float64)
