"""The first-call tier (fastconv/_firstcall.py): a call whose kernels are not compiled yet
runs a no-compile method while a child process compiles them.

In-process tests drive the tier with a fake readiness state and a recorded (not started)
child; two subprocess tests run the real thing on a fresh numba cache: the tier serves,
the child records the class, the caller then takes the compiled route, and a new process
starts on it; a caller that exits at once neither waits for nor breaks the child.
"""
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

import fastconv
from fastconv import _config, _firstcall
from fastconv.kernels.cpu import direct_numpy, filters1d, filters_scipy, nn_numpy
from reference import correlate_ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOUNDS = ("constant", "wrap", "symmetric", "reflect", "edge")


# -- the no-compile filter launcher gives the compiled kernels' bits ----------------------

@pytest.mark.parametrize("boundary", BOUNDS)
@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("dtypes", [("f4", "f4"), ("f8", "f8"), ("f8", "f4")])
def test_scipy_passes_equal_the_kernels_bit_for_bit(boundary, k, dtypes):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((9, 13)).astype(dtypes[0])
    w = rng.standard_normal(k)
    for origin in range(-(k // 2), (k - 1) // 2 + 1):
        start = -(k // 2) - origin
        for passes in ([(1, start, boundary, w, k)], [(0, start, boundary, None, k)],
                       [(0, start, boundary, w, k), (1, start, boundary, w[::-1].copy(), k)],
                       [(1, start, boundary, w, k), (0, start, boundary, w, k)]):
            a = np.empty(x.shape, dtypes[1])
            b = np.empty(x.shape, dtypes[1])
            filters1d.run_passes(x, a, tuple(passes), 0.5)
            filters_scipy.run_passes(x, b, tuple(passes), 0.5)
            np.testing.assert_array_equal(a, b)


SCIPY_MODES = {"constant": "constant", "wrap": "wrap", "symmetric": "reflect",
               "reflect": "mirror", "edge": "nearest"}


@pytest.mark.parametrize("block", [filters_scipy.BLOCK, 7])
@pytest.mark.parametrize("dtypes", [("f4", "f4"), ("f8", "f8"), ("f8", "f4"), ("f4", "f8")])
def test_numpy_passes_give_scipy_ndimage_bits(dtypes, block, monkeypatch):
    # The NumPy passes (no scipy.ndimage import, no compile) against scipy.ndimage's own
    # correlate1d / uniform_filter1d: random shapes (1-3-D, lines shorter than the
    # kernel), axes, boundaries, origins, symmetric / antisymmetric / general weights,
    # signed zeros and non-finite data; ``block`` 7 splits every call into many blocks.
    monkeypatch.setattr(filters_scipy, "BLOCK", block)
    rng = np.random.default_rng(len(dtypes[0]) + block)
    for trial in range(120):
        ndim = int(rng.integers(1, 4))
        shape = tuple(int(v) for v in rng.integers(1, 11, ndim))
        x = rng.standard_normal(shape).astype(dtypes[0])
        if trial % 7 == 1:
            x.flat[int(rng.integers(x.size))] = (np.nan, np.inf, -np.inf)[trial % 3]
        if trial % 11 == 2:
            x[...] = -0.0
        axis = int(rng.integers(ndim))
        boundary = BOUNDS[trial % 5]
        k = int(rng.integers(1, 14))
        origin = int(rng.integers(-(k // 2), (k - 1) // 2 + 1))
        cval = float(rng.standard_normal())
        form = trial % 4
        w = rng.standard_normal(k)
        if form == 1:
            w = (w + w[::-1]) / 2        # symmetric (odd k: scipy's paired formula)
        elif form == 2:
            w = (w - w[::-1]) / 2        # antisymmetric
        a = np.empty(shape, dtypes[1])
        b = np.empty(shape, dtypes[1])
        mode = SCIPY_MODES[boundary]
        if form == 3:
            scipy.ndimage.uniform_filter1d(x, k, axis, a, mode, cval, origin)
            passes = ((axis, -(k // 2) - origin, boundary, None, k),)
        else:
            scipy.ndimage.correlate1d(x, w, axis, a, mode, cval, origin)
            passes = ((axis, -(k // 2) - origin, boundary, w, k),)
        filters_scipy.run_passes(x, b, passes, cval)
        assert a.tobytes() == b.tobytes(), (shape, axis, boundary, k, origin, form)


# -- the NumPy direct method against the float64 reference ---------------------------------

@pytest.mark.parametrize("boundary", BOUNDS)
@pytest.mark.parametrize("dtype", ["f4", "f8", "c8", "c16", "i8"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_numpy_direct_matches_the_reference(boundary, dtype, ndim):
    rng = np.random.default_rng(ndim)
    for _ in range(3):
        xs = tuple(rng.integers(1, 9, ndim))
        ws = tuple(rng.integers(1, 5, ndim))
        out_shape = tuple(rng.integers(1, 12, ndim))
        start = tuple(int(s) for s in rng.integers(-6, 4, ndim))
        x = (rng.integers(-9, 9, xs) + (1j * rng.integers(-9, 9, xs) if dtype[0] == "c"
                                        else 0)).astype(dtype)
        x = x[::-1] if ndim == 1 else x.swapaxes(0, 1)    # strided views
        w = rng.integers(-4, 5, ws).astype(dtype)
        out = np.empty(out_shape, dtype)
        direct_numpy.correlate(x, w, out, start, boundary, 3)
        ref = correlate_ref(x, w, start, out_shape, boundary, 3)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
        if dtype == "i8":
            np.testing.assert_array_equal(out, ref)


LAYERS = [  # (N, C, O, groups, kernel, stride, dilation, padding, spatial)
    (2, 6, 4, 2, (3, 3), (1, 1), (1, 1), 1, (9, 11)),
    (1, 8, 8, 8, (5, 5), (2, 2), (1, 1), 2, (12, 13)),     # depthwise, strided
    (3, 4, 6, 1, (2, 3), (2, 1), (2, 1), 0, (10, 9)),      # even kernel, dilated
    (1, 5, 7, 1, (1, 1), (2, 2), (1, 1), 0, (8, 8)),       # pointwise, strided
]


@pytest.mark.parametrize("case", LAYERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_layer_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    n, c, o, g, k, s, d, pad, sp = case
    rng = np.random.default_rng(len(sp) + g)
    x = rng.standard_normal((n, c) + sp).astype(dtype)
    w = rng.standard_normal((o, c // g) + k).astype(dtype)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=s,
                                     dilation=d, padding=pad, groups=g).numpy()
    out = np.empty((n, o, 1) + ref.shape[2:], dtype)
    nn_numpy.layer(x[:, :, None][:, :, :, ::1], w[:, :, None], out, (1,) + s, (1,) + d,
                   g, ((0, 0), (pad, pad), (pad, pad)))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out[:, :, 0], ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", LAYERS[:2])
def test_the_layer_replicas_compile_every_method_that_applies(case):
    n, c, o, g, k, s, d, pad, sp = case
    spec = fastconv._validate.LayerSpec(
        x_shape=(n, c, 1) + tuple(a + 2 * pad for a in sp), w_shape=(o, c // g, 1) + k,
        out_shape=(n, o, 1) + tuple((a + 2 * pad - dd * (kk - 1) - 1) // ss + 1
                                    for a, kk, ss, dd in zip(sp, k, s, d)),
        stride=(1,) + s, dilation=(1,) + d, groups=g, dtype=np.dtype(np.float32),
        pads=((0, 0), (pad, pad), (pad, pad)))
    _firstcall._compile_layer(_firstcall._layer_payload(spec))


# -- the tier's decisions, in-process -------------------------------------------------------

@pytest.fixture
def cold(monkeypatch):
    """Nothing compiled, a usable cache, and a child that is recorded instead of started."""
    started = []
    monkeypatch.setattr(_firstcall, "_READY", set())
    monkeypatch.setattr(_firstcall, "_QUEUED", {})
    monkeypatch.setattr(_firstcall, "_RUNNING", {})
    monkeypatch.setattr(_firstcall, "_STATE", {"loaded": True, "usable": True})
    monkeypatch.setattr(_firstcall, "_LIVE", set())
    monkeypatch.setattr(_firstcall, "_LOADERS", {})

    def fake_start():
        started.append(dict(_firstcall._QUEUED))
        _firstcall._RUNNING.update(_firstcall._QUEUED)
        _firstcall._QUEUED.clear()
    monkeypatch.setattr(_firstcall, "_start", fake_start)
    monkeypatch.setattr(_firstcall, "_PROC", None)
    with _config.override(first_call="tier"):
        yield started


def test_a_cold_auto_call_runs_a_no_compile_method_and_queues_its_class(cold):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 50)).astype(np.float32)
    w = rng.standard_normal((5, 5)).astype(np.float32)
    got = fastconv.convolve(x, w, "same")
    assert cold and "correlate|<f4|2|constant" in cold[0]
    ref = scipy.signal.convolve(x.astype(np.float64), w.astype(np.float64), "same")
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    fft = fastconv.convolve(x, w, "same", method="fft")
    oa = fastconv.convolve(x, w, "same", method="oa")
    numpy_direct = direct_numpy.correlate(x, np.ascontiguousarray(w[::-1, ::-1]),
                                          np.empty_like(x), (-2, -2))
    assert any(np.array_equal(got, r) for r in (fft, oa, numpy_direct))


def test_explicit_methods_and_the_compile_mode_never_take_the_tier(cold):
    x = np.arange(30.0)
    w = np.array([1.0, 2.0, 3.0])
    fastconv.convolve(x, w, "same", method="direct")
    with _config.override(first_call="compile"):
        fastconv.convolve(x, w, "same")
    assert not cold


@pytest.mark.parametrize("case", ["nonfinite-kernel", "huge-integers", "bool"])
def test_calls_the_fft_may_not_run_take_numpy_direct(cold, case):
    x = np.arange(40.0)
    w = np.array([1.0, np.inf, 1.0])
    if case == "huge-integers":
        x = np.full(40, 2**62, np.int64)
        w = np.array([1, 1, 1], np.int64)
    elif case == "bool":
        x = np.ones(40, bool)
        w = np.ones(3, bool)
    got = fastconv.convolve(x, w, "same")
    ref = scipy.signal.convolve(x, w, "same", method="direct")
    if case == "nonfinite-kernel":
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_array_equal(got[~np.isnan(got)], ref[~np.isnan(ref)])
    else:
        np.testing.assert_array_equal(got, ref)
    assert cold


def test_small_calls_take_numpy_direct_and_print_like_scipy(cold):
    got = fastconv.convolve([1.0, 2.0, 3.0], [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(got, scipy.signal.convolve([1.0, 2.0, 3.0],
                                                             [0.0, 1.0, 0.5]))
    assert cold


def test_integers_under_the_tier_stay_exact_and_nan_stays_local(cold):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (30, 31)).astype(np.uint8)
    w = rng.integers(-3, 4, (3, 4)).astype(np.int16)
    np.testing.assert_array_equal(fastconv.convolve(x, w, "full"),
                                  scipy.signal.convolve(x, w, "full", method="direct"))
    xf = rng.standard_normal((30, 31))
    xf[10, 10] = np.nan
    got = fastconv.convolve(xf, np.ones((3, 3)), "same")
    assert cold
    bad = np.isnan(got)
    assert bad.sum() == 9 and bad[9:12, 9:12].all()


def test_a_cold_filter_runs_scipy_passes_with_scipy_bits(cold):
    x = np.random.default_rng(3).standard_normal((33, 40)).astype(np.float32)
    for fn, args in ((fastconv.ndimage.gaussian_filter, (1.5,)),
                     (fastconv.ndimage.uniform_filter, (4,)),
                     (fastconv.ndimage.sobel, ())):
        ref = getattr(scipy.ndimage, fn.__name__)(x, *args, mode="wrap")
        np.testing.assert_array_equal(fn(x, *args, mode="wrap"), ref)
    assert any(c.startswith("filter|") for job in cold for c in job)


def test_a_finished_child_makes_its_classes_take_the_compiled_route(cold, monkeypatch):
    class Done:
        def poll(self):
            return 0
    x = np.arange(20.0)
    fastconv.convolve(x, [1.0, 2.0], "full")
    assert _firstcall.pending() == ("correlate|<f8|1|constant",)
    monkeypatch.setattr(_firstcall, "_PROC", Done())
    assert _firstcall.pending() == ()
    assert "correlate|<f8|1|constant" in _firstcall.ready_classes()
    n = len(cold)
    # On disk now: the next call is served while a thread of this process loads the
    # kernels; no second child. Once loaded, calls take the compiled route.
    fastconv.convolve(x, [1.0, 2.0], "full")
    assert len(cold) == n and "correlate|<f8|1|constant" in _firstcall._LOADERS
    assert _firstcall.wait(300)
    spec = fastconv._validate.conv_spec("convolve", x, np.array([1.0, 2.0]), "full")
    fastconv.convolve(x, [1.0, 2.0], "full")
    assert "correlate|<f8|1|constant" in _firstcall._LIVE
    assert _firstcall.serve(spec, x, np.array([2.0, 1.0]), "auto") is None


class _Running:                          # a child still compiling
    def poll(self):
        return None


def test_served_counts_the_calls_the_tier_served(cold):
    x = np.arange(20.0)
    n = _firstcall.served()
    fastconv.convolve(x, [1.0, 2.0], "full")
    assert _firstcall.served() == n + 1
    fastconv.convolve(x, [1.0, 2.0], "full", method="fft")     # explicit: never tiered
    assert _firstcall.served() == n + 1


def test_classes_a_running_child_recorded_are_ready_before_it_exits(cold, monkeypatch,
                                                                    tmp_path):
    # A child compiles its classes one after another and records each: the finished ones
    # take the compiled route while it works on the rest.
    path = str(tmp_path / "marker.json")
    monkeypatch.setitem(_firstcall._STATE, "path", path)
    monkeypatch.setattr(_firstcall, "_MARKER_SEEN", [None])
    monkeypatch.setattr(_firstcall, "_PROC", _Running())
    _firstcall._RUNNING.update({"a": ("filter", {}), "b": ("filter", {})})
    _firstcall._poll()
    assert set(_firstcall.pending()) == {"a", "b"}          # nothing recorded yet
    _firstcall._record(path, ["a"])
    assert _firstcall.pending() == ("b",)
    assert "a" in _firstcall.ready_classes() and "b" not in _firstcall.ready_classes()


def test_hand_off_starts_the_queued_classes_beside_a_running_child(cold, monkeypatch):
    running = _Running()
    monkeypatch.setattr(_firstcall, "_PROC", running)
    _firstcall._QUEUED["c"] = ("filter", {})
    _firstcall.hand_off()
    assert cold == [{"c": ("filter", {})}]
    assert _firstcall._PROC is running     # the fake start started no process


def test_wait_waits_for_a_child_started_beside_another(cold, monkeypatch):
    import subprocess
    calls = []

    class Other:
        def wait(self, timeout=None):
            calls.append(timeout)
            if timeout is not None:
                raise subprocess.TimeoutExpired("child", timeout)
    other = Other()
    monkeypatch.setattr(_firstcall, "_OTHERS", [other])
    assert _firstcall.wait(0.01) is False and _firstcall._OTHERS == [other]
    assert _firstcall.wait() is True and _firstcall._OTHERS == []
    assert calls[-1] is None


def test_filter_replicas_compile_both_orders_of_a_fused_weighted_pair(monkeypatch):
    # The class does not name the axis order: sobel(axis=1) runs axis 1 then 0 with the
    # kernels of gaussian_filter's class.
    seen = []
    monkeypatch.setattr(fastconv._dispatch, "execute",
                        lambda spec, *a, **k: seen.append(spec.passes))
    w = np.array([1.0, 2.0, 1.0])
    passes = ((0, -1, "symmetric", w, 3), (1, -1, "symmetric", -w, 3))
    _firstcall._compile_filter({"passes": passes, "cval": 0.0, "x_dtype": "<f4",
                                "out_dtype": "<f4", "ndim": 2})
    orders = {tuple(p[0] for p in ps) for ps in seen}
    assert orders == {(0, 1), (1, 0)}
    box = ((0, -1, "symmetric", None, 3), (1, -1, "symmetric", None, 3))
    seen.clear()
    _firstcall._compile_filter({"passes": box, "cval": 0.0, "x_dtype": "<f4",
                                "out_dtype": "<f4", "ndim": 2})
    assert {tuple(p[0] for p in ps) for ps in seen} == {(0, 1)}


def test_a_cold_layer_runs_numpy_and_queues_its_layer(cold):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 20, 21)).astype(np.float32)
    w = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    got = fastconv.nn.conv2d(x, w, padding=1, groups=8, stride=2)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1,
                                     groups=8, stride=2).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert any(c.startswith("layer|<f4|(8, 1, 1, 3, 3)|") for job in cold for c in job)


def _child_call(seed):
    x = np.random.default_rng(seed).standard_normal((30, 40))
    got = fastconv.convolve(x, np.ones((3, 3)), "same")
    ref = scipy.signal.convolve(x, np.ones((3, 3)), "same")
    return float(np.abs(got - ref).max()), _firstcall._PROC is None, len(_firstcall._RUNNING)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork start method")
def test_a_forked_child_forgets_the_background_compile_and_still_computes(cold, monkeypatch):
    import multiprocessing

    class Running:                       # the parent's child: still compiling
        def poll(self):
            return None
    fastconv.convolve(np.arange(50.0), [1.0, 2.0, 1.0], "same")
    monkeypatch.setattr(_firstcall, "_PROC", Running())
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_child_call, range(4), chunksize=1)
    for err, no_proc, running in results:
        # Each forked child starts clean (no parent's process to poll) and queues its own
        # compile (recorded, not started, by the fixture's fake _start).
        assert err < 1e-12 and no_proc and running >= 1
    assert isinstance(_firstcall._PROC, Running)     # the parent keeps its own


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_fork_waits_for_a_loader_thread_and_the_child_starts_without_it(cold):
    import threading
    done = threading.Event()
    t = threading.Thread(target=lambda: (time.sleep(0.5), done.set()))
    t.start()
    _firstcall._LOADERS["correlate|<f8|9|constant"] = t
    pid = os.fork()
    if pid == 0:                    # the child: the loader had finished, none is carried
        os._exit(0 if (not _firstcall._LOADERS and
                       "correlate|<f8|9|constant" in _firstcall._LIVE) else 1)
    assert done.is_set()            # the parent's fork waited for it
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_kinds_the_tier_does_not_serve_compile_first(cold):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4, 9, 10)).astype(np.float32)
    go = rng.standard_normal((2, 6, 7, 8)).astype(np.float32)
    got = fastconv.nn.conv2d_weight(x, (6, 4, 3, 3), go)
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.zeros((6, 4, 3, 3), requires_grad=True)
    torch.nn.functional.conv2d(xt, wt).backward(torch.from_numpy(go))
    np.testing.assert_allclose(got, wt.grad.numpy(), rtol=1e-4, atol=1e-3)
    assert not any(c.startswith("layer") for job in cold for c in job)


def test_a_bad_first_call_setting_warns_and_keeps_the_tier(monkeypatch):
    monkeypatch.setenv("FASTCONV_FIRST_CALL", "sometimes")
    with pytest.warns(RuntimeWarning, match="FASTCONV_FIRST_CALL"):
        cfg = _config._from_env()
    assert cfg.first_call == "tier"


# -- the real child, on a fresh numba cache ---------------------------------------------------

SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import fastconv
    from fastconv import _firstcall
    x = np.random.default_rng(0).standard_normal(3000)
    w = np.array([1.0, -2.0, 0.5, 3.0])
    t = time.perf_counter()
    y = fastconv.convolve(x, w, "same")
    first = time.perf_counter() - t
    pend = _firstcall.pending()
    if sys.argv[1] == "exit":
        print(json.dumps({"pending": pend}))
        sys.exit(0)
    done = _firstcall.wait(600)
    z = fastconv.convolve(x, w, "same")
    d = fastconv.explain(x, w, "same")
    print(json.dumps({"pending": pend, "done": done, "first": first,
                      "ready": _firstcall.ready_classes(), "method": d.method,
                      "err": float(np.abs(y - np.convolve(x, w, "same")).max()),
                      "same": bool(np.allclose(y, z, rtol=1e-12, atol=1e-12))}))
""")


def _run(tmp_path, arg):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               FASTCONV_CACHE_DIR=str(tmp_path / "tuner"), FASTCONV_FIRST_CALL="tier")
    r = subprocess.run([sys.executable, "-c", SCRIPT, arg], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _marker(tmp_path):
    folder = tmp_path / "tuner"
    for name in (os.listdir(folder) if folder.exists() else ()):
        if name.startswith("first-calls-"):
            with open(folder / name) as f:
                return json.load(f)
    return None


def test_the_child_compiles_and_the_next_process_starts_compiled(tmp_path):
    cls = "correlate|<f8|1|constant"
    one = _run(tmp_path, "wait")
    assert one["pending"] == [cls] and one["done"] and cls in one["ready"]
    assert one["err"] < 1e-12 and one["same"]
    assert cls in _marker(tmp_path)["classes"]
    two = _run(tmp_path, "wait")
    assert two["pending"] == []          # recorded: straight to the compiled kernels


def test_a_caller_that_exits_at_once_leaves_the_child_to_finish(tmp_path):
    out = _run(tmp_path, "exit")
    assert out["pending"] == ["correlate|<f8|1|constant"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        m = _marker(tmp_path)
        if m and "correlate|<f8|1|constant" in m["classes"]:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the background compile never recorded its class")
    assert _run(tmp_path, "wait")["pending"] == []
