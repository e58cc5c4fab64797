"""The FFT methods' scipy.fft backend (``_fftsize``: chosen by measurement, scoped to
fastconv's own calls, recorded in the tuning key). A fake backend through scipy.fft's
own protocol tests the plumbing; the mkl_fft tests run only where it is installed."""
import json
import os
import warnings

import numpy as np
import pytest
import scipy.fft as sp_fft
import scipy.signal

import fastconv
from fastconv import _config, _fftsize, tuner
from fastconv._validate import conv_spec
from fastconv.kernels.cpu.fft import fft_error_bound
from fastconv.tuner import _key


class FakeBackend:
    """Counts every transform it receives (and its ``workers``), then runs scipy's own."""
    __ua_domain__ = "numpy.scipy.fft"

    def __init__(self):
        self.calls = []

    def __ua_function__(self, method, args, kwargs):
        self.calls.append((method.__name__, kwargs.get("workers")))
        from scipy.fft._backend import _ScipyBackend
        return _ScipyBackend.__ua_function__(method, args, kwargs)


@pytest.fixture
def fake(monkeypatch):
    be = FakeBackend()
    monkeypatch.setitem(_fftsize.FFT_BACKENDS, "fake", be)
    old = _fftsize.use_fft_backend("fake")
    tuner.clear_cache(memory_only=True)
    yield be
    _fftsize.use_fft_backend(old)
    tuner.clear_cache(memory_only=True)


@pytest.mark.parametrize("method", ["fft", "oa"])
def test_fft_methods_run_on_the_chosen_backend(fake, method):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000).astype(np.float32)
    w = rng.standard_normal(65).astype(np.float32)
    with fastconv.threads(2):
        got = fastconv.convolve(x, w, "same", method=method)
    assert fake.calls, "the backend in force was not asked"
    assert {wk for _, wk in fake.calls} == {2}         # workers= honoured
    ref = scipy.signal.fftconvolve(x.astype(np.float64), w.astype(np.float64), "same")
    assert np.all(np.abs(got - ref) <= fft_error_bound(x, w))


def test_users_global_backend_is_untouched(fake):
    x = np.ones(300, np.float32)
    fastconv.convolve(x, np.ones(40, np.float32), "same", method="fft")
    n = len(fake.calls)
    sp_fft.rfft(x)                          # the user's own call, outside fastconv
    assert len(fake.calls) == n


def test_integers_stay_on_pocketfft(fake):
    rng = np.random.default_rng(1)
    x = rng.integers(-1000, 1000, 4000)
    w = rng.integers(-50, 50, 33)
    got = fastconv.convolve(x, w, "same", method="fft")
    assert fake.calls == []
    np.testing.assert_array_equal(got, np.convolve(x, w, "same"))


def test_integers_ignore_a_users_global_backend():
    """A backend the user set globally never transforms integer data either."""
    be = FakeBackend()
    sp_fft.set_global_backend(be)
    try:
        x = np.arange(3000) % 17
        got = fastconv.convolve(x, np.arange(21), "same", method="fft")
    finally:
        sp_fft.set_global_backend("scipy")
    assert be.calls == []
    np.testing.assert_array_equal(got, np.convolve(x, np.arange(21), "same"))


def test_nonfinite_stay_local_on_the_backend(fake):
    x = np.random.default_rng(2).standard_normal((40, 50)).astype(np.float32)
    x[10, 20] = np.nan
    w = np.ones((5, 3), np.float32)
    with warnings.catch_warnings():     # the once-per-process NaN note
        warnings.simplefilter("ignore", RuntimeWarning)
        got = fastconv.convolve(x, w, "same", method="fft")
    assert fake.calls
    bad = ~np.isfinite(got)
    expect = np.zeros_like(bad)
    expect[8:13, 19:22] = True
    np.testing.assert_array_equal(bad, expect)


def test_key_names_the_backend(fake):
    x = np.zeros((64, 48), np.float32)
    spec = conv_spec("convolve", x, np.zeros((5, 3), np.float32), "same")
    k_fake = _key.make_key(spec, "C", threads=2)
    _fftsize.use_fft_backend("scipy")
    k_scipy = _key.make_key(spec, "C", threads=2)
    assert k_fake.endswith("|fft=fake") and k_scipy.endswith("|fft=scipy")
    assert tuner.key_for(spec, x, {}).endswith("|fft=scipy|nosep")


def test_auto_without_alternatives_measures_nothing(monkeypatch):
    monkeypatch.setattr(_fftsize, "installed_backends", lambda: ())
    monkeypatch.setattr(_fftsize, "_chooser", lambda names: pytest.fail("measured"))
    old = _fftsize.use_fft_backend(None)
    try:
        with _config.override(fft_backend="auto"):
            assert _fftsize.fft_backend_name() == "scipy"
    finally:
        _fftsize.use_fft_backend(old)


def test_forced_backend_that_is_missing_warns_and_uses_pocketfft(monkeypatch):
    monkeypatch.setitem(_fftsize.FFT_BACKENDS, "mkl", "fastconv_no_such_module_xyz")
    old = _fftsize.use_fft_backend(None)
    try:
        with _config.override(fft_backend="mkl"), pytest.warns(RuntimeWarning,
                                                                match="cannot be imported"):
            assert _fftsize.fft_backend_name() == "scipy"
    finally:
        monkeypatch.undo()          # the real module name back before restoring
        _fftsize.use_fft_backend(old)


def test_env_value_is_checked(monkeypatch):
    monkeypatch.setenv("FASTCONV_FFT_BACKEND", "MKL")
    assert _config._from_env().fft_backend == "mkl"
    monkeypatch.setenv("FASTCONV_FFT_BACKEND", "cufft")
    with pytest.warns(RuntimeWarning, match="FASTCONV_FFT_BACKEND"):
        assert _config._from_env().fft_backend == "auto"


def test_choice_is_per_rank_and_needs_a_margin():
    times = {1: {"scipy": 1.0, "mkl": 0.95}, 2: {"scipy": 1.0, "mkl": 0.5},
             3: {"scipy": 1.0, "mkl": 2.0}}
    assert _fftsize.choose_backend(("mkl",), times) == {1: "scipy", 2: "mkl", 3: "scipy"}


def test_rank_choice_reaches_the_launcher_and_key(fake):
    _fftsize.use_fft_backend({1: "scipy", 2: "fake", 3: "scipy"})
    fastconv.convolve(np.ones(500, np.float32), np.ones(40, np.float32), method="fft")
    assert fake.calls == []
    fastconv.convolve(np.ones((50, 50), np.float32), np.ones((9, 9), np.float32),
                      method="fft")
    assert fake.calls
    spec1 = conv_spec("convolve", np.ones(500, np.float32), np.ones(40, np.float32), "same")
    assert _key.make_key(spec1, "C", threads=2).endswith("|fft=scipy")


def test_calibration_runs_once_per_machine(tmp_path, monkeypatch):
    runs = []

    def fake_times(names):
        runs.append(names)
        return dict.fromkeys(_fftsize.RANKS, {"scipy": 1.0, "mkl": 0.5})
    monkeypatch.setattr(_fftsize, "time_backends", fake_times)
    with _config.override(cache_dir=str(tmp_path), tune="measure"):
        mkl3 = dict.fromkeys(_fftsize.RANKS, "mkl")
        assert tuner.choose_fft_backend(("mkl",)) == mkl3
        assert tuner.choose_fft_backend(("mkl",)) == mkl3       # read back
    assert len(runs) == 1
    (path,) = [p for p in os.listdir(tmp_path)
               if p.startswith("fft-backend-") and p.endswith(".json")]
    assert json.loads((tmp_path / path).read_text())["choice"] == {"1": "mkl", "2": "mkl",
                                                                   "3": "mkl"}
    with _config.override(cache_dir=str(tmp_path / "empty"), tune="off"):
        # off never measures
        assert tuner.choose_fft_backend(("mkl",)) == dict.fromkeys(_fftsize.RANKS, "scipy")
    assert len(runs) == 1


def test_time_backends_times_every_backend(monkeypatch):
    fake = FakeBackend()
    monkeypatch.setitem(_fftsize.FFT_BACKENDS, "fake", fake)
    monkeypatch.setattr(_fftsize, "_CALIBRATION", {1: (((4, 64), (64,), (1,)),),
                                                    2: (((4, 8, 8), (8, 8), (1, 2)),)})
    times = _fftsize.time_backends(("fake",), repeat=2)
    assert set(times) == {1, 2}
    assert all(set(t) == {"scipy", "fake"} and min(t.values()) > 0 for t in times.values())
    assert len(fake.calls) == 2 * 3 * 2     # ranks x (warm-up round + 2) x (fwd + inv)



@pytest.fixture
def mkl_backend():
    pytest.importorskip("mkl_fft.interfaces.scipy_fft")
    old = _fftsize.use_fft_backend("mkl")
    tuner.clear_cache(memory_only=True)
    yield
    _fftsize.use_fft_backend(old)
    tuner.clear_cache(memory_only=True)


@pytest.mark.parametrize("shape,kshape,method", [((20000,), (255,), "oa"),
                                                  ((300, 200), (15, 9), "fft"),
                                                  ((300, 200), (15, 9), "oa"),
                                                  ((40, 36, 30), (5, 5, 5), "fft")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
def test_mkl_matches_within_the_error_bound(mkl_backend, shape, kshape, method, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(kshape).astype(dtype)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape).astype(dtype)
    with fastconv.threads(2):
        got = fastconv.convolve(x, w, "same", method=method)
    ref = scipy.signal.fftconvolve(x.astype(np.complex128 if x.dtype.kind == "c"
                                            else np.float64), w.astype(np.result_type(w, np.float64)), "same")
    assert got.dtype == x.dtype
    assert np.all(np.abs(got - ref) <= fft_error_bound(x, w))


def test_mkl_keeps_nonfinite_local(mkl_backend):
    x = np.random.default_rng(4).standard_normal(3000).astype(np.float32)
    x[1000] = np.inf
    with warnings.catch_warnings():     # the once-per-process NaN note
        warnings.simplefilter("ignore", RuntimeWarning)
        got = fastconv.convolve(x, np.ones(31, np.float32), "same", method="oa")
    np.testing.assert_array_equal(np.flatnonzero(~np.isfinite(got)), np.arange(985, 1016))
