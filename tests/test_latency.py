"""Per-call overhead (issue 15): what a call's signature fixes is computed once.

The direct launcher memoises its index maps and view parameters per (layout, shapes,
start, boundary), and the row fills per kernel bytes; these tests check that the memo is
used, that it is keyed by everything the result depends on (strides, flips, read-only
copies, kernel values, fill value), and that it stays bounded.
"""
import numpy as np
import pytest

from fastconv.kernels.cpu import direct
from reference import correlate_ref

BOUNDARIES = ["constant", "wrap", "edge", "symmetric", "reflect"]


def _run(x, w, start, out_shape, boundary, cval=0.0):
    out = np.empty(out_shape, np.float64)
    direct.correlate(x, w, out, start, boundary, cval)
    return out


def test_geometry_is_built_once_per_signature(monkeypatch):
    calls = []
    real = direct.index_map

    def counting(*a):
        calls.append(a)
        return real(*a)

    monkeypatch.setattr(direct, "index_map", counting)
    direct._GEOMETRY.clear()
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 5))
    for i in range(3):
        x = rng.standard_normal((20, 30))
        got = _run(x, w, (-1, -2), (20, 30), "reflect")
        np.testing.assert_allclose(got, correlate_ref(x, w, (-1, -2), (20, 30), "reflect"),
                                   rtol=1e-12, atol=1e-12)
        if i == 0:
            first = len(calls)
    assert first > 0 and len(calls) == first          # later calls: no new index maps


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_memo_is_keyed_by_layout(boundary):
    """One shape through C order, negative strides, a transposed view and a read-only
    array, in an order that would reuse a wrong memo entry: each as its C copy, bit for
    bit."""
    rng = np.random.default_rng(2)
    base = rng.standard_normal((17, 23))
    w = rng.standard_normal((4, 3))
    views = [base, base[::-1, ::-1], base.T.copy().T, base[:, ::-1], base[::-1]]
    ro = base.copy()
    ro.flags.writeable = False
    views.append(ro)
    for _ in range(2):
        for v in views:
            got = _run(v, w, (-2, -1), (17, 23), boundary, 0.5)
            want = _run(np.ascontiguousarray(v), w, (-2, -1), (17, 23), boundary, 0.5)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_allclose(
                got, correlate_ref(v, w, (-2, -1), (17, 23), boundary, 0.5),
                rtol=1e-12, atol=1e-12)


def test_row_fills_follow_kernel_values_and_cval():
    """The fill rows of the constant boundary are memoised by the kernel's bytes and the
    fill value: another kernel or cval of the same shape gets its own."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 12))
    for cval in (0.0, 2.0, -3.5):
        for _ in range(3):
            w = rng.standard_normal((5, 5))
            got = _run(x, w, (-2, -2), (12, 12), "constant", cval)
            np.testing.assert_allclose(
                got, correlate_ref(x, w, (-2, -2), (12, 12), "constant", cval),
                rtol=1e-12, atol=1e-12)
    w = np.ones((3, 3))
    w[0, 0] = np.inf           # Inf tap x zero fill: NaN where a fill row is read
    got = _run(x, w, (-1, -1), (12, 12), "constant", 0.0)
    want = correlate_ref(x, w, (-1, -1), (12, 12), "constant", 0.0)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_launcher_memos_are_bounded():
    direct._GEOMETRY.clear()
    direct._FILLS.clear()
    w = np.ones((2, 2))
    for n in range(3, 3 + direct._GEOMETRY.size + 20):
        _run(np.ones((2, n)), w * n, (-1, -1), (2, n), "constant", 1.0)
    assert len(direct._GEOMETRY) == direct._GEOMETRY.size
    assert len(direct._FILLS) == direct._FILLS.size


# -- plans: the launcher's kernel call bound once ------------------------------------------

import fastconv  # noqa: E402
from fastconv import _planapi  # noqa: E402


def _no_execute(*a, **k):
    raise AssertionError("the plan went through execute")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kshape", [((1000,), (5,)), ((33, 40), (3, 4)),
                                          ((9, 10, 11), (2, 3, 3)), ((256, 256), (3, 3))])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_direct_plan_binds_the_kernel_call(monkeypatch, dtype, shape, kshape, mode):
    """A direct plan on C-ordered data of its dtype makes the launcher's kernel call
    without execute, with execute's bits (small work: the serial twin; 256^2 x 3x3: the
    parallel kernel on two threads, the twin on one)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(kshape).astype(dtype)
    p = fastconv.plan(x, w, mode, method="direct")
    want = fastconv.convolve(x, w, mode, method="direct")
    monkeypatch.setattr(_planapi, "execute", _no_execute)
    for n in (1, 2):
        with fastconv.threads(n):
            got = p(x)
            np.testing.assert_array_equal(got, want)
            out = np.full(want.shape, np.nan, dtype)
            assert p(x, out=out) is out
            np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm", "reflect", "nearest"])
def test_bound_plan_boundaries_and_fill(monkeypatch, boundary):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((15, 18))
    w = rng.standard_normal((5, 3))
    p = fastconv.plan(x, w, "same", op="correlate", method="direct", boundary=boundary,
                      fillvalue=1.5)
    want = fastconv.correlate(x, w, "same", method="direct", boundary=boundary,
                              fillvalue=1.5)
    monkeypatch.setattr(_planapi, "execute", _no_execute)
    np.testing.assert_array_equal(p(x), want)


def test_plan_falls_back_for_other_layouts_and_dtypes():
    """Views, read-only arrays, other dtypes and foreign out= buffers take the execute
    path, with the same results."""
    rng = np.random.default_rng(6)
    big = rng.standard_normal((40, 50))
    w = rng.standard_normal((3, 3))
    x = big[::2, ::-2]
    p = fastconv.plan(x, w, "same", method="direct")
    want = fastconv.convolve(np.ascontiguousarray(x), w, "same", method="direct")
    np.testing.assert_array_equal(p(x), want)
    ro = np.ascontiguousarray(x)
    ro.flags.writeable = False
    np.testing.assert_array_equal(p(ro), want)
    xi = (x * 10).astype(np.int16)
    np.testing.assert_allclose(p(xi), fastconv.convolve(xi.astype(float), w, "same"),
                               rtol=1e-12, atol=1e-9)
    out = np.empty((25, 20)).T                      # F-ordered out=
    assert p(x, out=out) is out
    np.testing.assert_array_equal(out, want)
    assert p._run is not None
    assert fastconv.plan(x.astype(complex), w, "same", method="direct")._run is None
    assert fastconv.plan(x.astype(np.int64), w.astype(np.int64), "same",
                         method="direct")._run is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_shot_direct_calls_reuse_the_bound_call(monkeypatch, dtype):
    """A repeated one-shot direct call on C-ordered data runs the bound kernel call
    (no launcher Python), with the launcher's bits; other kernels, fill values and
    layouts get their own or the launcher."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((30, 41)).astype(dtype)
    ws = [rng.standard_normal((3, 5)).astype(dtype) for _ in range(2)]

    def launcher(x, w, fill):
        out = np.empty(x.shape, dtype)
        direct.correlate(x, np.ascontiguousarray(w[::-1, ::-1]), out, (-1, -2),
                         "constant", fill)
        return out

    wants = {(i, f): launcher(x, w, f) for i, w in enumerate(ws) for f in (0, 2)}
    for i, w in enumerate(ws):                        # first calls bind
        for f in (0, 2):
            fastconv.convolve(x, w, "same", method="direct", fillvalue=f)
    calls = []
    real = direct.correlate
    monkeypatch.setattr(direct, "correlate",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    from fastconv import kernels
    monkeypatch.setattr(kernels, "_LOADED", {})       # get_launcher: the patched one
    for _ in range(2):
        for i, w in enumerate(ws):
            for f in (0, 2):
                got = fastconv.convolve(x, w, "same", method="direct", fillvalue=f)
                np.testing.assert_array_equal(got, wants[(i, f)])
    assert calls == []
    got = fastconv.convolve(x[:, ::-1], ws[0], "same", method="direct")   # a view
    np.testing.assert_array_equal(got, launcher(np.ascontiguousarray(x[:, ::-1]), ws[0], 0))
    assert calls


# -- the fast lane of repeated one-shot calls (_dispatch.FAST) ---------------------------

from fastconv import _dispatch, signal as _signal  # noqa: E402
import scipy.signal  # noqa: E402

_FAST_CALLS = {
    "convolve": (lambda x, w, **k: fastconv.convolve(x, w, "same", **k), "_nd_plan"),
    "correlate": (lambda x, w, **k: fastconv.correlate(x, w, "full", **k), "_nd_plan"),
    "convolve2d": (lambda x, w, **k: fastconv.convolve2d(x, w, "same", **k), "_2d_plan"),
    "correlate2d": (lambda x, w, **k: fastconv.correlate2d(x, w, "valid", **k), "_2d_plan"),
}


def _no_validation(*a, **k):
    raise AssertionError("the call went through validation")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(_FAST_CALLS))
def test_repeated_calls_take_the_fast_lane(monkeypatch, name, dtype):
    """The second call of a signature skips validation, the spec and the decision, and
    returns the full path's bits in a new array."""
    call, plan_fn = _FAST_CALLS[name]
    rng = np.random.default_rng(8)
    x = rng.standard_normal((24, 31)).astype(dtype)
    w = rng.standard_normal((3, 4)).astype(dtype)
    _dispatch.FAST.clear()
    want = call(x, w)
    monkeypatch.setattr(_signal, plan_fn, _no_validation)
    got = call(x, w)
    assert got is not want and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    got[...] = 0                                   # a fresh output each call
    np.testing.assert_array_equal(call(x, w), want)


def test_fast_lane_does_not_return_stale_results_after_in_place_changes():
    """The lane is keyed by the kernel's bytes, not its identity: a kernel (or input)
    changed in place gives the new result."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(1000).astype(np.float32)
    w = rng.standard_normal(5).astype(np.float32)
    for _ in range(2):
        np.testing.assert_allclose(fastconv.convolve(x, w, "same"),
                                   np.convolve(x, w, "same"), rtol=1e-5, atol=1e-5)
    w[2] += 1.0
    np.testing.assert_allclose(fastconv.convolve(x, w, "same"), np.convolve(x, w, "same"),
                               rtol=1e-5, atol=1e-5)
    w[...] = w[::-1].copy()
    x[::3] = -x[::3]
    for _ in range(2):
        np.testing.assert_allclose(fastconv.convolve(x, w, "same"),
                                   np.convolve(x, w, "same"), rtol=1e-5, atol=1e-5)


def _bad_inputs(x, w):
    """(name, in1, in2, kwargs) with x's and w's shapes, each rejected by scipy."""
    return [
        ("mode", x, w, dict(mode="middle")),
        ("method", x, w, dict(method="winograd")),
        ("boundary", x, w, dict(boundary="sideways")),
        ("fillvalue too large", x, w, dict(fillvalue=1e300)),
        ("fillvalue not a number", x, w, dict(fillvalue="abc")),
        ("object input", x.astype(object), w, {}),
        ("string kernel", x, w.astype(str), {}),
        ("ndim", x, w[None], {}),
    ]


@pytest.mark.parametrize("case", range(8))
def test_fast_lane_still_raises_after_a_good_call(case):
    """After good calls of a signature, a bad call of the same shapes raises what the
    full path raises (scipy's exception type), with the lane filled and with it empty."""
    x = np.random.default_rng(10).standard_normal(300).astype(np.float32)
    w = np.arange(1.0, 6.0, dtype=np.float32)
    name, a, b, kw = _bad_inputs(x, w)[case]
    kw = dict(dict(mode="same", method="auto", boundary="fill", fillvalue=0), **kw)
    for _ in range(2):
        fastconv.convolve(x, w, "same")
        fastconv.convolve(x, w, "same", fillvalue=0.5)
    errors = []
    for empty in (False, True):
        if empty:
            _dispatch.FAST.clear()
        with pytest.raises((ValueError, TypeError)) as err:
            fastconv.convolve(a, b, kw["mode"], kw["method"], boundary=kw["boundary"],
                              fillvalue=kw["fillvalue"])
        errors.append((type(err.value), str(err.value)))
    assert errors[0] == errors[1], name
    if name == "fillvalue not a number":
        with pytest.raises(errors[0][0]):
            scipy.signal.convolve2d(a[None], b[None], "same", fillvalue="abc")
    elif name not in ("method", "boundary", "fillvalue too large", "object input"):
        # (fastconv's own arguments; scipy pads with inf where the fill overflows and
        # convolves object arrays in Python, which fastconv refuses)
        with pytest.raises(errors[0][0]):
            scipy.signal.convolve(a, b, kw["mode"])


def test_fast_lane_declines_other_layouts_threads_and_settings(monkeypatch):
    """A read-only or misaligned input, another thread count or another tuning setting
    take the full path (with the same bits); clearing the tuner's memory clears the lane."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((20, 22))
    w = rng.standard_normal((3, 3))
    want = fastconv.convolve(x, w, "same")
    assert len(_dispatch.FAST)
    ro = x.copy()
    ro.flags.writeable = False
    raw = np.zeros(x.nbytes + 1, np.uint8)[1:]              # misaligned float64 data
    mis = raw.view(np.float64).reshape(x.shape)
    mis[...] = x
    assert not mis.flags.aligned
    calls = []
    real = _signal._nd_plan
    monkeypatch.setattr(_signal, "_nd_plan", lambda *a, **k: calls.append(1) or real(*a, **k))
    np.testing.assert_array_equal(fastconv.convolve(x, w, "same"), want)
    assert calls == []
    for y in (ro, mis):
        np.testing.assert_array_equal(fastconv.convolve(y, w, "same"), want)
    assert len(calls) == 2
    with fastconv.threads(1):
        np.testing.assert_array_equal(fastconv.convolve(x, w, "same"), want)
    assert len(calls) == 3
    with fastconv.tuning("model"):
        np.testing.assert_array_equal(fastconv.convolve(x, w, "same"), want)
    assert len(calls) == 4
    from fastconv import tuner
    tuner.clear_cache(memory_only=True)
    assert len(_dispatch.FAST) == 0


def test_memo_clears_with_its_source():
    from fastconv._memo import LRU
    source, derived = LRU(4), LRU(4)
    derived.clears_with(source)
    source.put(1, "a")
    derived.put(2, "b")
    source.clear()
    assert len(derived) == 0


# -- the small-work kernel (_corr3d_small): the bits of the parallel kernel and the twin -

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kshape", [((1000,), (5,)), ((64, 64), (3, 3)),
                                          ((20, 20), (7, 7)), ((12, 9), (11, 13)),
                                          ((5, 6, 7), (4, 4, 4)), ((3, 200), (3, 3))])
@pytest.mark.parametrize("mode,boundary,fill", [("same", "fill", 0), ("full", "fill", 1.5),
                                                ("same", "symm", 0), ("full", "wrap", 0),
                                                ("valid", "fill", 0)])
def test_small_kernel_has_the_bits_of_the_parallel_kernel(monkeypatch, dtype, shape, kshape,
                                                          mode, boundary, fill):
    """Small work runs _corr3d_small (a padded scratch, full-width row passes); the same
    call forced onto the parallel kernel (two threads) and its serial twin (one thread)
    gives the same bits, edge columns and fill rows included."""
    from fastconv import _jit
    if mode == "valid" and any(n < k for n, k in zip(shape, kshape)):
        pytest.skip("valid needs in1 >= in2")
    rng = np.random.default_rng(12)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(kshape).astype(dtype)
    p = fastconv.plan(x, w, mode, method="direct", boundary=boundary, fillvalue=fill)
    small = p(x)
    np.testing.assert_allclose(small, fastconv.convolve(
        x.astype(np.float64), w.astype(np.float64), mode, method="fft", boundary=boundary,
        fillvalue=fill), rtol=1e-4 if dtype == np.float32 else 1e-11,
        atol=1e-4 if dtype == np.float32 else 1e-11)
    monkeypatch.setattr(_jit, "LAUNCH_WORK", 0)            # no small work: _corr3d
    for n in (2, 1):
        with fastconv.threads(n):
            out = np.empty(p.spec.out_shape, dtype)
            direct.correlate(x, p._wk, out, p.spec.start, p.spec.boundary, p.spec.cval)
            np.testing.assert_array_equal(out, small)
