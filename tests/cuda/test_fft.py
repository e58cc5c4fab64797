"""The CUDA FFT / overlap-add / batched launchers against the float64 reference (the
cuFFT stage has a NumPy stand-in under the simulator; padding, boundary extension,
kernel placement, spectral product and cropping are the CUDA kernels under test):
every boundary, the modes' start offsets, 1-3 dimensions, every dtype (int64 exact or
sent to the direct method), NaN/Inf locality, overlap-add blocks, the overflow guard,
kernel spectra kept for plans, batched axes."""
import numpy as np
import pytest

from _cuda_util import BOUNDARIES, DTYPES, _memory, check, data, dev, host, mode_start
from fastconv.kernels.cuda import fft
from reference import correlate_ref

pytestmark = pytest.mark.cuda


def _run(fn, x, w, start, oshape, boundary="constant", cval=0, **kw):
    out = _memory.empty(oshape, x.dtype)
    fn(dev(x), w, out, start, boundary, cval, **kw)
    return host(out)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_fft_every_boundary(boundary):
    rng = np.random.default_rng(40 + BOUNDARIES.index(boundary))
    x = data(rng, (9, 10), np.float64)
    w = data(rng, (3, 4), np.float64)
    for mode in ("same", "full"):
        start, oshape = mode_start(mode, x.shape, w.shape)
        check(_run(fft.correlate_fft, x, w, start, oshape, boundary, 1.5),
              correlate_ref(x, w, start, oshape, boundary, 1.5), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fft_every_dtype(dtype):
    rng = np.random.default_rng(45)
    x = data(rng, (6, 7), dtype)
    w = data(rng, (3, 2), dtype)
    start, oshape = mode_start("valid", x.shape, w.shape)
    check(_run(fft.correlate_fft, x, w, start, oshape, "reflect", 2),
          correlate_ref(x, w, start, oshape, "reflect", 2), dtype)


def test_int64_outside_the_exact_range_uses_the_direct_sum():
    rng = np.random.default_rng(46)
    x = rng.integers(-2 ** 45, 2 ** 45, size=(5, 6), dtype=np.int64)
    w = rng.integers(-2 ** 12, 2 ** 12, size=(2, 2), dtype=np.int64)
    got = _run(fft.correlate_fft, x, w, (0, 0), (4, 5))
    ref = sum(w[a, b] * x[a:a + 4, b:b + 5] for a in range(2) for b in range(2))
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("shape,kshape", [((25,), (4,)), ((4, 5, 6), (2, 3, 2))])
def test_fft_1d_3d(shape, kshape):
    rng = np.random.default_rng(47)
    x = data(rng, shape, np.complex64)
    w = data(rng, kshape, np.complex64)
    start, oshape = mode_start("same", shape, kshape)
    check(_run(fft.correlate_fft, x, w, start, oshape, "wrap"),
          correlate_ref(x, w, start, oshape, "wrap"), np.complex64)


@pytest.mark.parametrize("fn,kw", [(fft.correlate_fft, {}),
                                   (fft.correlate_oa, {"block": (8, 8)})])
def test_nan_inf_stay_local(fn, kw):
    rng = np.random.default_rng(48)
    x = data(rng, (12, 11), np.float32)
    x[3, 4] = np.nan
    x[9, 1] = -np.inf
    w = data(rng, (3, 3), np.float32)
    start, oshape = mode_start("same", x.shape, w.shape)
    with np.errstate(invalid="ignore"):
        ref = correlate_ref(x, w, start, oshape, "symmetric")
    got = _run(fn, x, w, start, oshape, "symmetric", **kw)
    check(got, ref, np.float32)
    assert np.isfinite(got).sum() > got.size // 2


def test_nonfinite_constant_fill_and_kernel():
    rng = np.random.default_rng(49)
    x = data(rng, (6, 6), np.float64)
    w = data(rng, (2, 3), np.float64)
    start, oshape = mode_start("same", x.shape, w.shape)
    with np.errstate(invalid="ignore"):
        check(_run(fft.correlate_fft, x, w, start, oshape, "constant", np.nan),
              correlate_ref(x, w, start, oshape, "constant", np.nan), np.float64)
        w[1, 1] = np.inf                    # every output affected: the direct method
        check(_run(fft.correlate_fft, x, w, start, oshape, "reflect"),
              correlate_ref(x, w, start, oshape, "reflect"), np.float64)


@pytest.mark.parametrize("block", [(16,), (8,), (64,)])
def test_oa_blocks_1d(block):
    rng = np.random.default_rng(50)
    x = data(rng, (37,), np.float64)
    w = data(rng, (5,), np.float64)
    start, oshape = mode_start("full", x.shape, w.shape)
    check(_run(fft.correlate_oa, x, w, start, oshape, "edge", block=block),
          correlate_ref(x, w, start, oshape, "edge"), np.float64)


def test_oa_2d_blocks_auto_and_uneven():
    rng = np.random.default_rng(51)
    x = data(rng, (19, 14), np.float64)
    w = data(rng, (4, 3), np.float64)
    start, oshape = mode_start("same", x.shape, w.shape)
    ref = correlate_ref(x, w, start, oshape, "reflect", 0)
    check(_run(fft.correlate_oa, x, w, start, oshape, "reflect", block=(8, 6)), ref,
          np.float64)
    check(_run(fft.correlate_oa, x, w, start, oshape, "reflect"), ref, np.float64)


def test_overflow_guard_scales():
    """float32 data near 1e36: unscaled transforms would overflow to Inf/NaN."""
    rng = np.random.default_rng(52)
    x = (data(rng, (8, 8), np.float64) * 1e35).astype(np.float32)
    w = data(rng, (3, 3), np.float32)
    start, oshape = mode_start("same", x.shape, w.shape)
    ref = correlate_ref(x, w, start, oshape, "wrap")
    got = _run(fft.correlate_fft, x, w, start, oshape, "wrap")
    fin = np.isfinite(ref) & (np.abs(ref) < 3e38)
    assert np.isfinite(got[fin]).all()
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-3, atol=1e-4 * np.abs(ref).max())


def test_kernel_spectra_are_kept_for_plans():
    rng = np.random.default_rng(53)
    x = data(rng, (7, 8), np.float64)
    w = data(rng, (3, 3), np.float64)
    start, oshape = mode_start("same", x.shape, w.shape)
    spectra = {}
    a = _run(fft.correlate_fft, x, w, start, oshape, spectra=spectra)
    assert len(spectra) == 1
    b = _run(fft.correlate_fft, x * 2, w, start, oshape, spectra=spectra)
    assert len(spectra) == 1
    check(b, 2 * a, np.float64)


@pytest.mark.parametrize("nan", [False, True])
def test_batched_axes(nan):
    rng = np.random.default_rng(54)
    x = data(rng, (3, 9, 2), np.float64)
    if nan:
        x[1, 4, 0] = np.nan
    w = data(rng, (3, 4, 2), np.float64)
    out = _memory.empty((3, 12, 2), np.float64)
    fft.correlate_batched(dev(x), w, out, (0, -3, 0), (0, 2))
    got = host(out)
    with np.errstate(invalid="ignore"):
        ref = np.stack([np.stack([correlate_ref(x[i, :, j], w[i, :, j], (-3,), (12,))
                                  for j in range(2)], -1) for i in range(3)])
    check(got, ref, np.float64)
