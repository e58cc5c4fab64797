"""fastconv.nn against a naive float64 reference, against torch (when installed), by
finite differences and adjoint identities; every method on random layer configurations.

Shapes stay tiny: the cost of this file is Numba compile time (a few kernels x two
dtypes), not the convolutions.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv.nn as fnn
from fastconv.kernels.cpu import nn as knn
from reference import correlate_ref

METHODS = list(knn.METHODS)
TOL = {np.float32: 2e-4, np.float64: 1e-10}


# -- the naive reference ----------------------------------------------------------------

def conv_ref(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1,
             padding_mode="zeros"):
    """torch.nn.functional.convNd from the definition, in float64: pad, then for each tap
    add w[o, c, tap] times the strided input window. Batched input only."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    nd = x.ndim - 2
    stride = (stride,) * nd if np.isscalar(stride) else tuple(stride)
    dilation = (dilation,) * nd if np.isscalar(dilation) else tuple(dilation)
    k = w.shape[2:]
    if padding == "valid":
        pads = [(0, 0)] * nd
    elif padding == "same":
        pads = [(d * (kk - 1) // 2, d * (kk - 1) - d * (kk - 1) // 2)
                for d, kk in zip(dilation, k)]
    else:
        p = (padding,) * nd if np.isscalar(padding) else tuple(padding)
        pads = [(v, v) for v in p]
    mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
            "circular": "wrap"}[padding_mode]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads, mode=mode)
    osz = [(n - d * (kk - 1) - 1) // s + 1
           for n, d, kk, s in zip(xp.shape[2:], dilation, k, stride)]
    n_img, n_out, cg = x.shape[0], w.shape[0], w.shape[1]
    og = n_out // groups
    out = np.zeros((n_img, n_out) + tuple(osz))
    for o in range(n_out):
        g = o // og
        for c in range(cg):
            for tap in itertools.product(*(range(kk) for kk in k)):
                window = tuple(slice(t * d, t * d + (m - 1) * s + 1, s)
                               for t, d, m, s in zip(tap, dilation, osz, stride))
                out[:, o] += w[(o, c) + tap] * xp[(slice(None), g * cg + c) + window]
    if bias is not None:
        out += np.asarray(bias, np.float64).reshape((1, -1) + (1,) * nd)
    return out


def test_conv_ref_matches_the_oracle():
    # The layer reference against tests/reference.py's correlate_ref, channel by channel.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 6, 7))
    w = rng.standard_normal((1, 2, 3, 2))
    got = conv_ref(x, w, padding=1)
    want = sum(correlate_ref(x[0, c], w[0, c], (-1, -1), got.shape[2:]) for c in range(2))
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-12, atol=1e-12)


def close(got, want, dtype):
    tol = TOL[np.dtype(dtype).type]
    scale = max(1.0, float(np.abs(want).max())) if np.size(want) else 1.0
    assert got.shape == want.shape
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


# -- random layer configurations --------------------------------------------------------

def random_layer(seed):
    """A random (x, w, bias, kwargs) layer: 1-3 spatial dims, groups incl. depthwise, odd
    and even kernels, stride, dilation, every padding form and padding_mode."""
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 2, 3]))
    depthwise = rng.random() < 0.25
    cg = 1 if depthwise else int(rng.integers(1, 4))
    n_ch = cg * groups
    n_out = groups * (int(rng.integers(1, 3)) if not depthwise else 1)
    k = [int(rng.integers(1, 5 if nd < 3 else 4)) for _ in range(nd)]
    dilation = [int(rng.integers(1, 3)) for _ in range(nd)]
    kind = rng.choice(["int", "tuple", "valid", "same"])
    stride = [1] * nd if kind == "same" else [int(rng.integers(1, 4)) for _ in range(nd)]
    if kind == "int":
        padding = int(rng.integers(0, 3))
    elif kind == "tuple":
        padding = tuple(int(v) for v in rng.integers(0, 3, size=nd))
    else:
        padding = str(kind)
    ext = [d * (kk - 1) + 1 for d, kk in zip(dilation, k)]
    size = [e + int(rng.integers(0, 9 if nd < 3 else 4)) for e in ext]
    mode = str(rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"]))
    if kind == "same":
        max_pad = max(d * (kk - 1) - d * (kk - 1) // 2 for d, kk in zip(dilation, k))
    else:
        max_pad = max(np.atleast_1d(padding)) if kind != "valid" else 0
    if mode in ("reflect", "circular") and max_pad >= min(size):
        mode = "replicate"           # torch rejects these pads for reflect and circular
    x = rng.standard_normal((int(rng.integers(1, 3)), n_ch) + tuple(size))
    w = rng.standard_normal((n_out, cg) + tuple(k))
    bias = rng.standard_normal(n_out) if rng.random() < 0.5 else None
    kw = dict(stride=stride if rng.random() < 0.7 else stride[0] if len(set(stride)) == 1
              else stride, padding=padding, dilation=dilation, groups=groups,
              padding_mode=mode)
    return nd, x, w, bias, kw


def _fn(nd):
    return {1: fnn.conv1d, 2: fnn.conv2d, 3: fnn.conv3d}[nd]


@pytest.mark.parametrize("seed", range(24))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_layers_every_method_vs_reference(seed, dtype):
    nd, x, w, bias, kw = random_layer(seed)
    want = conv_ref(x, w, bias, **kw)
    x, w = x.astype(dtype), w.astype(dtype)
    b = None if bias is None else bias.astype(dtype)
    for method in METHODS + ["auto"]:
        try:
            got = _fn(nd)(x, w, b, method=method, **kw)
        except ValueError as e:          # winograd on a layer it does not apply to
            assert method == "winograd" and "does not apply" in str(e)
            continue
        close(got, want, dtype)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_shapes_every_method(method, dtype):
    # 3x3 stride-1 layers (the Winograd domain), ragged tiles, groups, 3-D with kd=1.
    rng = np.random.default_rng(7)
    for xs, ws, groups, pad in [((2, 4, 9, 11), (6, 2, 3, 3), 2, 1),
                                ((1, 3, 13, 6), (5, 3, 3, 3), 1, 0),
                                ((2, 4, 8, 8), (4, 1, 3, 3), 4, "same"),
                                # enough outputs for the register-tiled products
                                ((2, 5, 10, 9), (35, 5, 3, 3), 1, 1)]:
        x = rng.standard_normal(xs)
        w = rng.standard_normal(ws)
        want = conv_ref(x, w, padding=pad, groups=groups)
        got = fnn.conv2d(x.astype(dtype), w.astype(dtype), padding=pad, groups=groups,
                         method=method)
        close(got, want, dtype)
    x = rng.standard_normal((1, 2, 4, 7, 9))
    w = rng.standard_normal((3, 2, 1, 3, 3))
    got = fnn.conv3d(x.astype(dtype), w.astype(dtype), stride=(2, 1, 1), padding=(0, 1, 1),
                     dilation=(3, 1, 1), method=method)
    close(got, conv_ref(x, w, stride=(2, 1, 1), padding=(0, 1, 1), dilation=(3, 1, 1)), dtype)
    # padding along the depth too (planes of zeros in, planes of zeros out)
    got = fnn.conv3d(x.astype(dtype), w.astype(dtype), padding=(1, 1, 0), method=method)
    close(got, conv_ref(x, w, padding=(1, 1, 0)), dtype)


def tiled_layer(seed, dtype):
    """A random layer the register-tiled direct kernel takes (at least Q output channels
    per group, output rows at least P wide), usually with a partial last channel block
    and a partial last pixel tile: 1-3 spatial dims, stride, dilation, groups."""
    p, q = knn._TILES[np.dtype(dtype).name]
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(1, 4))
    groups = int(rng.integers(1, 3))
    og = q + int(rng.integers(0, 2 * q))
    cg = int(rng.integers(1, 4))
    k = [int(rng.integers(1, 4)) for _ in range(nd - 1)] + [int(rng.integers(1, 8))]
    stride = [int(rng.integers(1, 3)) for _ in range(nd)]
    dilation = [int(rng.integers(1, 3)) for _ in range(nd)]
    ow = p + int(rng.integers(0, 2 * p))
    width = (ow - 1) * stride[-1] + dilation[-1] * (k[-1] - 1) + 1 - 2
    size = [d * (kk - 1) + 1 + int(rng.integers(0, 4)) for d, kk in zip(dilation, k)]
    size[-1] = width
    x = rng.standard_normal((int(rng.integers(1, 3)), cg * groups) + tuple(size))
    w = rng.standard_normal((og * groups, cg) + tuple(k))
    kw = dict(stride=stride, padding=[0] * (nd - 1) + [1], dilation=dilation,
              groups=groups)
    return nd, x, w, kw


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_register_tiled_direct_vs_reference(seed, dtype):
    nd, x, w, kw = tiled_layer(seed, dtype)
    want = conv_ref(x, w, **kw)
    out3 = want.reshape(want.shape[:2] + (1,) * (3 - nd) + want.shape[2:])
    assert knn._tiled_ok(out3.shape, w.shape, kw["groups"], dtype)   # the path under test
    got = _fn(nd)(x.astype(dtype), w.astype(dtype), method="direct", **kw)
    close(got, want, dtype)


def test_register_tiled_direct_nan_stays_local():
    x = np.ones((1, 2, 5, 70), np.float32)
    x[0, 1, 2, 40] = np.nan
    w = np.ones((7, 2, 3, 3), np.float32)
    out = fnn.conv2d(x, w, padding=1, method="direct")
    for o in range(7):
        bad = np.argwhere(np.isnan(out[0, o]))
        assert bad.min(0).tolist() == [1, 39] and bad.max(0).tolist() == [3, 41]
        assert len(bad) == 9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_gemm_tiles_vs_numpy(dtype):
    # Whole and partial row and column tiles, short and long reductions.
    rng = np.random.default_rng(11)
    fn, mr, nr = knn._BATCHED_GEMM[np.dtype(dtype)]
    for r, m, k, n in [(1, mr, 1, nr), (2, 7, 5, nr + 3), (3, 10, 128, 2 * nr),
                       (2, 3 * mr + 1, 300, 2 * nr + 5), (1, 5, 129, nr)]:
        a = rng.standard_normal((r, m, k)).astype(dtype)
        b = rng.standard_normal((r, k, n)).astype(dtype)
        c = np.full((r, m, n), np.nan, dtype)
        fn(a, b, c)
        want = np.matmul(a.astype(np.float64), b.astype(np.float64))
        tol = TOL[np.dtype(dtype).type] * np.sqrt(k)
        np.testing.assert_allclose(c, want, rtol=tol, atol=tol * np.abs(want).max())


def test_generated_tile_module_is_up_to_date():
    from fastconv.kernels.cpu import _tilegen
    with open(_tilegen.PATH) as f:
        assert f.read() == _tilegen.source(), "run python -m fastconv.kernels.cpu._tilegen"


@pytest.mark.parametrize("method", METHODS[:3])
def test_large_workspace_is_chunked(method, monkeypatch):
    # Tiny workspace limits force several chunks per image (gemm), per channel block and
    # image block (fft) and per tile row block (winograd).
    monkeypatch.setattr(knn, "WORKSPACE_BYTES", 4096)
    monkeypatch.setattr(knn, "GEMM_CHUNK_BYTES", 2048)
    monkeypatch.setattr(knn, "WINO_CHUNK_BYTES", 4096)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 12, 10))
    w = rng.standard_normal((6, 2, 3, 3))
    for m in (method, "winograd"):
        got = fnn.conv2d(x, w, padding=1, groups=2, method=m)
        close(got, conv_ref(x, w, padding=1, groups=2), np.float64)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6))
def test_methods_agree_property(seed):
    nd, x, w, bias, kw = random_layer(seed)
    x = x.astype(np.float32)
    w = w.astype(np.float32)
    ref = _fn(nd)(x, w, method="direct", **kw)
    for method in ("gemm", "fft"):
        got = _fn(nd)(x, w, method=method, **kw)
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-4 * scale)


def test_views_and_unbatched():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((2, 6, 12, 14))
    x = base[:, ::2, ::-1, 1::2]                      # non-contiguous, negative stride
    w = rng.standard_normal((4, 3, 3, 2))[:, :, ::-1]
    for method in ("direct", "gemm", "fft"):
        close(fnn.conv2d(x, w, padding=1, method=method), conv_ref(x, w, padding=1),
              np.float64)
    got = fnn.conv2d(x[1], w, padding=(1, 0))
    close(got, conv_ref(x[1:], w, padding=(1, 0))[0], np.float64)
    assert got.ndim == 3


def test_nan_stays_local_under_auto():
    # auto avoids FFT and Winograd when the input holds NaN: only the windows that hold
    # the NaN become NaN.
    x = np.ones((1, 16, 30, 30), np.float32)
    x[0, 3, 10, 10] = np.nan
    w = np.ones((16, 16, 3, 3), np.float32)
    out = fnn.conv2d(x, w, padding=1)
    bad = np.isnan(out[0, 0])
    assert bad.sum() == 9 and bad[9:12, 9:12].all()


def test_empty_batch_and_zero_output_size():
    x = np.zeros((0, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    assert fnn.conv2d(x, w).shape == (0, 3, 3, 3)


# -- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("call, exc, match", [
    (lambda x, w: fnn.conv2d(x, w[:, :1]), fnn.ConvShapeError, "to have 1 channels"),
    (lambda x, w: fnn.conv2d(x, w, groups=3), fnn.ConvShapeError, "divisible by 3"),
    (lambda x, w: fnn.conv2d(x, w, groups=0), fnn.ConvShapeError, "non-positive groups"),
    (lambda x, w: fnn.conv2d(x, w, stride=0), fnn.ConvShapeError, "non-positive stride"),
    (lambda x, w: fnn.conv2d(x, w, padding=-1), fnn.ConvShapeError, "negative padding"),
    (lambda x, w: fnn.conv2d(x, w, dilation=0), fnn.ConvShapeError, "greater than zero"),
    (lambda x, w: fnn.conv2d(x, w, stride=(1, 1, 1)), fnn.ConvShapeError,
     "list of 2 values"),
    (lambda x, w: fnn.conv2d(x, w, padding="full"), ValueError, "Invalid padding string"),
    (lambda x, w: fnn.conv2d(x, w, padding="same", stride=2), ValueError,
     "strided convolutions"),
    (lambda x, w: fnn.conv2d(x[:, :, :2], w), fnn.ConvShapeError, "Kernel size can't"),
    (lambda x, w: fnn.conv2d(x[0, 0], w), fnn.ConvShapeError, "Expected 3D"),
    (lambda x, w: fnn.conv2d(x, w, np.ones(3)), fnn.ConvShapeError, "bias"),
    (lambda x, w: fnn.conv2d(x, w.astype(np.float32)), fnn.ConvTypeError, "should be the same"),
    (lambda x, w: fnn.conv2d(x.astype(np.int64), w), fnn.ConvTypeError, "float32 or float64"),
    (lambda x, w: fnn.conv2d(x, w, padding_mode="mirror"), ValueError, "padding_mode"),
    (lambda x, w: fnn.conv2d(x, w, padding=4, padding_mode="reflect"),
     fnn.ConvShapeError, "Padding size"),
    (lambda x, w: fnn.conv2d(x, w, method="magic"), ValueError, "method"),
    (lambda x, w: fnn.conv2d(x, w[..., :2], method="winograd"), ValueError, "does not apply"),
    (lambda x, w: fnn.conv_transpose2d(x, w.swapaxes(0, 1)[:2], stride=2,
                                       output_padding=2), fnn.ConvShapeError,
     "output padding must be smaller"),
    (lambda x, w: fnn.conv2d_input((1, 2, 9, 9), w, np.ones((1, 4, 3, 3))),
     fnn.ConvShapeError, "valid sizes range"),
])
def test_errors(call, exc, match):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 4, 4))
    w = rng.standard_normal((4, 2, 3, 3))
    with pytest.raises(exc, match=match):
        call(x, w)


def test_error_classes_are_catchable_as_torch_and_numpy_errors():
    assert issubclass(fnn.ConvShapeError, ValueError)
    assert issubclass(fnn.ConvShapeError, RuntimeError)
    assert issubclass(fnn.ConvTypeError, TypeError)
    assert issubclass(fnn.ConvTypeError, RuntimeError)


# -- transposed convolution and gradients (no torch needed) -----------------------------

def _adjoint_case(seed):
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 2]))
    cg, og = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    k = [int(rng.integers(1, 4)) for _ in range(nd)]
    stride = [int(rng.integers(1, 3)) for _ in range(nd)]
    dilation = [int(rng.integers(1, 3)) for _ in range(nd)]
    padding = [int(rng.integers(0, 2)) for _ in range(nd)]
    size = [d * (kk - 1) + 1 + int(rng.integers(0, 5)) for d, kk in zip(dilation, k)]
    x = rng.standard_normal((2, cg * groups) + tuple(size))
    w = rng.standard_normal((og * groups, cg) + tuple(k))
    return nd, x, w, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("seed", range(8))
def test_gradients_by_adjoint_identity_and_finite_differences(seed):
    # <conv(x, w), g> = <x, conv_input(g)> = <w, conv_weight(g)>; conv is linear in x and
    # w, so a central difference of <conv(x + e v, w), g> equals <v, grad_x> to rounding.
    nd, x, w, kw = _adjoint_case(seed)
    conv = _fn(nd)
    gi = {1: fnn.conv1d_input, 2: fnn.conv2d_input, 3: fnn.conv3d_input}[nd]
    gw = {1: fnn.conv1d_weight, 2: fnn.conv2d_weight, 3: fnn.conv3d_weight}[nd]
    y = conv(x, w, **kw)
    rng = np.random.default_rng(seed + 100)
    g = rng.standard_normal(y.shape)
    grad_x = gi(x.shape, w, g, **kw)
    grad_w = gw(x, w.shape, g, **kw)
    inner = float((y * g).sum())
    assert np.isclose(inner, float((x * grad_x).sum()), rtol=1e-9, atol=1e-9)
    assert np.isclose(inner, float((w * grad_w).sum()), rtol=1e-9, atol=1e-9)
    v, u, eps = rng.standard_normal(x.shape), rng.standard_normal(w.shape), 1e-3
    fd_x = ((conv(x + eps * v, w, **kw) - conv(x - eps * v, w, **kw)) * g).sum() / (2 * eps)
    fd_w = ((conv(x, w + eps * u, **kw) - conv(x, w - eps * u, **kw)) * g).sum() / (2 * eps)
    assert np.isclose(fd_x, (v * grad_x).sum(), rtol=1e-7, atol=1e-7)
    assert np.isclose(fd_w, (u * grad_w).sum(), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("seed", range(6))
def test_conv_transpose_is_the_adjoint(seed):
    # conv_transpose(g, w) = conv_input(x.shape, w, g) when output_padding picks x's size.
    nd, x, w, kw = _adjoint_case(seed)
    y = _fn(nd)(x, w, **kw)
    g = np.random.default_rng(seed).standard_normal(y.shape)
    full = [(o - 1) * s - 2 * p + d * (kk - 1) + 1 for o, s, p, d, kk in
            zip(y.shape[2:], kw["stride"], kw["padding"], kw["dilation"], w.shape[2:])]
    op = [n - f for n, f in zip(x.shape[2:], full)]
    tr = {1: fnn.conv_transpose1d, 2: fnn.conv_transpose2d, 3: fnn.conv_transpose3d}[nd]
    got = tr(g, w, stride=kw["stride"], padding=kw["padding"], output_padding=op,
             groups=kw["groups"], dilation=kw["dilation"])
    gi = {1: fnn.conv1d_input, 2: fnn.conv2d_input, 3: fnn.conv3d_input}[nd]
    np.testing.assert_allclose(got, gi(x.shape, w, g, **kw), rtol=1e-12, atol=1e-12)


def test_train_a_tiny_conv_net():
    # Two conv layers with a ReLU, trained by plain gradient descent on fastconv alone:
    # the loss must fall.
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 1, 10, 10))
    target = conv_ref(x, rng.standard_normal((2, 1, 3, 3)), padding=1)
    w1 = rng.standard_normal((4, 1, 3, 3)) * 0.3
    w2 = rng.standard_normal((2, 4, 3, 3)) * 0.3
    losses = []
    for _ in range(30):
        h = fnn.conv2d(x, w1, padding=1)
        a = np.maximum(h, 0)
        y = fnn.conv2d(a, w2, padding=1)
        err = y - target
        losses.append(float((err ** 2).mean()))
        gy = 2 * err / err.size
        gw2 = fnn.conv2d_weight(a, w2.shape, gy, padding=1)
        ga = fnn.conv2d_input(a.shape, w2, gy, padding=1)
        gw1 = fnn.conv2d_weight(x, w1.shape, ga * (h > 0), padding=1)
        w1 -= 0.05 * gw1
        w2 -= 0.05 * gw2
    assert losses[-1] < 0.5 * losses[0]


# -- torch (CPU) comparisons ------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("seed", range(16))
def test_random_layers_vs_torch(torch, seed):
    nd, x, w, bias, kw = random_layer(seed + 1000)
    mode = kw.pop("padding_mode")
    tx = torch.from_numpy(x)
    tw = torch.from_numpy(w)
    tb = None if bias is None else torch.from_numpy(bias)
    if mode == "zeros":
        want = getattr(torch.nn.functional, f"conv{nd}d")(tx, tw, tb, **kw).numpy()
    else:
        cls = getattr(torch.nn, f"Conv{nd}d")
        layer = cls(x.shape[1], w.shape[0], w.shape[2:], bias=bias is not None,
                    padding_mode=mode, **kw).double()
        with torch.no_grad():
            layer.weight.copy_(tw)
            if bias is not None:
                layer.bias.copy_(tb)
            want = layer(tx).numpy()
    for dtype in (np.float32, np.float64):
        got = _fn(nd)(x.astype(dtype), w.astype(dtype),
                      None if bias is None else bias.astype(dtype), padding_mode=mode, **kw)
        close(got, want, dtype)


@pytest.mark.parametrize("seed", range(10))
def test_transpose_and_gradients_vs_torch(torch, seed):
    nd, x, w, kw = _adjoint_case(seed + 50)
    F = torch.nn.functional
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    y = getattr(F, f"conv{nd}d")(tx, tw, **kw)
    g = torch.from_numpy(np.random.default_rng(seed).standard_normal(tuple(y.shape)))
    want_x = getattr(torch.nn.grad, f"conv{nd}d_input")(x.shape, tw, g, **kw).numpy()
    want_w = getattr(torch.nn.grad, f"conv{nd}d_weight")(tx, w.shape, g, **kw).numpy()
    gi = getattr(fnn, f"conv{nd}d_input")
    gw = getattr(fnn, f"conv{nd}d_weight")
    close(gi(x.shape, w, g.numpy(), **kw), want_x, np.float64)
    close(gw(x, w.shape, g.numpy(), **kw), want_w, np.float64)
    # A transposed layer with its own weight (Cin, O/groups, *k) and output_padding.
    rng = np.random.default_rng(seed + 7)
    groups = kw["groups"]
    wt = rng.standard_normal((x.shape[1], 2) + w.shape[2:])
    op = [int(rng.integers(0, max(s, d))) for s, d in zip(kw["stride"], kw["dilation"])]
    bias = rng.standard_normal(2 * groups)
    pad = kw["padding"]
    sizes = [(i - 1) * s - 2 * p + d * (kk - 1) + o + 1 for i, s, p, d, kk, o in
             zip(x.shape[2:], kw["stride"], pad, kw["dilation"], w.shape[2:], op)]
    if min(sizes) <= 0:
        tr = getattr(fnn, f"conv_transpose{nd}d")
        with pytest.raises(RuntimeError, match="Output size is too small"):
            tr(x, wt, None, kw["stride"], pad, op, groups, kw["dilation"])
        pad = [0] * nd
    want = getattr(F, f"conv_transpose{nd}d")(
        tx, torch.from_numpy(wt), torch.from_numpy(bias), stride=kw["stride"],
        padding=pad, output_padding=op, groups=groups,
        dilation=kw["dilation"]).numpy()
    tr = getattr(fnn, f"conv_transpose{nd}d")
    for dtype in (np.float32, np.float64):
        got = tr(x.astype(dtype), wt.astype(dtype), bias.astype(dtype), kw["stride"],
                 pad, op, groups, kw["dilation"])
        close(got, want, dtype)


def test_same_padding_even_kernels_and_dilation_vs_torch(torch):
    rng = np.random.default_rng(9)
    F = torch.nn.functional
    for xs, ws, dil in [((2, 3, 11), (4, 3, 4), 1), ((1, 2, 9, 8), (3, 2, 2, 4), (3, 2)),
                        ((1, 2, 5, 6, 7), (2, 2, 2, 3, 4), (1, 2, 1))]:
        x = rng.standard_normal(xs)
        w = rng.standard_normal(ws)
        nd = len(xs) - 2
        want = getattr(F, f"conv{nd}d")(torch.from_numpy(x), torch.from_numpy(w),
                                        padding="same", dilation=dil).numpy()
        for method in ("direct", "gemm", "fft"):
            close(_fn(nd)(x, w, padding="same", dilation=dil, method=method), want,
                  np.float64)


def test_concurrent_calls_from_python_threads():
    # Chunk-parallel launchers share a thread pool and per-thread workspace: calls from
    # several Python threads at once must not mix their chunks or buffers.
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(11)
    jobs = []
    for i in range(6):
        x = rng.standard_normal((2, 8, 9 + i, 10))
        w = rng.standard_normal((8, 8, 3, 3))
        jobs.append((x, w, "winograd" if i % 2 else "gemm"))
    with ThreadPoolExecutor(3) as ex:
        got = list(ex.map(lambda j: fnn.conv2d(j[0], j[1], padding=1, method=j[2]), jobs))
    for (x, w, _), g in zip(jobs, got):
        close(g, conv_ref(x, w, padding=1), np.float64)


# -- zero output channels (issue 14, item 7) -----------------------------------------------------

ZERO_OUT = [
    ("conv1d", (2, 3, 10), (0, 3, 3), {}),
    ("conv2d", (2, 3, 10, 10), (0, 3, 3, 3), {}),
    ("conv3d", (2, 3, 6, 6, 6), (0, 3, 3, 3, 3), {}),
    ("conv1d", (3, 10), (0, 3, 3), {}),                          # unbatched
    ("conv2d", (2, 4, 10, 10), (1, 2, 3, 3), {"groups": 2}),      # fewer than groups
    ("conv_transpose1d", (2, 3, 10), (3, 0, 3), {}),
    ("conv_transpose2d", (2, 3, 10, 10), (3, 0, 3, 3), {}),
    ("conv_transpose3d", (2, 3, 6, 6, 6), (3, 0, 3, 3, 3), {}),
    ("conv_transpose2d", (2, 4, 5, 5), (4, 0, 3, 3), {"groups": 2}),
    ("conv_transpose2d", (2, 0, 10, 10), (0, 4, 3, 3), {}),       # no input channels
]


@pytest.mark.parametrize("fname,xs,ws,kw", ZERO_OUT)
def test_zero_output_channels_raise_as_torch(fname, xs, ws, kw):
    """torch raises RuntimeError for a weight with no output channels (or fewer than
    groups); fastconv's ConvShapeError is a RuntimeError (and a ValueError)."""
    x = np.ones(xs, np.float32)
    w = np.ones(ws, np.float32)
    try:
        import torch
        import torch.nn.functional as F
        with pytest.raises(RuntimeError):
            getattr(F, fname)(torch.from_numpy(x), torch.from_numpy(w), **kw)
    except ImportError:
        pass
    with pytest.raises(RuntimeError) as err:
        getattr(fnn, fname)(x, w, **kw)
    assert isinstance(err.value, ValueError)
    assert "expected weight to be at least" in str(err.value) or "output channel" in str(err.value)


def test_zero_output_channels_in_the_gradients():
    w0 = np.ones((0, 3, 3, 3), np.float32)
    go = np.ones((2, 0, 8, 8), np.float32)
    x = np.ones((2, 3, 10, 10), np.float32)
    with pytest.raises(fnn.ConvShapeError, match="at least 1 at dimension 0"):
        fnn.conv2d_input((2, 3, 10, 10), w0, go)
    with pytest.raises(fnn.ConvShapeError, match="at least 1 at dimension 0"):
        fnn.conv2d_weight(x, (0, 3, 3, 3), go)
