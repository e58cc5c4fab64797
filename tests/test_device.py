"""The device argument and GPU arrays without a GPU: GPU arrays are refused with a clear
TypeError that says what to install, device= is checked, FASTCONV_DEVICE is parsed, and
the tuner's key for a GPU carries the device's facts. (The CUDA kernels themselves and
the public entry points on GPU arrays: tests/cuda, under the simulator or on a GPU.)"""
import warnings

import numpy as np
import pytest

import fastconv
from fastconv import _arrays, _config, ndimage as fnd, nn as fnn
from fastconv.tuner import _key, _model


class _FakeCuda:
    """What a CuPy array shows: a CUDA array interface, and no GPU behind it here."""
    __cuda_array_interface__ = {"shape": (8, 8), "typestr": "<f4", "data": (0, False),
                                "version": 3}
    shape = (8, 8)
    dtype = np.dtype(np.float32)
    ndim = 2


def _no_gpu():
    return _arrays.cuda_problem() is not None


pytestmark = pytest.mark.skipif(not _no_gpu(), reason="a GPU (or the simulator) is here")


PUBLIC_2D = {
    "convolve": lambda a, **k: fastconv.convolve(a, np.ones((3, 3)), **k),
    "correlate": lambda a, **k: fastconv.correlate(a, np.ones((3, 3)), **k),
    "convolve2d": lambda a, **k: fastconv.convolve2d(a, np.ones((3, 3)), **k),
    "correlate2d": lambda a, **k: fastconv.correlate2d(a, np.ones((3, 3)), **k),
    "fftconvolve": lambda a, **k: fastconv.fftconvolve(a, np.ones((3, 3)), **k),
    "oaconvolve": lambda a, **k: fastconv.oaconvolve(a, np.ones((3, 3)), **k),
    "choose_conv_method": lambda a, **k: fastconv.choose_conv_method(a, np.ones((3, 3)),
                                                                     **k),
    "plan": lambda a, **k: fastconv.plan(a, np.ones((3, 3)), **k),
    "explain": lambda a, **k: fastconv.explain(a, np.ones((3, 3)), **k),
    "ndimage.correlate": lambda a, **k: fnd.correlate(a, np.ones((3, 3)), **k),
    "ndimage.convolve": lambda a, **k: fnd.convolve(a, np.ones((3, 3)), **k),
    "ndimage.correlate1d": lambda a, **k: fnd.correlate1d(a, [1, 2, 1], **k),
    "ndimage.convolve1d": lambda a, **k: fnd.convolve1d(a, [1, 2, 1], **k),
    "ndimage.gaussian_filter": lambda a, **k: fnd.gaussian_filter(a, 1.0, **k),
    "ndimage.gaussian_filter1d": lambda a, **k: fnd.gaussian_filter1d(a, 1.0, **k),
    "ndimage.uniform_filter": lambda a, **k: fnd.uniform_filter(a, 3, **k),
    "ndimage.uniform_filter1d": lambda a, **k: fnd.uniform_filter1d(a, 3, **k),
    "ndimage.sobel": lambda a, **k: fnd.sobel(a, **k),
    "ndimage.prewitt": lambda a, **k: fnd.prewitt(a, **k),
    "ndimage.laplace": lambda a, **k: fnd.laplace(a, **k),
}


@pytest.mark.parametrize("name", sorted(PUBLIC_2D))
def test_gpu_array_without_a_gpu_gets_a_clear_type_error(name):
    with pytest.raises(TypeError, match=r"input is a GPU array|in1 is a GPU array"):
        PUBLIC_2D[name](_FakeCuda())


@pytest.mark.parametrize("name", sorted(PUBLIC_2D))
def test_device_cuda_without_a_gpu_says_what_is_missing(name):
    with pytest.raises(TypeError, match="device='cuda' cannot run: .*(GPU|numba-cuda)"):
        PUBLIC_2D[name](np.ones((8, 8)), device="cuda")


@pytest.mark.parametrize("name", sorted(PUBLIC_2D))
def test_device_auto_without_a_gpu_runs_on_the_cpu(name):
    x = np.ones((8, 8))
    assert _kind_of(PUBLIC_2D[name](x, device="auto")) == _kind_of(PUBLIC_2D[name](x))


def _kind_of(r):
    return type(r).__name__


@pytest.mark.parametrize("name", sorted(PUBLIC_2D))
@pytest.mark.parametrize("bad", ["gpu", "CUDA", 0, True, "cuda:0"])
def test_a_wrong_device_is_a_value_error_naming_it(name, bad):
    with pytest.raises(ValueError, match="device must be None, 'cpu', 'cuda' or 'auto'"):
        PUBLIC_2D[name](np.ones((8, 8)), device=bad)


def test_gpu_array_with_device_cpu_is_refused_without_a_copy():
    with pytest.raises(TypeError, match="in1 is a GPU array.*never copies"):
        fastconv.convolve(_FakeCuda(), np.ones((3, 3)), device="cpu")
    with pytest.raises(TypeError, match="input is a GPU array.*never copies"):
        fnd.gaussian_filter(_FakeCuda(), 1.0, device="cpu")


def test_device_cpu_matches_the_default():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((12, 12)), rng.standard_normal((3, 3))
    np.testing.assert_array_equal(fastconv.convolve(x, w, device="cpu"),
                                  fastconv.convolve(x, w))
    np.testing.assert_array_equal(fnd.sobel(x, device="cpu"), fnd.sobel(x))


def test_nn_refuses_gpu_arrays_clearly():
    w = np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(TypeError, match="conv layers run on the CPU only"):
        fnn.conv2d(_FakeCuda(), w)


def test_dlpack_gpu_arrays_are_cuda_arrays():
    class Dl:
        def __dlpack_device__(self):
            return (2, 0)
    assert _arrays.array_kind(Dl()) == "cuda"
    with pytest.raises(TypeError, match="in1 is a GPU array"):
        fastconv.convolve(Dl(), np.ones(3))


@pytest.mark.parametrize("value,expected", [("cpu", "cpu"), ("CUDA", "cuda"),
                                            (" auto ", "auto"), ("", "cpu")])
def test_fastconv_device_parsing(monkeypatch, value, expected):
    monkeypatch.setenv("FASTCONV_DEVICE", value)
    assert _config._from_env().device == expected


def test_fastconv_device_bad_value_warns_and_falls_back(monkeypatch):
    monkeypatch.setenv("FASTCONV_DEVICE", "tpu")
    with pytest.warns(RuntimeWarning, match="FASTCONV_DEVICE='tpu'"):
        assert _config._from_env().device == "cpu"


def test_fastconv_device_cuda_without_a_gpu_warns_once_and_runs_on_the_cpu(monkeypatch):
    monkeypatch.setattr(_arrays, "_DEFAULT_WARNED", set())
    x, w = np.ones((8, 8)), np.ones((3, 3))
    with _config.override(device="cuda"):
        with pytest.warns(RuntimeWarning, match="FASTCONV_DEVICE='cuda'.*CPU"):
            r = fastconv.convolve(x, w)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fastconv.convolve(x, w)
    np.testing.assert_array_equal(r, fastconv.convolve(x, w))


# -- the tuner's GPU key and cost model, with made-up device facts -----------------------

FAKE_FACTS = {"name": "Fake H200", "cc": "9.0", "driver": "13.0", "runtime": "13.0",
              "numba_cuda": "0.30.4", "cupy": "14.2.0", "sms": 132, "clock_khz": 1980000,
              "mem_clock_khz": 3201000, "bus_bits": 6144}


@pytest.fixture
def fake_gpu(monkeypatch):
    from fastconv import kernels
    facts = dict(FAKE_FACTS)
    monkeypatch.setattr(kernels, "device_facts",
                        lambda device: {} if device == "cpu" else facts)
    _key._device_tag.cache_clear()
    monkeypatch.setattr(_model, "_FACTS", {})
    yield facts
    _key._device_tag.cache_clear()


def _spec(device, shape=(512, 512), k=(5, 5), dtype=np.float32):
    from fastconv._validate import conv_spec
    return conv_spec("convolve", np.zeros(shape, dtype), np.zeros(k, dtype), "same",
                     device=device)


def test_gpu_key_carries_the_device_facts(fake_gpu):
    key = _key.make_key(_spec("cuda"), "C", threads=2, device="cuda")
    dev = key.split("|")[10]
    for part in ("cuda", "Fake H200", "cc9.0", "drv13.0", "rt13.0", "nbc0.30.4",
                 "cupy14.2.0"):
        assert part in dev, (part, dev)
    assert _key.make_key(_spec("cpu"), "C", threads=2).split("|")[10] == "cpu"


def test_gpu_key_changes_with_the_driver_and_the_device(fake_gpu):
    k1 = _key.make_key(_spec("cuda"), "C", threads=2, device="cuda")
    fake_gpu["driver"] = "12.8"
    _key._device_tag.cache_clear()
    k2 = _key.make_key(_spec("cuda"), "C", threads=2, device="cuda")
    fake_gpu["name"] = "Fake A100"
    _key._device_tag.cache_clear()
    k3 = _key.make_key(_spec("cuda"), "C", threads=2, device="cuda")
    assert len({k1, k2, k3}) == 3


def test_gpu_cost_model_is_a_roofline_of_the_device(fake_gpu):
    bw, p32, p64 = _model.gpu_rates(fake_gpu)
    assert bw == pytest.approx(2 * 3201000e3 * 6144 / 8)
    assert p32 == pytest.approx(132 * 1980000e3 * 256)
    assert p64 == pytest.approx(p32 / 2)             # cc 9.0: full-rate float64
    small = _model.predict(_spec("cuda", (64, 64), (3, 3)), "direct", {})
    big = _model.predict(_spec("cuda", (8192, 8192), (3, 3)), "direct", {})
    # 3x3 on 8192^2 float32 is bandwidth-bound: bytes / (efficiency * bandwidth)
    assert big == pytest.approx(1e-5 + 2 * 8192 ** 2 * 4 / (_model.GPU_BW_EFF * bw))
    assert small < 2e-5 < big
    # large kernels: FFT beats direct on the GPU model as on the CPU one
    spec = _spec("cuda", (2048, 2048), (63, 63))
    assert _model.predict(spec, "fft", {}) < _model.predict(spec, "direct", {})
    # and the GPU model is not the CPU one
    assert _model.predict(spec, "direct", {}) != _model.predict(_spec("cpu", (2048, 2048),
                                                                      (63, 63)), "direct", {})


def test_gpu_cost_model_falls_back_where_the_driver_has_no_clocks(fake_gpu):
    for k in ("clock_khz", "mem_clock_khz"):
        fake_gpu[k] = None
    bw, p32, _ = _model.gpu_rates(fake_gpu)
    assert bw > 1e12 and p32 > 1e13


def test_device_timer_is_used_instead_of_the_host_clock():
    from fastconv.tuner._bench import time_interleaved
    calls = []

    def timer(fn):
        fn()
        calls.append(1)
        return 0.5
    times = time_interleaved({"a": lambda: None, "b": lambda: None}, 0.0, timer=timer)
    assert times == {"a": 0.5, "b": 0.5} and len(calls) == 6


def test_device_cuda_with_a_dask_array_is_refused():
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.ones((8, 8)), chunks=4)
    with pytest.raises(TypeError, match="does not apply to Dask arrays"):
        fastconv.convolve(x, np.ones((3, 3)), device="cuda")
    with pytest.raises(TypeError, match="does not apply to Dask arrays"):
        fnd.gaussian_filter(x, 1.0, device="cuda")
    with pytest.raises(ValueError, match="device must be"):
        fastconv.fftconvolve(x, np.ones((3, 3)), device="gpu")
