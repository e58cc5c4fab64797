"""The depthwise conv-layer kernel (kernels/cpu/_nn_depthwise.py) against torch (CPU):
the 2-D plane copy (stride 1 or 2 along the row, any stride down the columns), the tap
groups of one pass (a whole 3x3 kernel, eight, or passes of up to four; the first pass
stores), the weight gradient's flat-run dot products and its window-only rerun for
planes with non-finite values, and a non-contiguous output.
"""
import numpy as np
import pytest

import fastconv.nn as fnn
from fastconv.kernels.cpu import nn as knn

torch = pytest.importorskip("torch")
from test_nn_layers import F, G, _t, close  # noqa: E402  (torch checked first)


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_2d_vs_torch(seed, dtype):
    # Kernels 1x1..7x7 (square or not: 9, 8 and 1-4 tap passes), strides (1..3, 1..2),
    # dilation, padding up to 3, odd and even sizes, batch 1-3, channel multiplier 1-2,
    # and every other case a non-contiguous input.
    rng = np.random.default_rng(1600 + seed)
    k = [int(rng.integers(1, 8)), int(rng.integers(1, 8))]
    if seed % 3 == 0:
        k[1] = k[0]
    stride = [int(rng.integers(1, 4)), int(rng.integers(1, 3))]
    dil = [int(rng.integers(1, 3)) for _ in range(2)]
    pad = [int(rng.integers(0, 4)) for _ in range(2)]
    size = [max(1, d * (kk - 1) + 1 - 2 * p) + int(rng.integers(0, 20))
            for d, kk, p in zip(dil, k, pad)]
    ch = int(rng.integers(1, 5))
    mult = int(rng.choice([1, 2]))
    batch = int(rng.integers(1, 4))
    x = rng.standard_normal((batch, ch) + tuple(size))
    w = rng.standard_normal((ch * mult, 1) + tuple(k))
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=ch)
    want = F.conv2d(_t(x), _t(w), **kw).numpy()
    go = rng.standard_normal(want.shape)
    want_w = G.conv2d_weight(_t(x), w.shape, _t(go), **kw).numpy()
    x, w, go = x.astype(dtype), w.astype(dtype), go.astype(dtype)
    if seed % 2:
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype)
        big[..., ::2] = x
        x = big[..., ::2]
    close(fnn.conv2d(x, w, method="direct", **kw), want, dtype)
    close(fnn.conv2d_weight(x, w.shape, go, method="direct", **kw), want_w, dtype)


@pytest.mark.parametrize("seed", range(6))
def test_depthwise_3d_strided_vs_torch(seed):
    # 3-D planes take the general copy (every phase), stride 2 along the row included.
    rng = np.random.default_rng(1700 + seed)
    k = [int(rng.integers(1, 4)) for _ in range(3)]
    stride = [int(rng.integers(1, 3)) for _ in range(2)] + [2]
    pad = [int(rng.integers(0, 3)) for _ in range(3)]
    size = [max(1, kk - 2 * p) + int(rng.integers(0, 6)) for kk, p in zip(k, pad)]
    ch = int(rng.integers(1, 4))
    x = rng.standard_normal((2, ch) + tuple(size))
    w = rng.standard_normal((ch, 1) + tuple(k))
    kw = dict(stride=stride, padding=pad, groups=ch)
    want = F.conv3d(_t(x), _t(w), **kw).numpy()
    go = rng.standard_normal(want.shape)
    want_w = G.conv3d_weight(_t(x), w.shape, _t(go), **kw).numpy()
    close(fnn.conv3d(x, w, method="direct", **kw), want, np.float64)
    close(fnn.conv3d_weight(x, w.shape, go, method="direct", **kw), want_w, np.float64)


@pytest.mark.parametrize("where", ["first column", "last column", "corner", "middle",
                                   "gradient"])
def test_depthwise_weight_grad_nonfinite_plane(where):
    # The flat-run dot products multiply the zero scratch columns of the gradient by input
    # values outside the tap's window; a plane with an Inf must be summed again over the
    # windows alone (torch: only the taps whose windows read the Inf are Inf/NaN), and the
    # other planes and images keep their flat-run sums.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 9, 10)).astype(np.float32)
    go = rng.standard_normal((3, 8, 9, 10)).astype(np.float32)
    pos = {"first column": (1, 2, 4, 0), "last column": (1, 2, 4, 9),
           "corner": (2, 3, 8, 9), "middle": (0, 1, 4, 5)}
    if where == "gradient":
        go[1, 5, 3, 9] = np.inf
    else:
        x[pos[where]] = np.inf
    kw = dict(padding=1, groups=4)
    got = fnn.conv2d_weight(x, (8, 1, 3, 3), go, method="direct", **kw)
    want = G.conv2d_weight(_t(x), (8, 1, 3, 3), _t(go), **kw).numpy()
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    fin = np.isfinite(want)
    assert not fin.all() and fin.any()
    np.testing.assert_allclose(got[fin], want[fin], rtol=2e-4,
                               atol=2e-4 * np.abs(want[fin]).max())


def test_depthwise_weight_grad_overflow_stays_inf():
    # Finite inputs whose sums overflow: the window-only rerun gives Inf as torch does.
    x = np.full((1, 2, 6, 6), 3e38, np.float32)
    go = np.full((1, 2, 6, 6), 2.0, np.float32)
    got = fnn.conv2d_weight(x, (2, 1, 3, 3), go, padding=1, groups=2, method="direct")
    want = G.conv2d_weight(_t(x), (2, 1, 3, 3), _t(go), padding=1, groups=2).numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_launcher_noncontiguous_out(dtype):
    # The kernel writes a flat C-contiguous output; a strided `out` gets the same values.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 1, 11, 12)).astype(dtype)
    w = rng.standard_normal((3, 1, 1, 3, 3)).astype(dtype)
    want = F.conv2d(_t(x[:, :, 0]), _t(w[:, :, 0]), padding=1, groups=3).numpy()
    big = np.full((2, 3, 1, 11, 24), np.nan, dtype)
    out = big[..., ::2]
    got = knn.direct(x, w, out, (1, 1, 1), (1, 1, 1), 3, pads=((0, 0), (1, 1), (1, 1)))
    assert got is out
    close(out[:, :, 0], want, dtype)
    assert np.isnan(big[..., 1::2]).all()
