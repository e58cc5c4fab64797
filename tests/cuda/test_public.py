"""Every public entry point of issue 12's coverage list on GPU arrays and with
device="cuda" on NumPy input, against scipy: values, kinds out == kinds in, NaN/Inf
locality, integer exactness, the nn refusal and the device argument's errors.

Runs under numba's simulator (NUMBA_ENABLE_CUDASIM=1, set before numba is imported: the
runner tests/test_cuda_sim.py does it in a subprocess) on tiny shapes, and on a GPU
(scripts/gpu_check.sh: ``pytest -m cuda tests/cuda``). Numba's warning about implicit
host copies (NumbaPerformanceWarning) is an error here."""
import numpy as np
import pytest
import scipy.ndimage as sndi
import scipy.signal as ss

numba = pytest.importorskip("numba")
cuda = pytest.importorskip("numba.cuda")

import fastconv  # noqa: E402
import fastconv.ndimage as fnd  # noqa: E402
import fastconv.nn as fnn  # noqa: E402
from fastconv import _arrays  # noqa: E402

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(_arrays.cuda_problem() is not None,
                       reason="needs numba-cuda and a GPU or the simulator"),
    pytest.mark.filterwarnings("error::numba.core.errors.NumbaPerformanceWarning"),
]

SIM = bool(numba.config.ENABLE_CUDASIM)
RNG = np.random.default_rng(12)


def dev(a):
    """A numba device array (the simulator's, or a GPU's): an explicit copy in."""
    return cuda.to_device(np.ascontiguousarray(a))


def host(r):
    """A result back on the host, checking it is a device array (same kind as in)."""
    assert _arrays.array_kind(r) == "cuda", type(r)
    return r.copy_to_host()


def close(got, want, dtype):
    tol = 2e-5 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-11
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1, np.abs(want).max()))


def _has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


HAS_FFT = _has("fastconv.kernels.cuda.fft")
HAS_SEP = _has("fastconv.kernels.cuda.separable")
X = RNG.standard_normal((9, 8))
W = RNG.standard_normal((3, 3))


# -- scipy.signal drop-ins -------------------------------------------------------------------

@pytest.mark.parametrize("op", ["convolve", "correlate"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_convolve_correlate_on_device_arrays(op, mode):
    x, w = X.astype(np.float32), W.astype(np.float32)
    got = getattr(fastconv, op)(dev(x), w, mode, method="direct")
    close(host(got), getattr(ss, op)(x, w, mode), np.float32)
    assert got.dtype == np.float32


def test_valid_mode_swaps_and_the_kernel_may_be_a_device_array():
    # the kernel (in2 here, the larger after the swap) is read on the host: an explicit
    # copy of the small operand
    x, w = X[:3, :3], X
    got = fastconv.correlate(dev(x), dev(w), "valid", method="direct")
    close(host(got), ss.correlate(x, w, "valid"), np.float64)


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_convolve2d_correlate2d_boundaries(boundary):
    x, w = X, W[:2, :3]
    close(host(fastconv.convolve2d(dev(x), w, "same", boundary=boundary, fillvalue=1.5)),
          ss.convolve2d(x, w, "same", boundary=boundary, fillvalue=1.5), np.float64)
    close(host(fastconv.correlate2d(dev(x), w, "full", boundary=boundary)),
          ss.correlate2d(x, w, "full", boundary=boundary), np.float64)


def test_one_and_three_dimensions():
    x1, w1 = RNG.standard_normal(20), RNG.standard_normal(4)
    close(host(fastconv.convolve(dev(x1), w1, method="direct")), ss.convolve(x1, w1),
          np.float64)
    x3, w3 = RNG.standard_normal((4, 3, 5)), RNG.standard_normal((2, 2, 2))
    close(host(fastconv.correlate(dev(x3), w3, "same", method="direct")),
          ss.correlate(x3, w3, "same"), np.float64)


def test_complex_data():
    x = (X + 1j * X[::-1]).astype(np.complex64)
    w = (W - 0.5j * W.T).astype(np.complex64)
    got = fastconv.correlate(dev(x), w, "same", method="direct")
    assert got.dtype == np.complex64
    close(host(got), ss.correlate(x, w, "same"), np.complex64)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint8])
def test_integers_are_exact(dtype):
    info = np.iinfo(dtype)
    x = RNG.integers(info.min // 2, info.max // 2, (7, 6)).astype(dtype)
    w = RNG.integers(-3 if info.min < 0 else 0, 4, (3, 3)).astype(dtype)
    got = fastconv.convolve(dev(x), w)
    want = ss.convolve(x, w, method="direct")
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(host(got), want)


def test_nan_and_inf_stay_local():
    x = np.ones((9, 9))
    x[2, 3], x[6, 6] = np.nan, np.inf
    got = host(fastconv.convolve(dev(x), np.ones((3, 3)), "same", method="direct"))
    want = ss.convolve(x, np.ones((3, 3)), "same", method="direct")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(got[np.isfinite(want)], want[np.isfinite(want)])


@pytest.mark.skipif(not HAS_FFT, reason="the CUDA FFT launchers are not built yet")
@pytest.mark.parametrize("func", ["fftconvolve", "oaconvolve"])
def test_fftconvolve_oaconvolve(func):
    x, w = X.astype(np.float32), W.astype(np.float32)
    got = getattr(fastconv, func)(dev(x), w, "same")
    close(host(got), getattr(ss, func)(x, w, "same"), np.float32)
    xb, wb = RNG.standard_normal((3, 10)), RNG.standard_normal((3, 4))
    close(host(fastconv.fftconvolve(dev(xb), wb, axes=1)), ss.fftconvolve(xb, wb, axes=1),
          np.float64)


def test_device_cuda_on_numpy_input_copies_in_and_out():
    x, w = X.astype(np.float32), W.astype(np.float32)
    got = fastconv.convolve(x, w, "same", method="direct", device="cuda")
    assert type(got) is np.ndarray and got.dtype == np.float32
    close(got, ss.convolve(x, w, "same"), np.float32)
    got = fastconv.correlate2d(X, W, boundary="wrap", device="cuda")
    assert type(got) is np.ndarray
    close(got, ss.correlate2d(X, W, boundary="wrap"), np.float64)
    got = fnd.uniform_filter(X, 3, device="cuda")
    assert type(got) is np.ndarray
    close(got, sndi.uniform_filter(X, 3), np.float64)


def test_empty_results_stay_on_the_device():
    got = fastconv.convolve2d(dev(np.zeros((0, 3))), np.ones((2, 2)))
    assert _arrays.array_kind(got) == "cuda"
    assert host(got).shape == ss.convolve2d(np.zeros((0, 3)), np.ones((2, 2))).shape


# -- plan, explain, choose_conv_method --------------------------------------------------------

def test_plan_explain_choose_on_device_arrays():
    x, w = X.astype(np.float32), W.astype(np.float32)
    d = fastconv.explain(dev(x), w, "same")
    assert d.device == "cuda" and "on cuda" in str(d) and "|cuda:" in d.key
    assert d.method in fastconv.kernels.methods("correlate", "cuda")
    p = fastconv.plan(dev(x), w, "same", method="direct")
    got = p(dev(x))
    close(host(got), ss.convolve(x, w, "same"), np.float32)
    np_out = p(x)                        # NumPy in: copied in and back
    assert type(np_out) is np.ndarray
    close(np_out, ss.convolve(x, w, "same"), np.float32)
    with pytest.raises(ValueError, match="this plan was made for"):
        p(dev(x[:4]))
    assert fastconv.choose_conv_method(dev(x), w) in fastconv.kernels.methods("correlate",
                                                                              "cuda")


def test_tuning_measures_the_gpu_methods_on_the_device_clock(monkeypatch):
    # choose_conv_method(measure=True) times every allowed CUDA method through the tuner:
    # the warm-up call first, then the device's timer (CUDA events; the simulator's
    # stand-in is the synchronised host clock)
    from fastconv import kernels
    timed = []
    real = kernels.device_timer

    def spy(device):
        t = real(device)
        return None if t is None else (lambda fn: timed.append(device) or t(fn))
    monkeypatch.setattr(fastconv.tuner, "device_timer", spy)
    x, w = RNG.standard_normal(16), RNG.standard_normal(3)
    with fastconv._config.override(tune_budget_s=0.01):
        best, times = fastconv.choose_conv_method(dev(x), w, measure=True)
    assert set(times) <= set(kernels.methods("correlate", "cuda")) and "direct" in times
    assert best == min(times, key=times.get) and all(t > 0 for t in times.values())
    assert timed and set(timed) == {"cuda"}


def test_device_auto_shows_both_sides():
    x, w = X.astype(np.float32), W.astype(np.float32)
    d = fastconv.explain(x, w, "same", device="auto")
    assert set(d.placement) == {"cpu", "cuda"}
    assert d.device in ("cpu", "cuda") and "cuda includes the copies" in str(d)
    got = fastconv.convolve(x, w, "same", device="auto")
    assert type(got) is np.ndarray
    close(got, ss.convolve(x, w, "same"), np.float32)


# -- scipy.ndimage drop-ins -----------------------------------------------------------------

NDIMAGE = {
    "correlate": (lambda f, a: f.correlate(a, W, mode="nearest")),
    "convolve": (lambda f, a: f.convolve(a, W[:, :2], mode="wrap", origin=(1, 0))),
    "correlate1d": (lambda f, a: f.correlate1d(a, [1.0, -2.0, 0.5], axis=0)),
    "convolve1d": (lambda f, a: f.convolve1d(a, [1.0, 3.0], mode="mirror")),
    "gaussian_filter": (lambda f, a: f.gaussian_filter(a, 0.8)),
    "gaussian_filter1d": (lambda f, a: f.gaussian_filter1d(a, 1.0, axis=0, order=1)),
    "uniform_filter": (lambda f, a: f.uniform_filter(a, (3, 2), mode="constant",
                                                     cval=2.0)),
    "uniform_filter1d": (lambda f, a: f.uniform_filter1d(a, 4, axis=1)),
    "sobel": (lambda f, a: f.sobel(a, axis=0)),
    "prewitt": (lambda f, a: f.prewitt(a)),
    "laplace": (lambda f, a: f.laplace(a, mode="reflect")),
}


@pytest.mark.parametrize("name", sorted(NDIMAGE))
def test_ndimage_filters_float32(name):
    x = X.astype(np.float32)
    got = NDIMAGE[name](fnd, dev(x))
    want = NDIMAGE[name](sndi, x)
    assert got.dtype == want.dtype
    close(host(got), want, np.float32)


@pytest.mark.parametrize("name", ["correlate", "gaussian_filter", "sobel", "laplace"])
def test_ndimage_integer_outputs_are_scipys(name):
    x = RNG.integers(-200, 200, (7, 6)).astype(np.int16)
    got = NDIMAGE[name](fnd, dev(x))
    want = NDIMAGE[name](sndi, x)
    assert got.dtype == want.dtype == np.int16
    np.testing.assert_array_equal(host(got), want)


def test_ndimage_output_dtype_and_refusals():
    x = X.astype(np.float32)
    got = fnd.gaussian_filter(dev(x), 1.0, output=np.float64)
    assert got.dtype == np.float64
    close(host(got), sndi.gaussian_filter(x, 1.0, output=np.float64), np.float32)
    with pytest.raises(TypeError, match="output must be None or a dtype"):
        fnd.sobel(dev(x), output=np.empty_like(x))
    with pytest.raises(TypeError, match="CPU only"):
        fnd.gaussian_laplace(dev(x), 1.0)
    with pytest.raises(TypeError, match="complex"):
        fnd.gaussian_filter(dev(x.astype(np.complex64)), 1.0)


def test_ndimage_nan_stays_local():
    x = np.ones((9, 8), np.float32)
    x[4, 4] = np.nan
    got = host(fnd.gaussian_filter(dev(x), 1.0, truncate=2.0))
    np.testing.assert_array_equal(np.isnan(got),
                                  np.isnan(sndi.gaussian_filter(x, 1.0, truncate=2.0)))


# -- refusals and arguments -----------------------------------------------------------------

def test_nn_refuses_gpu_arrays():
    x = dev(np.ones((1, 1, 5, 5), np.float32))
    with pytest.raises(TypeError, match="conv layers run on the CPU only"):
        fnn.conv2d(x, np.ones((1, 1, 3, 3), np.float32))


def test_device_argument_errors():
    dx = dev(X)
    with pytest.raises(TypeError, match="in1 is a GPU array.*never copies"):
        fastconv.convolve(dx, W, device="cpu")
    with pytest.raises(TypeError, match="input is a GPU array.*never copies"):
        fnd.sobel(dx, device="cpu")
    with pytest.raises(ValueError, match="device must be"):
        fastconv.convolve(dx, W, device="gpu")


# -- other array kinds (a real GPU with CuPy / torch) ---------------------------------------

@pytest.mark.skipif(SIM or not _has("cupy"), reason="CuPy on a GPU")
def test_cupy_in_cupy_out_on_its_stream():
    import cupy
    x = cupy.asarray(X.astype(np.float32))
    with cupy.cuda.Stream(non_blocking=True):
        got = fastconv.convolve(x, W.astype(np.float32), "same")
        g2 = fnd.gaussian_filter(x, 1.0)
    assert isinstance(got, cupy.ndarray) and isinstance(g2, cupy.ndarray)
    close(cupy.asnumpy(got), ss.convolve(X.astype(np.float32), W.astype(np.float32),
                                         "same"), np.float32)


@pytest.mark.skipif(SIM or not _has("torch"), reason="torch on a GPU")
def test_torch_in_torch_out():
    import torch
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    x = torch.as_tensor(X, device="cuda")
    got = fastconv.correlate(x, W, "same")
    assert isinstance(got, torch.Tensor) and got.device == x.device
    close(got.cpu().numpy(), ss.correlate(X, W, "same"), np.float64)
