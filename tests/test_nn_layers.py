"""The conv-layer paths of issue 16 against torch (CPU): the depthwise kernel, 1x1 layers
as a GEMM on the input planes, transposed convolutions and input gradients by output
phase (no zeros inserted), and weight gradients as one GEMM over all groups (or the
depthwise kernel). Random shapes, odd and even kernels, stride, dilation, padding,
groups and channel multipliers, output_padding, float32 and float64, non-contiguous
inputs, batch 1 and more; plus the structural facts each path rests on (what is
dispatched, how much memory it takes) and NaN/Inf locality.
"""
import numpy as np
import pytest

import fastconv.nn as fnn
from fastconv import _dispatch
from fastconv.kernels.cpu import nn as knn

torch = pytest.importorskip("torch")
F = torch.nn.functional
G = torch.nn.grad
TOL = {np.float32: 2e-4, np.float64: 1e-10}
N = {1: "1d", 2: "2d", 3: "3d"}


def close(got, want, dtype):
    tol = TOL[np.dtype(dtype).type]
    scale = max(1.0, float(np.abs(want).max())) if np.size(want) else 1.0
    assert got.shape == want.shape and got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _noncontig(x, rng):
    """The same values in a non-contiguous array (every other element of a bigger one)."""
    big = np.empty(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    big[..., ::2] = x
    big[..., 1::2] = rng.standard_normal(x.shape).astype(x.dtype)
    return big[..., ::2]


def depthwise_case(seed):
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(1, 4))
    ch = int(rng.integers(1, 6))
    mult = int(rng.choice([1, 1, 2]))
    k = [int(rng.integers(1, 6 if nd < 3 else 4)) for _ in range(nd)]
    stride = [int(rng.integers(1, 3)) for _ in range(nd)]
    dil = [int(rng.integers(1, 3)) for _ in range(nd)]
    pad = [int(rng.integers(0, 3)) for _ in range(nd)]
    size = [d * (kk - 1) + 1 + int(rng.integers(0, 9 if nd < 3 else 4)) for d, kk
            in zip(dil, k)]
    batch = int(rng.integers(1, 3))
    x = rng.standard_normal((batch, ch) + tuple(size))
    w = rng.standard_normal((ch * mult, 1) + tuple(k))
    return nd, x, w, dict(stride=stride, padding=pad, dilation=dil, groups=ch), rng


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_forward_and_weight_grad_vs_torch(seed, dtype):
    nd, x, w, kw, rng = depthwise_case(seed)
    want = getattr(F, f"conv{N[nd]}")(_t(x), _t(w), **kw).numpy()
    go = rng.standard_normal(want.shape)
    want_w = getattr(G, f"conv{N[nd]}_weight")(_t(x), w.shape, _t(go), **kw).numpy()
    x, w, go = x.astype(dtype), w.astype(dtype), go.astype(dtype)
    if seed % 2:
        x = _noncontig(x, rng)
    for method in ("direct", "auto"):
        close(getattr(fnn, f"conv{N[nd]}")(x, w, method=method, **kw), want, dtype)
        close(getattr(fnn, f"conv{N[nd]}_weight")(x, w.shape, go, method=method, **kw),
              want_w, dtype)


@pytest.mark.parametrize("seed", range(10))
def test_depthwise_stride2_rows_vs_torch(seed):
    # Stride 2 along the last axis: the plane copy fills both column phases of a row in
    # one loop (_fill_row2), with its own edge rules: odd and even widths, padding 0-3
    # (phase 0 or 1 first), dilation, rows shorter than the kernel's reach.
    rng = np.random.default_rng(100 + seed)
    nd = 1 + seed % 2
    k = [int(rng.integers(1, 8)) for _ in range(nd)]
    dil = [int(rng.integers(1, 3)) for _ in range(nd)]
    pad = [int(rng.integers(0, 4)) for _ in range(nd)]
    stride = [int(rng.integers(1, 3)) for _ in range(nd - 1)] + [2]
    size = [max(1, d * (kk - 1) + 1 - 2 * p) + int(rng.integers(0, 12))
            for d, kk, p in zip(dil, k, pad)]
    ch = int(rng.integers(1, 4))
    x = rng.standard_normal((2, ch) + tuple(size))
    w = rng.standard_normal((ch, 1) + tuple(k))
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=ch)
    want = getattr(F, f"conv{N[nd]}")(_t(x), _t(w), **kw).numpy()
    go = rng.standard_normal(want.shape)
    want_w = getattr(G, f"conv{N[nd]}_weight")(_t(x), w.shape, _t(go), **kw).numpy()
    close(getattr(fnn, f"conv{N[nd]}")(x, w, method="direct", **kw), want, np.float64)
    close(getattr(fnn, f"conv{N[nd]}_weight")(x, w.shape, go, method="direct", **kw),
          want_w, np.float64)


def test_depthwise_inf_and_nan_stay_local():
    # An Inf gives Inf in the outputs whose window holds it (as torch), not NaN from a
    # zero-weight tap (the row kernel's padded tap groups did, before the depthwise
    # kernel), and a NaN only the outputs whose window holds it.
    x = np.ones((1, 3, 12, 12), np.float32)
    x[0, 1, 5, 5] = np.inf
    x[0, 2, 3, 7] = np.nan
    w = np.ones((3, 1, 3, 3), np.float32)
    got = fnn.conv2d(x, w, padding=1, groups=3, method="direct")
    want = F.conv2d(_t(x), _t(w), padding=1, groups=3).numpy()
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isinf(got).sum() == 9 and np.isnan(got).sum() == 9
    # Weight gradient: an Inf in the last input column reaches only the taps that read
    # it (torch: finite elsewhere), a NaN in the gradient only its channel.
    x = np.ones((1, 2, 8, 8), np.float32)
    x[0, 0, 4, 7] = np.inf
    go = np.ones((1, 2, 8, 8), np.float32)
    go[0, 1, 2, 2] = np.nan
    got = fnn.conv2d_weight(x, (2, 1, 3, 3), go, padding=1, groups=2)
    want = G.conv2d_weight(_t(x), (2, 1, 3, 3), _t(go), padding=1, groups=2).numpy()
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isfinite(got[0, 0, :, 0]).all() and np.isnan(got[1]).all()


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_layers_vs_torch(seed, dtype):
    # 1x1 layers with stride, padding and groups: the GEMM reads the input planes.
    rng = np.random.default_rng(seed + 100)
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 2]))
    cin, cout = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5))
    stride = [int(rng.integers(1, 4)) for _ in range(nd)]
    pad = [int(rng.integers(0, 2)) for _ in range(nd)]
    x = rng.standard_normal((int(rng.integers(1, 3)), cin)
                            + tuple(int(v) for v in rng.integers(1, 9, nd)))
    w = rng.standard_normal((cout, cin // groups) + (1,) * nd)
    kw = dict(stride=stride, padding=pad, groups=groups)
    want = getattr(F, f"conv{N[nd]}")(_t(x), _t(w), **kw).numpy()
    go = rng.standard_normal(want.shape)
    want_w = getattr(G, f"conv{N[nd]}_weight")(_t(x), w.shape, _t(go), **kw).numpy()
    x, w, go = x.astype(dtype), w.astype(dtype), go.astype(dtype)
    if seed % 2:
        x = _noncontig(x, rng)
    for method in ("gemm", "auto"):
        close(getattr(fnn, f"conv{N[nd]}")(x, w, method=method, **kw), want, dtype)
        close(getattr(fnn, f"conv{N[nd]}_weight")(x, w.shape, go, method=method, **kw),
              want_w, dtype)


def test_strided_pointwise_gemm_copies_only_the_strided_input():
    # Before: a polyphase copy of the whole input (all stride^2 phases) plus im2col.
    import tracemalloc
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 64, 64)).astype(np.float32)
    w = rng.standard_normal((32, 64, 1, 1)).astype(np.float32)
    fnn.conv2d(x, w, stride=2, method="gemm")
    from fastconv.kernels.cpu._chunks import clear_scratch
    clear_scratch()
    tracemalloc.start()
    try:
        out = fnn.conv2d(x, w, stride=2, method="gemm")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - out.nbytes <= x.nbytes // 4 + 64 * 1024


def transposed_case(seed):
    rng = np.random.default_rng(seed + 200)
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 2]))
    cin = groups * int(rng.integers(1, 3))
    og = int(rng.integers(1, 3))
    k = [int(rng.integers(1, 5 if nd < 3 else 4)) for _ in range(nd)]
    stride = [int(rng.integers(2, 4)) for _ in range(nd)]
    dil = [int(rng.integers(1, 3)) for _ in range(nd)]
    pad = [int(rng.integers(0, d * (kk - 1) + 1)) for d, kk in zip(dil, k)]
    op = [int(rng.integers(0, max(s, d))) for s, d in zip(stride, dil)]
    size = [int(rng.integers(2, 7 if nd < 3 else 4)) for _ in range(nd)]
    x = rng.standard_normal((int(rng.integers(1, 3)), cin) + tuple(size))
    w = rng.standard_normal((cin, og) + tuple(k))
    return nd, x, w, dict(stride=stride, padding=pad, output_padding=op, groups=groups,
                          dilation=dil), rng


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_transposed_by_phases_vs_torch(seed, dtype):
    nd, x, w, kw, rng = transposed_case(seed)
    try:
        want = getattr(F, f"conv_transpose{N[nd]}")(_t(x), _t(w), **kw).numpy()
    except RuntimeError:
        pytest.skip("torch rejects this configuration (output size)")
    x, w = x.astype(dtype), w.astype(dtype)
    if seed % 2:
        x = _noncontig(x, rng)
    for method in ("auto", "direct", "gemm", "fft"):
        close(getattr(fnn, f"conv_transpose{N[nd]}")(x, w, method=method, **kw), want,
              dtype)


@pytest.mark.parametrize("seed", range(8))
def test_kernel_within_stride_phases_vs_torch(seed, monkeypatch):
    # k <= s on every axis, groups 1 (a U-Net's k2 s2, wav2vec's k2 s2 input gradient):
    # each phase is a 1x1 layer on a transposed view of one weight plane, with no
    # per-phase take and transpose of the weight (they cost 2/3 of the call before).
    rng = np.random.default_rng(300 + seed)
    nd = 1 + seed % 3
    stride = [int(rng.integers(2, 4)) for _ in range(nd)]
    k = [int(rng.integers(1, s + 1)) for s in stride]
    cin, o = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    size = [int(rng.integers(1, 6)) for _ in range(nd)]
    op = [int(rng.integers(0, s)) for s in stride]
    x = rng.standard_normal((int(rng.integers(1, 3)), cin) + tuple(size))
    w = rng.standard_normal((cin, o) + tuple(k))
    monkeypatch.setattr(fnn, "_transpose_weight", None)     # must not be called
    want = getattr(F, f"conv_transpose{N[nd]}")(_t(x), _t(w), stride=stride,
                                                 output_padding=op).numpy()
    for dtype in (np.float32, np.float64):
        for method in ("auto", "direct", "gemm"):
            got = getattr(fnn, f"conv_transpose{N[nd]}")(x.astype(dtype), w.astype(dtype),
                                                         stride=stride, output_padding=op,
                                                         method=method)
            close(got, want, dtype)
    # the input gradient of the forward layer with weight (o, cin, *k)
    wf = rng.standard_normal((o, cin) + tuple(k))
    xs = tuple((sz - 1) * s + kk + p for sz, s, kk, p in zip(size, stride, k, op))
    go = rng.standard_normal((x.shape[0], o) + tuple(size))
    want = getattr(G, f"conv{N[nd]}_input")((x.shape[0], cin) + xs, _t(wf), _t(go),
                                            stride=stride).numpy()
    got = getattr(fnn, f"conv{N[nd]}_input")((x.shape[0], cin) + xs, wf, go, stride=stride)
    close(got, want, np.float64)


@pytest.mark.parametrize("seed", range(6))
def test_strided_input_grad_vs_torch(seed):
    nd, x, w, kw, rng = depthwise_case(seed + 40) if seed % 2 else transposed_case(seed)
    if "output_padding" in kw:       # a convolution case from the transposed shapes
        w = rng.standard_normal((2 * kw["groups"], x.shape[1] // kw["groups"])
                                + w.shape[2:])
        kw = dict(stride=kw["stride"], dilation=kw["dilation"], groups=kw["groups"],
                  padding=[0] * nd)
        big = [d * (kk - 1) + 1 + 3 * s for d, kk, s in zip(kw["dilation"], w.shape[2:],
                                                          kw["stride"])]
        x = rng.standard_normal(x.shape[:2] + tuple(big))
    y = getattr(F, f"conv{N[nd]}")(_t(x), _t(w), **kw)
    go = rng.standard_normal(tuple(y.shape))
    want = getattr(G, f"conv{N[nd]}_input")(x.shape, _t(w), _t(go), **kw).numpy()
    for dtype in (np.float32, np.float64):
        for method in ("auto", "direct", "gemm"):
            got = getattr(fnn, f"conv{N[nd]}_input")(x.shape, w.astype(dtype),
                                                     go.astype(dtype), method=method, **kw)
            close(got, want, dtype)


def _dispatched(fn):
    """The specs dispatched while ``fn`` runs."""
    seen = []
    real = _dispatch.execute

    def spy(spec, x, w, decision, **kw):
        seen.append(spec)
        return real(spec, x, w, decision, **kw)
    _dispatch.execute = spy
    try:
        fn()
    finally:
        _dispatch.execute = real
    return seen


def test_strided_transposed_inserts_no_zeros():
    # Each dispatched correlation reads an input no larger than the (padded) input:
    # before, the stride-2 layer correlated a zero-inserted input 4x the size.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 8, 10, 10)).astype(np.float32)
    w = rng.standard_normal((8, 4, 2, 2)).astype(np.float32)
    # (By output phase, or, with these few output channels, one 1x1 GEMM then col2im.)
    specs = _dispatched(lambda: fnn.conv_transpose2d(x, w, stride=2))
    layers = [s for s in specs if s.kind == "layer"]
    assert (len(layers), len(specs)) in ((4, 4), (1, 2))
    for spec in layers:
        assert spec.x_shape[3:] == (10, 10) and spec.w_shape[3:] == (1, 1)
    w3 = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    specs = _dispatched(lambda: fnn.conv2d_input(
        (1, 4, 21, 21), w3, x, stride=2))
    assert all(s.x_shape[3] <= 12 and s.x_shape[4] <= 12 for s in specs
               if s.kind == "layer")


def test_weight_grad_is_one_call_for_all_groups():
    # Before: one dispatched correlation per group.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 12, 9, 9)).astype(np.float32)
    go = rng.standard_normal((2, 12, 9, 9)).astype(np.float32)
    for groups, cg in ((4, 3), (12, 1)):
        specs = _dispatched(lambda: fnn.conv2d_weight(x, (12, cg, 3, 3), go, padding=1,
                                                      groups=groups))
        assert len(specs) == 1 and specs[0].kind == "layer_weight"
        want = G.conv2d_weight(_t(x), (12, cg, 3, 3), _t(go), padding=1,
                               groups=groups).numpy()
        close(fnn.conv2d_weight(x, (12, cg, 3, 3), go, padding=1, groups=groups), want,
              np.float32)


def test_model_picks_the_new_paths(monkeypatch):
    # FASTCONV_TUNE=off: the cost model alone picks the depthwise kernel for depthwise
    # layers and the GEMM for 1x1 layers with many channels.
    f32 = np.float32
    assert knn.choose_method((8, 144, 1, 58, 58), (144, 1, 1, 3, 3), (1, 1, 1),
                             (1, 1, 1), 144, f32) == "direct"
    assert knn.choose_method((8, 96, 1, 114, 114), (96, 1, 1, 3, 3), (1, 2, 2),
                             (1, 1, 1), 96, f32) == "direct"
    for xs, ws, st in [((8, 256, 1, 56, 56), (64, 256, 1, 1, 1), 1),
                       ((8, 256, 1, 56, 56), (512, 256, 1, 1, 1), 2),
                       ((1, 96, 1, 56, 56), (384, 96, 1, 1, 1), 1)]:
        assert knn.choose_method(xs, ws, (1, st, st), (1, 1, 1), 1, f32) == "gemm"
    assert knn.choose_weight_method((144, 1, 1, 3, 3), 144) == "direct"
    assert knn.choose_weight_method((64, 64, 1, 3, 3), 1) == "gemm"


@pytest.mark.parametrize("seed", range(6))
def test_few_output_channels_transposed_by_col2im_vs_torch(seed):
    # O x taps <= C/2 (a 1-D stem's input gradient): one 1x1 GEMM, then each tap added
    # into its strided output slice.
    rng = np.random.default_rng(seed + 300)
    nd = int(rng.integers(1, 4))
    k = tuple(int(v) for v in rng.integers(1, 4, nd))
    cin = 2 * int(np.prod(k)) + int(rng.integers(0, 4))
    s = tuple(int(v) for v in rng.integers(1, 4, nd))
    d = tuple(int(v) for v in rng.integers(1, 3, nd))
    p = tuple(int(rng.integers(0, dd * (kk - 1) + 1)) for dd, kk in zip(d, k))
    op = tuple(int(rng.integers(0, max(ss, dd))) for ss, dd in zip(s, d))
    x = rng.standard_normal((int(rng.integers(1, 3)), cin)
                            + tuple(int(v) for v in rng.integers(2, 7, nd)))
    w = rng.standard_normal((cin, 1) + k)
    kw = dict(stride=s, padding=p, output_padding=op, dilation=d)
    try:
        want = getattr(F, f"conv_transpose{N[nd]}")(_t(x), _t(w), **kw).numpy()
    except RuntimeError:
        pytest.skip("torch rejects this configuration (output size)")
    tr = getattr(fnn, f"conv_transpose{N[nd]}")
    specs = _dispatched(lambda: tr(x, w, **kw))
    assert [s.kind for s in specs] == ["layer", "col2im"]
    assert specs[0].w_shape[2:] == (1, 1, 1)
    for dtype in (np.float32, np.float64):
        close(tr(x.astype(dtype), w.astype(dtype), **kw), want, dtype)
    # The stem's input gradient takes the same route.
    xs = (2, 1, 64)
    wt = rng.standard_normal((32, 1, 4))
    go = rng.standard_normal((2, 32, 13))
    want = G.conv1d_input(xs, _t(wt), _t(go), stride=5).numpy()
    close(fnn.conv1d_input(xs, wt, go, stride=5), want, np.float64)
