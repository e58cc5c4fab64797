"""Deep layers on small images (batch 1 in a ResNet's last stages) against torch (CPU):
the GEMM method's staged split over the threads, Winograd's products split over the
threads when an image is one chunk, the transposed convolution (and input gradient) as
a GEMM then col2im when the weight outweighs the tap values, and the threaded
polyphase copy. Each test also checks that the path it is about was taken.
"""
import math

import numba
import numpy as np
import pytest

import fastconv.nn as fnn
from fastconv.kernels.cpu import nn as knn

torch = pytest.importorskip("torch")
from test_nn_layers import F, G, N, _dispatched, _t, close  # noqa: E402  (torch first)


@pytest.fixture
def two_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two numba threads")
    old = numba.get_num_threads()
    numba.set_num_threads(2)
    yield
    numba.set_num_threads(old)


def _count(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(module, name, spy)
    return calls


# (nd, batch, C, O, spatial, k, stride, padding, dilation, groups)
STAGED = [
    (2, 1, 24, 80, (5, 6), 3, 1, 1, 1, 1),      # output channels split
    (2, 1, 16, 12, (9, 7), 3, 1, 0, 1, 1),      # few output channels: columns split
    (1, 1, 16, 70, (300,), 3, 2, 0, 1, 1),      # one long 1-D row, strided
    (1, 1, 3, 64, (400,), 10, 5, 0, 1, 1),      # a 1-D stem
    (2, 1, 32, 96, (6, 5), 1, 2, 0, 1, 1),      # strided 1x1
    (2, 1, 16, 128, (4, 4), 3, 1, 2, 2, 2),     # groups, dilation
    (3, 1, 8, 70, (3, 4, 5), 3, 1, 1, 1, 1),
    (1, 2, 8, 70, (300,), 3, 1, 1, 1, 1),       # two images of one row each
]


@pytest.mark.parametrize("case", STAGED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_staged_vs_torch(case, dtype, two_threads, monkeypatch):
    nd, n, c, o, sp, k, s, p, d, g = case
    rng = np.random.default_rng(sum(sp) + c + o)
    x = rng.standard_normal((n, c) + sp)
    w = rng.standard_normal((o, c // g) + (k,) * nd)
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    want = getattr(F, f"conv{N[nd]}")(_t(x), _t(w), **kw).numpy()
    calls = _count(monkeypatch, knn, "_gemm_staged")
    got = getattr(fnn, f"conv{N[nd]}")(x.astype(dtype), w.astype(dtype), method="gemm",
                                       **kw)
    close(got, want, dtype)
    assert calls, "the staged GEMM path was not taken"


def test_gemm_staged_weight_gradient_and_input_gradient(two_threads):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 40, 6, 6)).astype(np.float32)
    w = rng.standard_normal((72, 40, 3, 3)).astype(np.float32)
    go = rng.standard_normal((1, 72, 6, 6)).astype(np.float32)
    close(fnn.conv2d_input(x.shape, w, go, padding=1, method="gemm"),
          G.conv2d_input(x.shape, _t(w), _t(go), padding=1).numpy(), np.float32)
    close(fnn.conv2d_weight(x, w.shape, go, padding=1),
          G.conv2d_weight(_t(x), w.shape, _t(go), padding=1).numpy(), np.float32)


@pytest.mark.parametrize("shape", [(1, 16, 9, 11), (2, 8, 5, 5), (1, 40, 14, 14)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_one_chunk_split_products_vs_torch(shape, dtype, two_threads,
                                                     monkeypatch):
    rng = np.random.default_rng(shape[2])
    x = rng.standard_normal(shape)
    w = rng.standard_normal((24, shape[1], 3, 3))
    want = F.conv2d(_t(x), _t(w), padding=1).numpy()
    chunks = []
    real = knn.run_chunks

    def spy(fn, items, threads):
        items = list(items)
        chunks.append(len(items))
        return real(fn, items, threads)
    monkeypatch.setattr(knn, "run_chunks", spy)
    close(fnn.conv2d(x.astype(dtype), w.astype(dtype), padding=1, method="winograd"),
          want, dtype)
    # ..., the tile chunks (one), then inside it the 36 products split in two
    assert chunks[-2:] == [1, 2]


# (nd, batch, Cin, O, spatial, k, stride, padding, output_padding, dilation)
COL2IM = [
    (2, 1, 64, 8, (3, 3), 3, 1, 1, 0, 1),       # the input gradient of a deep layer
    (2, 2, 48, 6, (4, 3), 3, 1, 0, 0, 2),
    (2, 1, 40, 5, (4, 4), 3, 2, 1, 1, 1),       # strided: 16 positions <= 8 x 40
    (2, 1, 16, 4, (5, 6), 4, 2, 1, 0, 1),
    (1, 1, 32, 3, (7,), 5, 3, 2, 2, 1),
    (3, 1, 30, 4, (2, 3, 2), 3, 1, 1, 0, 1),
    (3, 1, 30, 4, (2, 2, 3), 2, 2, 0, 1, 2),
    (2, 2, 4, 6, (9, 9), 3, 2, 1, 1, 1),        # strided, few output channels
    (2, 1, 2, 40, (6, 6), 2, 2, 0, 0, 1),       # kernel within the stride
    (1, 2, 3, 36, (11,), 2, 3, 0, 2, 1),
    (2, 2, 64, 24, (9, 10), 4, 2, 1, 0, 1),     # 4 taps a phase from 64 channels
    (2, 1, 20, 40, (8, 7), 3, 2, 1, 1, 1),      # 2.25 taps a phase, many outputs
    (3, 1, 64, 3, (3, 4, 5), 4, 2, 1, 1, 1),
]


@pytest.mark.parametrize("case", COL2IM)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_by_col2im_vs_torch(case, dtype, monkeypatch):
    nd, n, cin, o, sp, k, s, p, op, d = case
    rng = np.random.default_rng(cin + o + sum(sp))
    x = rng.standard_normal((n, cin) + sp)
    w = rng.standard_normal((cin, o) + (k,) * nd)
    kw = dict(stride=s, padding=p, output_padding=op, dilation=d)
    want = getattr(F, f"conv_transpose{N[nd]}")(_t(x), _t(w), **kw).numpy()
    assert fnn._col2im_pays(x.shape, w.shape, (s,) * nd)
    monkeypatch.setattr(fnn, "_transpose_weight", None)     # must not be called
    for method in ("auto", "gemm"):
        got = getattr(fnn, f"conv_transpose{N[nd]}")(x.astype(dtype), w.astype(dtype),
                                                     method=method, **kw)
        close(got, want, dtype)
    # the input gradient of the forward layer with weight (cin, o, *k)
    size = want.shape
    want = getattr(G, f"conv{N[nd]}_input")(size, _t(w), _t(x), stride=s, padding=p,
                                            dilation=d).numpy()
    got = getattr(fnn, f"conv{N[nd]}_input")(size, w.astype(dtype), x.astype(dtype),
                                             stride=s, padding=p, dilation=d)
    close(got, want, dtype)


def test_col2im_in_steps_of_images(monkeypatch):
    # y of several images over COL2IM_BYTES: one GEMM and one col2im per step, the
    # same result.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 64, 3, 3)).astype(np.float32)
    w = rng.standard_normal((64, 6, 3, 3)).astype(np.float32)
    want = F.conv_transpose2d(_t(x), _t(w), padding=1).numpy()
    monkeypatch.setattr(fnn, "COL2IM_BYTES", 2 * 6 * 9 * 9 * 4)
    got = []
    seen = [spec.kind for spec in _dispatched(
        lambda: got.append(fnn.conv_transpose2d(x, w, padding=1)))]
    close(got[0], want, np.float32)
    assert seen.count("col2im") == 3 and seen.count("layer") == 3


def _col2im_naive(y, out_shape, stride, padding, dilation):
    out = np.zeros(out_shape)
    n_img, n_o, kd, kh, kw, di, hi, wi = y.shape
    for idx in np.ndindex(kd, kh, kw, di, hi, wi):
        a, b, e, z, i, j = idx
        pos = [v * s - p + t * d for v, s, p, t, d
               in zip((z, i, j), stride, padding, (a, b, e), dilation)]
        if all(0 <= q < m for q, m in zip(pos, out_shape[2:])):
            out[:, :, pos[0], pos[1], pos[2]] += y[:, :, a, b, e, z, i, j]
    return out


def test_col2im_kernel_vs_naive_loop():
    # The kernel alone on random shapes: strides 1-3 (phases of unequal length when the
    # output width is odd), dilation, padding beyond the kernel, taps that reach no
    # output, 1-3 spatial axes; every output overwritten.
    rng = np.random.default_rng(11)
    for _ in range(80):
        k = tuple(int(v) for v in rng.integers(1, 4, 3))
        sp = tuple(int(v) for v in rng.integers(1, 6, 3))
        stride = tuple(int(v) for v in rng.integers(1, 4, 3))
        dil = tuple(int(v) for v in rng.integers(1, 3, 3))
        pad = tuple(int(rng.integers(0, d * (kk - 1) + 2)) for d, kk in zip(dil, k))
        out_sp = tuple(max(1, (i - 1) * s - 2 * p + d * (kk - 1) + 1 + int(rng.integers(0, 2)))
                       for i, s, p, d, kk in zip(sp, stride, pad, dil, k))
        n, o = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        y = rng.standard_normal((n, o) + k + sp).astype(np.float32)
        out = np.full((n, o) + out_sp, np.nan, np.float32)
        knn.col2im(y, out, stride, pad, dil)
        want = _col2im_naive(y.astype(np.float64), out.shape, stride, pad, dil)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_col2im_nan_stays_local():
    x = np.zeros((1, 64, 5, 5), np.float32)
    x[0, 3, 2, 2] = np.nan
    w = np.ones((64, 2, 3, 3), np.float32)
    y = fnn.conv_transpose2d(x, w)
    bad = np.isnan(y[0, 0])
    assert bad[2:5, 2:5].all() and bad.sum() == 9


def test_threaded_polyphase_copy_matches_the_numba_copy(two_threads):
    rng = np.random.default_rng(0)
    for _ in range(60):
        shape = tuple(int(v) for v in rng.integers(1, 7, 5))
        x = rng.standard_normal(shape).astype(np.float32)
        stride = tuple(int(v) for v in rng.integers(1, 4, 3))
        pads = tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (3, 2)))
        a = knn._polyphase(x, stride, pads, threaded=False)
        b = knn._polyphase(x, stride, pads, threaded=True)
        assert a.shape == b.shape and np.array_equal(a, b), (shape, stride, pads)


# (nd, batch, C, O, spatial, k, stride, padding)
IMAGES = [
    (2, 8, 24, 20, (7, 7), 3, 1, 1),            # a ResNet's last stage, batch 8
    (2, 3, 16, 12, (5, 6), 1, 2, 0),            # strided 1x1
    (2, 5, 8, 6, (9, 9), 3, 2, 1),
    (1, 4, 6, 10, (40,), 5, 1, 2),
    (3, 2, 4, 8, (3, 4, 5), 3, 1, 1),
]


@pytest.mark.parametrize("case", IMAGES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_images_side_by_side_vs_torch(case, dtype, monkeypatch):
    nd, n, c, o, sp, k, s, p = case
    rng = np.random.default_rng(n + c + o)
    x = rng.standard_normal((n, c) + sp)
    w = rng.standard_normal((o, c) + (k,) * nd)
    want = getattr(F, f"conv{N[nd]}")(_t(x), _t(w), stride=s, padding=p).numpy()
    calls = _count(monkeypatch, knn, "_gemm_images")
    got = getattr(fnn, f"conv{N[nd]}")(x.astype(dtype), w.astype(dtype), stride=s,
                                       padding=p, method="gemm")
    close(got, want, dtype)
    assert calls, "the images were not put side by side"


@pytest.mark.parametrize("n, c, h, want", [
    (1, 512, 7, "gemm"), (1, 256, 14, "gemm"),           # the filter transform dominates
    (1, 128, 28, "winograd"), (1, 64, 56, "winograd"), (8, 128, 28, "winograd")])
def test_model_weighs_the_winograd_filter_transform(n, c, h, want):
    # FASTCONV_TUNE=off: a deep 3x3 layer on a small map of one image runs GEMM (one
    # thread: 3.9 against 20.5 ms at 512 channels, 3.3 against 4.6 at 256); before,
    # the model left out Winograd's filter transform and its few-tile products.
    costs = knn.layer_costs((n, c, 1, h + 2, h + 2), (c, c, 1, 3, 3), (1, 1, 1),
                            (1, 1, 1), 1)
    assert min(costs, key=costs.get) == want


@pytest.mark.parametrize("n, length, k", [(1, 3199, 3), (8, 3199, 3), (1, 99, 2), (8, 99, 2)])
def test_model_runs_strided_deep_1d_layers_as_gemm(n, length, k):
    # FASTCONV_TUNE=off: wav2vec's stride-2 512-channel layers. The register-tiled direct
    # kernel took 1.2-1.6x BLAS's time on them (one thread); the model had it 0.8-1.1x.
    costs = knn.layer_costs((n, 512, 1, 1, length), (512, 512, 1, 1, k), (1, 1, 2),
                            (1, 1, 1), 1)
    assert min(costs, key=costs.get) == "gemm"


@pytest.mark.parametrize("seed", range(24))
def test_strided_transposed_of_few_channels_per_group_vs_torch(seed):
    # groups > 1 with Cin/groups x O/groups <= 4 (a depthwise layer's input gradient):
    # one "layer_transposed" kernel, every phase at once, instead of a correlation and a
    # strided copy per output phase.
    rng = np.random.default_rng(700 + seed)
    nd = 1 + seed % 3
    groups = int(rng.integers(2, 5))
    cg, og = [(1, 1), (1, 2), (2, 1), (2, 2), (1, 4)][seed % 5]
    k = [int(rng.integers(1, 5 if nd < 3 else 4)) for _ in range(nd)]
    s = [int(rng.integers(1, 4)) for _ in range(nd)]
    s[seed % nd] = max(2, s[seed % nd])
    d = [int(rng.integers(1, 3)) for _ in range(nd)]
    p = [int(rng.integers(0, dd * (kk - 1) + 1)) for dd, kk in zip(d, k)]
    op = [int(rng.integers(0, max(ss, dd))) for ss, dd in zip(s, d)]
    size = [int(rng.integers(1, 8 if nd < 3 else 5)) for _ in range(nd)]
    x = rng.standard_normal((int(rng.integers(1, 3)), groups * cg) + tuple(size))
    w = rng.standard_normal((groups * cg, og) + tuple(k))
    kw = dict(stride=s, padding=p, output_padding=op, dilation=d, groups=groups)
    try:
        want = getattr(F, f"conv_transpose{N[nd]}")(_t(x), _t(w), **kw).numpy()
    except RuntimeError:
        pytest.skip("torch rejects this configuration (output size)")
    for dtype in (np.float32, np.float64):
        got = []
        specs = _dispatched(lambda: got.append(getattr(fnn, f"conv_transpose{N[nd]}")(
            x.astype(dtype), w.astype(dtype), **kw)))
        close(got[0], want, dtype)
        assert [spec.kind for spec in specs] == ["layer_transposed"]


def test_depthwise_stride2_input_gradient_vs_torch():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((12, 1, 3, 3)).astype(np.float32)
    for n, size in ((1, (15, 16)), (3, (16, 16))):
        x = rng.standard_normal((n, 12) + size).astype(np.float32)
        go = F.conv2d(_t(x), _t(w), stride=2, padding=1, groups=12)
        go = rng.standard_normal(tuple(go.shape)).astype(np.float32)
        want = G.conv2d_input(x.shape, _t(w), _t(go), stride=2, padding=1,
                              groups=12).numpy()
        close(fnn.conv2d_input(x.shape, w, go, stride=2, padding=1, groups=12), want,
              np.float32)


@pytest.mark.parametrize("seed", range(8))
def test_weight_gradient_of_small_maps_images_side_by_side_vs_torch(seed, monkeypatch):
    # Maps under 256 output positions, several images, groups 1: one GEMM over the
    # positions of a block of images, the threads splitting the input channels; a small
    # workspace forces several blocks (the later ones added into the result).
    rng = np.random.default_rng(900 + seed)
    nd = 1 + seed % 3
    n = int(rng.integers(2, 6))
    c, o = int(rng.integers(1, 20)), int(rng.integers(1, 12))
    k = tuple(int(v) for v in rng.integers(1, 4, nd))
    s = int(rng.integers(1, 3))
    d = int(rng.integers(1, 3))
    sp = tuple(d * (kk - 1) + 1 + int(rng.integers(0, 8 if nd < 3 else 4)) for kk in k)
    p = int(rng.integers(0, 2))
    x = rng.standard_normal((n, c) + sp).astype(np.float32)
    kw = dict(stride=s, padding=p, dilation=d)
    out = getattr(F, f"conv{N[nd]}")(_t(x), _t(np.ones((o, c) + k, np.float32)), **kw)
    go = rng.standard_normal(out.shape).astype(np.float32)
    want = getattr(G, f"conv{N[nd]}_weight")(_t(x), (o, c) + k, _t(go), **kw).numpy()
    calls = _count(monkeypatch, knn, "_weight_gemm_images")
    if seed % 2:
        monkeypatch.setattr(knn, "WORKSPACE_BYTES", 2 * c * math.prod(k) * go[0, 0].size * 4)
    got = getattr(fnn, f"conv{N[nd]}_weight")(x, (o, c) + k, go, method="gemm", **kw)
    close(got, want, np.float32)
    assert calls


@pytest.mark.parametrize("seed", range(10))
def test_winograd_with_depth_taps_vs_torch(seed, monkeypatch):
    # k x 3 x 3 kernels (a video layer's 3x3x3): one 2-D Winograd layer per depth tap,
    # added up; depth stride, dilation and padding, groups, odd maps; odd seeds in
    # blocks of one image (a workspace too small for two).
    rng = np.random.default_rng(1000 + seed)
    groups = int(rng.integers(1, 3))
    c, o = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 4))
    kd = int(rng.integers(2, 4))
    sz, dz, pz = int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
    d = dz * (kd - 1) + 1 + int(rng.integers(0, 4))
    sp = (d, int(rng.integers(3, 12)), int(rng.integers(3, 12)))
    p = (pz, int(rng.integers(0, 2)), int(rng.integers(0, 2)))
    x = rng.standard_normal((int(rng.integers(1, 3)), c) + sp)
    w = rng.standard_normal((o, c // groups, kd, 3, 3))
    kw = dict(stride=(sz, 1, 1), dilation=(dz, 1, 1), padding=p, groups=groups)
    want = F.conv3d(_t(x), _t(w), **kw).numpy()
    if seed % 2:
        x = np.concatenate([x, x[::-1]])
        want = np.concatenate([want, want[::-1]])
        monkeypatch.setattr(knn, "WORKSPACE_BYTES", 1)
    for dtype in (np.float32, np.float64):
        got = fnn.conv3d(x.astype(dtype), w.astype(dtype), method="winograd", **kw)
        close(got, want, dtype)


WINO_CASES = [  # (n, c, o, spatial, padding): odd and even maps, 3-D with a kernel depth 1
    (1, 5, 7, (7, 7), 1), (2, 3, 4, (8, 9), 1), (1, 2, 3, (5, 6), 0), (3, 8, 6, (14, 13), 1),
    (1, 1, 1, (3, 3), 0), (2, 6, 5, (4, 11), (1, 0)), (1, 4, 4, (3, 6, 7), (0, 1, 1))]


@pytest.mark.parametrize("case", WINO_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_in_chunks_of_tile_rows_vs_torch(case, dtype, monkeypatch):
    # The whole map in one chunk, and chunks of a few tile rows.
    n, c, o, sp, pad = case
    nd = len(sp)
    rng = np.random.default_rng(sum(sp) + c)
    x = rng.standard_normal((n, c) + sp)
    w = rng.standard_normal((o, c) + ((1, 3, 3) if nd == 3 else (3, 3)))
    want = getattr(F, f"conv{N[nd]}")(_t(x), _t(w), padding=pad).numpy()
    tw = -(-(sp[-1] + 2 * (pad if isinstance(pad, int) else pad[-1]) - 2) // 4)
    for chunk_bytes in (knn.WINO_CHUNK_BYTES, 36 * (c + o) * tw * np.dtype(dtype).itemsize):
        monkeypatch.setattr(knn, "WINO_CHUNK_BYTES", chunk_bytes)
        got = getattr(fnn, f"conv{N[nd]}")(x.astype(dtype), w.astype(dtype), padding=pad,
                                           method="winograd")
        close(got, want, dtype)


@pytest.mark.parametrize("stride", [1, 2])
def test_images_side_by_side_of_a_1x1_layer_vs_torch(stride, monkeypatch):
    # A 1x1 layer's columns are its (subsampled) input planes: forward and weight
    # gradient of small maps of several images, both through the side-by-side GEMMs.
    rng = np.random.default_rng(40 + stride)
    x = rng.standard_normal((3, 20, 9, 9)).astype(np.float32)
    w = rng.standard_normal((12, 20, 1, 1)).astype(np.float32)
    fwd = _count(monkeypatch, knn, "_gemm_images")
    wgt = _count(monkeypatch, knn, "_weight_gemm_images")
    want = F.conv2d(_t(x), _t(w), stride=stride).numpy()
    close(fnn.conv2d(x, w, stride=stride, method="gemm"), want, np.float32)
    go = rng.standard_normal(want.shape).astype(np.float32)
    close(fnn.conv2d_weight(x, w.shape, go, stride=stride, method="gemm"),
          G.conv2d_weight(_t(x), w.shape, _t(go), stride=stride).numpy(), np.float32)
    assert fwd and wgt
