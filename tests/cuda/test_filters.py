"""The CUDA filter passes (run_passes: scipy.ndimage's 1-D passes) against scipy.ndimage
itself: every mode (through fastconv.ndimage's mode table), origins, box and weighted
passes, float32/float64 in and out, fused pairs (one sweep, either order, several
tiles) and unfused ones, kernels longer than a tap chunk, lines with interleaved
channels and the column kernel."""
import numpy as np
import pytest
import scipy.ndimage as ndi

from _cuda_util import _memory, dev, host
from fastconv.kernels.cuda import filters1d
from fastconv.ndimage import MODES

pytestmark = pytest.mark.cuda


def _pass(axis, k, mode, weights=None, origin=0):
    start = -(k // 2 + origin)
    return (axis, start, MODES[mode], weights, k if weights is None else 0)


def _run(x, passes, cval, out_dtype):
    out = _memory.empty(x.shape, out_dtype)
    filters1d.run_passes(dev(x), out, tuple(passes), cval)
    return host(out)


def _close(got, ref):
    tol = 1e-6 if got.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * max(1, np.abs(ref).max()))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_correlate1d_every_mode(mode):
    rng = np.random.default_rng(30)
    x = rng.standard_normal((3, 9))
    w = rng.standard_normal(4)
    got = _run(x, [_pass(1, 4, mode, w, origin=1)], 1.25, np.float64)
    _close(got, ndi.correlate1d(x, w, axis=1, mode=mode, cval=1.25, origin=1))


@pytest.mark.parametrize("mode", ["mirror", "nearest", "constant"])
def test_box_filter_and_column_kernel(mode):
    """Axis 0 of a 40-wide array: the column kernel; a box of 5 with origin -1."""
    rng = np.random.default_rng(31)
    x = rng.standard_normal((6, 40)).astype(np.float32)
    got = _run(x, [_pass(0, 5, mode, None, origin=-1)], 0.5, np.float32)
    _close(got, ndi.uniform_filter1d(x, 5, axis=0, mode=mode, cval=0.5, origin=-1))


def test_long_kernel_and_channels():
    """41 taps (two tap chunks) along axis 1 of (2, 12, 3): lines with 3 channels."""
    rng = np.random.default_rng(32)
    x = rng.standard_normal((2, 12, 3))
    w = rng.standard_normal(41)
    got = _run(x, [_pass(1, 41, "reflect", w)], 0.0, np.float64)
    _close(got, ndi.correlate1d(x, w, axis=1, mode="reflect"))


@pytest.mark.parametrize("in_dt,out_dt", [(np.float32, np.float64), (np.float64, np.float32)])
def test_fused_pair_in_either_order(in_dt, out_dt):
    """Two weighted passes (a Gaussian-like pair), the intermediate rounded to out's
    dtype as scipy rounds it into its output array."""
    rng = np.random.default_rng(33)
    x = rng.standard_normal((7, 8)).astype(in_dt)
    wy, wx = rng.standard_normal(3), rng.standard_normal(5)
    got = _run(x, [_pass(1, 5, "wrap", wx), _pass(0, 3, "grid-constant", wy)], 2.0, out_dt)
    tmp = ndi.correlate1d(x, wx, axis=1, mode="wrap", output=out_dt)
    _close(got, ndi.correlate1d(tmp, wy, axis=0, mode="grid-constant", cval=2.0,
                                output=out_dt))


def test_long_line_several_blocks():
    rng = np.random.default_rng(34)
    x = rng.standard_normal(2100)                 # two line blocks of 2017 positions
    w = rng.standard_normal(9)
    got = _run(x, [_pass(0, 9, "mirror", w)], 0.0, np.float64)
    _close(got, ndi.correlate1d(x, w, mode="mirror"))


@pytest.mark.parametrize("order", ["yx", "xy"])
def test_fused_pair_several_tiles_both_orders(order):
    """A 40 x 35 plane: 2 x 2 fused 32 x 32 tiles, y pass first or x pass first."""
    rng = np.random.default_rng(35)
    x = rng.standard_normal((40, 35))
    wy, wx = rng.standard_normal(7), rng.standard_normal(4)
    py, px = _pass(0, 7, "nearest", wy), _pass(1, 4, "constant", wx, origin=-1)
    passes = [py, px] if order == "yx" else [px, py]
    got = _run(x, passes, -1.0, np.float64)
    if order == "yx":
        tmp = ndi.correlate1d(x, wy, axis=0, mode="nearest")
        ref = ndi.correlate1d(tmp, wx, axis=1, mode="constant", cval=-1.0, origin=-1)
    else:
        tmp = ndi.correlate1d(x, wx, axis=1, mode="constant", cval=-1.0, origin=-1)
        ref = ndi.correlate1d(tmp, wy, axis=0, mode="nearest")
    _close(got, ref)


def test_pair_not_fused_on_inner_planes_and_long_factors():
    """A pair on axes 0, 1 of a 3-D array (lines of 3 channels) and a pair with a factor
    longer than the fused tile holds: two passes through an intermediate."""
    rng = np.random.default_rng(36)
    x = rng.standard_normal((5, 4, 3))
    wy, wx = rng.standard_normal(3), rng.standard_normal(3)
    got = _run(x, [_pass(0, 3, "wrap", wy), _pass(1, 3, "mirror", wx)], 0.0, np.float64)
    tmp = ndi.correlate1d(x, wy, axis=0, mode="wrap")
    _close(got, ndi.correlate1d(tmp, wx, axis=1, mode="mirror"))
    x = rng.standard_normal((4, 6))
    wy, wx = rng.standard_normal(27), rng.standard_normal(3)
    got = _run(x, [_pass(0, 27, "reflect", wy), _pass(1, 3, "reflect", wx)], 0.0,
               np.float64)
    tmp = ndi.correlate1d(x, wy, axis=0, mode="reflect")
    _close(got, ndi.correlate1d(tmp, wx, axis=1, mode="reflect"))
