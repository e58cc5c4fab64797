"""The 3-D FFT by planes: its tap sum over the kernel's planes runs as a numba pass
(``kernels/cpu/_fft_mac.py``) where compiled, else as the numpy expression; both give
the scipy result within the FFT error bound."""
import numpy as np
import pytest
import scipy.signal

import fastconv
from fastconv import _config
from fastconv.kernels.cpu import fft
from fastconv.kernels.cpu.fft import fft_error_bound


@pytest.mark.parametrize("numba_pass", [True, False])
@pytest.mark.parametrize("xs,ks,mode", [((30, 26, 22), (7, 5, 3), "same"),
                                        ((12, 20, 9), (8, 3, 2), "full"),
                                        ((16, 16, 16), (3, 3, 3), "valid")])
@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_planes_match_scipy(monkeypatch, numba_pass, xs, ks, mode, dtype):
    if not numba_pass:
        monkeypatch.setattr(fft, "_plane_mac_ready", lambda dt: False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ks).astype(dtype)
    if x.dtype.kind == "c":
        x = x + 1j * rng.standard_normal(xs)
    with fastconv.threads(2):
        got = fastconv.convolve(x, w, mode, method="fft")
    ref = scipy.signal.fftconvolve(x.astype(np.result_type(x, np.float64)),
                                   w.astype(np.result_type(w, np.float64)), mode)
    assert np.all(np.abs(got - ref) <= fft_error_bound(x, w, out_shape=ref.shape))


def test_tier_mode_never_compiles_the_pass(monkeypatch):
    """Under the first-call tier the FFT methods must not compile: the numpy expression
    runs until compile mode (the tier's background compile, warmup) made the pass ready."""
    ready = set()
    monkeypatch.setattr(fft, "_PLANE_MAC_READY", ready)
    x = np.ones((20, 20, 20), np.float32)
    w = np.ones((5, 5, 5), np.float32)
    with _config.override(first_call="tier"):
        fastconv.convolve(x, w, method="fft")
    assert ready == set()
    with _config.override(first_call="compile"):
        fastconv.convolve(x, w, method="fft")
    assert ready == {np.dtype(np.complex64).str}
